"""``edgenext eval``: top-1, top-5 and loss of a model on an image folder."""

from __future__ import annotations

import argparse
import json

from ..train.distributed import resolve_device
from ..train.inference import eval_side, evaluate_folder, load_model
from .options import add_device, add_input_size, add_model_args


def add_preprocessing_args(p: argparse.ArgumentParser) -> None:
    """Overrides of the evaluation preprocessing the model (or its checkpoint) records; shared with ``predict``."""
    add_input_size(p, help="override the model's evaluation input side N (center crops are square)")
    p.add_argument("--crop-pct", type=float, help="override the model's center-crop fraction")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="top-1 / top-5 / loss on an image folder",
        description="Evaluate a model on FOLDER/<class>/<image>. Class folders are matched by name to the "
        "model's classes (WordNet ids for 1000-class ImageNet weights, the training run's class names for "
        "fine-tuned checkpoints).",
    )
    p.add_argument("data", help="image folder with one sub-folder per class")
    add_model_args(p)
    add_preprocessing_args(p)
    add_device(p)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    input_size = eval_side(args.input_size) if args.input_size is not None else None  # before any download
    loaded = load_model(args.model, args.weights, pretrained=args.pretrained, device=device)
    metrics = evaluate_folder(loaded, args.data, batch_size=args.batch_size, workers=args.workers,
                              input_size=input_size, crop_pct=args.crop_pct, device=device)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    skipped = f", {metrics['skipped']} unreadable skipped" if metrics["skipped"] else ""
    print(f"Acc@1 {metrics['top1']:.3f} Acc@5 {metrics['top5']:.3f} loss {metrics['loss']:.4f} "
          f"({metrics['count']} images at {metrics['input_size']} px, crop {metrics['crop_pct']}{skipped})")
    return 0
