"""The classifier head of EdgeNeXt: global pooling, norm, dropout, Linear, with timm's pooling choices.

``global_pool`` follows timm's names: ``'avg'`` (the paper's), ``'max'``, ``'avgmax'`` (the mean
of both) and ``''`` (no pooling: the head returns the normalised map, the usual choice for
dense use with ``num_classes=0``). The norm keeps its place: the LayerNorm variants normalise
after pooling (per pixel over the channels when pooling is off), the BatchNorm variants before.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import NormName, make_norm

#: pooling types the head takes (timm's names); '' keeps the map
POOL_TYPES = ("avg", "max", "avgmax", "")


def check_pool_type(global_pool: str, num_classes: int) -> str:
    """``global_pool`` if the head can use it with ``num_classes`` outputs, else a clear error."""
    if global_pool not in POOL_TYPES:
        raise ValueError(f"global_pool={global_pool!r} is not supported: use one of {', '.join(map(repr, POOL_TYPES))}")
    if global_pool == "" and num_classes > 0:
        # NOTE: timm refuses the same: a Linear classifier needs a pooled vector
        raise ValueError(f"global_pool='' keeps the spatial map, so it needs num_classes=0 (got num_classes={num_classes}): "
                         "remove the classifier too, e.g. reset_classifier(0, '') or create_model(..., num_classes=0, global_pool='')")
    return global_pool


def global_pool2d(x: torch.Tensor, pool_type: str) -> torch.Tensor:
    """Pool a ``(B, C, H, W)`` map to ``(B, C)``; ``pool_type=''`` returns the map unchanged."""
    if pool_type == "avg":
        return x.mean((2, 3))
    if pool_type == "max":
        return x.amax((2, 3))
    if pool_type == "avgmax":
        return 0.5 * (x.mean((2, 3)) + x.amax((2, 3)))
    return x


class ClassifierHead(nn.Module):
    """Global pool + norm (or norm + pool, for the BatchNorm variants), dropout, Linear."""

    def __init__(self, dim: int, num_classes: int, *, norm_layer: NormName, norm_first: bool, drop_rate: float,
                 global_pool: str = "avg") -> None:
        super().__init__()
        self.global_pool = check_pool_type(global_pool, num_classes)
        self.norm_first = norm_first
        # NOTE: norm_first normalises (B, C, H, W) maps; otherwise the norm sees channels last:
        # the pooled (B, C) vector, or the map permuted to (B, H, W, C) when pooling is off.
        self.norm = make_norm(norm_layer, dim, channels_last=not norm_first)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.norm_first:
            x = global_pool2d(self.norm(x), self.global_pool)
        elif self.global_pool:
            x = self.norm(global_pool2d(x, self.global_pool))  # (B, C)
        else:
            x = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        x = self.drop(x)
        return x if pre_logits else self.fc(x)
