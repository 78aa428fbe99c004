"""Algebra of deploy-time folding: per-channel affines merged into the neighbouring conv/linear.

Every fold is computed in float64 and cast back, so a folded layer differs from the pair it
replaces only by the rounding of one fp32 product (far below the 1e-5 parity budget).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...models.layers import BatchNormLast, LayerNorm2d

Affine = tuple[torch.Tensor, torch.Tensor]  # (scale, shift), each (C,)


def norm_affine(norm: nn.Module) -> Affine:
    """The per-channel affine a norm layer applies *after* normalising (LayerNorm) or in total
    (BatchNorm in eval mode, whose statistics are constants)."""
    if isinstance(norm, (nn.BatchNorm2d, BatchNormLast)):
        if norm.running_mean is None or norm.running_var is None:
            raise ValueError(f"{type(norm).__name__} without running statistics cannot be folded")
        var = norm.running_var.double()
        scale = torch.rsqrt(var + norm.eps)
        if norm.weight is not None:
            scale = scale * norm.weight.double()
        shift = -norm.running_mean.double() * scale
        if norm.bias is not None:
            shift = shift + norm.bias.double()
        return scale, shift
    if isinstance(norm, (nn.LayerNorm, LayerNorm2d)):
        dim = norm.normalized_shape[-1]
        device = norm.weight.device if norm.weight is not None else torch.device("cpu")
        w = norm.weight.double() if norm.weight is not None else torch.ones(dim, dtype=torch.float64, device=device)
        b = norm.bias.double() if norm.bias is not None else torch.zeros(dim, dtype=torch.float64, device=device)
        return w, b
    raise ValueError(f"cannot fold a {type(norm).__name__}: expected LayerNorm or BatchNorm")


def is_batchnorm(norm: nn.Module) -> bool:
    return isinstance(norm, (nn.BatchNorm2d, BatchNormLast))


def _bias(layer: nn.Module, out: int) -> torch.Tensor:
    bias = getattr(layer, "bias", None)
    return bias.double() if bias is not None else torch.zeros(out, dtype=torch.float64, device=layer.weight.device)


def _new_linear(weight: torch.Tensor, bias: torch.Tensor, like: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], device=like.device, dtype=like.dtype)
    layer.weight.data.copy_(weight.to(like.dtype))
    layer.bias.data.copy_(bias.to(like.dtype))
    return layer


def linear_with_input_affine(linear: nn.Linear, affine: Affine) -> nn.Linear:
    """``linear(x * scale + shift)`` as one Linear: W diag(scale), b + W shift."""
    scale, shift = affine
    w = linear.weight.double()
    return _new_linear(w * scale[None, :], _bias(linear, w.shape[0]) + w @ shift, linear.weight)


def linear_with_output_scale(linear: nn.Linear, scale: Optional[torch.Tensor]) -> nn.Linear:
    """``scale * linear(x)`` as one Linear (layer scale folding); a plain copy when scale is None."""
    w = linear.weight.double()
    b = _bias(linear, w.shape[0])
    if scale is not None:
        s = scale.double()
        w, b = w * s[:, None], b * s
    return _new_linear(w, b, linear.weight)


def _new_conv(conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    layer = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding,
        dilation=conv.dilation, groups=conv.groups, bias=True, device=conv.weight.device, dtype=conv.weight.dtype,
    )
    layer.weight.data.copy_(weight.to(conv.weight.dtype))
    layer.bias.data.copy_(bias.to(conv.weight.dtype))
    return layer


def conv_with_output_affine(conv: nn.Conv2d, affine: Optional[Affine]) -> nn.Conv2d:
    """``conv(x) * scale + shift`` (a BatchNorm after the conv) as one conv; a copy when None."""
    w = conv.weight.double()
    b = _bias(conv, conv.out_channels)
    if affine is not None:
        scale, shift = affine
        w, b = w * scale[:, None, None, None], b * scale + shift
    return _new_conv(conv, w, b)


def conv_with_input_affine(conv: nn.Conv2d, affine: Affine) -> nn.Conv2d:
    """``conv(x * scale + shift)`` as one conv. Exact only without padding (the zero border
    would otherwise become ``shift``) and for dense convs: the downsampling 2x2 stride-2 convs."""
    if any(p != 0 for p in conv.padding) or conv.groups != 1:
        raise ValueError("an input affine folds only into an unpadded, ungrouped conv")
    scale, shift = affine
    w = conv.weight.double()
    b = _bias(conv, conv.out_channels) + (w * shift[None, :, None, None]).sum(dim=(1, 2, 3))
    return _new_conv(conv, w * scale[None, :, None, None], b)
