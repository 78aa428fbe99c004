"""Inference-only EdgeNeXt modules built from a trained model's weights by ``fuse``.

The training network keeps its feature maps ``(B, C, H, W)`` between blocks and permutes to
channels-last inside each block and back (two copies per block). These modules keep every
activation ``(B, H, W, C)`` contiguous from the stem to the head instead: a depth-wise conv
sees ``x.permute(0, 3, 1, 2)``, which is a channels-last *view*, and its channels-last output
permutes back for free, so the norms and linears never wait for a copy. Layer scales, norm
affines and BatchNorms are already folded into the weights (see ``fold.py``); ``convert.py``
builds these modules.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...models.blocks import split_convs
from ...models.features import StageMaps
from ...models.layers import PositionalEncodingFourier

# F.normalize divides by max(||x||, eps) with this eps; the fused XCA keeps the same guard.
_NORMALIZE_EPS = 1e-12


class ChannelAffine(nn.Module):
    """``x * scale + shift`` over the last axis: an eval-mode BatchNorm that had nowhere to fold."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale.float())
        self.register_buffer("shift", shift.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift  # NOTE: not addcmul: Core ML has no converter for it


class LastAxisConv(nn.Module):
    """A conv applied to a ``(B, H, W, C)`` tensor, returning ``(B, H', W', C')``."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # NCHW view -> NHWC view


class FusedMlp(nn.Module):
    """fc1 -> act -> fc2 with the preceding norm's affine in fc1 and the layer scale in fc2."""

    def __init__(self, fc1: nn.Linear, act: nn.Module, fc2: nn.Linear) -> None:
        super().__init__()
        self.fc1 = fc1
        self.act = act
        self.fc2 = fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class FusedStem(nn.Module):
    """Patchify conv (BatchNorm folded in) and, for the LayerNorm family, its LayerNorm."""

    def __init__(self, conv: nn.Conv2d, norm: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # NOTE: a channels-last input makes the conv (and so every later op) channels-last.
        x = x.contiguous(memory_format=torch.channels_last)
        return self.norm(self.conv(x).permute(0, 2, 3, 1))  # (B, H/4, W/4, C)


class FusedDownsample(nn.Module):
    """Norm (its affine folded into the 2x2 conv) then the 2x2 stride-2 conv, channels-last."""

    def __init__(self, norm: nn.Module, conv: nn.Conv2d) -> None:
        super().__init__()
        self.norm = norm
        self.conv = LastAxisConv(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.norm(x))


class FusedPaddedDownsample(nn.Module):
    """The stride-1 downsampling of output stride 16 / 8: the norm kept whole (the zero padding
    after it would not survive folding its shift into the conv), right/bottom zero padding, then
    the dilated 2x2 conv, channels-last."""

    def __init__(self, norm: nn.Module, conv: nn.Conv2d, pad: int) -> None:
        super().__init__()
        self.norm = norm
        self.pad = pad
        self.conv = LastAxisConv(conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(self.norm(x), (0, 0, 0, self.pad, 0, self.pad)))  # (B, H, W, C): pad W and H


class FusedConvBlock(nn.Module):
    """Convolution encoder: dw conv -> (LayerNorm w/o affine) -> fc1 -> act -> fc2, + residual."""

    def __init__(self, conv_dw: nn.Conv2d, norm: nn.Module, mlp: FusedMlp) -> None:
        super().__init__()
        self.conv_dw = LastAxisConv(conv_dw)
        self.norm = norm
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mlp(self.norm(self.conv_dw(x)))  # (B, H, W, C)


class FusedXCA(nn.Module):
    """Cross-covariance attention computed channels-first from channels-last tokens.

    ``qkv`` is produced directly as ``(B, 3C, N)`` (one GEMM on the transposed tokens), so
    q, k and v are contiguous ``(B, heads, c, N)`` slices with no permute. Instead of
    normalising q and k (two passes over ``c x N`` tensors), their norms rescale the small
    ``c x c`` logits: ``(q/|q|)(k/|k|)^T = (q k^T) / (|q| |k|^T)``.
    """

    def __init__(self, qkv: nn.Linear, temperature: torch.Tensor, proj: nn.Linear, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv_weight = nn.Parameter(qkv.weight.detach().clone(), requires_grad=False)
        self.qkv_bias = nn.Parameter(qkv.bias.detach().clone()[:, None], requires_grad=False)  # (3C, 1)
        self.temperature = nn.Parameter(temperature.detach().clone(), requires_grad=False)  # (heads, 1, 1)
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = torch.baddbmm(self.qkv_bias, self.qkv_weight.expand(B, -1, -1), x.transpose(1, 2))  # (B, 3C, N)
        q, k, v = qkv.reshape(B, 3, self.num_heads, C // self.num_heads, N).unbind(1)  # each (B, h, c, N)
        q_norm = torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(_NORMALIZE_EPS)  # (B, h, c, 1)
        k_norm = torch.linalg.vector_norm(k, dim=-1, keepdim=True).clamp_min(_NORMALIZE_EPS)
        logits = (q @ k.transpose(-2, -1)) * (self.temperature / (q_norm * k_norm.transpose(-2, -1)))  # (B, h, c, c)
        out = (logits.softmax(dim=-1) @ v).reshape(B, C, N)
        return self.proj(out.transpose(1, 2))  # (B, N, C)


class FusedPosEmbed(nn.Module):
    """The Fourier positional encoding as ``(1, N, C)`` tokens, precomputed for one map size.

    Other sizes are computed on the fly from the kept projection (a shape check, not a data
    check: exported graphs have static spatial sizes and keep exactly one of the two paths).
    """

    def __init__(self, pos: PositionalEncodingFourier, map_size: Optional[tuple[int, int]]) -> None:
        super().__init__()
        self.pos = pos
        self.map_size = map_size
        table = self._compute(*map_size) if map_size is not None else torch.zeros(0)
        self.register_buffer("table", table, persistent=False)

    def _compute(self, height: int, width: int) -> torch.Tensor:
        return self.pos(height, width).flatten(2).transpose(1, 2).contiguous()  # (1, N, C)

    def forward(self, height: int, width: int) -> torch.Tensor:
        if self.map_size is not None and (height, width) == self.map_size:
            return self.table
        return self._compute(height, width)


class FusedSDTA(nn.Module):
    """SDTA encoder on channels-last maps: split depth-wise convs, (pos), XCA, MLP; residuals."""

    def __init__(
        self,
        convs: list[nn.Conv2d],
        width: int,
        passthrough: bool,
        pre_norm: nn.Module,
        pos: Optional[FusedPosEmbed],
        xca_norm: nn.Module,
        xca: FusedXCA,
        norm: nn.Module,
        mlp: FusedMlp,
    ) -> None:
        super().__init__()
        self.convs = nn.ModuleList(LastAxisConv(c) for c in convs)
        self.width = width
        self.passthrough = passthrough
        self.pre_norm = pre_norm
        self.pos = pos
        self.xca_norm = xca_norm
        self.xca = xca
        self.norm = norm
        self.mlp = mlp

    def _split_convs(self, x: torch.Tensor) -> torch.Tensor:
        return split_convs(x, self.convs, self.width, self.passthrough, dim=-1)  # (B, H, W, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        t = self.pre_norm(self._split_convs(x).reshape(B, H * W, C))  # (B, N, C)
        if self.pos is not None:
            t = t + self.pos(H, W)
        t = t + self.xca(self.xca_norm(t))
        # NOTE: the MLP's residual is the block input, not the attended tokens (as in training).
        return x + self.mlp(self.norm(t)).reshape(B, H, W, C)


class FusedHead(nn.Module):
    """Global average pool, (LayerNorm w/o affine), classifier with the norm's affine folded in."""

    def __init__(self, norm: nn.Module, fc: nn.Module) -> None:
        super().__init__()
        self.norm = norm
        self.fc = fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.norm(x.mean((1, 2))))  # (B, H, W, C) -> (B, C) -> (B, classes)


class FusedEdgeNeXt(nn.Module):
    """An EdgeNeXt classifier for inference only: same outputs, fewer ops, channels-last inside."""

    def __init__(self, stem: nn.Module, stages: nn.Sequential, head: nn.Module, *, in_chans: int, num_classes: int,
                 pretrained_cfg: dict, input_size: Optional[tuple[int, int]]) -> None:
        super().__init__()
        self.stem = stem
        self.stages = stages
        self.head = head
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.pretrained_cfg = dict(pretrained_cfg)
        self.input_size = input_size

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last stage's map, ``(B, C, H/32, W/32)`` like ``EdgeNeXt.forward_features`` (a view)."""
        return self.stages(self.stem(x)).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


class FusedEdgeNeXtFeatures(StageMaps, nn.Module):
    """The stage maps of ``EdgeNeXtFeatures`` for inference only: a list of ``(B, C, H, W)``
    maps (channels-last views) for ``out_indices``, equal to the unfused backbone's."""

    def __init__(self, stem: nn.Module, stages: nn.Sequential, *, out_indices: tuple[int, ...], feature_info,
                 in_chans: int, pretrained_cfg: dict, input_size: Optional[tuple[int, int]]) -> None:
        super().__init__()
        self.stem = stem
        self.stages = stages
        self.out_indices = tuple(out_indices)
        self.feature_info = feature_info
        self.in_chans = in_chans
        self.pretrained_cfg = dict(pretrained_cfg)
        self.input_size = input_size

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.stage_maps(x, view=lambda t: t.permute(0, 3, 1, 2))  # (B, H, W, C) -> NCHW views
