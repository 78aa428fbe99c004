"""``edgenext predict``: top-k classes of images, or their detections / class masks drawn into pictures."""

from __future__ import annotations

import argparse
import json

from ..tasks import resolve_task
from .eval import add_detection_args, add_preprocessing_args
from .options import FROM_WEIGHTS, add_device, add_model_args, add_task


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify images (top-k labels), or draw their detections (detect) / class masks (segment)",
        description="classify: top-k classes (ImageNet class names for 1000-class ImageNet weights, the training "
        "run's class names for checkpoints of edgenext train). detect / segment: with a checkpoint of edgenext "
        "train --task detect|segment, each image's boxes and labels drawn, or its class mask (a palette PNG) "
        "and the mask overlaid, written under --output; images of any size, results in their own pixels.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_task(p, default=None, default_text=FROM_WEIGHTS)
    add_model_args(p)
    add_preprocessing_args(p)
    add_device(p)
    p.add_argument("--top-k", type=int, default=5, help="classify: classes listed per image")
    p.add_argument("--output", metavar="DIR", help="detect / segment: folder for the pictures (and masks)")
    p.add_argument("--score-thresh", type=float, help="detect: lowest score drawn and listed (default 0.3)")
    p.add_argument("--json", action="store_true", help="print a JSON list, one entry per image")
    add_detection_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task, checkpoint = resolve_task(args.task, args.weights)
    results = task.predict(args, checkpoint)
    print(json.dumps(results, indent=2) if args.json else "\n".join(task.predict_lines(results, args)))
    return 1 if any("error" in r for r in results) else 0
