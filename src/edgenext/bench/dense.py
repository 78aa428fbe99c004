"""The detectors and segmenters in the bench and the profile: ours (SSDLite / DeepLabv3 on
EdgeNeXt) beside torchvision's MobileNetV3 models, timed on the same tensor in the same run.

What is timed is the network on a normalised image tensor, the same for ours and theirs:
detection, backbone + SSD head (box codes and class logits; no anchor decoding, softmax or
NMS, which are cheap and run outside an exported graph anyway); segmentation, backbone + head
+ bilinear upsampling to the input (the logits). Torchvision's models are built with
``weights=None, weights_backbone=None`` (no download) and our class counts (COCO's 81, VOC's 21).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..dense.build import DetectionNetwork, build_dense
from ..dense.constants import (
    COCO_NUM_CLASSES,
    DETECTION_INPUT_SIZE,
    PAPER_DENSE,
    SEGMENTATION_INPUT_SIZE,
    VOC_NUM_CLASSES,
)
from ..models.edgenext import InputSize, input_hw
from .candidates import CandidateSpec
from .profile import count_madds

DENSE_TASKS = ("detect", "segment")
#: runtimes of the dense networks (ours and torchvision's), in table order
DENSE_RUNTIMES = ("eager", "onnxruntime", "executorch")
DEFAULT_DENSE_BACKBONES = ("edgenext_small",)
#: torchvision's mobile models of each task (MobileNetV3-Large backbones)
TORCHVISION_PEERS = {"detect": ("ssdlite320_mobilenet_v3_large",), "segment": ("deeplabv3_mobilenet_v3_large",)}
#: what a dense bench row times (the table's header says it)
TIMED = {
    "detect": "network on a normalised tensor: backbone + SSD head (box codes, class logits); "
              "no anchor decoding, softmax or NMS",
    "segment": "network on a normalised tensor: backbone + head + bilinear upsampling to the input (logits)",
}
OUTPUT_NAMES = {"detect": ("bbox_regression", "cls_logits"), "segment": ("logits",)}
HEADS = {"detect": "ssdlite", "segment": "deeplabv3"}


class OurSegmentationNetwork(nn.Module):
    """Our DeepLabv3 without its input normalisation: backbone, ASPP head, upsampling."""

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


def _check_task(task: str) -> None:
    if task not in DENSE_TASKS:
        raise ValueError(f"task={task!r} has no detector or segmenter: use one of {DENSE_TASKS}")


def our_network(task: str, backbone: str, input_size: InputSize) -> nn.Module:
    """The timed network of our SSDLite / DeepLabv3 on ``backbone`` (random weights, the paper's class counts)."""

    _check_task(task)
    if task == "detect":
        return DetectionNetwork(build_dense(task, backbone, image_size=input_size)).eval()
    return OurSegmentationNetwork(build_dense(task, backbone)).eval()


def torchvision_network(task: str, name: str) -> nn.Module:
    """The timed network of torchvision's ``name``, random weights (nothing is downloaded)."""
    from torchvision.models import get_model
    from torchvision.models.detection.ssd import SSD
    from torchvision.models.segmentation import FCN, LRASPP, DeepLabV3


    _check_task(task)
    classes = COCO_NUM_CLASSES if task == "detect" else VOC_NUM_CLASSES
    try:
        model = get_model(name, weights=None, weights_backbone=None, num_classes=classes).eval()
    except (ValueError, TypeError) as err:
        raise ValueError(f"torchvision model {name!r} cannot be built for --task {task}: {err}; "
                         f"try {', '.join(TORCHVISION_PEERS[task])}") from None
    if task == "detect" and isinstance(model, SSD):
        return DetectionNetwork(model).eval()
    if task == "segment" and isinstance(model, (DeepLabV3, FCN, LRASPP)):
        return TorchvisionSegmentationNetwork(model).eval()
    raise ValueError(f"torchvision's {name} is not a{'n SSD detector' if task == 'detect' else ' segmentation model'}; "
                     f"try {', '.join(TORCHVISION_PEERS[task])}")


def dense_specs(base: CandidateSpec, backbones: tuple[str, ...], peers: tuple[str, ...], runtimes: tuple[str, ...],
                peer_runtimes: tuple[str, ...]) -> list[CandidateSpec]:
    """Ours on each backbone in ``runtimes``, then each torchvision peer in ``peer_runtimes`` (fp32),
    with the rest of ``base`` (task, input size, threads, schedule, scratch folder).

    Runtimes whose package is not installed are left out (the caller filters them).
    """
    task = base.task
    _check_task(task)
    for runtime in (*runtimes, *peer_runtimes):
        if runtime not in DENSE_RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r} for --task {task}: choose from {', '.join(DENSE_RUNTIMES)}")
    out = [replace(base, model=f"{HEADS[task]}_{b}", impl="ours", runtime=r, precision="fp32", arch=b)
           for b in backbones for r in runtimes]
    out += [replace(base, model=name, impl="torchvision", runtime=r, precision="fp32", arch=name)
            for name in peers for r in peer_runtimes]
    return out


def profile_dense_row(task: str, backbone: str, input_size: Optional[InputSize] = None,
                      num_classes: Optional[int] = None) -> dict[str, Any]:
    """``edgenext profile --task detect|segment``'s row: ``profile_dense`` with the differences from the paper.

    The keys of the classification rows (``model``, ``params``, ``madds``, ``input_size``,
    ``paper_params``, ``paper_madds``, ``params_match``, ``madds_diff_pct``) plus ``task``,
    ``head``, ``params_diff_pct`` and ``mobilevit_s`` (the paper's MobileViT-S figures and size).
    ``params_match`` is None: the paper gives these sizes to 0.1M, so only the difference says
    how close they are.
    """

    _check_task(task)
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    row = profile_dense(task, backbone, input_size, **kwargs)
    paper_side = DETECTION_INPUT_SIZE if task == "detect" else SEGMENTATION_INPUT_SIZE
    return {
        **row,
        "task": task,
        "head": HEADS[task],
        "params_match": None,
        "params_diff_pct": _diff_pct(row["params"], row["paper_params"]),
        "madds_diff_pct": _diff_pct(row["madds"], row["paper_madds"]),
        "mobilevit_s": {**row["mobilevit_s"], "input_size": [paper_side, paper_side]},
    }


def profile_dense(
    task: str, backbone: str = "edgenext_small", input_size: Optional[InputSize] = None, **kwargs: Any
) -> dict[str, Any]:
    """Params and fvcore MAdds (``edgenext.profile``'s convention) of the detector or segmenter.

    ``input_size`` defaults to the paper's (320 for ``detect``, 512 for ``segment``); the
    paper's figures are given for EdgeNeXt-S at that size with the default class counts,
    else None. Further keyword arguments go to ``ssdlite`` / ``deeplabv3``. Only the network
    is counted (backbone and head on a tensor), not anchors, box decoding or NMS.
    Returns ``model, params, madds, input_size, paper_params, paper_madds`` and ``mobilevit_s``
    (the paper's MobileViT-S figures for the same task).
    """
    _check_task(task)
    model = build_dense(task, backbone, **kwargs)
    default_size = DETECTION_INPUT_SIZE if task == "detect" else SEGMENTATION_INPUT_SIZE
    size = input_hw(input_size if input_size is not None else default_size)
    network = DetectionNetwork(model) if task == "detect" else model
    paper = PAPER_DENSE[task].get(backbone) if size == (default_size, default_size) and "num_classes" not in kwargs else None
    return {
        "model": f"{HEADS[task]}_{backbone}",
        "params": sum(p.numel() for p in model.parameters()),
        "madds": count_madds(network, size),
        "input_size": list(size),
        "paper_params": int(paper["params"]) if paper else None,
        "paper_madds": int(paper["madds"]) if paper else None,
        "mobilevit_s": {k: int(PAPER_DENSE[task]["mobilevit_s"][k]) for k in ("params", "madds")},
    }


def _diff_pct(value: int, paper: Optional[int]) -> Optional[float]:
    return round(100.0 * (value - paper) / paper, 3) if paper else None
