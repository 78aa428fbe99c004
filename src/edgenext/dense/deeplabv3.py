"""DeepLabv3 with an EdgeNeXt backbone, in ml-cvnets v0.1's layout (the paper's segmenter, Sec. 4.3).

The backbone runs at output stride 16 (or 8): its last downsampling(s) at stride 1 and the
depth-wise convs after them dilated. On its last map: ASPP (1x1, three 3x3 atrous convs at
rates 6/12/18 -- doubled at output stride 8 -- and image pooling, each conv + BN + ReLU;
concatenation, 1x1 projection + BN + ReLU, dropout 0.1), then dropout 0.1, a 1x1 classifier
and bilinear upsampling to the input size. No auxiliary head.

Conventions (the same as ``ssdlite``'s): ``num_classes`` counts the background (VOC: 21, class
0 is background); mask pixels equal to ``ignore_index`` (255) are ignored. The model takes a
``(N, 3, H, W)`` batch of RGB images in [0, 1] and normalises it with ImageNet's mean and std
itself. Train mode: ``model(images, masks)`` -> ``{"loss": cross-entropy}``; eval mode:
``model(images)`` -> logits ``(N, num_classes, H, W)`` at the input size (masks, if given,
are not used: compute validation losses from the logits with ``segmentation_loss``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from ..models import EdgeNeXtFeatures
from .backbone import TIMM_BACKBONES, BackboneWeights, Normalize, build_backbone, freeze, frozen_parts, keep_frozen_in_eval
from .constants import ASPP_RATES, VOC_NUM_CLASSES

#: ASPP width: 128 brings DeepLabv3-EdgeNeXt-S closest to the paper's 6.5M / 8.7G (see README).
DEFAULT_ASPP_CHANNELS = 128
#: ml-cvnets' ASPP width, with which the MobileViT paper's DeepLabv3 sizes are given
ML_CVNETS_ASPP_CHANNELS = 256
IGNORE_INDEX = 255


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Pixel-wise cross-entropy of ``(N, C, H, W)`` logits against ``(N, H, W)`` class-index masks."""
    return F.cross_entropy(logits, masks.long(), ignore_index=ignore_index)


class DeepLabV3(nn.Module):
    """Backbone (``EdgeNeXtFeatures`` of the last stage) + ASPP head (see the module docstring)."""

    def __init__(
        self,
        backbone: EdgeNeXtFeatures,
        num_classes: int,
        *,
        aspp_channels: int = DEFAULT_ASPP_CHANNELS,
        atrous_rates: Sequence[int] = ASPP_RATES,
        aspp_dropout: float = 0.1,
        classifier_dropout: float = 0.1,
        ignore_index: int = IGNORE_INDEX,
        freeze_backbone: bool = False,
        freeze_stages: int = 0,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.normalize = Normalize()
        self.backbone = backbone
        aspp = ASPP(backbone.channels[-1], list(atrous_rates), aspp_channels)
        # NOTE: torchvision's ASPP is ml-cvnets' (plain 3x3 atrous convs, BN + ReLU everywhere,
        # bilinear image pooling) except for its projection dropout of 0.5; ml-cvnets uses 0.1.
        for m in aspp.project.modules():
            if isinstance(m, nn.Dropout):
                m.p = aspp_dropout
        self.head = nn.Sequential(
            OrderedDict(
                aspp=aspp,
                dropout=nn.Dropout2d(classifier_dropout),
                classifier=nn.Conv2d(aspp_channels, num_classes, 1),
            )
        )
        for m in self.head.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.freeze_backbone, self.freeze_stages = freeze_backbone, freeze_stages
        freeze(frozen_parts(backbone, freeze_backbone, freeze_stages))

    @property
    def output_stride(self) -> int:
        return self.backbone.reductions[-1]

    def train(self, mode: bool = True) -> "DeepLabV3":
        super().train(mode)
        keep_frozen_in_eval(frozen_parts(self.backbone, self.freeze_backbone, self.freeze_stages))
        return self

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, num_classes, H, W)`` logits for ``(N, 3, H, W)`` images in [0, 1]."""
        if not torch.jit.is_tracing() and (images.dim() != 4 or images.shape[1] != 3):
            raise ValueError(f"DeepLabV3 expects a (N, 3, H, W) batch of images, got shape {tuple(images.shape)}")
        features = self.backbone(self.normalize(images))[-1]
        out = self.head(features)
        return F.interpolate(out, size=images.shape[-2:], mode="bilinear", align_corners=False)

    def forward(
        self, images: torch.Tensor, masks: Optional[torch.Tensor] = None
    ) -> Union[torch.Tensor, dict[str, torch.Tensor]]:
        logits = self.logits(images)
        if not self.training:
            return logits
        if masks is None:
            raise ValueError("DeepLabV3 in train mode needs masks: call model(images, masks), or model.eval() to predict")
        if masks.shape != (images.shape[0], *images.shape[-2:]):
            raise ValueError(f"masks must be (N, H, W) = {(images.shape[0], *images.shape[-2:])}, got {tuple(masks.shape)}")
        return {"loss": segmentation_loss(logits, masks, self.ignore_index)}


def deeplabv3(
    backbone: str = "edgenext_small",
    num_classes: int = VOC_NUM_CLASSES,
    *,
    output_stride: int = 16,
    backbone_weights: BackboneWeights = None,
    aspp_channels: Optional[int] = None,
    atrous_rates: Sequence[int] = ASPP_RATES,
    aspp_dropout: float = 0.1,
    classifier_dropout: float = 0.1,
    ignore_index: int = IGNORE_INDEX,
    freeze_backbone: bool = False,
    freeze_stages: int = 0,
    drop_path_rate: float = 0.0,
    backbone_kwargs: Optional[dict] = None,
) -> DeepLabV3:
    """DeepLabv3 on an EdgeNeXt variant, ml-cvnets v0.1's layout.

    Args:
        backbone: any registered variant.
        num_classes: classes including the background (VOC: 21).
        output_stride: 16 (the paper) or 8; the atrous rates are doubled at 8.
        backbone_weights: ImageNet initialisation: a path, URL or ``hf-hub:`` name in any format
            ``create_model(weights=...)`` reads; its classifier is not used.
        aspp_channels: ASPP width; None: 128 on EdgeNeXt (the paper's 6.5M on EdgeNeXt-S), 256 on a
            MobileViT (ml-cvnets' width: the MobileViT paper's 6.4M on MobileViT-S).
        atrous_rates: the three rates at output stride 16.
        aspp_dropout, classifier_dropout: dropout after the ASPP projection / before the classifier.
        ignore_index: mask value the loss skips.
        freeze_backbone, freeze_stages: no training for the whole backbone / its stem and
            first n stages (their BatchNorm statistics are kept too).
        drop_path_rate: the backbone's stochastic depth.
        backbone_kwargs: architecture overrides of the variant (``create_model``'s, e.g. ``depths``).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes} must be at least 1 (it counts the background)")
    if output_stride not in (8, 16):
        raise ValueError(f"output_stride={output_stride} is not supported for DeepLabv3: use 16 (the paper) or 8")
    if len(atrous_rates) != 3:
        raise ValueError(f"atrous_rates needs three rates (at output stride 16), got {tuple(atrous_rates)}")
    rates = tuple(int(r) * 16 // output_stride for r in atrous_rates)
    if aspp_channels is None:
        aspp_channels = ML_CVNETS_ASPP_CHANNELS if backbone in TIMM_BACKBONES else DEFAULT_ASPP_CHANNELS
    body = build_backbone(
        backbone, out_indices=(-1,), output_stride=output_stride, weights=backbone_weights, drop_path_rate=drop_path_rate,
        backbone_kwargs=backbone_kwargs,
    )
    return DeepLabV3(
        body,
        num_classes,
        aspp_channels=aspp_channels,
        atrous_rates=rates,
        aspp_dropout=aspp_dropout,
        classifier_dropout=classifier_dropout,
        ignore_index=ignore_index,
        freeze_backbone=freeze_backbone,
        freeze_stages=freeze_stages,
    )
