"""Dense-task metrics from the field's own tools: COCO box AP as pycocotools' ``COCOeval`` computes
it, and VOC's mIoU over the dataset's confusion matrix (torchmetrics).

Both accumulate over batches and, in a ``torchrun`` launch, gather or sum their states across
processes in ``compute()``, so a sharded evaluation gives the figures a single process would.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Mapping, Optional, Sequence

import torch
import torch.distributed as torch_dist

from .data.coco import coco_ground_truth
from .data.transforms import rescale_boxes

IGNORE_INDEX = 255  # VOC's border / "difficult" pixels: neither right nor wrong

#: the 12 numbers of ``COCOeval.summarize()``, in its order, under the keys ``eval --json`` reports
COCO_STATS = ("map", "map50", "map75", "map_small", "map_medium", "map_large",
              "mar1", "mar10", "mar100", "mar_small", "mar_medium", "mar_large")


def _gathered(items: list) -> list:
    """``items`` of every process, concatenated (this process's alone outside ``torchrun``)."""
    if not (torch_dist.is_available() and torch_dist.is_initialized()) or torch_dist.get_world_size() == 1:
        return list(items)
    out: list = [None] * torch_dist.get_world_size()
    torch_dist.all_gather_object(out, items)
    return [x for part in out for x in part]


def coco_evaluate(ground_truth, results: Sequence[Mapping[str, Any]],
                  image_ids: Optional[Sequence[int]] = None) -> dict[str, float]:
    """The 12 COCO numbers (``COCO_STATS`` keys) of ``results`` (COCO results-file entries: ``image_id``,
    ``category_id``, ``bbox`` [x, y, w, h], ``score``) against ``ground_truth`` (a pycocotools ``COCO``),
    by ``COCOeval(..., "bbox")``; over ``image_ids`` only when given (default: every image of the ground
    truth, as the official evaluation). -1 where pycocotools has no ground truth to score (e.g. no small
    objects)."""
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        if results:
            found = ground_truth.loadRes([dict(r) for r in results])
        else:  # NOTE: loadRes refuses an empty list; no detections is an empty results index
            found = coco_ground_truth({"images": ground_truth.dataset.get("images", []),
                                       "categories": ground_truth.dataset.get("categories", []), "annotations": []})
        evaluator = COCOeval(ground_truth, found, "bbox")
        if image_ids is not None:
            evaluator.params.imgIds = sorted(set(int(i) for i in image_ids))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {key: float(value) for key, value in zip(COCO_STATS, evaluator.stats)}


def _xywh(boxes: torch.Tensor) -> list[list[float]]:
    boxes = boxes.double()
    return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1).tolist()


class DetectionMetric:
    """COCO box AP / AR, the 12 numbers of pycocotools' ``COCOeval`` (``COCO_STATS``), in [0, 1].

    ``update`` takes torchvision-style predictions (``boxes`` xyxy, ``scores``, ``labels``) per image
    in the pixels of the network's input (``input_hw``), and the targets of the batch (``image_id``,
    and ``orig_size`` (height, width) when the images were resized).

    With ``ground_truth`` (a pycocotools ``COCO`` of the annotation file the data came from, and
    ``label_to_category_id``), boxes are mapped back to each image's original pixels and labels to
    the file's category ids, and the file's own annotations are the ground truth: crowd regions,
    areas and all, as the official evaluation scores them. ``results()`` is then a COCO results
    file. Without it (data with no annotation file: the digit scenes), the targets' boxes are the
    ground truth, in the frame they are given in, none of them crowd.
    """

    def __init__(self, device: torch.device | str = "cpu", *, ground_truth=None,
                 label_to_category_id: Optional[Mapping[int, int]] = None) -> None:
        if ground_truth is not None and label_to_category_id is None:
            raise ValueError("a COCO ground truth needs label_to_category_id to map predicted labels to its categories")
        self.device = torch.device(device)
        self.ground_truth = ground_truth
        self.label_to_category_id = dict(label_to_category_id or {})
        self._results: list[dict[str, Any]] = []
        self._targets: list[dict[str, Any]] = []  # ground truth from the targets, without an annotation file
        self._image_ids: list[int] = []

    def update(self, predictions: Sequence[dict[str, torch.Tensor]], targets: Sequence[dict[str, Any]],
               input_hw: Optional[Sequence[int]] = None) -> None:
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        for pred, target in zip(predictions, targets):
            image_id = int(target.get("image_id", len(self._image_ids)))
            self._image_ids.append(image_id)
            boxes = pred["boxes"].detach().float().cpu()
            if self.ground_truth is not None:
                boxes = self._to_original(boxes, target, input_hw)
                category = [self.label_to_category_id[int(i)] for i in pred["labels"]]
            else:
                category = [int(i) for i in pred["labels"]]
                gt_boxes = torch.as_tensor(target["boxes"]).float().cpu().reshape(-1, 4)
                self._targets.append({"image_id": image_id, "boxes": _xywh(gt_boxes),
                                      "labels": [int(i) for i in target["labels"]]})
            scores = pred["scores"].detach().float().cpu().tolist()
            self._results += [{"image_id": image_id, "category_id": c, "bbox": [round(v, 4) for v in b],
                               "score": s} for c, b, s in zip(category, _xywh(boxes), scores)]

    @staticmethod
    def _to_original(boxes: torch.Tensor, target: Mapping[str, Any], input_hw: Optional[Sequence[int]]) -> torch.Tensor:
        if "orig_size" not in target or input_hw is None:
            return boxes
        return rescale_boxes(boxes, tuple(input_hw), tuple(target["orig_size"]))

    def results(self) -> list[dict[str, Any]]:
        """Every process's detections as COCO results-file entries (``json.dump`` writes the file)."""
        return sorted(_gathered(self._results), key=lambda r: (r["image_id"], -r["score"]))

    def compute(self) -> dict[str, float]:
        results = self.results()
        image_ids = _gathered(self._image_ids)
        if self.ground_truth is not None:
            return coco_evaluate(self.ground_truth, results, image_ids)
        targets = _gathered(self._targets)
        categories = sorted({c for t in targets for c in t["labels"]} | {r["category_id"] for r in results})
        annotations = [{"id": n + 1, "image_id": t["image_id"], "category_id": c, "bbox": b, "area": b[2] * b[3],
                        "iscrowd": 0} for n, (t, c, b) in enumerate((t, c, b) for t in targets
                                                                    for c, b in zip(t["labels"], t["boxes"]))]
        ground_truth = coco_ground_truth({"images": [{"id": i} for i in sorted(set(image_ids))],
                                          "categories": [{"id": c} for c in categories],
                                          "annotations": annotations})
        return coco_evaluate(ground_truth, results)


class SegmentationMetric:
    """VOC's mean IoU and pixel accuracy over the dataset's confusion matrix, in [0, 1].

    IoU of class c = TP / (TP + FP + FN) summed over every pixel of the dataset (not averaged
    per image); the mean runs over the classes that occur in the ground truth or the
    predictions (a class absent from both has no IoU). Pixels labelled 255 are ignored.
    """

    def __init__(self, num_classes: int, device: torch.device | str = "cpu") -> None:
        if num_classes < 2:
            raise ValueError(f"segmentation needs at least 2 classes (background and one more), got {num_classes}")
        self.num_classes = num_classes
        self.device = torch.device(device)  # nccl reduces only CUDA tensors
        # NOTE: imported here: torchmetrics takes seconds to import, and every process that builds a
        # detector or segmenter imports this package (each bench worker) without evaluating anything
        from torchmetrics.classification import MulticlassConfusionMatrix

        self._matrix = MulticlassConfusionMatrix(num_classes, ignore_index=IGNORE_INDEX).to(self.device)

    def update(self, predictions: torch.Tensor, masks: torch.Tensor) -> None:
        """``predictions``: logits (N, C, H, W) or class indices (N, H, W); ``masks``: (N, H, W) indices."""
        if predictions.ndim == 4:
            predictions = predictions.argmax(dim=1)
        if predictions.shape != masks.shape:
            raise ValueError(f"prediction shape {tuple(predictions.shape)} differs from mask shape {tuple(masks.shape)}")
        self._matrix.update(predictions.detach().to(self.device).flatten(), masks.detach().to(self.device).long().flatten())

    def confusion_matrix(self) -> torch.Tensor:
        """(C, C) pixel counts, rows = ground truth, columns = prediction."""
        return self._matrix.compute().double().cpu()

    def compute(self) -> dict[str, float]:
        matrix = self.confusion_matrix()
        tp = matrix.diagonal()
        union = matrix.sum(0) + matrix.sum(1) - tp
        present = union > 0
        iou = tp[present] / union[present]
        total = matrix.sum()
        return {"miou": float(iou.mean()) if present.any() else 0.0,
                "pixel_acc": float(tp.sum() / total) if total > 0 else 0.0}

    def per_class_iou(self) -> list[float]:
        """IoU of every class (NaN for a class absent from both ground truth and predictions)."""
        matrix = self.confusion_matrix()
        tp = matrix.diagonal()
        union = matrix.sum(0) + matrix.sum(1) - tp
        return [float(t / u) if u > 0 else float("nan") for t, u in zip(tp, union)]
