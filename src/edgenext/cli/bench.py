"""``edgenext bench``: latency and throughput of ours and the peers, side by side; ``--task
detect|segment``: our SSDLite / DeepLabv3 against torchvision's MobileNetV3 models."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bench.candidates import DEFAULT_PEERS, OUR_RUNTIMES, PEER_RUNTIMES
from ..bench.report import format_header, format_table, plot_latency_vs_madds, rows_json, write_rows
from ..bench.dense import DENSE_RUNTIMES, TORCHVISION_PEERS
from ..bench.run import bench_settings, machine_info, run_bench
from .options import add_input_size, add_task

#: the plot's file when --plot is not given (detect / segment: bench_<task>_latency_vs_madds.png)
DEFAULT_PLOT = "bench_latency_vs_madds.png"


def _names(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v) if value not in ("", "none") else ()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure latency/throughput of ours (eager, fused, ONNX Runtime, ExecuTorch, ...) and the peers",
        description="Batch-1 latency (median, p90) and batch-32 throughput of our models in every installed "
        "runtime, of timm's EdgeNeXt and of MobileViT / MobileNetV3, on the same machine and threads, "
        "with every ratio against timm eager. --task detect / segment: batch-1 latency of SSDLite / DeepLabv3 "
        "on EdgeNeXt-S at 320 / 512 beside torchvision's ssdlite320_mobilenet_v3_large / "
        "deeplabv3_mobilenet_v3_large (random weights), the network on a normalised tensor for both (detection: "
        "backbone + head, no NMS), in eager PyTorch, ONNX Runtime and ExecuTorch, ratios against torchvision eager.",
    )
    add_task(p)
    p.add_argument("--models", type=_names, default=None,
                   help="our variants, comma-separated (default edgenext_xx_small; detect / segment: the "
                   "backbones, default edgenext_small)")
    p.add_argument("--peers", type=_names, default=None,
                   help="timm peers, comma-separated ('none': no peers; default " + ",".join(DEFAULT_PEERS) +
                   "); detect / segment: torchvision models (default " +
                   " / ".join(names[0] for names in TORCHVISION_PEERS.values()) + ")")
    p.add_argument("--runtimes", type=_names, default=None,
                   help=f"our runtimes (default all: {','.join(OUR_RUNTIMES)}; detect / segment: "
                   f"{','.join(DENSE_RUNTIMES)})")
    p.add_argument("--peer-runtimes", type=_names, default=None,
                   help=f"runtimes of the peers (from {','.join(PEER_RUNTIMES)}; default eager,onnxruntime; "
                   "detect / segment: the same as ours)")
    p.add_argument("--batches", type=lambda v: tuple(int(b) for b in v.split(",")), default=None,
                   help="batch sizes (default 1,32; detect / segment: 1)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for every runtime (default 2)")
    add_input_size(p, help="input side N, or HEIGHT WIDTH (default 256; detect / segment: 320 / 512)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (torch runtimes only)")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    p.add_argument("--quick", action="store_true", help="a short run: few timed runs, no torch.compile")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list instead of the table")
    p.add_argument("--save-json", type=Path, default=None, metavar="FILE", help="also write the JSON rows to FILE")
    p.add_argument("--plot", type=Path, default=None,
                   help=f"PNG plot path (default {DEFAULT_PLOT}; detect / segment: bench_<task>_latency_vs_madds.png)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = bench_settings(args.task, models=args.models, peers=args.peers, runtimes=args.runtimes,
                              peer_runtimes=args.peer_runtimes, batches=args.batches, input_size=args.input_size,
                              threads=args.threads, device=args.device, fp16=args.fp16, quick=args.quick)
    rows = run_bench(settings)
    plot_path = args.plot or Path(DEFAULT_PLOT if args.task == "classify"
                                  else f"bench_{args.task}_latency_vs_madds.png")
    plot = plot_latency_vs_madds(rows, plot_path, batch=min(settings.batches))
    if args.save_json is not None:
        write_rows(rows, args.save_json)
    if args.json:
        print(rows_json(rows))
        return 0
    print(format_header(machine_info(settings), rows))
    print(format_table(rows))
    print(f"plot: {plot}" + (f"\njson: {args.save_json}" if args.save_json else ""))
    return 0
