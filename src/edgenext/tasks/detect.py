"""Object detection: SSDLite on the EdgeNeXt backbone (paper Sec. 4.2), COCO box mAP."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from ..constants import COCO_NUM_CLASSES, DETECTION_INPUT_SIZE
from ..models.edgenext import InputSize, input_hw
from .dense_base import EVAL_BATCH, DenseTask
from .registry import register_task

SCORE_THRESH = 0.3  # lowest score predict draws and lists
LISTED = 10  # detections named per image on the console (all are drawn and in --json)
#: eval / predict options -> the detector's post-processing attributes (``SSDLite.selection()``)
_POSTPROCESSING = {"min_score": "score_thresh", "nms_iou": "nms_thresh", "per_class": "detections_per_class",
                   "max_per_image": "detections_per_img"}


def _apply_postprocessing(model: nn.Module, opts: Any) -> None:
    """The post-processing options given on the command line, set on the loaded detector."""
    for option, attribute in _POSTPROCESSING.items():
        value = getattr(opts, option, None)
        if value is None:
            continue
        flag = f"--{option.replace('_', '-')}"
        if option in ("min_score", "nms_iou") and not 0.0 <= value <= 1.0:
            raise ValueError(f"{flag} {value}: give a value in [0, 1]")
        if option in ("per_class", "max_per_image") and value < 0:
            raise ValueError(f"{flag} {value}: give a count >= 0 (0: no cap)")
        setattr(model, attribute, value)


@register_task
class Detection(DenseTask):
    name = "detect"
    title = "detection"
    summary = "detect (SSDLite)"
    order = 10
    metric = "map"

    def shard_sources(self, opts: Any) -> tuple[list[Any], dict[str, Any]]:
        from ..dense.shard_sources import coco_splits

        return coco_splits(opts.source, images={'train': opts.train_images, 'val': opts.val_images}, ann={'train': opts.train_ann, 'val': opts.val_ann})

    def training(self, cfg):
        from ..dense.training import DetectionTask

        return DetectionTask(cfg)

    def default_recipe(self, model: str, demo: bool) -> str:
        return "digits_detect" if demo else "ssdlite_coco"

    def network(self, backbone: str, num_classes: Optional[int] = None, *, input_size: Optional[InputSize] = None,
                **options: Any) -> nn.Module:
        from ..dense.ssdlite import ssdlite

        return ssdlite(backbone, num_classes or COCO_NUM_CLASSES, image_size=input_size or DETECTION_INPUT_SIZE,
                       **options)

    def export_graph(self, model: nn.Module, input_size: Optional[InputSize]):
        from ..dense.ssdlite import RAW_OUTPUT_NAMES, SSDLite, SSDLiteRaw

        if not isinstance(model, SSDLite):
            raise ValueError(f"--task {self.name} exports an SSDLite (edgenext.dense.ssdlite), got {type(model).__name__}")
        size = tuple(model.image_size)
        if input_size is not None and input_hw(input_size) != size:
            raise ValueError(f"this detector resizes every image to {size[0]}x{size[1]} (its anchors are laid out "
                             f"for it); export it at that size (leave the input size out), not at {input_hw(input_size)}")
        # box decoding and softmax inside the graph; the score threshold and NMS stay outside
        return SSDLiteRaw(model).eval(), RAW_OUTPUT_NAMES, size

    scene_targets = "boxes"
    precision_metric = "box mAP"

    def score_precision(self, outputs, targets, settings) -> float:
        from ..deploy.dense_precision import box_map

        return box_map(outputs, targets, settings)

    def postprocess_settings(self, model: nn.Module) -> Optional[dict[str, Any]]:
        """The score threshold, NMS IoU and caps of the eval-mode detector (``select_detections``' keywords)."""
        return dict(model.selection())

    def check_eval_size(self, side: tuple[int, int]) -> Optional[int]:
        raise ValueError("--input-size: a detector runs at the input size it was trained at (its anchors are laid "
                         "out for it)")

    def evaluate(self, opts: Any, checkpoint) -> dict[str, Any]:
        from ..inference.dense import evaluate_detector

        loaded, _, device = self._loaded(opts, checkpoint)
        if opts.val_masks is not None:
            raise ValueError("--val-masks is for segmentation; a detector is evaluated on COCO annotations (--val-ann)")
        _apply_postprocessing(loaded.model, opts)
        metrics = evaluate_detector(loaded, data=opts.data, images=opts.val_images, ann=opts.val_ann,
                                    batch_size=opts.batch_size or EVAL_BATCH, workers=opts.workers, device=device,
                                    save_detections=getattr(opts, "save_detections", None))
        return {**metrics, "input_size": loaded.input_size, "postprocessing": loaded.model.selection()}

    def eval_summary(self, metrics: dict[str, Any]) -> str:
        from ..dense.metrics import COCO_STATS

        skipped = f", {metrics['skipped']} unreadable skipped" if metrics["skipped"] else ""
        names = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
        table = " ".join(f"{n} {metrics[k]:.3f}" for n, k in zip(names, COCO_STATS))
        return f"COCO box {table} ({metrics['count']} images at {metrics['input_size']} px{skipped})"

    def predict(self, opts: Any, checkpoint) -> list[dict[str, Any]]:
        from ..inference.dense import predict_detections

        self._check_predict(opts)
        loaded, _, device = self._loaded(opts, checkpoint)
        _apply_postprocessing(loaded.model, opts)
        thresh = SCORE_THRESH if opts.score_thresh is None else opts.score_thresh
        return predict_detections(loaded, opts.images, output_dir=opts.output, score_thresh=thresh, device=device)

    def describe_prediction(self, result: dict[str, Any], opts: Any) -> str:
        thresh = SCORE_THRESH if opts.score_thresh is None else opts.score_thresh
        found = result["detections"]
        names = ", ".join(f"{d['label']} {d['score']:.2f}" for d in found[:LISTED]) or "nothing"
        more = f", ... ({len(found) - LISTED} more in the picture)" if len(found) > LISTED else ""
        return f"{len(found)} object(s) at score >= {thresh:g}: {names}{more}"

    # -- efficiency (profile, bench) --
    head_name = "ssdlite"
    paper_input_size = DETECTION_INPUT_SIZE
    bench_peers = ("ssdlite320_mobilenet_v3_large",)
    bench_timed = ("network on a normalised tensor: backbone + SSD head (box codes, class logits); "
                   "no anchor decoding, softmax or NMS")
    # NOTE: raw box codes and logits, before the decoding the export graph (OUTPUT_NAMES) holds
    bench_outputs = ("bbox_regression", "cls_logits")

    def paper_figures(self) -> dict[str, dict[str, float]]:
        from ..dense.constants import PAPER_SSDLITE

        return PAPER_SSDLITE

    def timed_network(self, model: nn.Module) -> nn.Module:
        from ..dense.timed import DetectionNetwork

        return DetectionNetwork(model).eval()

    def torchvision_network(self, name: str) -> nn.Module:
        from ..dense.timed import torchvision_detector

        return torchvision_detector(name, COCO_NUM_CLASSES)
