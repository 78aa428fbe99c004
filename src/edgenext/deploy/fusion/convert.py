"""``fuse``: an EdgeNeXt turned into an inference-only model with the same outputs.

What is folded (all exact up to fp32 rounding):
  * layer scales (``gamma``, ``gamma_xca``) into the Linear before them (fc2, XCA proj);
  * LayerNorm affines into the Linear/conv after them (fc1, qkv, the downsampling conv,
    the classifier), leaving a bare normalisation;
  * eval-mode BatchNorms (the ``_bn_hs`` variants) entirely: after a conv into the conv
    (stem, depth-wise), before a Linear/unpadded conv into it (fc1, downsampling, head);
  * the positional encoding, precomputed for ``input_size`` when one is given;
  * the training layout: activations stay channels-last end to end (see ``modules.py``).
The training modules are not touched: ``fuse`` copies what it needs.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from ...models.blocks import ConvEncoder, SDTAEncoder
from ...models.edgenext import EdgeNeXt, EdgeNeXtStage, InputSize, input_hw, stage_map_sizes
from ...models.layers import LAYERNORM_EPS
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
    FusedHead,
    FusedMlp,
    FusedPosEmbed,
    FusedSDTA,
    FusedStem,
    FusedXCA,
)


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


@torch.no_grad()
def fuse(model: nn.Module, input_size: Optional[InputSize] = None) -> FusedEdgeNeXt:
    """An inference-only copy of ``model`` (an ``EdgeNeXt``) with the same outputs (within 1e-5).

    ``input_size`` (int or (H, W)) precomputes the positional encoding for that size; other
    sizes still work, computing it per call. BatchNorm is folded with its running statistics,
    i.e. the result behaves like ``model.eval()``. ``model`` itself is left unchanged.
    """
    if not isinstance(model, EdgeNeXt):
        raise ValueError(f"fuse expects an EdgeNeXt classifier (from create_model), got {type(model).__name__}")
    if getattr(model, "output_stride", 32) != 32:
        # NOTE: the fused modules know only stride-2 downsampling and undilated depth-wise convs
        raise ValueError(f"fuse supports output stride 32 only, got a model built with output_stride={model.output_stride}; "
                         "export the unfused model instead")
    if model.head.global_pool != "avg":
        # NOTE: the fused head averages; other pooling (or none, after prune_intermediate_layers) is not folded
        raise ValueError(f"fuse supports the average-pooling head only, got global_pool={model.head.global_pool!r}; "
                         "export the unfused model instead (fused=False, edgenext export --no-fuse)")
    size = input_hw(input_size) if input_size is not None else None
    sizes = stage_map_sizes(size, len(model.stages)) if size is not None else [None] * len(model.stages)
    stages = nn.Sequential(*(_fuse_stage(stage, sizes[i]) for i, stage in enumerate(model.stages)))
    fused = FusedEdgeNeXt(
        _fuse_stem(model.stem), stages, _fuse_head(model),
        in_chans=model.in_chans, num_classes=model.num_classes, pretrained_cfg=model.pretrained_cfg, input_size=size,
    )
    fused.eval()
    for p in fused.parameters():
        p.requires_grad_(False)
    return fused
