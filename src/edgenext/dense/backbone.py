"""The EdgeNeXt backbone of the dense models: creation with ImageNet weights, and freezing."""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..models import Checkpoint, EdgeNeXtFeatures, create_model
from ..models.weights import PathLike

#: What ``backbone_weights`` takes: anything ``create_model(weights=...)`` reads.
BackboneWeights = Union[PathLike, Checkpoint, None]


def build_backbone(
    name: str,
    *,
    out_indices: Sequence[int],
    output_stride: int = 32,
    weights: BackboneWeights = None,
    drop_path_rate: float = 0.0,
) -> EdgeNeXtFeatures:
    """Stage maps of variant ``name``, loaded from ``weights`` (anything ``create_model`` reads).

    ``num_classes=0`` makes the loader drop a checkpoint's classifier (it logs that) and also
    accept a checkpoint that has none; the backbone never uses it.
    """
    return create_model(
        name,
        weights=weights,
        num_classes=0,
        features_only=True,
        out_indices=tuple(out_indices),
        output_stride=output_stride,
        drop_path_rate=drop_path_rate,
    )


def frozen_parts(backbone: EdgeNeXtFeatures, freeze_backbone: bool, freeze_stages: int) -> list[nn.Module]:
    """The modules to freeze: everything, or the stem and the first ``freeze_stages`` stages."""
    num_stages = len(backbone.stages)
    if not 0 <= freeze_stages <= num_stages:
        raise ValueError(f"freeze_stages={freeze_stages} must be between 0 and the backbone's {num_stages} stages")
    if freeze_backbone:
        return [backbone]
    if freeze_stages == 0:
        return []
    return [backbone.stem, *list(backbone.stages)[:freeze_stages]]


def freeze(parts: Sequence[nn.Module]) -> None:
    """No gradients for ``parts``; ``keep_frozen_in_eval`` keeps their norms' statistics fixed too."""
    for part in parts:
        for p in part.parameters():
            p.requires_grad_(False)
        part.eval()


def keep_frozen_in_eval(parts: Sequence[nn.Module]) -> None:
    # NOTE: called from the models' train(): a frozen part must not update BatchNorm statistics
    # (nor drop paths) while the rest trains, or "frozen" weights would still drift.
    for part in parts:
        part.eval()


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel: the dense models take [0, 1] images, as torchvision's do."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
