"""The measured price of a reduced-precision detector or segmenter export, on the digit scenes.

A detector's or segmenter's export (``edgenext export --task detect|segment --precision
fp16|int8``) is scored twice on the same validation scenes of the built-in digit-scenes demo:
the eager fp32 network and the exported file in its runtime, through the same post-processing
(a detector: ``postprocess_detections`` with the model's own settings, then pycocotools'
COCOeval box mAP; a segmenter: the arg-max mask, then VOC's mIoU over the confusion matrix).
The report is both figures and their change, plus how often the two agree (a segmenter: the
share of pixels with the same class). int8 calibrates on the scenes' training split.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from .parity import HW, as_outputs
from .precision_accuracy import run_chunked

#: validation scenes a reduced-precision dense export is scored on (COCOeval takes a few seconds)
DENSE_CHECK_SCENES = 100
#: training scenes an int8 dense export calibrates on
DENSE_CALIBRATION_SCENES = 32

Outputs = Callable[[torch.Tensor], Sequence[torch.Tensor]]


@dataclass(frozen=True)
class DenseCheck:
    """Scenes to score a dense export on: ``images`` ``(N, 3, H, W)`` in [0, 1] at the export's
    size; ``targets``: one per scene (a detector's ``{"boxes", "labels"}``, a segmenter's
    ``(H, W)`` mask); ``source`` says what they are."""

    images: torch.Tensor
    targets: Any
    source: str


@dataclass(frozen=True)
class DenseAccuracy:
    """Eager fp32 and the export on the same scenes: ``metric`` (box mAP or mIoU, in points),
    and for a segmenter the share of pixels whose class the two agree on."""

    precision: str
    metric: str
    fp32: float
    export: float
    scenes: int
    source: str
    pixel_agreement: Optional[float] = None

    @property
    def change(self) -> float:
        return self.export - self.fp32

    def lines(self) -> list[str]:
        out = [f"{self.precision} {self.metric} on {self.scenes} {self.source}: {self.export:.2f} vs eager fp32 "
               f"{self.fp32:.2f} (change {self.change:+.2f} points)"]
        if self.pixel_agreement is not None:
            out.append(f"{self.precision} pixels of the same class as eager fp32: {self.pixel_agreement:.3f}%")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change": self.change}

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> "DenseAccuracy":
        return cls(**{k: v for k, v in fields.items() if k != "change"})


def _scoring_task(task: str):
    """The registered task ``task`` if it scores a reduced-precision export on the digit scenes
    (its ``precision_metric``), else a ``ValueError`` naming those that do."""
    from ..tasks import get_task
    from ..tasks.registry import task_names

    spec = get_task(task)
    if getattr(spec, "precision_metric", None) is None:
        scoring = [n for n in task_names() if getattr(get_task(n), "precision_metric", None) is not None]
        raise ValueError(f"a dense precision check is for {' or '.join(scoring)}, got {task!r}")
    return spec


def _scenes(task: str, split: str, hw: HW, count: int, scene_kwargs: Mapping[str, Any]):
    from ..dense.data.digit_scenes import DigitScenes

    if hw[0] != hw[1]:
        raise ValueError(f"the digit scenes are square; a {hw[0]}x{hw[1]} export cannot be scored on them")
    kwargs = {k: v for k, v in scene_kwargs.items() if k not in ("transform", "num_scenes", "val_scenes")}
    dataset = DigitScenes(split, _scoring_task(task).scene_targets, num_scenes=count, **kwargs)
    return [dataset[(i, hw[0])] for i in range(count)]


def digit_scene_check(task: str, hw: HW, scene_kwargs: Mapping[str, Any] = (), count: int = DENSE_CHECK_SCENES
                      ) -> DenseCheck:
    """``count`` validation scenes at ``hw`` with ``task``'s targets (``scene_kwargs``: a run's
    ``data_kwargs`` and ``seed``, so a demo run is scored on its own validation stream)."""
    items = _scenes(task, "val", hw, count, dict(scene_kwargs))
    return DenseCheck(torch.stack([image for image, _ in items]), [target for _, target in items],
                      "digit-scene validation images")


def digit_scene_calibration(task: str, hw: HW, scene_kwargs: Mapping[str, Any] = (),
                            count: int = DENSE_CALIBRATION_SCENES) -> torch.Tensor:
    """``count`` training scenes at ``hw``, ``(N, 3, H, W)`` in [0, 1]: an int8 dense export's calibration."""
    return torch.stack([image for image, _ in _scenes(task, "train", hw, count, dict(scene_kwargs))])


def box_map(outputs: Sequence[torch.Tensor], targets: Sequence[Any], settings: Mapping[str, Any]) -> float:
    """pycocotools' box mAP (points) of a detector's ``(boxes, scores)`` after its post-processing."""
    from ..dense.metrics import DetectionMetric
    from ..dense.ssdlite import postprocess_detections

    metric = DetectionMetric()
    metric.update(postprocess_detections(outputs[0], outputs[1], **settings), targets)
    return 100.0 * metric.compute()["map"]


def miou(outputs: Sequence[torch.Tensor], targets: Sequence[Any], settings: Mapping[str, Any]) -> float:
    """VOC mIoU (points) of a segmenter's logits ``(N, C, H, W)`` against the masks."""
    from ..dense.metrics import SegmentationMetric

    logits = outputs[0]
    metric = SegmentationMetric(logits.shape[1])
    metric.update(logits.argmax(1), torch.stack(list(targets)))
    return 100.0 * metric.compute()["miou"]


def pixel_agreement(want: Sequence[torch.Tensor], got: Sequence[torch.Tensor]) -> float:
    """Percent of pixels whose arg-max class two segmenters' logits agree on."""
    return 100.0 * float((want[0].argmax(1) == got[0].argmax(1)).float().mean())


def measure_dense_precision(task: str, reference: nn.Module, exported: Outputs, precision: str, check: DenseCheck, *,
                            batch: Optional[int] = None, settings: Optional[Mapping[str, Any]] = None
                            ) -> DenseAccuracy:
    """Score eager fp32 ``reference`` (the task's export graph: ``SSDLiteRaw`` or the segmenter)
    and ``exported`` (the file's runner: every output) on ``check``, with the task's own metric
    (``precision_metric``, ``score_precision``, ``precision_agreement``). ``settings``: a detector's
    post-processing (``SSDLite.selection()``)."""
    spec = _scoring_task(task)
    reference = reference.eval()
    want = run_chunked(lambda x: as_outputs(reference(x)), check.images, chunk=16)
    got = run_chunked(exported, check.images, batch, chunk=16)
    score = lambda outs: spec.score_precision(outs, check.targets, settings or {})  # noqa: E731
    return DenseAccuracy(precision, spec.precision_metric, score(want), score(got), len(check.images), check.source,
                         spec.precision_agreement(want, got))
