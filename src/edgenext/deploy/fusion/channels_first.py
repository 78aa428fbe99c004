"""The fused classifier or backbone in channels-first form, for engines whose fast kernels are NCHW convolutions.

``fuse`` keeps every activation channels-last, which suits engines that run the point-wise
layers as GEMMs over ``(B, H, W, C)`` (ONNX Runtime, eager PyTorch). OpenVINO's CPU plugin runs
convolutions in blocked NCHW layouts instead, and there a channels-last graph pays for a layout
change around every depth-wise convolution. ``channels_first(fused)`` rewrites a
``FusedEdgeNeXt`` with the same weights and the same function into the form such an engine
prefers: depth-wise convolutions on NCHW maps, the point-wise Linears as 1x1 convolutions, the
LayerNorms over the channel axis, and the SDTA tokens as ``(B, C, N)``, so the XCA's ``qkv`` and
projection are plain ``W @ x`` products with no transpose anywhere from the stem to the head.
A ``FusedEdgeNeXtFeatures`` backbone (output stride 32, 16 or 8) gets the same rewrite, and
``in_layout`` rewrites the backbone inside a fused detector or segmenter, whose heads are NCHW
convolutions already.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...models.blocks import split_convs
from ...models.features import StageMaps
from ..request import LAYOUT_NAMES
from .modules import (
    _NORMALIZE_EPS,
    ChannelAffine,
    FusedConvBlock,
    FusedDownsample,
    FusedEdgeNeXt,
    FusedEdgeNeXtFeatures,
    FusedHead,
    FusedMlp,
    FusedPaddedDownsample,
    FusedSDTA,
    FusedStem,
    FusedXCA,
)

if TYPE_CHECKING:
    from ..formats.registry import ExportFormat


class ChannelNorm(nn.Module):
    """LayerNorm over axis 1 of a ``(B, C, ...)`` tensor (optionally with its affine)."""

    def __init__(self, eps: float, weight: Optional[torch.Tensor], bias: Optional[torch.Tensor]) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", None if weight is None else weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        y = centred / torch.sqrt((centred * centred).mean(1, keepdim=True) + self.eps)
        if self.weight is not None:
            shape = (-1,) + (1,) * (x.dim() - 2)
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


def _channel_norm(norm: nn.Module) -> nn.Module:
    if isinstance(norm, nn.Identity):
        return norm
    if isinstance(norm, nn.LayerNorm):
        return ChannelNorm(norm.eps, norm.weight, norm.bias)
    if isinstance(norm, ChannelAffine):
        return _ChannelAffineFirst(norm.scale, norm.shift)
    raise TypeError(f"no channels-first form for {type(norm).__name__}")


class _ChannelAffineFirst(nn.Module):
    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.detach().clone())
        self.register_buffer("shift", shift.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.dim() - 2)
        return x * self.scale.reshape(shape) + self.shift.reshape(shape)


def _pointwise(linear: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    with torch.no_grad():
        conv.weight.copy_(linear.weight[:, :, None, None])
        if linear.bias is not None:
            conv.bias.copy_(linear.bias)
    return conv.requires_grad_(False)


class MlpFirst(nn.Module):
    """fc1 -> act -> fc2 as 1x1 convolutions on a ``(B, C, H, W)`` map."""

    def __init__(self, mlp: FusedMlp) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2 = _pointwise(mlp.fc1), copy.deepcopy(mlp.act), _pointwise(mlp.fc2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class StemFirst(nn.Module):
    def __init__(self, stem: FusedStem) -> None:
        super().__init__()
        self.conv, self.norm = stem.conv, _channel_norm(stem.norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class DownsampleFirst(nn.Module):
    def __init__(self, down: nn.Module) -> None:
        super().__init__()
        self.norm, self.conv = _channel_norm(down.norm), down.conv.conv
        self.pad = down.pad if isinstance(down, FusedPaddedDownsample) else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        if self.pad:
            x = F.pad(x, (0, self.pad, 0, self.pad))
        return self.conv(x)


class ConvBlockFirst(nn.Module):
    def __init__(self, block: FusedConvBlock) -> None:
        super().__init__()
        self.conv_dw, self.norm, self.mlp = block.conv_dw.conv, _channel_norm(block.norm), MlpFirst(block.mlp)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(self.conv_dw(x)))


class XCAFirst(nn.Module):
    """The fused XCA on ``(B, C, N)`` tokens: ``qkv = W x + b`` and ``proj`` likewise."""

    def __init__(self, xca: FusedXCA) -> None:
        super().__init__()
        self.num_heads = xca.num_heads
        self.register_buffer("qkv_weight", xca.qkv_weight.detach().clone())
        self.register_buffer("qkv_bias", xca.qkv_bias.detach().clone())  # (3C, 1)
        self.register_buffer("temperature", xca.temperature.detach().clone())
        self.register_buffer("proj_weight", xca.proj.weight.detach().clone())
        self.register_buffer("proj_bias", xca.proj.bias.detach().clone()[:, None])

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        B, C, N = t.shape
        qkv = torch.matmul(self.qkv_weight, t) + self.qkv_bias  # (B, 3C, N)
        q, k, v = qkv.reshape(B, 3, self.num_heads, C // self.num_heads, N).unbind(1)
        q_norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(_NORMALIZE_EPS)
        k_norm = torch.linalg.vector_norm(k, dim=-1, keepdim=True).clamp_min(_NORMALIZE_EPS)
        logits = (q @ k.transpose(-2, -1)) * (self.temperature / (q_norm * k_norm.transpose(-2, -1)))
        out = (logits.softmax(dim=-1) @ v).reshape(B, C, N)
        return torch.matmul(self.proj_weight, out) + self.proj_bias


class SDTAFirst(nn.Module):
    def __init__(self, block: FusedSDTA) -> None:
        super().__init__()
        self.convs = nn.ModuleList(c.conv for c in block.convs)
        self.width, self.passthrough = block.width, block.passthrough
        self.pre_norm, self.xca_norm, self.norm = (_channel_norm(n) for n in (block.pre_norm, block.xca_norm, block.norm))
        self.pos = block.pos
        self.xca = XCAFirst(block.xca)
        self.mlp = MlpFirst(block.mlp)

    def _split_convs(self, x: torch.Tensor) -> torch.Tensor:
        return split_convs(x, self.convs, self.width, self.passthrough, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        t = self.pre_norm(self._split_convs(x).reshape(B, C, H * W))  # (B, C, N)
        if self.pos is not None:
            t = t + self.pos(H, W).transpose(1, 2)  # a constant (1, C, N) for the fused size
        t = t + self.xca(self.xca_norm(t))
        return x + self.mlp(self.norm(t).reshape(B, C, H, W))


class HeadFirst(nn.Module):
    def __init__(self, head: FusedHead) -> None:
        super().__init__()
        self.norm, self.fc = head.norm, head.fc  # on (B, C): LayerNorm over the last axis is the channel axis

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean((2, 3))))


def _block(layer: nn.Module) -> nn.Module:
    if isinstance(layer, (FusedDownsample, FusedPaddedDownsample)):
        return DownsampleFirst(layer)
    if isinstance(layer, FusedConvBlock):
        return ConvBlockFirst(layer)
    if isinstance(layer, FusedSDTA):
        return SDTAFirst(layer)
    raise TypeError(f"no channels-first form for {type(layer).__name__}")


def _stem_and_stages(fused: nn.Module) -> tuple[StemFirst, nn.Sequential]:
    stages = nn.Sequential(*(nn.Sequential(*(_block(layer) for layer in stage)) for stage in fused.stages))
    return StemFirst(fused.stem), stages


class ChannelsFirstEdgeNeXt(nn.Module):
    """A ``FusedEdgeNeXt`` rewritten channels-first (same weights, same outputs)."""

    def __init__(self, fused: FusedEdgeNeXt) -> None:
        super().__init__()
        self.stem, self.stages = _stem_and_stages(fused)
        self.head = HeadFirst(fused.head)
        self.in_chans, self.num_classes = fused.in_chans, fused.num_classes
        self.pretrained_cfg, self.input_size = dict(fused.pretrained_cfg), fused.input_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


class ChannelsFirstEdgeNeXtFeatures(StageMaps, nn.Module):
    """A ``FusedEdgeNeXtFeatures`` backbone (any output stride) rewritten channels-first: the same
    list of ``(B, C, H, W)`` maps, contiguous."""

    def __init__(self, fused: FusedEdgeNeXtFeatures) -> None:
        super().__init__()
        self.stem, self.stages = _stem_and_stages(fused)
        self.out_indices, self.feature_info = fused.out_indices, fused.feature_info
        self.in_chans, self.pretrained_cfg, self.input_size = fused.in_chans, dict(fused.pretrained_cfg), fused.input_size

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.stage_maps(x)


def channels_first(fused: nn.Module) -> nn.Module:
    """``fused`` (a ``FusedEdgeNeXt`` or ``FusedEdgeNeXtFeatures`` from ``fuse``) in channels-first
    form: the same function, no layout transposes."""
    if isinstance(fused, FusedEdgeNeXt):
        return ChannelsFirstEdgeNeXt(fused).eval()
    if isinstance(fused, FusedEdgeNeXtFeatures):
        return ChannelsFirstEdgeNeXtFeatures(fused).eval()
    raise TypeError(f"channels_first takes a FusedEdgeNeXt or FusedEdgeNeXtFeatures (edgenext.deploy.fuse(model)), "
                    f"got {type(fused).__name__}")


#: the two layouts a fused model can be written in (``ExportFormat.layout``)
LAYOUTS = LAYOUT_NAMES
_FUSED = (FusedEdgeNeXt, FusedEdgeNeXtFeatures)


def in_layout(module: nn.Module, layout: str) -> nn.Module:
    """``module`` as an export format wants it: for ``layout="channels_first"`` a fused classifier or
    backbone rewritten channels-first, and a network holding one (a fused detector or segmenter) copied
    with its backbone rewritten; anything else (another layout, unfused models) unchanged."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: choose from {', '.join(LAYOUTS)}")
    if layout != "channels_first":
        return module
    if isinstance(module, _FUSED):
        return channels_first(module)
    if not any(isinstance(m, _FUSED) for m in module.modules()):
        return module
    out = copy.deepcopy(module)
    for parent in list(out.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _FUSED):
                setattr(parent, name, channels_first(child))
    return out


def written_module(fmt: "ExportFormat", module: nn.Module, precision: str = "fp32",
                   layout: Optional[str] = None) -> nn.Module:
    """What ``fmt``'s writer gets from ``module``: a fused model in ``layout`` (default: the format's,
    ``ExportFormat.layout_for(precision)``), then in the engine's ``graph_form`` where it applies at
    ``precision`` (``ExportFormat.graph_form_for``); ``edgenext export`` and the bench both write this."""
    module = in_layout(module, layout or fmt.layout_for(precision))
    form = fmt.graph_form_for(precision)
    return module if form is None else form(module)
