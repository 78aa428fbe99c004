"""Semantic segmentation: DeepLabv3 on the EdgeNeXt backbone (paper Sec. 4.3), VOC mIoU."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from ..constants import SEGMENTATION_INPUT_SIZE, VOC_NUM_CLASSES
from ..models.edgenext import InputSize, input_hw
from .base import DETECTION_ONLY, refuse_options
from .dense_base import EVAL_BATCH, DenseTask
from .registry import register_task

#: the export graph's output: class logits (N, C, H, W) at the input size
OUTPUT_NAMES = ("logits",)


@register_task
class Segmentation(DenseTask):
    name = "segment"
    title = "segmentation"
    summary = "segment (DeepLabv3)"
    order = 20
    metric = "miou"
    written_besides_pictures = " (with class masks *_mask.png)"
    scene_targets = "mask"
    precision_metric = "mIoU"

    def score_precision(self, outputs, targets, settings) -> float:
        from ..deploy.dense_precision import miou

        return miou(outputs, targets, settings)

    def precision_agreement(self, want, got) -> Optional[float]:
        from ..deploy.dense_precision import pixel_agreement

        return pixel_agreement(want, got)

    def shard_sources(self, opts: Any) -> tuple[list[Any], dict[str, Any]]:
        from ..dense.shard_sources import mask_splits

        return mask_splits(opts.source, images={'train': opts.train_images, 'val': opts.val_images}, masks={'train': opts.train_masks, 'val': opts.val_masks}, num_classes=opts.num_classes)

    def training(self, cfg):
        from ..dense.training import SegmentationTask

        return SegmentationTask(cfg)

    def default_recipe(self, model: str, demo: bool) -> str:
        return "digits_segment" if demo else "deeplabv3_voc"

    def network(self, backbone: str, num_classes: Optional[int] = None, *, input_size: Optional[InputSize] = None,
                **options: Any) -> nn.Module:
        from ..dense.deeplabv3 import deeplabv3

        # NOTE: DeepLabv3 takes any input size: input_size is where it is exported and profiled, not a layer setting
        return deeplabv3(backbone, num_classes or VOC_NUM_CLASSES, **options)

    def export_graph(self, model: nn.Module, input_size: Optional[InputSize]):
        from ..dense.deeplabv3 import DeepLabV3

        if not isinstance(model, DeepLabV3):
            raise ValueError(f"--task {self.name} exports a DeepLabV3 (edgenext.dense.deeplabv3), got "
                             f"{type(model).__name__}")
        return model.eval(), OUTPUT_NAMES, input_hw(input_size if input_size is not None else SEGMENTATION_INPUT_SIZE)

    def check_eval_size(self, side: tuple[int, int]) -> Optional[int]:
        height, width = side
        if height != width:
            raise ValueError(f"--input-size {height} {width}: a segmenter resizes the short side; give one side")
        return height

    def evaluate(self, opts: Any, checkpoint) -> dict[str, Any]:
        from ..inference.dense import evaluate_segmenter

        refuse_options(opts, DETECTION_ONLY, "for detection; a segmenter has no boxes to post-process")
        loaded, eval_size, device = self._loaded(opts, checkpoint)
        if opts.val_ann is not None:
            raise ValueError("--val-ann (COCO annotations) is for detection; a segmenter is evaluated on masks "
                             "(--val-masks)")
        return evaluate_segmenter(loaded, data=opts.data, images=opts.val_images, masks=opts.val_masks,
                                  eval_size=eval_size, batch_size=opts.batch_size or EVAL_BATCH, workers=opts.workers,
                                  device=device)

    def eval_summary(self, metrics: dict[str, Any]) -> str:
        skipped = f", {metrics['skipped']} unreadable skipped" if metrics["skipped"] else ""
        return (f"mIoU {metrics['miou']:.3f} pixel acc {metrics['pixel_acc']:.3f} loss {metrics['loss']:.4f} "
                f"({metrics['count']} images{skipped})")

    def predict(self, opts: Any, checkpoint) -> list[dict[str, Any]]:
        from ..inference.dense import predict_masks

        self._check_predict(opts)
        refuse_options(opts, ("score_thresh", *DETECTION_ONLY), "for detection; a segmenter has no boxes to post-process")
        loaded, eval_size, device = self._loaded(opts, checkpoint)
        return predict_masks(loaded, opts.images, output_dir=opts.output, eval_size=eval_size, device=device)

    def describe_prediction(self, result: dict[str, Any], opts: Any) -> str:
        shares = sorted(result["classes"], key=lambda c: -c["pixels"])
        return ", ".join(f"{c['label']} {100 * c['fraction']:.1f}%" for c in shares)

    # -- efficiency (profile, bench) --
    head_name = "deeplabv3"
    paper_input_size = SEGMENTATION_INPUT_SIZE
    bench_peers = ("deeplabv3_mobilenet_v3_large",)
    bench_timed = "network on a normalised tensor: backbone + head + bilinear upsampling to the input (logits)"
    bench_outputs = OUTPUT_NAMES

    def paper_figures(self) -> dict[str, dict[str, float]]:
        from ..dense.constants import PAPER_DEEPLABV3

        return PAPER_DEEPLABV3

    def timed_network(self, model: nn.Module) -> nn.Module:
        from ..dense.timed import SegmentationNetwork

        return SegmentationNetwork(model).eval()

    def torchvision_network(self, name: str) -> nn.Module:
        from ..dense.timed import torchvision_segmenter

        return torchvision_segmenter(name, VOC_NUM_CLASSES)
