"""``fuse_dense``: SSDLite and DeepLabv3 on EdgeNeXt turned into inference-only models, same outputs.

What is folded, on top of the backbone's ``fuse`` (output stride 32, 16 or 8):
  * every BatchNorm of the heads into the conv before it (SSDLite's extra levels and prediction
    heads; DeepLabv3's ASPP branches, image pooling and projection), with its running statistics;
  * the input normalisation ``(x - mean) / std`` into the backbone's patchify stem conv (4x4,
    stride 4, no padding: exact), where the model owns it (DeepLabv3, the exported SSDLite graph).
The model passed in is not touched: ``fuse_dense`` works on a copy.
"""

from __future__ import annotations

import copy
from typing import Optional, TypeVar

import torch
from torch import nn

from ...models.edgenext import InputSize, input_hw
from ...models.features import EdgeNeXtFeatures
from .convert import frozen, fuse
from .fold import conv_with_input_affine, conv_with_output_affine, norm_affine
from .modules import FusedEdgeNeXtFeatures

M = TypeVar("M", bound=nn.Module)


def fold_conv_batchnorms(module: nn.Module) -> int:
    """Fold, in place, every ``Conv2d`` followed by a ``BatchNorm2d`` in the same ``nn.Sequential``
    (torchvision's ``Conv2dNormActivation``, ASPP's branches): the conv takes the BatchNorm's
    eval-mode affine, the BatchNorm becomes ``Identity``. Returns how many were folded."""
    folded = 0
    for seq in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for first, second in zip(names, names[1:]):
            conv, norm = seq._modules[first], seq._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(norm, nn.BatchNorm2d):
                setattr(seq, first, conv_with_output_affine(conv, norm_affine(norm)))
                setattr(seq, second, nn.Identity())
                folded += 1
    return folded


def _fold_normalize(owner: nn.Module, backbone: FusedEdgeNeXtFeatures) -> None:
    """``owner.normalize`` (``(x - mean) / std``) moved into the stem conv: x / std - mean / std."""
    norm = owner.normalize
    scale = (1.0 / norm.std.double()).flatten()
    shift = (-norm.mean.double() / norm.std.double()).flatten()
    backbone.stem.conv = conv_with_input_affine(backbone.stem.conv, (scale, shift))
    owner.normalize = nn.Identity()


def _fuse_body(body: nn.Module, size: Optional[tuple[int, int]]) -> nn.Module:
    """An EdgeNeXt backbone fused; another (a timm peer's stage maps, in the bench) kept as it is, eval."""
    return fuse(body, size) if isinstance(body, EdgeNeXtFeatures) else copy.deepcopy(body).eval()


@torch.no_grad()
def fuse_dense(model: M, input_size: Optional[InputSize] = None) -> M:
    """An inference-only copy of a dense model with the same outputs (within 1e-5).

    ``model``: an ``SSDLite`` (its backbone and heads fused; torchvision's transform keeps the
    normalisation), an ``SSDLiteRaw`` (the export graph: the normalisation folded too), a
    ``DeepLabV3``, or the bench's networks on normalised tensors (``edgenext.dense.timed``). ``input_size`` precomputes the backbone's positional encodings (default: the
    detector's own size; a segmenter's maps are computed per call without one).
    """
    from ...dense.deeplabv3 import DeepLabV3
    from ...dense.ssdlite import SSDLite, SSDLiteRaw
    from ...dense.timed import DetectionNetwork, SegmentationNetwork

    if isinstance(model, (SSDLite, SSDLiteRaw, DetectionNetwork)):
        own = getattr(model, "image_size", None)
        size = input_hw(input_size) if input_size is not None else (tuple(own) if own is not None else None)
        fused = copy.deepcopy(model).eval()
        fused.backbone.body = _fuse_body(model.backbone.body, size)
        fold_conv_batchnorms(fused.backbone.extra)
        fold_conv_batchnorms(fused.head)
        if isinstance(model, SSDLiteRaw) and isinstance(fused.backbone.body, FusedEdgeNeXtFeatures):
            _fold_normalize(fused, fused.backbone.body)
        return frozen(fused)
    if isinstance(model, (DeepLabV3, SegmentationNetwork)):
        size = input_hw(input_size) if input_size is not None else None
        fused = copy.deepcopy(model).eval()
        fused.backbone = _fuse_body(model.backbone, size)
        fold_conv_batchnorms(fused.head)
        if isinstance(model, DeepLabV3) and isinstance(fused.backbone, FusedEdgeNeXtFeatures):
            _fold_normalize(fused, fused.backbone)
        return frozen(fused)
    raise ValueError(f"fuse_dense expects an SSDLite, SSDLiteRaw or DeepLabV3 (edgenext.dense), got {type(model).__name__}")
