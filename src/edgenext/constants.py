"""Constants used across the package and by the tests: one source of truth."""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Evaluation settings of the released ImageNet weights (paper.md).
DEFAULT_PRETRAINED_CFG = dict(
    url=None,
    tag=None,
    num_classes=1000,
    input_size=(3, 256, 256),
    crop_pct=0.875,
    interpolation="bicubic",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    first_conv="stem.0",
    classifier="head.fc",
    fixed_input_size=False,
    license="mit",
)

#: Parameter counts of the reference implementation with 1000 classes (paper.md).
PAPER_PARAMS = {
    "edgenext_xx_small": 1_327_216,
    "edgenext_x_small": 2_336_804,
    "edgenext_small": 5_586_832,
    "edgenext_base": 18_511_292,
    "edgenext_xx_small_bn_hs": 1_326_184,
    "edgenext_x_small_bn_hs": 2_335_008,
    "edgenext_small_bn_hs": 5_584_000,
}

#: fvcore multiply-adds at 256x256, in millions (paper.md).
PAPER_MADDS_M = {
    "edgenext_xx_small": 260.58,
    "edgenext_x_small": 538.00,
    "edgenext_small": 1260.59,
    "edgenext_base": 3840.93,
    "edgenext_xx_small_bn_hs": 259.53,
    "edgenext_x_small_bn_hs": 535.84,
    "edgenext_small_bn_hs": 1257.28,
}
