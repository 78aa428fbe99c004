"""What ``edgenext shards --task detect|segment`` writes: the dense tasks' layouts (COCO, VOC, paired folders)
as ``SplitSource`` s for ``data.shard_writer`` (read back by ``dense.data.shards``)."""

from __future__ import annotations

import json
from typing import Optional

from ..data.shard_writer import SplitSource, image_ext, mask_png, read_file
from .data.coco import _read_json
from .data.shards import MASK_MEMBER
from .training import coco_files, segmentation_dataset

SPLITS = ("train", "val")


def _wanted(split: str, source: Optional[str], *explicit: Optional[str]) -> bool:
    """Whether to write ``split``: its explicit files are given, or a root layout holds every split."""
    return bool(source) or any(explicit)


def coco_splits(source: Optional[str], *, images: dict, ann: dict) -> tuple[list[SplitSource], dict]:
    """Detection sources: a COCO 2017 root, or ``--{split}-images`` + ``--{split}-ann`` pairs (either split alone)."""
    sources, categories = [], None
    for split in SPLITS:
        if not _wanted(split, source, images.get(split), ann.get(split)):
            continue
        images_dir, ann_file = coco_files(split, data=source if not (images.get(split) or ann.get(split)) else None,
                                          images=images.get(split), ann=ann.get(split))
        data = _read_json(ann_file)
        if categories is not None and data["categories"] != categories:
            raise ValueError(f"{ann_file}: its categories differ from the training split's")
        categories = data["categories"]
        by_image: dict = {}
        for a in data.get("annotations", []):
            by_image.setdefault(a["image_id"], []).append(a)
        entries = list(data["images"])

        def read(i: int, entries=entries, by_image=by_image, folder=images_dir) -> dict[str, bytes]:
            image = entries[i]
            record = {"image": image, "annotations": by_image.get(image["id"], [])}
            path = folder / image["file_name"]
            return {image_ext(path): read_file(path), "json": json.dumps(record).encode()}

        sources.append(SplitSource(split, len(entries), read,
                                   lambda i, entries=entries, folder=images_dir: str(folder / entries[i]["file_name"])))
    if not sources:
        raise ValueError("nothing to write: give a COCO 2017 folder as SRC, or --train-images with --train-ann")
    return sources, {"categories": categories}


def mask_splits(source: Optional[str], *, images: dict, masks: dict,
                num_classes: Optional[int] = None) -> tuple[list[SplitSource], dict]:
    """Segmentation sources: a Pascal VOC root, or ``--{split}-images`` + ``--{split}-masks`` folders; masks are
    stored as class-index PNGs (whatever the source's mask format)."""
    sources, first = [], None
    for split in SPLITS:
        if not _wanted(split, source, images.get(split), masks.get(split)):
            continue
        explicit = bool(images.get(split) or masks.get(split))
        dataset = segmentation_dataset(split, None, data=None if explicit else source, images=images.get(split),
                                       masks=masks.get(split),
                                       num_classes=first.num_classes if first is not None else num_classes)
        first = first or dataset

        def read(i: int, dataset=dataset) -> dict[str, bytes]:
            path = dataset.samples[i][0]
            return {image_ext(path): read_file(path), MASK_MEMBER: mask_png(dataset._load_mask(i))}

        sources.append(SplitSource(split, len(dataset), read, lambda i, dataset=dataset: str(dataset.samples[i][0])))
    if first is None:
        raise ValueError("nothing to write: give a Pascal VOC folder as SRC, or --train-images with --train-masks")
    return sources, {"num_classes": first.num_classes, "class_names": list(first.class_names)}
