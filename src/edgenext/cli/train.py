"""``edgenext train``: train or fine-tune from a YAML recipe plus command-line overrides."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from ..tasks import DEFAULT_TASK, fit, load_config
from ..train.config import builtin_recipes
from .options import add_input_size, add_task


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train or fine-tune (default: EdgeNeXt-XXS on the built-in digits set)",
        description="Train an EdgeNeXt classifier, SSDLite detector or DeepLabv3 segmenter from a built-in recipe "
        f"({', '.join(builtin_recipes())}) or a YAML file, with command-line overrides. Without --config: the "
        "task's digits demo when --data is the built-in digits set, else the variant's ImageNet recipe (classify), "
        "ssdlite_coco (detect) or deeplabv3_voc (segment). --print-config shows the resolved recipe, to copy and "
        "edit. Multi-process: torchrun --nproc_per_node=N -m edgenext train ...; re-run a failed run (it resumes) "
        "with edgenext supervise -- torchrun ... .",
    )
    p.add_argument("--config", help="recipe: a YAML file or a built-in name (digits, edgenext_small, ...)")
    add_task(p, default=None, default_text=f"the recipe's, else {DEFAULT_TASK}")
    p.add_argument("--model", help="variant to train (the backbone for detect / segment), e.g. edgenext_small")
    p.add_argument("--data", help="'digits' (built-in) or a folder: train/<class>/* and val/<class>/* (classify), "
                   "the COCO 2017 layout (detect) or the VOC layout (segment)")
    p.add_argument("--train-dir", "--train-images", dest="train_dir", help="training image folder (instead of DATA/train)")
    p.add_argument("--val-dir", "--val-images", dest="val_dir", help="validation image folder (instead of DATA/val)")
    p.add_argument("--train-ann", help="detect: COCO JSON annotations of --train-images")
    p.add_argument("--val-ann", help="detect: COCO JSON annotations of --val-images")
    p.add_argument("--train-masks", help="segment: class-index PNG masks paired with --train-images by file stem")
    p.add_argument("--val-masks", help="segment: class-index PNG masks paired with --val-images")
    p.add_argument("--num-classes", type=int, help="detect / segment: number of classes (default: from the data)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="per process, at the base input size")
    p.add_argument("--lr", type=float, help="absolute lr (default: base_lr scaled by the global batch)")
    add_input_size(p, help="square training input side (default: the recipe's)")
    p.add_argument("--workers", type=int, help="data-loading processes per training process")
    p.add_argument("--device", help="auto (default), cpu, cuda, cuda:1")
    p.add_argument("--seed", type=int)
    p.add_argument("--output", help="run folder (default runs/<model>-<data>-<time>/)")
    p.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                   help="continue the run in --output (or the given checkpoint); automatic when --output holds one")
    p.add_argument("--no-resume", dest="resume", action="store_const", const=False, help="start afresh even if a checkpoint exists")
    p.add_argument("--finetune", metavar="WEIGHTS", help="start from these weights (any model-zoo format); head re-initialised")
    p.add_argument("--teacher", help="distil from this model (e.g. edgenext_base.usi); see teacher_weights")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision where it is faster: fp16 + grad scaler on CUDA, bf16 on CPUs with native "
                   "bf16 (elsewhere fp32, and the log says why)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False, default=None, help="no progress bars")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="any config key (YAML value), e.g. --set drop_path=0.1 --set scales=[128,160]; "
                   "--set checkpoint_every=N also writes last.pth every N optimiser updates (a resumed run "
                   "continues mid-epoch, exactly); "
                   "segment: --set coco_supplement=COCO2017_DIR adds COCO's train images of VOC's 20 classes, "
                   "--set data_kwargs={sbd: true} requires SBD's masks; --set backbone_weights=null trains "
                   "without ImageNet weights (detect / segment, e.g. offline)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.set_defaults(func=run)


_FLAGS = ("task", "model", "data", "train_dir", "val_dir", "train_ann", "val_ann", "train_masks", "val_masks", "num_classes",
          "epochs", "batch_size", "lr", "workers", "device", "seed", "output", "resume", "finetune", "teacher", "amp",
          "progress")


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    out.update({k: getattr(args, k) for k in _FLAGS if getattr(args, k) is not None})
    if args.input_size is not None:
        height, width = args.input_size
        if height != width:
            raise ValueError(f"--input-size {height} {width}: training uses square inputs; give one side")
        out["input_size"] = height
    return out


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, overrides_from_args(args))
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    fit(cfg)  # logs where the checkpoints, curves and log went
    return 0
