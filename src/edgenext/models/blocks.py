"""The two encoders of EdgeNeXt (paper Sec. 3.1 and 3.2).

Both keep the stage's feature map in ``(B, C, H, W)`` between blocks and work channels-last
``(B, H, W, C)`` inside, where the point-wise layers are plain ``nn.Linear``.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn

from .layers import XCA, ActLayer, Mlp, NormName, PositionalEncodingFourier, StochasticDepth, make_norm


def split_convs(x: torch.Tensor, convs: Sequence[nn.Module], width: int, passthrough: bool, dim: int) -> torch.Tensor:
    """The SDTA's split depth-wise convolutions (paper Sec. 3.2): the channels along ``dim`` in
    groups of ``width``; each group but the first adds the previous conv's output before its own
    conv; the group left over (``passthrough``) is kept as it is; the outputs concatenated."""
    # NOTE: basic slicing, not a list-size torch.split (ONNX Runtime rejects the latter's graph) nor
    # narrow (ExecuTorch's quantised XNNPACK program then fails at run time)
    lead = (slice(None),) * (dim % x.dim())
    outs = []
    sp = x[lead + (slice(0, width),)]
    for i, conv in enumerate(convs):
        if i > 0:
            sp = sp + x[lead + (slice(i * width, (i + 1) * width),)]
        sp = conv(sp)
        outs.append(sp)
    if passthrough:
        outs.append(x[lead + (slice(len(convs) * width, None),)])
    return torch.cat(outs, dim=dim)


def _layer_scale(dim: int, init: float) -> Optional[nn.Parameter]:
    return nn.Parameter(torch.full((dim,), float(init))) if init > 0 else None


class ConvEncoder(nn.Module):
    """Convolution encoder: depth-wise kxk conv -> norm -> MLP -> layer scale -> residual.

    ``dilation`` > 1 spaces the depth-wise taps (output stride below 32); the padding grows
    with it so the map size is kept, and the weights are the same.
    """

    def __init__(
        self,
        dim: int,
        *,
        kernel_size: int = 7,
        expand_ratio: float = 4.0,
        norm_layer: NormName = "layernorm",
        act_layer: ActLayer = "gelu",
        conv_bias: bool = True,
        layer_scale_init: float = 1e-6,
        drop_path: float = 0.0,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(
            dim, dim, kernel_size, padding=dilation * (kernel_size // 2), dilation=dilation, groups=dim, bias=conv_bias
        )
        self.norm = make_norm(norm_layer, dim, channels_last=True)
        self.mlp = Mlp(dim, int(expand_ratio * dim), act_layer)
        self.gamma = _layer_scale(dim, layer_scale_init)
        self.drop_path = StochasticDepth(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_dw(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        x = self.mlp(self.norm(x))
        if self.gamma is not None:
            x = x * self.gamma
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))  # (B, C, H, W)


def split_widths(dim: int, scales: int) -> tuple[int, ...]:
    """Channel widths of the SDTA groups: ``scales`` groups of ceil(dim / scales), the last smaller.

    With ``scales == 1`` there is one group and it is convolved (nothing passes untouched).
    """
    if scales < 1:
        raise ValueError(f"SDTA scales must be >= 1, got {scales}")
    if scales == 1:
        return (dim,)
    width = math.ceil(dim / scales)
    rest = dim - width * (scales - 1)
    if rest <= 0:
        raise ValueError(
            f"SDTA cannot split {dim} channels into {scales} groups of width {width} "
            f"(the last group would be empty): choose fewer scales or more channels"
        )
    return (width,) * (scales - 1) + (rest,)


class SDTAEncoder(nn.Module):
    """Split depth-wise transpose attention encoder (paper Sec. 3.2).

    The channels are split into ``scales`` groups; group i (plus the previous group's output)
    passes a 3x3 depth-wise conv, the last group is passed through, and the groups are
    concatenated: a multi-scale receptive field at depth-wise cost. Then, on tokens: optional
    positional encoding, residual XCA with layer scale, residual inverted bottleneck.

    ``xca_norm_shortcut`` reproduces the released BatchNorm variants: the tokens are normalised
    *before* the positional encoding and the XCA's residual starts from the normalised tokens.
    ``dilation`` > 1 dilates the split convs (output stride below 32), keeping the map size.
    """

    def __init__(
        self,
        dim: int,
        *,
        num_heads: int = 8,
        scales: int = 2,
        use_pos_embed: bool = False,
        expand_ratio: float = 4.0,
        norm_layer: NormName = "layernorm",
        act_layer: ActLayer = "gelu",
        xca_norm_shortcut: bool = False,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        layer_scale_init: float = 1e-6,
        drop_path: float = 0.0,
        dilation: int = 1,
    ) -> None:
        super().__init__()
        widths = split_widths(dim, scales)
        self.width = widths[0]
        self.num_convs = max(len(widths) - 1, 1)
        self.passthrough = len(widths) > 1
        self.convs = nn.ModuleList(
            nn.Conv2d(self.width, self.width, kernel_size=3, padding=dilation, dilation=dilation, groups=self.width)
            for _ in range(self.num_convs)
        )
        self.pos_embd = PositionalEncodingFourier(dim=dim) if use_pos_embed else None
        self.xca_norm_shortcut = xca_norm_shortcut
        self.norm_xca = make_norm(norm_layer, dim, channels_last=True)
        self.gamma_xca = _layer_scale(dim, layer_scale_init)
        self.xca = XCA(dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.norm = make_norm(norm_layer, dim, channels_last=True)
        self.mlp = Mlp(dim, int(expand_ratio * dim), act_layer)
        self.gamma = _layer_scale(dim, layer_scale_init)
        self.drop_path = StochasticDepth(drop_path) if drop_path > 0 else nn.Identity()

    def _split_convs(self, x: torch.Tensor) -> torch.Tensor:
        return split_convs(x, self.convs, self.width, self.passthrough, dim=1)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        y = self.xca(x if self.xca_norm_shortcut else self.norm_xca(x))
        if self.gamma_xca is not None:
            y = y * self.gamma_xca
        return self.drop_path(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self._split_convs(x)
        B, C, H, W = x.shape
        x = x.flatten(2).transpose(1, 2)  # (B, N, C)
        if self.xca_norm_shortcut:
            x = self.norm_xca(x)
        if self.pos_embd is not None:
            x = x + self.pos_embd(H, W).flatten(2).transpose(1, 2)  # (1, N, C)
        x = x + self._attention(x)
        x = self.mlp(self.norm(x.reshape(B, H, W, C)))  # (B, H, W, C)
        if self.gamma is not None:
            x = x * self.gamma
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))  # (B, C, H, W)
