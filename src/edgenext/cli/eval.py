"""``edgenext eval``: top-1 / top-5 / loss of a classifier on an image folder, box mAP of a detector
on COCO annotations, mIoU of a segmenter on VOC or paired masks."""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional

from ..models import Checkpoint
from ..train.distributed import resolve_device
from ..train.inference import eval_side, evaluate_folder, load_model
from .options import WEIGHTS_TASK_HELP, add_device, add_input_size, add_model_args, add_task, resolve_task

CLASSIFY_BATCH, DENSE_BATCH = 64, 8
_DENSE_FLAGS = ("val_images", "val_ann", "val_masks")


def add_preprocessing_args(p: argparse.ArgumentParser) -> None:
    """Overrides of the evaluation preprocessing the model (or its checkpoint) records; shared with ``predict``."""
    add_input_size(p, help="override the model's evaluation input side N (center crops are square; segment: the "
                   "short side images are resized to)")
    p.add_argument("--crop-pct", type=float, help="override the model's center-crop fraction (classify)")


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
    add_task(p, default=None, help=WEIGHTS_TASK_HELP)
    add_model_args(p)
    add_preprocessing_args(p)
    p.add_argument("--val-images", help="detect / segment: image folder (instead of DATA's layout)")
    p.add_argument("--val-ann", help="detect: COCO JSON annotations of --val-images")
    p.add_argument("--val-masks", help="segment: class-index PNG masks paired with --val-images by file stem")
    add_device(p)
    p.add_argument("--batch-size", type=int, help=f"default {CLASSIFY_BATCH} (classify), {DENSE_BATCH} (detect / segment)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task, checkpoint = resolve_task(args.task, args.weights)
    if task == "classify":
        return _run_classify(args)
    return _run_dense(args, task, checkpoint)


def refuse_dense_flags(args: argparse.Namespace, names: tuple[str, ...]) -> None:
    """ValueError for detect / segment options given to a classification command."""
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: for --task detect / segment; this is a classification run "
                         "(give --task, or a checkpoint of edgenext train --task detect|segment as --weights)")


def _run_classify(args: argparse.Namespace) -> int:
    refuse_dense_flags(args, _DENSE_FLAGS)
    if args.data is None:
        raise ValueError("give the image folder to evaluate (FOLDER/<class>/<image>)")
    device = resolve_device(args.device)
    input_size = eval_side(args.input_size) if args.input_size is not None else None  # before any download
    loaded = load_model(args.model, args.weights, pretrained=args.pretrained, device=device)
    metrics = evaluate_folder(loaded, args.data, batch_size=args.batch_size or CLASSIFY_BATCH, workers=args.workers,
                              input_size=input_size, crop_pct=args.crop_pct, device=device)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    skipped = f", {metrics['skipped']} unreadable skipped" if metrics["skipped"] else ""
    print(f"Acc@1 {metrics['top1']:.3f} Acc@5 {metrics['top5']:.3f} loss {metrics['loss']:.4f} "
          f"({metrics['count']} images at {metrics['input_size']} px, crop {metrics['crop_pct']}{skipped})")
    return 0


def dense_eval_size(args: argparse.Namespace, task: str) -> Optional[int]:
    """``--input-size`` of a detect / segment command: the segmenter's short side; refused otherwise.

    Also refuses the classification-only options, before anything is loaded.
    """
    if args.weights is None:
        raise ValueError(f"--task {task} needs --weights: a checkpoint of edgenext train --task {task}")
    if args.pretrained:
        raise ValueError(f"--pretrained is for classification; --task {task} loads a checkpoint of edgenext train")
    if args.crop_pct is not None:
        raise ValueError(f"--crop-pct is for classification (center crops); --task {task} does not crop")
    if args.input_size is None:
        return None
    if task == "detect":
        raise ValueError("--input-size: a detector runs at the input size it was trained at (its anchors are laid "
                         "out for it)")
    height, width = args.input_size
    if height != width:
        raise ValueError(f"--input-size {height} {width}: a segmenter resizes the short side; give one side")
    return height


def load_dense(args: argparse.Namespace, task: str, checkpoint: Optional[Checkpoint], device: Any):
    """The detector / segmenter of ``--weights`` (the peeked checkpoint when there is one); checks ``--model``."""
    from ..dense.inference import load_dense_model

    loaded = load_dense_model(checkpoint if checkpoint is not None else args.weights, task=task, device=device)
    backbone = loaded.config.get("model")
    if args.model is not None and args.model != backbone:
        raise ValueError(f"--model {args.model}: the {task} model of {args.weights} is built on {backbone}; "
                         "leave --model out")
    return loaded


def _run_dense(args: argparse.Namespace, task: str, checkpoint: Optional[Checkpoint]) -> int:
    from ..dense.inference import evaluate_dense

    eval_size = dense_eval_size(args, task)
    device = resolve_device(args.device)
    loaded = load_dense(args, task, checkpoint, device)
    metrics = evaluate_dense(loaded, data=args.data, images=args.val_images, ann=args.val_ann, masks=args.val_masks,
                             eval_size=eval_size, batch_size=args.batch_size or DENSE_BATCH, workers=args.workers,
                             device=device)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    skipped = f", {metrics['skipped']} unreadable skipped" if metrics["skipped"] else ""
    if task == "detect":
        print(f"box mAP {metrics['map']:.3f} mAP@0.5 {metrics['map50']:.3f} mAP@0.75 {metrics['map75']:.3f} "
              f"({metrics['count']} images at {loaded.input_size} px{skipped})")
    else:
        print(f"mIoU {metrics['miou']:.3f} pixel acc {metrics['pixel_acc']:.3f} loss {metrics['loss']:.4f} "
              f"({metrics['count']} images{skipped})")
    return 0
