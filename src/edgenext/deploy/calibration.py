"""Calibration data for post-training quantisation: a folder of images, or the digits set.

Both go through the data module, so calibration images are preprocessed exactly as an
evaluation would preprocess them (``edgenext.data.eval_transform_factory``), and the digits
come from ``DigitsDataset``'s training split: a model trained with ``edgenext train`` on the
digits is never calibrated on one of its validation images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence, Union

import torch
from torchvision.datasets.folder import IMG_EXTENSIONS

from ..constants import DEFAULT_PRETRAINED_CFG, IMAGENET_MEAN, IMAGENET_STD
from ..data import DigitsDataset, eval_transform_factory, load_image
from ..models.edgenext import InputSize, input_hw
from .parity import HW

DEFAULT_CROP_PCT = DEFAULT_PRETRAINED_CFG["crop_pct"]


def _transform(size: HW, crop_pct: float, interpolation: str, mean: Sequence[float], std: Sequence[float]) -> Callable:
    return eval_transform_factory(crop_pct=crop_pct, interpolation=interpolation, mean=mean, std=std)(size)


def digits_tensors(
    split: str = "train",
    input_size: InputSize = 64,
    *,
    limit: Optional[int] = None,
    crop_pct: float = DEFAULT_CROP_PCT,
    interpolation: str = "bicubic",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    image_size: int = 64,
    val_fraction: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of ``DigitsDataset(split)`` (stored at ``image_size``, its fixed
    split at ``val_fraction``: a run's ``digits_size`` and ``digits_val_fraction``), each image
    through the evaluation transform at ``input_size``: ``(N, 3, H, W)`` floats and ``(N,)``."""
    transform = _transform(input_hw(input_size), crop_pct, interpolation, mean, std)
    return _digits(split, limit, transform, image_size=image_size, val_fraction=val_fraction)


def _digits(split: str, limit: Optional[int], transform: Callable, *, image_size: int = 64,
            val_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    # NOTE: the dataset asks its factory for its storage size; the model's input size is what counts here.
    dataset = DigitsDataset(split, lambda _storage_size: transform, image_size=image_size, val_fraction=val_fraction)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    pairs = [dataset[i] for i in range(count)]
    return torch.stack([x for x, _ in pairs]), torch.tensor([y for _, y in pairs], dtype=torch.long)


def image_files(folder: Union[str, Path]) -> list[Path]:
    """The images under ``folder`` (recursively, sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"calibration folder {folder} does not exist or is not a directory")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS)
    if not files:
        raise ValueError(f"no images ({', '.join(IMG_EXTENSIONS)}) found under {folder}")
    return files


def calibration_tensor(
    source: Union[str, Path],
    input_size: InputSize = 256,
    limit: int = 128,
    *,
    crop_pct: float = DEFAULT_CROP_PCT,
    interpolation: str = "bicubic",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """Up to ``limit`` calibration images, ``(N, 3, H, W)``: ``'digits'`` (the training split) or
    an image folder (searched recursively).

    ``input_size`` is a side or ``(height, width)``; pass the model's evaluation settings
    (crop_pct, interpolation, mean, std) so calibration sees what evaluation sees.
    """
    size = input_hw(input_size)
    transform = _transform(size, crop_pct, interpolation, mean, std)
    if str(source) == "digits":
        return _digits("train", limit, transform)[0]
    return torch.stack([transform(load_image(path)) for path in image_files(source)[:limit]])


def batches(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    for i in range(0, len(x), batch_size):
        yield x[i : i + batch_size]


def top1(
    predict: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor, batch_size: int = 64
) -> float:
    """Top-1 accuracy in percent of ``predict`` (tensor -> logits) over ``(x, y)``."""
    correct = 0
    with torch.no_grad():
        for xb, yb in zip(batches(x, batch_size), batches(y, batch_size)):
            correct += int((predict(xb).argmax(-1) == yb).sum())
    return 100.0 * correct / len(y)
