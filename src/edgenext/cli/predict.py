"""``edgenext predict``: top-k classes and probabilities of images."""

from __future__ import annotations

import argparse
import json

from ..train.distributed import resolve_device
from ..train.inference import eval_side, load_model, predict_images
from .eval import add_preprocessing_args
from .options import add_device, add_model_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify images (top-k labels and probabilities)",
        description="Classify images: ImageNet class names for 1000-class ImageNet weights, the training run's "
        "class names for checkpoints of edgenext train.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE")
    add_model_args(p)
    add_preprocessing_args(p)
    add_device(p)
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--json", action="store_true", help="print a JSON list, one entry per image")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    device = resolve_device(args.device)
    input_size = eval_side(args.input_size) if args.input_size is not None else None  # before any download
    loaded = load_model(args.model, args.weights, pretrained=args.pretrained, device=device)
    results = predict_images(loaded, args.images, top_k=args.top_k, input_size=input_size,
                             crop_pct=args.crop_pct, device=device)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" in r:
                print(f"{r['image']}: unreadable ({r['error']})")
                continue
            best = ", ".join(f"{t['description']} {100 * t['prob']:.1f}%" for t in r["top"])
            print(f"{r['image']}: {best}")
    return 1 if any("error" in r for r in results) else 0
