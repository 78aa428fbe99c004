"""Dense-task metrics from well-kept libraries: COCO box mAP (pycocotools through torchmetrics)
and VOC's mIoU over the dataset's confusion matrix (torchmetrics).

Both accumulate over batches and, in a ``torchrun`` launch, sum or gather their states across
processes in ``compute()`` (torchmetrics' own synchronisation), so a sharded evaluation gives
the figures a single process would.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.detection import MeanAveragePrecision

IGNORE_INDEX = 255  # VOC's border / "difficult" pixels: neither right nor wrong


class DetectionMetric:
    """COCO box mAP (IoU 0.50:0.95), mAP@0.5 and mAP@0.75, in [0, 1], computed by pycocotools.

    ``update`` takes torchvision-style predictions (``boxes`` xyxy in pixels, ``scores``,
    ``labels``) and targets (``boxes``, ``labels``) per image, in the same coordinates.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        # NOTE: the states live on ``device`` because nccl gathers only CUDA tensors across processes
        self.device = torch.device(device)
        self._map = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools").to(self.device)
        # COCO's protocol scores the 100 best detections of an image; more are expected and dropped
        self._map.warn_on_many_detections = False

    def update(self, predictions: Sequence[dict[str, torch.Tensor]], targets: Sequence[dict[str, torch.Tensor]]) -> None:
        if len(predictions) != len(targets):
            raise ValueError(f"{len(predictions)} predictions for {len(targets)} targets")
        dev = self.device
        preds = [{"boxes": p["boxes"].detach().float().to(dev), "scores": p["scores"].detach().float().to(dev),
                  "labels": p["labels"].detach().long().to(dev)} for p in predictions]
        gts = [{"boxes": t["boxes"].detach().float().to(dev), "labels": t["labels"].detach().long().to(dev)} for t in targets]
        self._map.update(preds, gts)

    def compute(self) -> dict[str, float]:
        result = self._map.compute()
        # NOTE: pycocotools reports -1 when no ground truth exists at all; keep that visible as 0
        return {"map": max(float(result["map"]), 0.0), "map50": max(float(result["map_50"]), 0.0),
                "map75": max(float(result["map_75"]), 0.0)}


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
