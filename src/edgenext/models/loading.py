"""A model from any checkpoint, with what evaluation needs: its class names and preprocessing.

A checkpoint written by ``edgenext train`` carries its model name, constructor overrides,
input settings and class names, so ``--weights runs/.../best.pth`` is all it needs; so does a
timm repository on the Hugging Face Hub (``hf-hub:...``, whose config names the variant);
other checkpoints (official, timm files, bare state dicts) need ``--model``. ``load_model`` is
the one function every command taking ``--weights`` uses (and distillation, for its teacher),
and it reads the file once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Union

import torch
from torch import nn

from .edgenext import input_hw
from .registry import create_model, read_weights
from .run_config import model_overrides, run_config
from .weights import PathLike

IMAGENET_CLASSES = 1000

InputSize = Union[int, tuple[int, int]]


@dataclass
class LoadedModel:
    model: nn.Module
    class_names: list[str]  # label of each output index
    descriptions: list[str]  # human-readable name of each output index
    input_size: int
    crop_pct: float
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    extra: dict[str, Any] = field(default_factory=dict)


def _imagenet_names() -> tuple[list[str], list[str]]:
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    names = list(info.label_names())
    return names, [info.index_to_description(i) for i in range(len(names))]


def load_model(
    model: Optional[str] = None,
    weights: Optional[PathLike] = None,
    *,
    pretrained: bool = False,
    num_classes: Optional[int] = None,
    device: torch.device = torch.device("cpu"),
) -> LoadedModel:
    """A model in eval mode with its class names and evaluation settings; the checkpoint is read once.

    Args:
        model: the variant; optional when the checkpoint names it (``edgenext train`` runs,
            ``hf-hub:`` repositories of timm).
        weights: path, URL or ``hf-hub:ORG/REPO`` of a checkpoint in any supported format.
        pretrained: the variant's registered release instead of ``weights``.
        num_classes: classifier size (default: the checkpoint's); another size than the
            checkpoint's re-initialises the head, and the classes get plain index names.
        device: where the model is moved.
    """
    checkpoint = read_weights(weights) if weights is not None else None
    cfg = (run_config(checkpoint.content) if checkpoint is not None else None) or {}
    name = model or cfg.get("model") or (checkpoint.architecture if checkpoint is not None else None)
    if name is None:
        if weights is None:
            raise ValueError("give --model NAME (e.g. edgenext_small), with --weights FILE or --pretrained for trained weights")
        raise ValueError(f"{weights}: not a checkpoint of edgenext train, so give --model NAME (e.g. edgenext_small)")
    # the run's architecture changes apply only to the model it trained
    overrides = model_overrides(cfg, training=False) if name == cfg.get("model") else {}
    net = create_model(name, pretrained=pretrained, weights=checkpoint, num_classes=num_classes, **overrides)
    net.eval().to(device)
    pcfg = dict(net.pretrained_cfg)
    input_size = eval_side(cfg.get("input_size", tuple(pcfg["input_size"][-2:])))
    crop_pct = float(cfg.get("eval_crop_pct", pcfg["crop_pct"]))
    interpolation = cfg.get("interpolation", pcfg["interpolation"])
    mean = tuple(cfg.get("mean", pcfg["mean"]))
    std = tuple(cfg.get("std", pcfg["std"]))
    recorded = [str(n) for n in (checkpoint.content.get("class_names") or [])] if cfg else []
    if recorded and len(recorded) == net.num_classes:
        names, descriptions = recorded, list(recorded)
    elif recorded and num_classes is None:
        raise ValueError(f"{weights}: {len(recorded)} class names for a {net.num_classes}-class model")
    elif net.num_classes == IMAGENET_CLASSES:
        names, descriptions = _imagenet_names()
    else:
        names = [str(i) for i in range(net.num_classes)]
        descriptions = list(names)
    return LoadedModel(net, names, descriptions, input_size, crop_pct, interpolation, mean, std,
                       extra={"trained": bool(cfg), "epoch": checkpoint.content.get("epoch") if cfg else None,
                              "source": checkpoint.source if checkpoint is not None else None})


def eval_side(input_size: Any) -> int:
    """The side of the square evaluation input, from a side or ``(height, width)``; ValueError if not square.

    NOTE: the evaluation transform (resize the shorter side, center-crop) makes square crops only.
    """
    height, width = input_hw(input_size if isinstance(input_size, int) else tuple(input_size))
    if height != width:
        raise ValueError(f"input size {height}x{width}: evaluation uses square center crops, give one side "
                         f"(e.g. --input-size {max(height, width)})")
    return height


