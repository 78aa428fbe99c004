"""COCO 2017 training images of Pascal VOC's 20 classes, with masks in VOC's class indices: the
extra training data of ml-cvnets' DeepLabv3 VOC recipe (``use_coco_data: true``), which the
paper's 80.2 mIoU assumes.

An image is added when at least one of its non-crowd annotations is of a category in
``COCO_TO_VOC``; the others are skipped and counted. Its mask is rendered from the annotations
(polygons, uncompressed and compressed RLE) when the sample is loaded, by these rules:

- 0 (background) wherever no annotation of the 20 classes is, objects of COCO's other 60
  categories included (ml-cvnets does the same);
- the non-crowd instances in the annotation file's order, the first to cover a pixel keeping it
  (ml-cvnets' rule: each instance only paints pixels still at 0);
- then crowd regions of the 20 classes mark the pixels no instance covers as 255 (ignored): a
  crowd outline spans its members and the gaps between them, so neither the class nor the
  background is right there. (NOTE: ml-cvnets paints them with the class, as instances.)

ml-cvnets v0.1 read these masks pre-rendered by its author's EdgeNets repository
(``data_loader/segmentation/coco.py``, where its README_SEG_DATASETS.md points), which also
dropped images under 256 px on a side; all sizes are kept here (the training crop pads with 255).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
from pycocotools import mask as mask_utils

from .coco import find_coco2017
from .segmentation import VOC_CLASSES, MaskDataset
from .transforms import IGNORE_INDEX

PathLike = Union[str, os.PathLike]

#: COCO 2017 category id -> (its COCO name, the Pascal VOC class index: ``VOC_CLASSES[index]``).
#: ml-cvnets' list, tag cvnets-v0.2, data/datasets/segmentation/coco_segmentation.py lines 184-207
#: (``coco_to_pascal_mapping``: the COCO id at each VOC index); v0.1's data/datasets/segmentation/
#: pascal_voc.py (lines 44-57, 74-83) reads masks rendered with the same list, EdgeNets'
#: data_loader/segmentation/coco.py line 20 (``CAT_LIST``).
COCO_TO_VOC: dict[int, tuple[str, int]] = {
    5: ("airplane", 1),
    2: ("bicycle", 2),
    16: ("bird", 3),
    9: ("boat", 4),
    44: ("bottle", 5),
    6: ("bus", 6),
    3: ("car", 7),
    17: ("cat", 8),
    62: ("chair", 9),
    21: ("cow", 10),
    67: ("dining table", 11),
    18: ("dog", 12),
    19: ("horse", 13),
    4: ("motorcycle", 14),
    1: ("person", 15),
    64: ("potted plant", 16),
    20: ("sheep", 17),
    63: ("couch", 18),
    7: ("train", 19),
    72: ("tv", 20),
}

#: One annotation kept for rendering: (annotation id, VOC class index, is crowd, segmentation).
Instance = tuple[Any, int, bool, Any]


def _decode(segmentation: Any, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) as a bool ``[height, width]`` array."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def render_voc_mask(instances: list[Instance], height: int, width: int) -> np.ndarray:
    """The int64 ``[height, width]`` VOC class-index mask of one image's ``instances`` (the module's rules)."""
    mask = np.zeros((height, width), dtype=np.int64)
    claimed = np.zeros((height, width), dtype=bool)
    for crowd_pass in (False, True):
        for ann_id, voc_index, crowd, segmentation in instances:
            if crowd != crowd_pass:
                continue
            region = _decode(segmentation, height, width)
            if region.shape != mask.shape:
                raise ValueError(f"annotation {ann_id}: its mask is {region.shape[1]}x{region.shape[0]}, its image "
                                 f"{width}x{height}")
            region &= ~claimed
            mask[region] = IGNORE_INDEX if crowd else voc_index
            claimed |= region
    return mask


def _usable(segmentation: Any) -> Any:
    """The segmentation pycocotools can decode (polygons of 3+ points; RLE with counts and size), or None."""
    if isinstance(segmentation, list):
        rings = [ring for ring in segmentation if isinstance(ring, list) and len(ring) >= 6]
        return rings or None
    if isinstance(segmentation, dict) and "counts" in segmentation and "size" in segmentation:
        return segmentation
    return None


def _read(ann_file: Path) -> dict:
    try:
        with open(ann_file, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{ann_file}: not a readable JSON file ({err})") from None
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise ValueError(f"{ann_file}: not a COCO instances file (needs 'images', 'annotations' and 'categories')")
    return data


def _check_categories(categories: list[dict], ann_file: Path) -> None:
    """The file's ids of ``COCO_TO_VOC`` must name what COCO 2017's do: the map is by id (a file may lack some)."""
    names = {int(c["id"]): str(c.get("name")) for c in categories}
    wrong = [f"id {cid} is {names[cid]!r}, COCO's {name!r}" for cid, (name, _) in COCO_TO_VOC.items()
             if cid in names and names[cid] != name]
    if wrong:
        raise ValueError(f"{ann_file}: not COCO 2017's categories ({'; '.join(wrong[:3])}"
                         f"{'; ...' if len(wrong) > 3 else ''}); the supplement maps COCO 2017's category ids")


class CocoVOCSegmentation(MaskDataset):
    """COCO 2017's train split as VOC-class segmentation: images of the 20 classes, masks rendered on load.

    ``root`` is a COCO 2017 folder (``annotations/instances_train2017.json`` and ``train2017/``).
    ``dataset[i]`` is what ``MaskDataset`` gives; ``num_classes`` is VOC's 21 and ``class_names``
    VOC's. ``stats``: ``images`` in the file, ``added``, ``skipped_without_voc`` (no non-crowd
    instance of the 20 classes), ``unusable_annotations`` (a segmentation pycocotools cannot
    decode, left out), ``missing_images`` (skipped when loaded).
    """

    def __init__(self, root: PathLike, transform: Optional[Callable] = None) -> None:
        images_dir, ann_file = find_coco2017(root, splits=("train",))["train"]
        data = _read(ann_file)
        _check_categories(data["categories"], ann_file)
        self.stats = dict(images=len(data["images"]), added=0, skipped_without_voc=0, unusable_annotations=0,
                          missing_images=0)
        by_image = self._voc_instances(data["annotations"])
        samples, records, self._sizes = [], [], []
        for image in data["images"]:
            instances = by_image.get(int(image["id"]), [])
            if not any(not crowd for _, _, crowd, _ in instances):
                self.stats["skipped_without_voc"] += 1
                continue
            samples.append((images_dir / str(image["file_name"]), Path(f"{ann_file}#{image['id']}")))
            records.append(json.dumps(instances).encode())
            self._sizes.append((int(image["height"]), int(image["width"])))
        del data, by_image
        self.stats["added"] = len(samples)
        # NOTE: one byte buffer and one offset array instead of a list of Python objects per image: the
        # loader's forked workers would otherwise copy every page they touch (reference counts).
        self._offsets = np.cumsum([0] + [len(r) for r in records])
        self._records = np.frombuffer(b"".join(records), dtype=np.uint8)
        self._sizes = np.asarray(self._sizes, dtype=np.int64).reshape(-1, 2)
        if not samples:
            raise ValueError(f"{ann_file}: none of its {self.stats['images']} images holds an instance of VOC's 20 "
                             "classes; is it COCO 2017's instances file?")
        self.stats["missing_images"] = sum(not image.is_file() for image, _ in samples)
        if self.stats["missing_images"]:
            warnings.warn(f"{images_dir}: {self.stats['missing_images']} of {len(samples)} images of the COCO "
                          "supplement are missing; they will be skipped", stacklevel=2)
        super().__init__(samples, transform, num_classes=len(VOC_CLASSES), class_names=VOC_CLASSES, name=str(ann_file))

    def _voc_instances(self, annotations: list[dict]) -> dict[int, list[Instance]]:
        """Each image's annotations of the 20 classes, in the file's order."""
        by_image: dict[int, list[Instance]] = {}
        for ann in annotations:
            entry = COCO_TO_VOC.get(int(ann["category_id"]))
            if entry is None:
                continue
            segmentation = _usable(ann.get("segmentation"))
            if segmentation is None:
                self.stats["unusable_annotations"] += 1
                continue
            by_image.setdefault(int(ann["image_id"]), []).append(
                (ann.get("id"), entry[1], bool(ann.get("iscrowd", 0)), segmentation))
        return by_image

    def _load_mask(self, i: int) -> np.ndarray:
        instances = json.loads(self._records[self._offsets[i]:self._offsets[i + 1]].tobytes())
        height, width = (int(v) for v in self._sizes[i])
        return render_voc_mask([tuple(x) for x in instances], height, width)

    def summary(self) -> str:
        """The log's line: how many images were added."""
        s = self.stats
        return (f"{s['added']} COCO 2017 train images of VOC's 20 classes added to the training set "
                f"({s['skipped_without_voc']} of {s['images']} skipped without them, {s['missing_images']} files "
                f"missing, {s['unusable_annotations']} undecodable annotations left out)")
