"""``fuse``: an EdgeNeXt turned into an inference-only model with the same outputs.

What is folded (all exact up to fp32 rounding):
  * layer scales (``gamma``, ``gamma_xca``) into the Linear before them (fc2, XCA proj);
  * LayerNorm affines into the Linear/conv after them (fc1, qkv, the downsampling conv,
    the classifier), leaving a bare normalisation;
  * eval-mode BatchNorms (the ``_bn_hs`` variants) entirely: after a conv into the conv
    (stem, depth-wise), before a Linear/unpadded conv into it (fc1, downsampling, head);
  * the positional encoding, precomputed for ``input_size`` when one is given;
  * the training layout: activations stay channels-last end to end (see ``modules.py``).
Output stride 16 / 8 (dilated stages) keeps each dilation; the stride-1 downsampling keeps its
norm whole (its zero padding would not survive the fold). ``EdgeNeXtFeatures`` backbones fuse
to ``FusedEdgeNeXtFeatures`` (the same maps). The training modules are not touched: ``fuse``
copies what it needs.
"""

from __future__ import annotations

import copy
from typing import Optional, Sequence, TypeVar, Union

import torch
from torch import nn

from ...models.blocks import ConvEncoder, SDTAEncoder
from ...models.edgenext import EdgeNeXt, EdgeNeXtStage, InputSize, input_hw
from ...models.features import EdgeNeXtFeatures
from ...models.layers import LAYERNORM_EPS, RightPaddedConv2d
from .fold import (
    conv_with_input_affine,
    conv_with_output_affine,
    is_batchnorm,
    linear_with_input_affine,
    linear_with_output_scale,
    norm_affine,
)
from .modules import (
    ChannelAffine,
    FusedConvBlock,
    FusedDownsample,
    FusedEdgeNeXt,
    FusedEdgeNeXtFeatures,
    FusedHead,
    FusedMlp,
    FusedPaddedDownsample,
    FusedPosEmbed,
    FusedSDTA,
    FusedStem,
    FusedXCA,
)

M = TypeVar("M", bound=nn.Module)


def _bare_norm(norm: nn.Module) -> nn.Module:
    """What stays of a norm whose affine was folded away: LayerNorm's normalisation, or nothing."""
    if is_batchnorm(norm):
        return nn.Identity()
    return nn.LayerNorm(norm.normalized_shape[-1], eps=getattr(norm, "eps", LAYERNORM_EPS), elementwise_affine=False)


def _standalone_norm(norm: nn.Module) -> nn.Module:
    """A channels-last norm kept as it is (nothing to fold it into)."""
    if is_batchnorm(norm):
        return ChannelAffine(*norm_affine(norm))
    keep = nn.LayerNorm(norm.normalized_shape[-1], eps=norm.eps)
    keep.load_state_dict(norm.state_dict())
    return keep.to(norm.weight.device, norm.weight.dtype)


def _mlp(norm: nn.Module, block: nn.Module) -> tuple[nn.Module, FusedMlp]:
    """norm -> fc1 -> act -> fc2 -> layer scale, with the norm's affine in fc1 and the scale in fc2."""
    fc1 = linear_with_input_affine(block.mlp.fc1, norm_affine(norm))
    fc2 = linear_with_output_scale(block.mlp.fc2, block.gamma)
    return _bare_norm(norm), FusedMlp(fc1, copy.deepcopy(block.mlp.act), fc2)


def _fuse_conv_block(block: ConvEncoder) -> FusedConvBlock:
    if is_batchnorm(block.norm):
        # BN right after the depth-wise conv: fold it there, fc1 stays as trained.
        conv = conv_with_output_affine(block.conv_dw, norm_affine(block.norm))
        fc1 = linear_with_output_scale(block.mlp.fc1, None)
        fc2 = linear_with_output_scale(block.mlp.fc2, block.gamma)
        return FusedConvBlock(conv, nn.Identity(), FusedMlp(fc1, copy.deepcopy(block.mlp.act), fc2))
    norm, mlp = _mlp(block.norm, block)
    return FusedConvBlock(conv_with_output_affine(block.conv_dw, None), norm, mlp)


def _fuse_sdta(block: SDTAEncoder, map_size: Optional[tuple[int, int]]) -> FusedSDTA:
    qkv = block.xca.qkv
    if block.xca_norm_shortcut:
        # The normalised tokens are also the residual: the norm cannot move into qkv.
        pre_norm, xca_norm = _standalone_norm(block.norm_xca), nn.Identity()
        qkv = linear_with_output_scale(qkv, None)
    else:
        pre_norm, xca_norm = nn.Identity(), _bare_norm(block.norm_xca)
        qkv = linear_with_input_affine(qkv, norm_affine(block.norm_xca))
    proj = linear_with_output_scale(block.xca.proj, block.gamma_xca)
    xca = FusedXCA(qkv, block.xca.temperature, proj, block.xca.num_heads)
    pos = FusedPosEmbed(copy.deepcopy(block.pos_embd), map_size) if block.pos_embd is not None else None
    norm, mlp = _mlp(block.norm, block)
    convs = [conv_with_output_affine(c, None) for c in block.convs]
    return FusedSDTA(convs, block.width, block.passthrough, pre_norm, pos, xca_norm, xca, norm, mlp)


def _fuse_stage(stage: EdgeNeXtStage, map_size: Optional[tuple[int, int]]) -> nn.Sequential:
    layers: list[nn.Module] = []
    if isinstance(stage.downsample, nn.Sequential):
        norm, conv = stage.downsample[0], stage.downsample[1]
        if isinstance(conv, RightPaddedConv2d):
            layers.append(FusedPaddedDownsample(_standalone_norm(norm), conv_with_output_affine(conv, None), conv.pad))
        else:
            layers.append(FusedDownsample(_bare_norm(norm), conv_with_input_affine(conv, norm_affine(norm))))
    for block in stage.blocks:
        if isinstance(block, SDTAEncoder):
            layers.append(_fuse_sdta(block, map_size))
        elif isinstance(block, ConvEncoder):
            layers.append(_fuse_conv_block(block))
        else:
            raise ValueError(f"fuse: unknown block type {type(block).__name__}")
    return nn.Sequential(*layers)


def _fuse_stem(stem: nn.Sequential) -> FusedStem:
    conv, norm = stem[0], stem[1]
    if is_batchnorm(norm):
        return FusedStem(conv_with_output_affine(conv, norm_affine(norm)), nn.Identity())
    return FusedStem(conv_with_output_affine(conv, None), _standalone_norm(norm))


def _fuse_head(model: EdgeNeXt) -> FusedHead:
    head = model.head
    if not isinstance(head.fc, nn.Linear):  # num_classes=0: the norm has nothing to fold into
        return FusedHead(_standalone_norm(head.norm), nn.Identity())
    # NOTE: a BatchNorm before the pooling (norm_first) commutes with the mean: fold it into fc too.
    fc = linear_with_input_affine(head.fc, norm_affine(head.norm))
    return FusedHead(_bare_norm(head.norm), fc)


def frozen(module: M) -> M:
    """``module`` in eval mode with no parameter requiring gradients (an inference-only copy)."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def _stage_sizes(stages: Sequence[EdgeNeXtStage], size: tuple[int, int]) -> list[tuple[int, int]]:
    """Each stage's map size for an input of ``size``: the 4x4 stem and each stride-2 downsampling
    floor it; a stride-1 one (output stride 16 / 8) keeps it (``stage_map_sizes``' rule)."""
    h, w = size[0] // 4, size[1] // 4
    sizes = []
    for stage in stages:
        down = stage.downsample
        if isinstance(down, nn.Sequential) and not isinstance(down[1], RightPaddedConv2d):
            h, w = h // 2, w // 2
        sizes.append((h, w))
    return sizes


def _fused_stages(stages: Sequence[EdgeNeXtStage], size: Optional[tuple[int, int]]) -> nn.Sequential:
    sizes = _stage_sizes(stages, size) if size is not None else [None] * len(stages)
    return nn.Sequential(*(_fuse_stage(stage, sizes[i]) for i, stage in enumerate(stages)))


@torch.no_grad()
def fuse(model: nn.Module, input_size: Optional[InputSize] = None) -> Union[FusedEdgeNeXt, FusedEdgeNeXtFeatures]:
    """An inference-only copy of ``model`` with the same outputs (within 1e-5): an ``EdgeNeXt``
    classifier gives a ``FusedEdgeNeXt``, an ``EdgeNeXtFeatures`` backbone (``features_only``,
    any output stride) a ``FusedEdgeNeXtFeatures`` returning the same maps.

    ``input_size`` (int or (H, W)) precomputes the positional encoding for that size; other
    sizes still work, computing it per call. BatchNorm is folded with its running statistics,
    i.e. the result behaves like ``model.eval()``. ``model`` itself is left unchanged.
    """
    size = input_hw(input_size) if input_size is not None else None
    if isinstance(model, EdgeNeXtFeatures):
        return frozen(FusedEdgeNeXtFeatures(
            _fuse_stem(model.stem), _fused_stages(list(model.stages), size),
            out_indices=model.out_indices, feature_info=model.feature_info, in_chans=model.in_chans,
            pretrained_cfg=model.pretrained_cfg, input_size=size,
        ))
    if not isinstance(model, EdgeNeXt):
        raise ValueError("fuse expects an EdgeNeXt classifier or a features_only backbone (from create_model), "
                         f"got {type(model).__name__}")
    if model.head.global_pool != "avg":
        # NOTE: the fused head averages; other pooling (or none, after prune_intermediate_layers) is not folded
        raise ValueError(f"fuse supports the average-pooling head only, got global_pool={model.head.global_pool!r}; "
                         "export the unfused model instead (fused=False, edgenext export --no-fuse)")
    fused = FusedEdgeNeXt(
        _fuse_stem(model.stem), _fused_stages(list(model.stages), size),
        _fuse_head(model), in_chans=model.in_chans, num_classes=model.num_classes,
        pretrained_cfg=model.pretrained_cfg, input_size=size,
    )
    return frozen(fused)

