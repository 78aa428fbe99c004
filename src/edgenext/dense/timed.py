"""The part of a detector or segmenter that ``profile`` counts and ``bench`` times, ours and torchvision's
alike: the network on a normalised image tensor.

Detection: backbone + SSD head (box codes and class logits; no anchor decoding, softmax or NMS,
which are cheap and run outside an exported graph anyway). Segmentation: backbone + head +
bilinear upsampling to the input (the logits). Torchvision's models are built with
``weights=None, weights_backbone=None`` (nothing is downloaded).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

#: torchvision's SSD detectors (``DetectionNetwork`` times their backbone and head)
TORCHVISION_DETECTORS = ("ssdlite320_mobilenet_v3_large", "ssd300_vgg16")
#: torchvision's segmentation models (each returns its logits as ``out``)
TORCHVISION_SEGMENTERS = ("deeplabv3_mobilenet_v3_large", "lraspp_mobilenet_v3_large", "deeplabv3_resnet50",
                          "deeplabv3_resnet101", "fcn_resnet50", "fcn_resnet101")


class DetectionNetwork(nn.Module):
    """Backbone + head of a torchvision ``SSD`` (ours is one) on a normalised tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, model.head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(list(self.backbone(x).values()))
        return out["bbox_regression"], out["cls_logits"]  # (N, A, 4), (N, A, C)


class SegmentationNetwork(nn.Module):
    """Our DeepLabv3 without its input normalisation: backbone, ASPP head, upsampling to the input."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, model.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(self.backbone(x)[-1])
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)


class TorchvisionSegmentationNetwork(nn.Module):
    """A torchvision segmentation model's ``out`` logits (it takes normalised tensors already)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]


def torchvision_detector(name: str, num_classes: int) -> nn.Module:
    """The timed network of torchvision's SSD ``name`` (``TORCHVISION_DETECTORS``), random weights."""
    return DetectionNetwork(_torchvision_model(name, num_classes, TORCHVISION_DETECTORS, "SSD detectors")).eval()


def torchvision_segmenter(name: str, num_classes: int) -> nn.Module:
    """The timed network of torchvision's segmentation model ``name`` (``TORCHVISION_SEGMENTERS``), random weights."""
    model = _torchvision_model(name, num_classes, TORCHVISION_SEGMENTERS, "segmentation models")
    return TorchvisionSegmentationNetwork(model).eval()


def _torchvision_model(name: str, num_classes: int, known: Sequence[str], kind: str) -> nn.Module:
    if name not in known:
        raise ValueError(f"{name!r} is not one of torchvision's {kind} this bench times: choose from {', '.join(known)}")
    from torchvision.models import get_model

    return get_model(name, weights=None, weights_backbone=None, num_classes=num_classes).eval()
