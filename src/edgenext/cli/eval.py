"""``edgenext eval``: top-1, top-5 and loss of a model on an image folder."""

from __future__ import annotations

import argparse
import json

from ..train.distributed import resolve_device
from ..train.inference import evaluate_folder, load_model


def add_model_args(p: argparse.ArgumentParser) -> None:
    """Model selection and input overrides shared by ``eval`` and ``predict``."""
    p.add_argument("--model", help="variant (optional for checkpoints of edgenext train, which name theirs)")
    p.add_argument("--weights", help="checkpoint: ours (runs/.../best.pth), official, timm or .safetensors")
    p.add_argument("--pretrained", action="store_true", help="the variant's released ImageNet weights (download)")
    p.add_argument("--input-size", type=int, help="override the model's evaluation input size")
    p.add_argument("--crop-pct", type=float, help="override the model's center-crop fraction")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda")


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
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    loaded = load_model(args.model, args.weights, pretrained=args.pretrained, device=device)
    metrics = evaluate_folder(loaded, args.data, batch_size=args.batch_size, workers=args.workers,
                              input_size=args.input_size, crop_pct=args.crop_pct, device=device)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return 0
    skipped = f", {metrics['skipped']} unreadable skipped" if metrics["skipped"] else ""
    print(f"Acc@1 {metrics['top1']:.3f} Acc@5 {metrics['top5']:.3f} loss {metrics['loss']:.4f} "
          f"({metrics['count']} images at {metrics['input_size']} px, crop {metrics['crop_pct']}{skipped})")
    return 0
