"""Detection and segmentation samples from tar shards (what ``edgenext shards --task detect|segment`` writes).

Detection: an image member and ``KEY.json`` = ``{"image": <its COCO image entry>, "annotations": [<its
COCO annotations>]}``; the categories are the manifest's (``categories``, COCO's list). The dataset
rebuilds the split's COCO annotation dict from the JSON members (one pass at start), so boxes,
labels, crowd handling, clipping and ``ground_truth()`` for COCOeval are exactly ``CocoDetection``'s.

Segmentation: an image member and ``KEY.seg.png``, the class-index mask as a PNG (8-bit, or 16-bit
for more than 256 classes); the class count and names are the manifest's (``num_classes``,
``class_names``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

from ...data.shards import ShardError, ShardSamples, ShardSet, decode_image, image_member
from .coco import CocoDetection
from .segmentation import MaskDataset, read_mask

MASK_MEMBER = "seg.png"


class ShardDetection(CocoDetection):
    """``CocoDetection`` over shards: same targets, statistics and ground truth."""

    def __init__(self, shard_set: ShardSet, transform: Optional[Callable] = None, *, spool_dir: Optional[str] = None) -> None:
        self.samples = ShardSamples(shard_set, spool_dir=spool_dir)
        categories = shard_set.meta.get("categories")
        if not categories:
            raise ShardError(f"{shard_set.source}: detection shards need the manifest's 'categories' (COCO's list); "
                             f"write them with edgenext shards --task detect")
        self.ann_file = Path(shard_set.source.rstrip("/"))  # what messages name
        images, annotations = [], []
        for i, key, members in self.samples.keys(("json",)):
            if "json" not in members:
                raise ShardError(f"{self.samples.name(i, key)}: no .json member (its COCO image entry and annotations)")
            try:
                record = json.loads(members["json"])
                images.append(record["image"])
                annotations += list(record.get("annotations", []))
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise ShardError(f"{self.samples.name(i, key)}.json: not a COCO image record ({err})") from None
        self._coco_data: Optional[dict] = {"images": images, "annotations": annotations, "categories": categories}
        self._index(self._coco_data, transform)

    def __getstate__(self) -> dict:
        # NOTE: loader workers need the boxes, not the annotation dict (kept for ground_truth in this process)
        return {**super().__getstate__(), "_coco_data": None}

    def _annotation_data(self) -> dict:
        if self._coco_data is None:
            raise RuntimeError("ground_truth() of a ShardDetection copied into a loader worker")
        return self._coco_data

    @property
    def shard_sizes(self) -> list[int]:
        return self.samples.shard_sizes

    def _sample_name(self, i: int) -> str:
        return self.samples.name(i, self.samples.key(i))

    def _load_image(self, i: int) -> Image.Image:
        key, members = self.samples[i]
        ext = image_member(members)
        if ext is None:
            raise ValueError(f"no image member (found {', '.join(sorted(members))})")
        return decode_image(members[ext])

    def summary(self) -> str:
        return f"shards {super().summary()}"


class ShardSegmentation(MaskDataset):
    """``MaskDataset`` over shards: the same checks (mask size, class range) and skipping of unreadable images."""

    def __init__(self, shard_set: ShardSet, transform: Optional[Callable] = None, *, num_classes: Optional[int] = None,
                 spool_dir: Optional[str] = None) -> None:
        self.shards = ShardSamples(shard_set, spool_dir=spool_dir)
        self.transform = transform
        self.name = shard_set.source
        found = num_classes if num_classes is not None else shard_set.meta.get("num_classes")
        if found is None:
            raise ShardError(f"{shard_set.source}: no num_classes in a manifest; give --num-classes, or write the "
                             f"shards with edgenext shards --task segment")
        self.num_classes = int(found)
        self.num_classes_source = "given" if num_classes is not None else f"the shards' manifest: {found} classes"
        names = shard_set.meta.get("class_names")
        self.class_names = list(names) if names and len(names) == self.num_classes else [str(c) for c in range(self.num_classes)]
        self.samples = list(range(len(self.shards)))  # positions; len() and messages use them
        self.stats = {"samples": len(self.shards), "shards": len(shard_set.shards)}
        self._cached: tuple[int, dict[str, bytes], str] = (-1, {}, "")

    @property
    def shard_sizes(self) -> list[int]:
        return self.shards.shard_sizes

    def _members(self, i: int) -> tuple[dict[str, bytes], str]:
        if self._cached[0] != i:  # image and mask are read together: one read per sample
            key, members = self.shards[i]
            self._cached = (i, members, self.shards.name(i, key))
        return self._cached[1], self._cached[2]

    def _sample_names(self, i: int) -> tuple[str, str]:
        _, name = self._members(i)
        return name, f"{name}.{MASK_MEMBER}"

    def _load_image(self, i: int) -> Image.Image:
        members, _ = self._members(i)
        ext = image_member(members)
        if ext is None:
            raise ValueError(f"no image member (found {', '.join(sorted(members))})")
        return decode_image(members[ext])

    def _load_mask(self, i: int) -> np.ndarray:
        members, name = self._members(i)
        if MASK_MEMBER not in members:
            raise ShardError(f"{name}: no .{MASK_MEMBER} member (its class-index mask)")
        return read_mask(members[MASK_MEMBER])
