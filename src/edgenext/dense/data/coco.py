"""Object detection over COCO-format JSON annotations (read with ``json``; no pycocotools needed).

Conventions (torchvision's detection models): category ids, however sparse, become the
contiguous labels 1..K in ascending id order, label 0 is the background, and
``label_to_category_id`` maps predictions back for a COCO results file. Crowd annotations are
left out of the targets, as COCO's training (and ml-cvnets') does; evaluation scores against
the file's own annotations instead (``ground_truth()``: crowd regions kept, as COCOeval ignores
detections on them); images without annotations are kept with empty targets. Boxes are converted from xywh to xyxy pixels and clipped to the image; boxes
that end up empty are dropped. Every such decision is counted in ``stats``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from ...data.datasets import SkippedSample, load_image
from .transforms import Index, apply_transform, split_index

PathLike = Union[str, os.PathLike]

#: What a COCO 2017 folder holds, per split: (images folder, annotation file), relative to the root.
COCO2017_LAYOUT = {
    "train": ("train2017", "annotations/instances_train2017.json"),
    "val": ("val2017", "annotations/instances_val2017.json"),
}

_BAD_IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def find_coco2017(root: PathLike, splits: Sequence[str] = ("train", "val")) -> dict[str, tuple[Path, Path]]:
    """Locate the COCO 2017 layout under ``root``: ``{split: (images_dir, ann_file)}``.

    Raises a ``ValueError`` naming every missing folder or file of the requested splits.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: no such folder; expected a COCO 2017 root holding annotations/, train2017/, val2017/")
    unknown = [s for s in splits if s not in COCO2017_LAYOUT]
    if unknown:
        raise ValueError(f"unknown COCO split(s) {unknown}; choose from {sorted(COCO2017_LAYOUT)}")
    found, missing = {}, []
    for split in splits:
        images, ann = (root / p for p in COCO2017_LAYOUT[split])
        missing += [f"{images.name}/"] if not images.is_dir() else []
        missing += [str(Path(COCO2017_LAYOUT[split][1]))] if not ann.is_file() else []
        found[split] = (images, ann)
    if missing:
        raise ValueError(
            f"{root}: not a complete COCO 2017 folder, missing {', '.join(missing)}; pass the image folders "
            "and annotation files explicitly if yours are laid out differently"
        )
    return found


def _read_json(ann_file: Path) -> dict:
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{ann_file}: annotation file not found") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{ann_file}: not a readable JSON file ({err})") from None
    if not isinstance(data, dict) or "images" not in data or "categories" not in data:
        raise ValueError(f"{ann_file}: not a COCO annotation file (needs 'images' and 'categories' lists)")
    return data


def coco_ground_truth(dataset: Mapping[str, Any]):
    """A pycocotools ``COCO`` index over an annotation dict (what ``COCO(file)`` builds from a file)."""
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(dict(dataset))
        coco.createIndex()
    return coco


class CocoDetection(Dataset):
    """Images and boxes from a COCO-format annotation file.

    ``dataset[i]`` (or ``dataset[(i, size)]`` from the multi-scale batch sampler) returns
    ``(image, target)``. Without a transform, ``image`` is an RGB PIL image (grayscale, 16-bit,
    palette and alpha images are converted) and ``target`` is a dict: ``boxes`` a
    ``tv_tensors.BoundingBoxes`` ``[n, 4]`` float xyxy in pixels, ``labels`` int64 ``[n]`` in
    1..K, ``image_id`` (the COCO id, an int) and ``orig_size`` ``(height, width)``. A paired
    transform (``DetectionTransform``) turns these into a float image tensor and plain tensors.
    A missing or unreadable image, or one whose size differs from the JSON's, comes back as
    a ``SkippedSample`` (with a warning) for the collate function to drop and count.

    ``check_files=True`` counts the missing image files up front (one ``stat`` per image) and
    warns about them, so a run states them before training starts.

    Attributes:
        num_classes: K + 1 (the background included), what the SSD head is built with.
        class_names: ``class_names[label]``; ``class_names[0] == "background"``.
        label_to_category_id / category_id_to_label: the mapping, both ways.
        stats: counts of images, annotations, boxes kept, crowd annotations left out,
            boxes clipped, empty boxes dropped, images without boxes, image files missing.
    """

    def __init__(
        self,
        images_dir: PathLike,
        ann_file: PathLike,
        transform: Optional[Callable] = None,
        *,
        check_files: bool = True,
    ) -> None:
        self.images_dir, self.ann_file = Path(images_dir), Path(ann_file)
        if not self.images_dir.is_dir():
            raise ValueError(f"{self.images_dir}: image folder not found (for {self.ann_file.name})")
        self._index(_read_json(self.ann_file), transform)
        if check_files:
            self.stats["missing_files"] = sum(not (self.images_dir / im["file_name"]).is_file() for im in self.images)
            if self.stats["missing_files"]:
                warnings.warn(f"{self.ann_file}: {self.stats['missing_files']} of {len(self.images)} image files are "
                              f"missing from {self.images_dir}; they will be skipped", stacklevel=2)

    def _index(self, data: dict, transform: Optional[Callable]) -> None:
        """Categories, images and boxes of a COCO annotation dict (what every reader of COCO data shares)."""
        self.transform = transform
        self._ground_truth = None
        self._read_categories(data["categories"])
        self.stats = dict(images=0, annotations=0, boxes=0, crowd=0, clipped=0, empty_dropped=0,
                          orphan_annotations=0, images_without_boxes=0, missing_files=0)
        self.images = self._read_images(data["images"])
        self._boxes, self._labels = self._read_annotations(data.get("annotations", []))
        self.stats["images_without_boxes"] = sum(len(b) == 0 for b in self._boxes)

    def _annotation_data(self) -> dict:
        """The whole annotation dict again (for ``ground_truth``; not kept in memory meanwhile)."""
        return _read_json(self.ann_file)

    def _sample_name(self, i: int) -> str:
        return str(self.images_dir / self.images[i]["file_name"])

    def _load_image(self, i: int) -> Image.Image:
        return load_image(self.images_dir / self.images[i]["file_name"])

    def _read_categories(self, categories: list[dict]) -> None:
        ids = [int(c["id"]) for c in categories]
        if not ids:
            raise ValueError(f"{self.ann_file}: the 'categories' list is empty")
        if len(set(ids)) != len(ids):
            raise ValueError(f"{self.ann_file}: duplicate category ids in {sorted(ids)}")
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in categories}
        self.label_to_category_id = {label: cid for label, cid in enumerate(sorted(ids), start=1)}
        self.category_id_to_label = {cid: label for label, cid in self.label_to_category_id.items()}
        self.class_names = ["background"] + [names[cid] for cid in sorted(ids)]
        self.num_classes = len(self.class_names)

    def _read_images(self, images: list[dict]) -> list[dict]:
        out = []
        for im in images:
            missing = [k for k in ("id", "file_name", "width", "height") if k not in im]
            if missing:
                raise ValueError(f"{self.ann_file}: image entry {im.get('id', im)} lacks {', '.join(missing)}")
            out.append(dict(id=int(im["id"]), file_name=str(im["file_name"]),
                            width=int(im["width"]), height=int(im["height"])))
        self.stats["images"] = len(out)
        return out

    def _read_annotations(self, annotations: list[dict]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        position = {im["id"]: i for i, im in enumerate(self.images)}
        boxes: list[list] = [[] for _ in self.images]
        labels: list[list] = [[] for _ in self.images]
        for ann in annotations:
            self.stats["annotations"] += 1
            cid = int(ann["category_id"])
            if cid not in self.category_id_to_label:
                raise ValueError(
                    f"{self.ann_file}: annotation {ann.get('id', '?')} has category_id {cid}, which is not among "
                    f"the file's categories {sorted(self.category_id_to_label)}; fix the annotation or add the category"
                )
            i = position.get(int(ann["image_id"]))
            if i is None:
                self.stats["orphan_annotations"] += 1
                continue
            if ann.get("iscrowd", 0):
                self.stats["crowd"] += 1
                continue
            box = self._xyxy_clipped(ann, self.images[i])
            if box is None:
                self.stats["empty_dropped"] += 1
                continue
            boxes[i].append(box)
            labels[i].append(self.category_id_to_label[cid])
            self.stats["boxes"] += 1
        if self.stats["orphan_annotations"]:
            warnings.warn(f"{self.ann_file}: {self.stats['orphan_annotations']} annotations refer to image ids "
                          "not in the 'images' list; they are ignored", stacklevel=3)
        return ([np.asarray(b, dtype=np.float32).reshape(-1, 4) for b in boxes],
                [np.asarray(lb, dtype=np.int64) for lb in labels])

    def _xyxy_clipped(self, ann: dict, image: dict) -> Optional[list[float]]:
        """The annotation's xywh box as xyxy clipped to its image, or None when nothing is left."""
        bbox = ann.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or not all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in bbox
        ):
            raise ValueError(f"{self.ann_file}: annotation {ann.get('id', '?')} has bbox {bbox!r}; expected [x, y, w, h]")
        x, y, w, h = (float(v) for v in bbox)
        box = [max(x, 0.0), max(y, 0.0), min(x + w, float(image["width"])), min(y + h, float(image["height"]))]
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
        if box != [x, y, x + w, y + h]:
            self.stats["clipped"] += 1
        return box

    def ground_truth(self):
        """The annotation file as pycocotools' ``COCO`` index, for ``COCOeval``: every annotation, crowd
        ones included, in the image's original pixels. An annotation without ``area`` gets its box's
        (COCOeval needs one for the area ranges), one without ``iscrowd`` counts as not crowd."""
        if self._ground_truth is None:
            data = self._annotation_data()
            annotations = []
            for ann in data.get("annotations", []):
                ann = dict(ann)
                ann.setdefault("area", float(ann["bbox"][2]) * float(ann["bbox"][3]))
                ann.setdefault("iscrowd", 0)
                annotations.append(ann)
            self._ground_truth = coco_ground_truth({**data, "annotations": annotations})
        return self._ground_truth

    def __getstate__(self) -> dict:
        # NOTE: loader workers get the dataset pickled; the evaluation index stays in the main process
        return {**self.__dict__, "_ground_truth": None}

    def summary(self) -> str:
        """One line for the log: what was read and what was left out."""
        s = self.stats
        return (f"{self.ann_file.name}: {s['images']} images ({s['images_without_boxes']} without boxes, "
                f"{s['missing_files']} files missing), {s['boxes']} boxes in {self.num_classes - 1} classes; "
                f"left out {s['crowd']} crowd, {s['empty_dropped']} empty, {s['orphan_annotations']} orphan "
                f"annotations; clipped {s['clipped']} boxes to their image")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: Index) -> tuple[Any, dict]:
        i, size = split_index(index)
        info = self.images[i]
        size_hw = (info["height"], info["width"])
        target = dict(
            boxes=tv_tensors.BoundingBoxes(torch.from_numpy(self._boxes[i].copy()), format="XYXY", canvas_size=size_hw),
            labels=torch.from_numpy(self._labels[i].copy()),
            image_id=info["id"],
            orig_size=size_hw,
        )
        try:
            image = self._load_image(i)
        except _BAD_IMAGE_ERRORS as err:
            return self._skip(self._sample_name(i), f"{type(err).__name__}: {err}"), target
        if image.size != (info["width"], info["height"]):
            return self._skip(self._sample_name(i), f"its size {image.size[0]}x{image.size[1]} differs from the "
                                                    f"annotation file's {info['width']}x{info['height']}"), target
        return apply_transform(self.transform, image, target, size)

    def _skip(self, path: str, reason: str) -> SkippedSample:
        warnings.warn(f"skipping image {path} ({reason})", stacklevel=3)
        return SkippedSample(str(path), reason)
