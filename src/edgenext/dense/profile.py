"""Parameters and multiply-adds of the dense models beside the paper's figures."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from ..models.edgenext import InputSize, input_hw
from .constants import (
    COCO_NUM_CLASSES,
    DETECTION_INPUT_SIZE,
    PAPER_DENSE,
    SEGMENTATION_INPUT_SIZE,
    VOC_NUM_CLASSES,
)
from .deeplabv3 import deeplabv3
from .ssdlite import ssdlite

TASKS = ("detect", "segment")


class _DetectionNetwork(nn.Module):
    """Backbone + head of an SSDLite on a tensor: what is counted (not anchors, decoding, NMS)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = model.backbone, model.head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.head(list(self.backbone(x).values()))
        return out["bbox_regression"], out["cls_logits"]


def build_dense(task: str, backbone: str = "edgenext_small", **kwargs: Any) -> nn.Module:
    """``ssdlite`` for ``detect``, ``deeplabv3`` for ``segment`` (the paper's class counts by default)."""
    if task == "detect":
        return ssdlite(backbone, kwargs.pop("num_classes", COCO_NUM_CLASSES), **kwargs)
    if task == "segment":
        return deeplabv3(backbone, kwargs.pop("num_classes", VOC_NUM_CLASSES), **kwargs)
    raise ValueError(f"task={task!r} has no dense model: use one of {TASKS}")


def profile_dense(
    task: str, backbone: str = "edgenext_small", input_size: Optional[InputSize] = None, **kwargs: Any
) -> dict[str, Any]:
    """Params and fvcore MAdds (``edgenext.profile``'s convention) of the detector or segmenter.

    ``input_size`` defaults to the paper's (320 for ``detect``, 512 for ``segment``); the
    paper's figures are given for EdgeNeXt-S at that size with the default class counts,
    else None. Further keyword arguments go to ``ssdlite`` / ``deeplabv3``.
    Returns ``model, params, madds, input_size, paper_params, paper_madds`` and ``mobilevit_s``
    (the paper's MobileViT-S figures for the same task).
    """
    from ..bench.profile import count_madds  # NOTE: imported here so bench/ may import dense/ later

    model = build_dense(task, backbone, **kwargs)
    default_size = DETECTION_INPUT_SIZE if task == "detect" else SEGMENTATION_INPUT_SIZE
    size = input_hw(input_size if input_size is not None else default_size)
    network = _DetectionNetwork(model) if task == "detect" else model
    paper = PAPER_DENSE[task].get(backbone) if size == (default_size, default_size) and "num_classes" not in kwargs else None
    return {
        "model": f"{'ssdlite' if task == 'detect' else 'deeplabv3'}_{backbone}",
        "params": sum(p.numel() for p in model.parameters()),
        "madds": count_madds(network, size),
        "input_size": list(size),
        "paper_params": int(paper["params"]) if paper else None,
        "paper_madds": int(paper["madds"]) if paper else None,
        "mobilevit_s": {k: int(PAPER_DENSE[task]["mobilevit_s"][k]) for k in ("params", "madds")},
    }
