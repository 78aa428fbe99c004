"""``edgenext bench``: latency and throughput of ours and the peers, each candidate in its own
process, side by side; ``--task detect|segment``: our SSDLite / DeepLabv3 against torchvision's
MobileNetV3 models."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import hardware
from ..bench.report import format_header, format_table, format_train_table, rows_json, write_machine, write_rows
from ..bench.run import (
    BenchSettings,
    bench_settings,
    check_settings,
    default_precisions,
    machine_info,
    run_bench,
)
from ..deploy.formats import PRECISIONS
from ..tasks import task_names
from ..tasks.efficiency import BenchPlan, bench_plan
from .options import add_input_size, add_task

log = logging.getLogger(__name__)

#: the plots' base name when --plot is not given: bench_pareto.png and bench_runtimes.png
DEFAULT_PLOT = "bench.png"


def _names(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v) if value not in ("", "none") else ()


def _plans() -> dict[str, BenchPlan]:
    """The bench plan of every registered task that has one, for the help texts."""
    plans = {}
    for name in task_names():
        try:
            plans[name] = bench_plan(name)
        except ValueError:  # a task without a bench
            continue
    return plans


def _per_task(plans: dict[str, BenchPlan], what: Callable[[BenchPlan], str]) -> str:
    """``what`` of each task's plan, tasks that say the same grouped: "classify: A; detect / segment: B"."""
    groups: dict[str, list[str]] = {}
    for name, plan in plans.items():
        groups.setdefault(what(plan), []).append(name)
    return "; ".join(f"{' / '.join(names)}: {text}" for text, names in groups.items())


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure latency/throughput of ours and the peers in every runtime and precision, each in its own process",
        description="Batch-1 latency and batch-32 throughput of our models in every installed runtime and "
        "precision, of timm's EdgeNeXt and of MobileViT / MobileNetV3, on the same machine and threads. Each "
        "candidate is timed in its own worker process, one after another, over several rounds whose order "
        "rotates, so that no runtime's threads or caches touch another's timing; each row gives the median of "
        "every timed call and the spread of the per-round medians (p10-p90), the percentage of the machine's "
        "measured GEMM peak (2 x MAdds x batch / time), and its speed against timm's eager fp32 EdgeNeXt and "
        "against timm's EdgeNeXt in the same runtime and precision. The header names the CPU, its ISA "
        "features, the threads and the GEMM peak. --task detect / segment: batch-1 latency of SSDLite / "
        "DeepLabv3 on EdgeNeXt-S at 320 / 512 beside torchvision's ssdlite320_mobilenet_v3_large / "
        "deeplabv3_mobilenet_v3_large (random weights), with the paper's rival MobileViT-S (timm's) in our same head, "
        "the network on a normalised tensor for all (detection: backbone + head, no NMS), in eager PyTorch, ONNX "
        "Runtime, OpenVINO (and ExecuTorch with --full), ratios against torchvision eager. --train: a training "
        "step's images/s; --data DIR: the training input pipeline's images/s (image folder, tar shards, timm's "
        "loader), JPEG decoders, and the CPU cores it takes to feed a training step.",
    )
    add_task(p)
    plans = _plans()
    p.add_argument("--models", type=_names, default=None,
                   help="our variants (a detector's or segmenter's: its backbones), comma-separated (default "
                   + _per_task(plans, lambda plan: ",".join(plan.models)) + ")")
    p.add_argument("--peers", type=_names, default=None,
                   help="peers, comma-separated ('none': no peers; default "
                   + _per_task(plans, lambda plan: f"{plan.peer_impl}'s {','.join(plan.peers)}") + ")")
    p.add_argument("--runtimes", type=_names, default=None,
                   help="our runtimes (default all installed: " + _per_task(plans, lambda plan: ",".join(plan.runtimes))
                   + "; executorch-int8 is read as executorch with int8 among the precisions)")
    p.add_argument("--peer-runtimes", type=_names, default=None,
                   help="runtimes of the peers, or 'all' (" + _per_task(plans, lambda plan: ",".join(plan.peer_runtimes))
                   + "; default " + _per_task(plans, lambda plan: ",".join(plan.default_peer_runtimes))
                   + "; timm's EdgeNeXt also runs in each of our runtimes it can)")
    p.add_argument("--precisions", type=_names, default=None,
                   help=f"precisions, from {','.join(PRECISIONS)} (default all this machine supports: "
                   f"{','.join(default_precisions())}); bf16 without native bf16 gives rows that say why they "
                   "are absent; each runtime runs those it offers (eager: fp32, bf16 autocast; ONNX Runtime: fp32, "
                   "int8 QDQ; OpenVINO: fp32, bf16, int8; ExecuTorch: fp32, int8)")
    p.add_argument("--batches", type=lambda v: tuple(int(b) for b in v.split(",")), default=None,
                   help="batch sizes (default " + _per_task(plans, lambda plan: ",".join(map(str, plan.batches))) + ")")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for every runtime (default 2)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds of one worker process per candidate (default 3; --quick: 1)")
    add_input_size(p, help="input side N, or HEIGHT WIDTH (default "
                   + _per_task(plans, lambda plan: str(plan.input_size)) + ")")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (torch runtimes only)")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    p.add_argument("--quick", action="store_true", help="a short run: one round, few timed calls, no torch.compile, "
                   "every export written by one worker, the GEMM peak on smaller matrices")
    p.add_argument("--full", action="store_true",
                   help="the whole sweep: every runtime (torch.compile and ExecuTorch too, whose preparation takes "
                   "minutes per model on 2 cores) and every peer of the task, where --runtimes / --peers do not say "
                   "otherwise; without it the default run leaves those out (it says which, and the flag that adds "
                   "them) and takes minutes; with --workdir a long run can be stopped and started again")
    p.add_argument("--workdir", type=Path, default=None,
                   help="folder for the exported files and the finished worker runs (default: a temporary one); "
                   "what is already there is reused, so a run stopped half-way and started again with the same "
                   "folder only times what is left, and a second run skips the exports")
    p.add_argument("--json", action="store_true",
                   help="print the rows as a JSON list instead of the table (the machine header: --save-json)")
    p.add_argument("--save-json", type=Path, default=None, metavar="FILE",
                   help="also write the JSON rows to FILE, and the machine header (CPU, ISA features, threads, "
                   "GEMM peaks) to FILE's name with .machine.json (rows.json -> rows.machine.json)")
    p.add_argument("--train", action="store_true",
                   help="instead: images/s of a full training step (forward, backward, AdamW update) of ours, with "
                   "the recipe's default speed options, and of timm's same model, at one batch (the largest of "
                   "--batches, default 32) and size, each in its own process over --rounds rounds; --precisions "
                   "from fp32,bf16,fp16 (default fp32, and bf16 where native); --json: rows with model, impl, "
                   "precision, batch, input_size, throughput_img_s, ratio_vs_timm")
    p.add_argument("--steps", type=int, default=None,
                   help="--train: timed steps per process (default 10); --data: of the training step (default 3)")
    p.add_argument("--data", type=Path, default=None, metavar="DIR",
                   help="instead: images/s of the training input pipeline alone, no model (JPEG decode, the recipe's "
                   "random-resized crop, flip, RandAugment / colour jitter, to-tensor + normalise, collate) over DIR's "
                   "JPEGs (DIR/train/<class>/* or DIR/<class>/*) as an image folder, as tar shards of the same images "
                   "(written by edgenext shards' writer into --workdir, else a temporary folder; or --shards) and "
                   "through timm's create_dataset + create_loader with the same recipe values; with 0 loader workers, "
                   "1 and --workers; beside Pillow's JPEG decode against torchvision's decode_jpeg (speed, largest "
                   "pixel difference), ours' training step (the recipe's model, or the first of --models; a CPU figure "
                   "without --device cuda) and the CPU cores one worker each it takes to feed that step (training "
                   "images/s / one worker's images/s). Batch: the largest of --batches, else the recipe's; size: "
                   "--input-size, else the recipe's; --rounds rounds (default 3) of one process per candidate")
    p.add_argument("--shards", default=None, metavar="SHARDS",
                   help="--data: tar shards of DIR's images to read instead of writing them (a folder with "
                   "manifest.json from edgenext shards, or a shard pattern)")
    p.add_argument("--recipe", default="edgenext_small",
                   help="--data: the recipe whose augmentation, batch and size are timed (default edgenext_small: "
                   "RandAugment rand-m9-mstd0.5-inc1 at 256 px)")
    p.add_argument("--workers", type=int, default=None,
                   help="--data: the most loader workers timed (default the machine's cores; 0 and 1 are always timed)")
    p.add_argument("--loader-batches", type=int, default=8, metavar="N",
                   help="--data: batches timed per loader process, after each worker's first (default 8)")
    p.add_argument("--plot", type=Path, default=None,
                   help=f"base name of the two PNG plots (default {DEFAULT_PLOT}: bench_pareto.png, published accuracy "
                   "(classify: ImageNet top-1; detect: COCO box mAP; segment: VOC mIoU) against measured batch-1 "
                   "latency, and bench_runtimes.png, every runtime per model)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.data is not None:
        return _run_input(args)
    settings = bench_settings(args.task, models=args.models, peers=args.peers, runtimes=args.runtimes,
                              peer_runtimes=args.peer_runtimes, batches=args.batches, input_size=args.input_size,
                              threads=args.threads, device=args.device, fp16=args.fp16, quick=args.quick,
                              precisions=args.precisions, rounds=args.rounds, full=args.full)
    check_settings(settings)  # before the GEMM peak is measured
    if args.train:
        return _run_train(args, settings)
    for line in settings.left_out:
        log.info("left out of this run: %s", line)
    machine = machine_info(settings)
    rows = run_bench(settings, workdir=args.workdir, machine=machine)
    plots = _plot(rows, args.plot or Path(DEFAULT_PLOT), machine) if settings.plan.plots else []
    if args.save_json is not None:
        write_rows(rows, args.save_json)
        write_machine(machine, args.save_json)
    if args.json:
        print(rows_json(rows))
        return 0
    print(format_header(machine, rows))
    print(format_table(rows))
    for line in settings.left_out:
        print(f"left out: {line}")
    for path in plots:
        print(f"plot: {path}")
    if args.save_json:
        print(f"json: {args.save_json}")
    return 0


def _run_train(args: argparse.Namespace, settings: BenchSettings) -> int:
    from ..bench.train_step import bench_train

    precisions = args.precisions or (("fp16",) if settings.fp16 else ("fp32",) + (("bf16",) if
                                     settings.device == "cpu" and hardware.native_bf16()[0] else ()))
    rows = bench_train(settings.models, batch=max(args.batches or (32,)), input_size=settings.input_size,
                       threads=settings.threads, steps=args.steps or 10, rounds=settings.round_count,
                       precisions=precisions, quick=settings.quick, device=settings.device)
    if args.save_json is not None:
        write_rows(rows, args.save_json)
    print(rows_json(rows) if args.json else format_train_table(rows))
    return 0


def _run_input(args: argparse.Namespace) -> int:
    from ..bench.input_pipeline import bench_input, format_input_table, machine_line

    size = args.input_size
    if size is not None and size[0] != size[1]:
        raise ValueError(f"--data: the training input is square; got --input-size {size[0]} {size[1]}")
    workers = (0, 1, args.workers if args.workers is not None else hardware.cores())
    rows = bench_input(args.data, shards=args.shards, workdir=args.workdir, recipe=args.recipe,
                       batch=max(args.batches) if args.batches else None, input_size=size[0] if size else None,
                       workers=sorted(set(workers)), rounds=args.rounds or 3, batches=args.loader_batches,
                       train_steps=args.steps or 3, threads=args.threads, device=args.device,
                       model=args.models[0] if args.models else None)
    machine = machine_line(args.device)
    if args.save_json is not None:
        write_rows(rows, args.save_json)
        write_machine(machine, args.save_json)
    print(rows_json(rows) if args.json else format_input_table(rows, machine))
    return 0


def _plot(rows: Sequence[dict[str, Any]], output: Path, machine: dict[str, Any]) -> list[Path]:
    from ..bench.plot import plot_summary

    try:
        return plot_summary(rows, output, machine)
    except ValueError as err:  # nothing measured to plot: the table still stands
        log.warning("no plot: %s", err)
        return []
