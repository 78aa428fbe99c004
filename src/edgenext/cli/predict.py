"""``edgenext predict``: top-k classes of images, or their detections / class masks drawn into pictures."""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional

from ..models import Checkpoint
from ..train.distributed import resolve_device
from ..train.inference import eval_side, load_model, predict_images
from .eval import add_preprocessing_args, dense_eval_size, load_dense, refuse_dense_flags
from .options import WEIGHTS_TASK_HELP, add_device, add_model_args, add_task, resolve_task

SCORE_THRESH = 0.3
LISTED = 10  # detections named per image on the console (all are drawn and in --json)


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
    add_task(p, default=None, help=WEIGHTS_TASK_HELP)
    add_model_args(p)
    add_preprocessing_args(p)
    add_device(p)
    p.add_argument("--top-k", type=int, default=5, help="classify: classes listed per image")
    p.add_argument("--output", metavar="DIR", help="detect / segment: folder for the pictures (and masks)")
    p.add_argument("--score-thresh", type=float, help=f"detect: lowest score drawn and listed (default {SCORE_THRESH})")
    p.add_argument("--json", action="store_true", help="print a JSON list, one entry per image")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task, checkpoint = resolve_task(args.task, args.weights)
    results = _classify(args) if task == "classify" else _dense(args, task, checkpoint)
    return 1 if any("error" in r for r in results) else 0


def _classify(args: argparse.Namespace) -> list[dict[str, Any]]:
    refuse_dense_flags(args, ("output", "score_thresh"))
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
    return results


def _dense(args: argparse.Namespace, task: str, checkpoint: Optional[Checkpoint]) -> list[dict[str, Any]]:
    from ..dense.inference import predict_dense

    eval_size = dense_eval_size(args, task)
    if args.output is None:
        raise ValueError(f"--task {task} writes pictures: give --output DIR")
    if args.score_thresh is not None and task != "detect":
        raise ValueError("--score-thresh is for detection")
    device = resolve_device(args.device)
    loaded = load_dense(args, task, checkpoint, device)
    thresh = SCORE_THRESH if args.score_thresh is None else args.score_thresh
    results = predict_dense(loaded, args.images, output_dir=args.output, score_thresh=thresh, eval_size=eval_size,
                            device=device)
    if args.json:
        print(json.dumps(results, indent=2))
        return results
    for r in results:
        if "error" in r:
            print(f"{r['image']}: unreadable ({r['error']})")
        elif task == "detect":
            shown = r["detections"][:LISTED]
            found = ", ".join(f"{d['label']} {d['score']:.2f}" for d in shown) or "nothing"
            more = f", ... ({len(r['detections']) - LISTED} more in the picture)" if len(r["detections"]) > LISTED else ""
            print(f"{r['image']}: {len(r['detections'])} object(s) at score >= {thresh:g}: {found}{more}")
        else:
            shares = sorted(r["classes"], key=lambda c: -c["pixels"])
            print(f"{r['image']}: " + ", ".join(f"{c['label']} {100 * c['fraction']:.1f}%" for c in shares))
    written = sum("error" not in r for r in results)
    masks = " (with class masks *_mask.png)" if task == "segment" else ""
    print(f"{written} picture(s) written to {args.output}{masks}")
    return results
