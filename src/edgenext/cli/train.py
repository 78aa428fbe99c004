"""``edgenext train``: train or fine-tune from a YAML recipe plus command-line overrides."""

from __future__ import annotations

import argparse
import os
from typing import Any

import yaml

from ..train import fit, load_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train or fine-tune (default: EdgeNeXt-XXS on the built-in digits set)",
        description="Train an EdgeNeXt from a recipe in configs/ (default: digits.yaml for the built-in digits set, "
        "else the variant's ImageNet recipe) with command-line overrides. Multi-process: "
        "torchrun --nproc_per_node=N -m edgenext train ...",
    )
    p.add_argument("--config", help="recipe: a YAML file or a name in configs/ (digits, edgenext_small, ...)")
    p.add_argument("--model", help="variant to train, e.g. edgenext_small")
    p.add_argument("--data", help="'digits' (built-in) or a folder holding train/<class>/* and val/<class>/*")
    p.add_argument("--train-dir", help="training image folder (instead of DATA/train)")
    p.add_argument("--val-dir", help="validation image folder (instead of DATA/val)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per process, at the base input size")
    p.add_argument("--lr", type=float, help="absolute lr (default: base_lr scaled by the global batch)")
    p.add_argument("--input-size", type=int)
    p.add_argument("--workers", type=int, help="data-loading processes per training process")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1")
    p.add_argument("--seed", type=int)
    p.add_argument("--output", help="run folder (default runs/<model>-<data>-<time>/)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue the run in --output (or the given checkpoint); automatic when --output holds one")
    p.add_argument("--no-resume", dest="resume", action="store_const", const=False, help="start afresh even if a checkpoint exists")
    p.add_argument("--finetune", metavar="WEIGHTS", help="start from these weights (any model-zoo format); head re-initialised")
    p.add_argument("--teacher", help="distil from this model (e.g. edgenext_base.usi); see teacher_weights")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None, help="mixed precision (bf16 CPU / fp16 CUDA)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None, help="no progress bars")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key (YAML value), e.g. --set drop_path=0.1 --set scales=[128,160]")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


_FLAGS = ("model", "data", "train_dir", "val_dir", "epochs", "batch_size", "lr", "input_size", "workers", "device",
          "seed", "output", "resume", "finetune", "teacher", "amp", "progress")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    out.update({k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None})
    return out


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides_from_args(args))
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    result = fit(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0  # under torchrun, rank 0 reports
    if result.best_checkpoint is not None:
        print(f"best checkpoint: {result.best_checkpoint} (val top-1 {result.best_top1:.2f}%, epoch {result.best_epoch + 1})")
    print(f"curves: {result.output_dir / 'curves.png'}  log: {result.output_dir / 'log.jsonl'}")
    return 0
