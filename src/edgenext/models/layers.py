"""Small building blocks of EdgeNeXt: norms, activations, the MLP, the Fourier positional
encoding and cross-covariance (transposed) attention.

Norm layers come in two flavours because EdgeNeXt normalises tensors in two layouts:
channels-first ``(B, C, H, W)`` maps (stem, downsampling, the head of the BN variants) and
channels-last ``(..., C)`` tokens (inside the blocks). ``make_norm`` hides that difference,
so the LayerNorm and the BatchNorm families are the same network code.
"""

from __future__ import annotations

import math
from typing import Callable, Literal, Union

import torch
import torch.nn.functional as F
from torch import nn

NormName = Literal["layernorm", "batchnorm"]
ActLayer = Union[str, Callable[[], nn.Module]]

LAYERNORM_EPS = 1e-6


class StochasticDepth(nn.Module):
    """Drops a residual branch for a random part of the batch while training (stochastic depth,
    Huang et al. 2016): each sample's branch output is kept with probability ``1 - drop_prob`` and
    then scaled by ``1 / (1 - drop_prob)``, so its expectation is unchanged; the identity in eval.
    (Ours rather than timm's ``DropPath``, so that building a model does not import timm.)"""

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = float(drop_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)


class BatchNormLast(nn.BatchNorm1d):
    """BatchNorm over the last (channel) axis of a ``(..., C)`` tensor.

    Statistics are taken over every other axis, exactly as ``BatchNorm2d`` does on the same
    values in ``(B, C, H, W)`` layout; parameters and buffers have the same names and shapes,
    so weights move freely between the two.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        # NOTE: BatchNorm1d's check branches on the tensor's rank, which torch.fx cannot trace;
        # forward always hands it a (N, C) matrix.
        pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        return super().forward(x.reshape(-1, shape[-1])).reshape(shape)  # (N, C) -> (..., C)


def make_norm(name: NormName, dim: int, *, channels_last: bool) -> nn.Module:
    """A norm layer of family ``name`` for ``dim`` channels in the given layout."""
    if name == "layernorm":
        return nn.LayerNorm(dim, eps=LAYERNORM_EPS) if channels_last else LayerNorm2d(dim, eps=LAYERNORM_EPS)
    if name == "batchnorm":
        return BatchNormLast(dim) if channels_last else nn.BatchNorm2d(dim)
    raise ValueError(f"norm_layer={name!r} is not supported: use 'layernorm' or 'batchnorm'")


class RightPaddedConv2d(nn.Conv2d):
    """A stride-1 conv that zero-pads its input only on the right and bottom, by the span the
    kernel needs beyond one pixel (``dilation * (kernel_size - 1)``), so the map keeps its size.

    Used for the 2x2 downsampling conv at output stride 16 / 8: same parameters (names and
    shapes) as the stride-2 ``nn.Conv2d`` it replaces.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, dilation: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=1, dilation=dilation, bias=bias)
        self.pad = dilation * (kernel_size - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (0, self.pad, 0, self.pad)))


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "gelu": nn.GELU,
    "hardswish": nn.Hardswish,
    "relu": nn.ReLU,
    "silu": nn.SiLU,
}


def make_act(act: ActLayer) -> nn.Module:
    """An activation from a name ('gelu', 'hardswish', 'relu', 'silu') or a module factory."""
    if isinstance(act, str):
        if act not in _ACTIVATIONS:
            raise ValueError(f"act_layer={act!r} is not supported: use one of {sorted(_ACTIVATIONS)} or pass a module class")
        return _ACTIVATIONS[act]()
    module = act()
    if not isinstance(module, nn.Module):
        raise ValueError(f"act_layer={act!r} must build an nn.Module, got {type(module).__name__}")
    return module


class Mlp(nn.Module):
    """The inverted bottleneck shared by both encoders: Linear(C -> rC), activation, Linear(rC -> C)."""

    def __init__(self, dim: int, hidden_dim: int, act_layer: ActLayer = "gelu") -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = make_act(act_layer)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def fourier_features(height: int, width: int, hidden_dim: int, temperature: float, device: torch.device) -> torch.Tensor:
    """Sine/cosine features of normalised (y, x) positions, shape ``(1, 2 * hidden_dim, H, W)``.

    Positions run from 1/H to 1 (times 2 pi); channel pairs (2i, 2i+1) hold sin and cos of the
    same frequency; the y features come first. This is the encoding of the official release,
    computed once per map instead of once per image of the batch.
    """
    eps = 1e-6
    scale = 2 * math.pi
    y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
    y = y / (y[-1:] + eps) * scale
    x = x / (x[-1:] + eps) * scale
    freq = torch.arange(hidden_dim, dtype=torch.float32, device=device)
    freq = temperature ** (2 * torch.div(freq, 2, rounding_mode="floor") / hidden_dim)
    pos_y = y[:, None] / freq  # (H, D)
    pos_x = x[:, None] / freq  # (W, D)
    # NOTE: interleave sin(even) and cos(odd) frequencies pairwise, as the release does.
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)  # (H, D)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)  # (W, D)
    pos = torch.cat(
        (pos_y[:, None, :].expand(height, width, hidden_dim), pos_x[None, :, :].expand(height, width, hidden_dim)),
        dim=2,
    )  # (H, W, 2D)
    return pos.permute(2, 0, 1).unsqueeze(0)  # (1, 2D, H, W)


class PositionalEncodingFourier(nn.Module):
    """Fourier positional encoding projected to ``dim`` channels by a 1x1 conv (paper Sec. 3.2)."""

    def __init__(self, dim: int, hidden_dim: int = 32, temperature: float = 10000.0) -> None:
        super().__init__()
        self.hidden_dim = hidden_dim
        self.temperature = temperature
        self.token_projection = nn.Conv2d(hidden_dim * 2, dim, kernel_size=1)

    def forward(self, height: int, width: int) -> torch.Tensor:
        """The encoding for an ``height x width`` map, shape ``(1, dim, H, W)``."""
        weight = self.token_projection.weight
        pos = fourier_features(height, width, self.hidden_dim, self.temperature, weight.device)
        return self.token_projection(pos.to(weight.dtype))


class XCA(nn.Module):
    """Cross-covariance attention: attention across channels instead of tokens (paper Sec. 3.2).

    Per head, queries and keys are L2-normalised along the token axis, so ``q k^T`` is a
    ``c x c`` matrix of cosine similarities, scaled by a learnable temperature per head.
    The cost is linear in the number of tokens.
    """

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"XCA: dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 4, 1).unbind(0)  # each (B, heads, c, N)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature  # (B, heads, c, c)
        attn = self.attn_drop(attn.softmax(dim=-1))
        x = (attn @ v).permute(0, 3, 1, 2).reshape(B, N, C)  # (B, heads, c, N) -> (B, N, C)
        return self.proj_drop(self.proj(x))
