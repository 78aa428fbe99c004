"""Loading a model for evaluation or prediction, its class names, and evaluating a folder.

A checkpoint written by ``edgenext train`` carries its model name, constructor overrides,
input settings and class names, so ``--weights runs/.../best.pth`` is all it needs; so does a
timm repository on the Hugging Face Hub (``hf-hub:...``, whose config names the variant);
other checkpoints (official, timm files, bare state dicts) need ``--model``. ``load_model`` is
the one function every command taking ``--weights`` uses, and it reads the file once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from ..data import ImageFolderDataset, ShardedBatchSampler, SkipCounter, eval_transform_factory, load_image
from ..models import create_model, read_weights
from ..models.edgenext import input_hw
from ..models.weights import PathLike
from .distributed import DistInfo
from .engine import evaluate
from .modelspec import model_overrides, run_config

log = logging.getLogger(__name__)

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


def folder_class_names(loaded: LoadedModel, root: Path) -> list[str]:
    """Label order for an image folder: the model's names when the folders use them, else folder order.

    For 1000-class ImageNet models the folders are WordNet ids and the label of a folder is
    its rank among the 1000 sorted ImageNet ids, whichever subset of classes the folder holds.
    """
    folders = sorted(d.name for d in Path(root).iterdir() if d.is_dir() and not d.name.startswith(".")) if Path(root).is_dir() else []
    known = set(loaded.class_names)
    # a missing or empty folder: the dataset raises the clear error for that
    if not folders or all(f in known for f in folders):
        return loaded.class_names
    if loaded.extra.get("trained") or len(loaded.class_names) == IMAGENET_CLASSES:
        unknown = [f for f in folders if f not in known][:5]
        raise ValueError(f"{root}: folders {', '.join(unknown)} are not classes of this model "
                         f"(e.g. {', '.join(loaded.class_names[:3])})")
    if len(folders) > len(loaded.class_names):
        raise ValueError(f"{root}: {len(folders)} class folders but the model has {len(loaded.class_names)} outputs")
    log.warning("%s: folder names are not the model's class names; using folder order as label index", root)
    return folders


def evaluate_folder(
    loaded: LoadedModel,
    root: str,
    *,
    batch_size: int = 64,
    workers: int = 2,
    input_size: Optional[InputSize] = None,
    crop_pct: Optional[float] = None,
    device: torch.device = torch.device("cpu"),
) -> dict[str, Any]:
    """Top-1, top-5 and loss of ``loaded`` on ``root/<class>/<image>``.

    ``input_size`` (a side or a square ``(height, width)``) and ``crop_pct`` override the model's.
    """
    size = eval_side(input_size if input_size is not None else loaded.input_size)
    pct = crop_pct or loaded.crop_pct
    factory = eval_transform_factory(crop_pct=pct, interpolation=loaded.interpolation, mean=loaded.mean, std=loaded.std)
    dataset = ImageFolderDataset(root, factory, default_size=size, class_names=folder_class_names(loaded, Path(root)))
    loader = DataLoader(dataset, batch_sampler=ShardedBatchSampler(len(dataset), batch_size), num_workers=workers,
                        collate_fn=SkipCounter())
    metrics = evaluate(loaded.model, loader, device=device, dist=DistInfo(device=device), progress=True)
    return {**metrics, "images": len(dataset), "input_size": size, "crop_pct": pct}


@torch.no_grad()
def predict_images(
    loaded: LoadedModel,
    paths: Sequence[str],
    *,
    top_k: int = 5,
    input_size: Optional[InputSize] = None,
    crop_pct: Optional[float] = None,
    device: torch.device = torch.device("cpu"),
) -> list[dict[str, Any]]:
    """Top-k classes and probabilities of each image (an ``error`` entry for unreadable ones).

    ``input_size`` (a side or a square ``(height, width)``) and ``crop_pct`` override the model's.
    """
    size = eval_side(input_size if input_size is not None else loaded.input_size)
    transform = eval_transform_factory(
        crop_pct=crop_pct or loaded.crop_pct, interpolation=loaded.interpolation, mean=loaded.mean, std=loaded.std
    )(size)
    k = max(1, min(top_k, len(loaded.class_names)))
    results = []
    for path in paths:
        try:
            img: Image.Image = load_image(path)
        except (OSError, ValueError, SyntaxError) as err:
            results.append({"image": str(path), "error": f"{type(err).__name__}: {err}"})
            continue
        probs = loaded.model(transform(img).unsqueeze(0).to(device)).float().softmax(dim=-1)[0]
        values, indices = probs.topk(k)
        results.append({
            "image": str(path),
            "top": [
                {"index": int(i), "label": loaded.class_names[int(i)], "description": loaded.descriptions[int(i)], "prob": float(p)}
                for p, i in zip(values, indices)
            ],
        })
    return results
