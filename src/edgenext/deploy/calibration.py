"""Calibration data for post-training quantisation: a folder of images, or the digits set.

The digits set (scikit-learn's 1,797 8x8 handwritten digits, shipped with the package's
dependencies) is upsampled to RGB at the model's input size; its fixed train/val split is the
one the int8 accuracy checks use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence, Union

import torch
import torch.nn.functional as F

from ..constants import DEFAULT_PRETRAINED_CFG
from .common import InputSize, hw

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
DIGITS_VAL_FRACTION = 0.2


def digits_split(input_size: InputSize = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_train, y_train, x_val, y_val)``: digits as normalised ``(N, 3, H, W)`` float tensors.

    Pixel values 0..16 become 0..1, are bilinearly upsampled, repeated over RGB and normalised
    with the ImageNet mean/std, like any image the model would see. The split is stratified-free
    but seeded, so every call returns the same images.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8)
    x = F.interpolate(x, size=hw(input_size), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    mean = torch.tensor(DEFAULT_PRETRAINED_CFG["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(DEFAULT_PRETRAINED_CFG["std"]).view(1, 3, 1, 1)
    x = (x - mean) / std
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(y) * DIGITS_VAL_FRACTION)
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def image_files(folder: Union[str, Path]) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"calibration folder {folder} does not exist or is not a directory")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {folder}")
    return files


def folder_images(folder: Union[str, Path], input_size: InputSize = 256, limit: int = 128) -> torch.Tensor:
    """Up to ``limit`` images of ``folder`` (recursively), preprocessed as for evaluation."""
    from PIL import Image
    from torchvision.transforms import v2 as T

    height, width = hw(input_size)
    crop_pct = DEFAULT_PRETRAINED_CFG.get("crop_pct", 0.875)
    transform = T.Compose([
        T.Resize(int(round(min(height, width) / crop_pct)), interpolation=T.InterpolationMode.BICUBIC, antialias=True),
        T.CenterCrop((height, width)),
        T.ToImage(),
        T.ToDtype(torch.float32, scale=True),
        T.Normalize(DEFAULT_PRETRAINED_CFG["mean"], DEFAULT_PRETRAINED_CFG["std"]),
    ])
    images = []
    for path in image_files(folder)[:limit]:
        with Image.open(path) as img:
            images.append(transform(img.convert("RGB")))
    return torch.stack(images)


def calibration_tensor(source: Union[str, Path], input_size: InputSize = 256, limit: int = 128) -> torch.Tensor:
    """Calibration images from ``source``: ``'digits'`` (the training split) or an image folder."""
    if str(source) == "digits":
        return digits_split(input_size)[0][:limit]
    return folder_images(source, input_size, limit)


def batches(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size]


def top1(predict: "callable", x: torch.Tensor, y: torch.Tensor, batch_size: int = 64) -> float:
    """Top-1 accuracy in percent of ``predict`` (tensor -> logits) over ``(x, y)``."""
    correct = 0
    with torch.no_grad():
        for xb, yb in zip(batches(x, batch_size), batches(y, batch_size)):
            correct += int((predict(xb).argmax(-1) == yb).sum())
    return 100.0 * correct / len(y)


def as_sequence(x: torch.Tensor) -> Sequence[torch.Tensor]:
    return [x[i : i + 1] for i in range(len(x))]
