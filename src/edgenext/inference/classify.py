"""A classifier's top-1 on an image folder and top-k of images (``edgenext eval`` / ``predict``).

The model comes from ``edgenext.models.loading.load_model`` (any checkpoint format, its class
names and evaluation preprocessing); images go through the same evaluation transform as in
training's validation.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from PIL import Image
from torch.utils.data import DataLoader

from ..data import ImageFolderDataset, ShardedBatchSampler, SkipCounter, eval_transform_factory, load_image
from ..models.loading import IMAGENET_CLASSES, InputSize, LoadedModel, eval_side, load_model
from ..train.distributed import DistInfo
from ..train.engine import evaluate

__all__ = ["IMAGENET_CLASSES", "LoadedModel", "eval_side", "evaluate_folder", "folder_class_names", "load_model",
           "predict_images"]

log = logging.getLogger(__name__)


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
