"""The recipe's train transform: RandAugment's posterize at the top magnitude (Pillow 13 rejects 0 bits)."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from timm.data.auto_augment import AugmentOp

from edgenext.data.transforms import train_transform_factory


def _photo(seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8))


def test_posterize_keeping_zero_bits_gives_a_black_image():
    # magnitude 10 of the increasing posterize keeps 0 bits: what rand-m9-mstd0.5-inc1 reaches when its
    # Gaussian magnitude draws 10 (Pillow 13's ImageOps.posterize raises ValueError there)
    img = _photo()
    black = AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=10)(img)
    assert black.size == img.size and black.mode == "RGB" and not np.asarray(black).any()
    four = np.asarray(AugmentOp("PosterizeIncreasing", prob=1.0, magnitude=0)(img))
    assert np.array_equal(four, np.asarray(img) & 0xF0)  # 4 bits kept, as before


def test_the_recipe_rand_augment_at_magnitude_10_never_raises():
    transform = train_transform_factory(rand_augment="rand-m10-mstd0-inc1")(32)
    torch.manual_seed(0)
    for seed in range(60):  # two ops of ~15 per image: posterize is drawn several times
        out = transform(_photo(seed))
        assert out.shape == (3, 32, 32) and torch.isfinite(out).all()
