"""Datasets: image folders that survive bad files, and the built-in digits demo set.

Both return PIL images through a transform chosen per sample, so the multi-scale batch
sampler can ask for each batch at its own resolution: an index may be a plain ``int`` or an
``(index, size)`` pair.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS


TransformFactory = Callable[[int], Callable[[Image.Image], torch.Tensor]]
Index = Union[int, tuple[int, int]]


class SkippedSample:
    """Stands in for an image that could not be read; the collate function drops it and counts it."""

    __slots__ = ("path", "reason")

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB: grayscale and CMYK converted, transparency composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # NOTE: PIL's convert("L") clips 16/32-bit values instead of scaling them.
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        return Image.fromarray(arr.astype(np.uint8), mode="L").convert("RGB")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_image(path: Union[str, os.PathLike]) -> Image.Image:
    """Open and fully decode an image as RGB (raises ``OSError``/``ValueError`` on bad files)."""
    with open(path, "rb") as f:
        img = Image.open(f)
        img.load()  # decode now, inside the try of the caller, not lazily in a transform
        return to_rgb(img)


class _PerSizeTransform:
    """Picks (and caches) the transform for each requested input size."""

    def __init__(self, factory: Optional[TransformFactory], default_size: int) -> None:
        self.factory = factory
        self.default_size = default_size
        self._cache: dict[int, Callable] = {}

    def __call__(self, img: Image.Image, size: Optional[int]) -> Any:
        if self.factory is None:
            return img
        size = self.default_size if size is None else int(size)
        if size not in self._cache:
            self._cache[size] = self.factory(size)
        return self._cache[size](img)


def _split_index(index: Index) -> tuple[int, Optional[int]]:
    if isinstance(index, (tuple, list)):
        return int(index[0]), int(index[1])
    return int(index), None


class ImageFolderDataset(ImageFolder):
    """torchvision's ``ImageFolder`` (``ROOT/<class>/<image>``) with robust loading.

    Unreadable or corrupt files become ``SkippedSample`` (with one warning each) instead of
    exceptions, so one bad file never stops a run. ``class_names`` fixes the label order
    (the training set's for a validation folder missing a class, or the 1000 ImageNet ids).
    """

    def __init__(
        self,
        root: Union[str, os.PathLike],
        transform_factory: Optional[TransformFactory] = None,
        *,
        default_size: int = 224,
        class_names: Optional[Sequence[str]] = None,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise ValueError(f"{root}: no such folder; expected class sub-folders of images (ROOT/<class>/<image>)")
        self._fixed_classes = list(class_names) if class_names is not None else None
        super().__init__(str(root), loader=load_image, allow_empty=True)
        if not self.samples:
            raise ValueError(f"{root}: class folder(s) but no images in them (looked for {', '.join(IMG_EXTENSIONS)})")
        self.class_names = list(self.classes)
        self.per_size_transform = _PerSizeTransform(transform_factory, default_size)

    def find_classes(self, directory: Union[str, os.PathLike]) -> tuple[list[str], dict[str, int]]:
        found = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
        if not found:
            raise ValueError(f"{directory}: no class sub-folders found; expected ROOT/<class>/<image>")
        names = found
        if self._fixed_classes is not None:
            unknown = sorted(set(found) - set(self._fixed_classes))
            if unknown:
                raise ValueError(f"{directory}: classes {', '.join(unknown[:10])} are not among the "
                                 f"{len(self._fixed_classes)} known classes")
            names = self._fixed_classes
        return names, {name: i for i, name in enumerate(names)}

    def __getitem__(self, index: Index) -> tuple[Any, int]:
        i, size = _split_index(index)
        path, target = self.samples[i]
        try:
            img = self.loader(path)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            # NOTE: PIL raises SyntaxError for some malformed headers; all of these mean "bad file".
            reason = f"{type(err).__name__}: {err}"
            warnings.warn(f"skipping unreadable image {path} ({reason})", stacklevel=2)
            return SkippedSample(path, reason), target
        return self.per_size_transform(img, size), target


def digits_split(split: str = "train", *, val_fraction: float = 0.2, split_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One side of the fixed, seeded, stratified train/val split of scikit-learn's ``load_digits``.

    Returns ``(images, labels)``: ``images`` of shape ``(N, 8, 8)`` with the raw values 0..16,
    ``labels`` of shape ``(N,)``, both in ``load_digits`` order. Every user of the digits (the
    classification demo, the digit scenes) takes this split, so no validation digit is ever trained on.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in ("train", "val"):
        raise ValueError(f"digits split must be 'train' or 'val', got {split!r}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    digits = load_digits()
    train_idx, val_idx = train_test_split(
        np.arange(len(digits.target)), test_size=val_fraction, random_state=split_seed, stratify=digits.target
    )
    keep = np.sort(train_idx if split == "train" else val_idx)
    return digits.images[keep], digits.target[keep]


class DigitsDataset(Dataset):
    """scikit-learn's ``load_digits`` (1,797 real 8x8 handwritten digits) as RGB images.

    A fixed, seeded, stratified train/val split; each image is upsampled once (bicubic)
    to ``image_size`` square and replicated to three channels.
    """

    def __init__(
        self,
        split: str = "train",
        transform_factory: Optional[TransformFactory] = None,
        *,
        image_size: int = 64,
        val_fraction: float = 0.2,
        split_seed: int = 0,
    ) -> None:
        images, labels = digits_split(split, val_fraction=val_fraction, split_seed=split_seed)
        if image_size < 8:
            raise ValueError(f"image_size must be at least 8 (the digits are 8x8), got {image_size}")
        # pixel values are 0..16 (counts of set bits in 4x4 blocks of the original scans)
        pixels = (images * (255.0 / 16.0)).round().astype(np.uint8)
        self.images = [
            Image.fromarray(p, mode="L").resize((image_size, image_size), Image.BICUBIC).convert("RGB") for p in pixels
        ]
        self.targets = [int(t) for t in labels]
        self.class_names = [str(c) for c in range(10)]
        self.transform = _PerSizeTransform(transform_factory, image_size)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Index) -> tuple[Any, int]:
        i, size = _split_index(index)
        return self.transform(self.images[i], size), self.targets[i]


class SkipCounter:
    """Collate function: drops ``SkippedSample`` entries and reports how many it dropped.

    Returns ``(images, targets, skipped)``; images is an empty ``(0, ...)`` batch when every
    sample of the batch was unreadable.
    """

    def __call__(self, batch: Sequence[tuple[Any, int]]) -> tuple[torch.Tensor, torch.Tensor, int]:
        good = [(x, y) for x, y in batch if not isinstance(x, SkippedSample)]
        skipped = len(batch) - len(good)
        if not good:
            return torch.empty(0), torch.empty(0, dtype=torch.long), skipped
        images = torch.stack([x for x, _ in good])
        targets = torch.tensor([y for _, y in good], dtype=torch.long)
        return images, targets, skipped


class SubsetDataset(Dataset):
    """The first ``limit`` samples of a fixed permutation of ``dataset`` (for quick runs)."""

    def __init__(self, dataset: Dataset, limit: int, seed: int = 0) -> None:
        if limit < 1:
            raise ValueError(f"a sample limit must be >= 1, got {limit}")
        order = np.random.default_rng(seed).permutation(len(dataset))[:limit]
        self.dataset = dataset
        self.indices = [int(i) for i in np.sort(order)]
        self.class_names = dataset.class_names
        self.targets = [dataset.targets[i] for i in self.indices] if hasattr(dataset, "targets") else None

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Index) -> tuple[Any, int]:
        i, size = _split_index(index)
        return self.dataset[(self.indices[i], size) if size is not None else self.indices[i]]
