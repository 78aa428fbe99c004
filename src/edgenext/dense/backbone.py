"""The EdgeNeXt backbone of the dense models: creation with ImageNet weights, and freezing."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..models import Checkpoint, EdgeNeXtFeatures, create_model
from ..models.features import StageMaps
from ..models.weights import PathLike

#: What ``backbone_weights`` takes: anything ``create_model(weights=...)`` reads.
BackboneWeights = Union[PathLike, Checkpoint, None]


#: the paper's dense peers our heads can be built on (timm's implementation, no weights): SSDLite and
#: DeepLabv3 on MobileViT-S are the paper's comparison (Tables 3 and 4)
TIMM_BACKBONES = ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s")


class TimmStageMaps(StageMaps, nn.Module):
    """A timm model with ``stem`` and ``stages`` (MobileViT) as the backbone of our dense heads: the
    outputs of its last four stages play EdgeNeXt's four (``out_indices`` 0-3, -1 the last), so the
    heads see the maps at the same strides; its last 1x1 expansion and classifier are not used (as
    ml-cvnets builds its detectors and segmenters on MobileViT)."""

    def __init__(self, name: str, out_indices: Sequence[int], output_stride: int = 32) -> None:
        super().__init__()
        import timm
        from timm.models import FeatureInfo

        model = timm.create_model(name, pretrained=False, output_stride=output_stride)
        if not hasattr(model, "stem") or not hasattr(model, "stages") or len(model.stages) < 4:
            raise ValueError(f"timm's {name} has no stem and >= 4 stages to build a dense backbone from")
        self.stem, self.stages = model.stem, model.stages
        offset = len(self.stages) - 4
        self.out_indices = tuple(offset + (i % 4) for i in out_indices)
        channels, reductions = self._probe()
        info = [dict(num_chs=channels[i], reduction=reductions[i], module=f"stages.{i}") for i in self.out_indices]
        self.feature_info = FeatureInfo(info, list(range(len(info))))
        self.in_chans, self.pretrained_cfg = 3, dict(getattr(model, "pretrained_cfg", {}) or {})

    @torch.no_grad()
    def _probe(self, side: int = 64) -> tuple[list[int], list[int]]:
        was = self.training
        x = self.stem.eval()(torch.zeros(1, 3, side, side))
        channels, reductions = [], []
        for stage in self.stages:
            x = stage.eval()(x)
            channels.append(x.shape[1])
            reductions.append(side // x.shape[-1])
        self.train(was)
        return channels, reductions

    def out_map_sizes(self, image_size: Union[int, Sequence[int]]) -> list[tuple[int, int]]:
        """``(height, width)`` of each output for an input of ``image_size``: its padded stride-2
        convolutions round up (``ceil(side / reduction)``)."""
        h, w = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        return [(-(-h // r), -(-w // r)) for r in self.reductions]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.stage_maps(x)


def build_backbone(
    name: str,
    *,
    out_indices: Sequence[int],
    output_stride: int = 32,
    weights: BackboneWeights = None,
    drop_path_rate: float = 0.0,
    backbone_kwargs: Optional[dict] = None,
) -> Union[EdgeNeXtFeatures, TimmStageMaps]:
    """Stage maps of variant ``name``, loaded from ``weights`` (anything ``create_model`` reads); a
    name of ``TIMM_BACKBONES`` builds timm's model instead (random weights: the bench's peers).

    ``num_classes=0`` makes the loader drop a checkpoint's classifier (it logs that) and also
    accept a checkpoint that has none; the backbone never uses it. ``backbone_kwargs`` override the
    variant's architecture (``create_model``'s overrides, e.g. ``depths``): for tests and experiments.
    """
    if name in TIMM_BACKBONES:
        if backbone_kwargs:
            raise ValueError(f"backbone_kwargs={backbone_kwargs} apply to EdgeNeXt variants, not to timm's {name}")
        if weights is not None:
            raise ValueError(f"{name} is built from timm with random weights (a bench peer); backbone weights "
                             "are for EdgeNeXt variants")
        return TimmStageMaps(name, out_indices, output_stride)
    return create_model(
        name,
        weights=weights,
        num_classes=0,
        features_only=True,
        out_indices=tuple(out_indices),
        output_stride=output_stride,
        drop_path_rate=drop_path_rate,
        **(backbone_kwargs or {}),
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
