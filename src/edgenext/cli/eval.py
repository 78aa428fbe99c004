"""``edgenext eval``: the metrics of a trained model on labelled data, as its task defines them
(top-1 / top-5 / loss of a classifier on an image folder, the 12 COCO box AP / AR numbers of a detector
(pycocotools' COCOeval on the annotation file), mIoU of a segmenter on VOC or paired masks)."""

from __future__ import annotations

import argparse
import json

from ..tasks import resolve_task
from .options import FROM_WEIGHTS, add_device, add_input_size, add_model_args, add_task


def add_preprocessing_args(p: argparse.ArgumentParser) -> None:
    """Overrides of the evaluation preprocessing the model (or its checkpoint) records; shared with ``predict``."""
    add_input_size(p, help="override the model's evaluation input side N (center crops are square; segment: the "
                   "short side images are resized to)")
    p.add_argument("--crop-pct", type=float, help="override the model's center-crop fraction (classify)")


def add_detection_args(p: argparse.ArgumentParser) -> None:
    """Overrides of a detector's post-processing (the run's recipe; ml-cvnets' for ssdlite_coco); shared with ``predict``."""
    g = p.add_argument_group("detect: post-processing (default: the checkpoint's recipe; ssdlite_coco: ml-cvnets v0.1's)")
    g.add_argument("--min-score", type=float, metavar="P", help="keep scores above P, per class (ml-cvnets: 0.05)")
    g.add_argument("--nms-iou", type=float, metavar="IOU", help="per-class NMS IoU threshold (ml-cvnets: 0.5)")
    g.add_argument("--per-class", type=int, metavar="N", help="best N per class after NMS; 0: all (ml-cvnets: 200)")
    g.add_argument("--max-per-image", type=int, metavar="N", help="best N per image over all classes; 0: all "
                   "(ml-cvnets: 0; COCOeval scores the best 100 per image and class)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="top-1 / top-5 / loss on an image folder; box mAP (detect) or mIoU (segment)",
        description="Evaluate a model. classify: FOLDER/<class>/<image>, class folders matched by name to the "
        "model's classes (WordNet ids for 1000-class ImageNet weights, the training run's class names for "
        "fine-tuned checkpoints). detect: COCO box mAP of a checkpoint of edgenext train --task detect on a COCO "
        "2017 folder (val2017/) or --val-images with --val-ann. segment: mIoU of a checkpoint of edgenext train "
        "--task segment on a Pascal VOC folder (val split) or --val-images with --val-masks.",
    )
    p.add_argument("data", nargs="?", help="classify: image folder with one sub-folder per class; detect: COCO 2017 "
                   "folder; segment: Pascal VOC folder")
    add_task(p, default=None, default_text=FROM_WEIGHTS)
    add_model_args(p)
    add_preprocessing_args(p)
    p.add_argument("--val-images", help="detect / segment: image folder (instead of DATA's layout)")
    p.add_argument("--val-ann", help="detect: COCO JSON annotations of --val-images")
    p.add_argument("--val-masks", help="segment: class-index PNG masks paired with --val-images by file stem")
    p.add_argument("--save-detections", metavar="FILE", help="detect: write the detections as a COCO results JSON "
                   "(boxes in each image's pixels, the annotation file's category ids), for COCOeval or the "
                   "evaluation server")
    add_detection_args(p)
    add_device(p)
    p.add_argument("--batch-size", type=int, help="default: the task's (64 for classify, 8 for detect / segment)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task, checkpoint = resolve_task(args.task, args.weights)
    metrics = task.evaluate(args, checkpoint)
    print(json.dumps(metrics, indent=2) if args.json else task.eval_summary(metrics))
    return 0
