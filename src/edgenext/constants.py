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

#: ImageNet-1k top-1 (%) of the official releases, by ``variant.tag`` (the official model zoo, paper.md).
RELEASE_TOP1 = {
    "edgenext_xx_small.in1k": 71.23,
    "edgenext_x_small.in1k": 74.96,
    "edgenext_small.in1k": 79.41,
    "edgenext_small.usi": 81.07,
    "edgenext_base.in1k": 82.47,
    "edgenext_base.usi": 83.68,
    "edgenext_base.in21k_ft_in1k": 83.31,
    "edgenext_xx_small_bn_hs.in1k": 70.33,
    "edgenext_x_small_bn_hs.in1k": 74.87,
    "edgenext_small_bn_hs.in1k": 78.39,
}
EDGENEXT_TOP1_SOURCE = "EdgeNeXt: Maaz et al., CADL @ ECCV 2022 (arXiv 2206.10589), official model zoo, 256 px"
_MOBILEVIT_SOURCE = "MobileViT: Mehta & Rastegari, ICLR 2022 (arXiv 2110.02178), 256 px"
_MOBILENETV3_SOURCE = "MobileNetV3: Howard et al., ICCV 2019 (arXiv 1905.02244), Table 3, 224 px"
#: timm's own ImageNet-1k validation table: the source of the current mobile models' top-1 (one file, one
#: commit), each at the resolution and with the weights named in its source string
_TIMM_RESULTS = "timm results/results-imagenet.csv @ aa4b585 (2026-08-08)"


def _timm(weights: str, size: int) -> str:
    return f"{_TIMM_RESULTS}: {weights}, {size} px"


#: the whole mobile map (``edgenext bench --peers all-mobile``): timm name -> (top-1 %, source, evaluation side)
MOBILE_MAP = {
    "mobilenetv4_conv_small": (73.756, _timm("e2400_r224_in1k", 224), 224),
    "mobilenetv4_conv_medium": (79.916, _timm("e500_r256_in1k", 256), 256),
    "mobilenetv4_hybrid_medium": (80.432, _timm("e500_r224_in1k", 224), 224),
    "fastvit_t8": (76.184, _timm("apple_in1k", 256), 256),
    "fastvit_t12": (79.276, _timm("apple_in1k", 256), 256),
    "fastvit_sa12": (80.846, _timm("apple_in1k", 256), 256),
    "repvit_m0_9": (78.652, _timm("dist_300e_in1k (distilled)", 224), 224),
    "repvit_m1_1": (80.826, _timm("dist_300e_in1k (distilled)", 224), 224),
    "efficientformerv2_s0": (76.102, _timm("snap_dist_in1k (distilled)", 224), 224),
    "efficientformerv2_s1": (79.684, _timm("snap_dist_in1k (distilled)", 224), 224),
    "efficientformerv2_s2": (82.156, _timm("snap_dist_in1k (distilled)", 224), 224),
    "efficientvit_b0": (71.408, _timm("r224_in1k", 224), 224),
    "efficientvit_b1": (79.254, _timm("r224_in1k", 224), 224),
    "mobilevitv2_050": (70.156, _timm("cvnets_in1k", 256), 256),
    "mobilevitv2_075": (75.612, _timm("cvnets_in1k", 256), 256),
    "mobilevitv2_100": (78.088, _timm("cvnets_in1k", 256), 256),
}

#: published ImageNet-1k top-1 (%) of the bench's peers (timm names), and where it was published
PEER_TOP1 = {
    "mobilevit_xxs": (69.0, _MOBILEVIT_SOURCE),
    "mobilevit_xs": (74.8, _MOBILEVIT_SOURCE),
    "mobilevit_s": (78.4, _MOBILEVIT_SOURCE),
    "mobilenetv3_large_100": (75.2, _MOBILENETV3_SOURCE),
    **{name: (top1, source) for name, (top1, source, _) in MOBILE_MAP.items()},
}
#: the side each peer's top-1 was measured at: the bench times a peer there unless --input-size says otherwise
PEER_EVAL_SIZE = {
    "mobilevit_xxs": 256, "mobilevit_xs": 256, "mobilevit_s": 256, "mobilenetv3_large_100": 224,
    **{name: size for name, (_, _, size) in MOBILE_MAP.items()},
}

#: the dense tasks' paper input sides and class counts (background included); ``edgenext.dense.constants``
#: re-exports them beside the heads' constants, here so that naming a task imports no dense code
DETECTION_INPUT_SIZE = 320
SEGMENTATION_INPUT_SIZE = 512
COCO_NUM_CLASSES = 81
VOC_NUM_CLASSES = 21
