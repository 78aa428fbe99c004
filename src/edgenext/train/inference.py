"""Loading a model for evaluation or prediction, its class names, and evaluating a folder.

A checkpoint written by ``edgenext train`` carries its model name, constructor overrides,
input settings and class names, so ``--weights runs/.../best.pth`` is all it needs; other
checkpoints (official, timm, bare state dicts) need ``--model``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from ..data import ImageFolderDataset, ShardedBatchSampler, SkipCounter, eval_transform_factory, load_image
from ..models import create_model
from ..models.weights import read_checkpoint
from .distributed import DistInfo
from .engine import evaluate

_logger = logging.getLogger("edgenext")

IMAGENET_CLASSES = 1000


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
    weights: Optional[str] = None,
    *,
    pretrained: bool = False,
    device: torch.device = torch.device("cpu"),
) -> LoadedModel:
    """A model in eval mode with its class names and evaluation settings."""
    meta: dict[str, Any] = {}
    if weights is not None:
        obj = read_checkpoint(weights)
        if isinstance(obj, dict) and isinstance(obj.get("config"), dict):
            meta = obj  # one of our training checkpoints
    cfg = meta.get("config", {})
    name = model or cfg.get("model")
    if name is None:
        raise ValueError(f"{weights}: not a checkpoint of edgenext train, so give --model NAME (e.g. edgenext_small)")
    overrides = {k: v for k, v in cfg.get("model_kwargs", {}).items() if k != "drop_path_rate"} if name == cfg.get("model") else {}
    net = create_model(name, pretrained=pretrained, weights=weights, **overrides)
    net.eval().to(device)
    pcfg = dict(net.pretrained_cfg)
    input_size = int(cfg.get("input_size", pcfg["input_size"][-1]))
    crop_pct = float(cfg.get("eval_crop_pct", pcfg["crop_pct"]))
    interpolation = cfg.get("interpolation", pcfg["interpolation"])
    mean = tuple(cfg.get("mean", pcfg["mean"]))
    std = tuple(cfg.get("std", pcfg["std"]))
    if meta.get("class_names"):
        names = [str(n) for n in meta["class_names"]]
        descriptions = list(names)
    elif net.num_classes == IMAGENET_CLASSES:
        names, descriptions = _imagenet_names()
    else:
        names = [str(i) for i in range(net.num_classes)]
        descriptions = list(names)
    if len(names) != net.num_classes:
        raise ValueError(f"{weights}: {len(names)} class names for a {net.num_classes}-class model")
    return LoadedModel(net, names, descriptions, input_size, crop_pct, interpolation, mean, std,
                       extra={"trained": bool(meta), "epoch": meta.get("epoch")})


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
    _logger.warning("%s: folder names are not the model's class names; using folder order as label index", root)
    return folders


def evaluate_folder(
    loaded: LoadedModel,
    root: str,
    *,
    batch_size: int = 64,
    workers: int = 2,
    input_size: Optional[int] = None,
    crop_pct: Optional[float] = None,
    device: torch.device = torch.device("cpu"),
) -> dict[str, Any]:
    """Top-1, top-5 and loss of ``loaded`` on ``root/<class>/<image>``."""
    size = input_size or loaded.input_size
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
    input_size: Optional[int] = None,
    crop_pct: Optional[float] = None,
    device: torch.device = torch.device("cpu"),
) -> list[dict[str, Any]]:
    """Top-k classes and probabilities of each image (an ``error`` entry for unreadable ones)."""
    transform = eval_transform_factory(
        crop_pct=crop_pct or loaded.crop_pct, interpolation=loaded.interpolation, mean=loaded.mean, std=loaded.std
    )(input_size or loaded.input_size)
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
