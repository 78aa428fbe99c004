"""Train and eval transforms, built with timm's ``create_transform`` (one per input size)."""

from __future__ import annotations

import functools
from typing import Callable, Optional, Sequence

from PIL import Image, ImageOps
from timm.data import auto_augment, create_transform

from ..constants import IMAGENET_MEAN, IMAGENET_STD


def posterize(img: Image.Image, bits_to_keep: int, **_: object) -> Image.Image:
    """timm's RandAugment posterize, keeping 0 bits meaning a black image (what Pillow < 13 gave).

    NOTE: the paper recipe's ``rand-m9-mstd0.5-inc1`` draws magnitudes up to 10, where the increasing posterize
    keeps 0 bits; Pillow 13 raises ValueError for that, which stopped a training run on about one image in
    a few hundred (found timing the input pipeline, ``edgenext bench --data``).
    """
    if bits_to_keep >= 8:
        return img
    if bits_to_keep <= 0:
        return Image.new(img.mode, img.size)
    return ImageOps.posterize(img, bits_to_keep)


# every RandAugment / AutoAugment op timm builds from here on (ours and timm's loaders alike) takes this posterize
auto_augment.NAME_TO_OP.update({name: posterize for name in ("Posterize", "PosterizeIncreasing", "PosterizeOriginal")})


def train_transform_factory(
    *,
    augment: bool = True,
    crop_scale: Sequence[float] = (0.08, 1.0),
    crop_ratio: Sequence[float] = (3 / 4, 4 / 3),
    hflip: float = 0.5,
    color_jitter: float = 0.4,
    rand_augment: Optional[str] = None,
    reprob: float = 0.0,
    interpolation: str = "bicubic",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[int], Callable]:
    """A function ``size -> transform``: random-resized-crop, flip, colour jitter / RandAugment, erasing.

    ``augment=False`` gives a deterministic resize + center crop (timm's ``no_aug``), which the
    reproducibility tests rely on.
    """
    if not 0.0 < crop_scale[0] <= crop_scale[1] <= 1.0:
        raise ValueError(f"crop_scale={tuple(crop_scale)} must satisfy 0 < min <= max <= 1")

    @functools.lru_cache(maxsize=None)
    def make(size: int) -> Callable:
        return create_transform(
            input_size=size,
            is_training=True,
            no_aug=not augment,
            scale=tuple(crop_scale),
            ratio=tuple(crop_ratio),
            hflip=hflip,
            # NOTE: timm ignores color jitter when RandAugment is on, as the paper's recipe does.
            color_jitter=color_jitter,
            auto_augment=rand_augment or None,
            interpolation=interpolation,
            mean=tuple(mean),
            std=tuple(std),
            re_prob=reprob,
            re_mode="pixel",
        )

    return make


def eval_transform_factory(
    *,
    crop_pct: float = 0.875,
    interpolation: str = "bicubic",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable[[int], Callable]:
    """A function ``size -> transform``: resize the shorter side to size / crop_pct, center-crop size."""
    if not 0.0 < crop_pct <= 1.0:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")

    @functools.lru_cache(maxsize=None)
    def make(size: int) -> Callable:
        return create_transform(
            input_size=size, is_training=False, crop_pct=crop_pct, interpolation=interpolation, mean=tuple(mean), std=tuple(std)
        )

    return make
