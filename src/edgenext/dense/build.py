"""The dense models by task name, and the part of them that is measured (no anchors, decoding, NMS)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .constants import COCO_NUM_CLASSES, VOC_NUM_CLASSES
from .deeplabv3 import deeplabv3
from .ssdlite import ssdlite

TASKS = ("detect", "segment")


class DetectionNetwork(nn.Module):
    """Backbone + head of a torchvision ``SSD`` (ours is one) on a normalised tensor: what is counted and timed."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, model.head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(list(self.backbone(x).values()))
        return out["bbox_regression"], out["cls_logits"]  # (N, A, 4), (N, A, C)


def build_dense(task: str, backbone: str = "edgenext_small", **kwargs: Any) -> nn.Module:
    """``ssdlite`` for ``detect``, ``deeplabv3`` for ``segment`` (the paper's class counts by default)."""
    if task == "detect":
        return ssdlite(backbone, kwargs.pop("num_classes", COCO_NUM_CLASSES), **kwargs)
    if task == "segment":
        return deeplabv3(backbone, kwargs.pop("num_classes", VOC_NUM_CLASSES), **kwargs)
    raise ValueError(f"task={task!r} has no dense model: use one of {TASKS}")
