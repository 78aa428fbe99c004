"""``edgenext bench``: latency and throughput of ours and the peers, side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..bench.candidates import DEFAULT_PEERS, OUR_RUNTIMES, PEER_RUNTIMES
from ..bench.report import format_header, format_table, plot_latency_vs_madds, rows_json, write_rows
from ..bench.run import BenchSettings, machine_info, run_bench
from .options import add_input_size


def _names(value: str) -> tuple[str, ...]:
    return tuple(v for v in value.split(",") if v) if value not in ("", "none") else ()


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure latency/throughput of ours (eager, fused, ONNX Runtime, ExecuTorch, ...) and the peers",
        description="Batch-1 latency (median, p90) and batch-32 throughput of our models in every installed "
        "runtime, of timm's EdgeNeXt and of MobileViT / MobileNetV3, on the same machine and threads, "
        "with every ratio against timm eager.",
    )
    p.add_argument("--models", type=_names, default=("edgenext_xx_small",), help="our variants, comma-separated")
    p.add_argument("--peers", type=_names, default=DEFAULT_PEERS, help="timm peers, comma-separated ('none': no peers)")
    p.add_argument("--runtimes", type=_names, default=OUR_RUNTIMES, help=f"our runtimes (default all: {','.join(OUR_RUNTIMES)})")
    p.add_argument("--peer-runtimes", type=_names, default=("eager", "onnxruntime"),
                   help=f"runtimes of timm's models (from {','.join(PEER_RUNTIMES)}; default eager,onnxruntime)")
    p.add_argument("--batches", type=lambda v: tuple(int(b) for b in v.split(",")), default=(1, 32),
                   help="batch sizes (default 1,32)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for every runtime (default 2)")
    add_input_size(p, default=256)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (torch runtimes only)")
    p.add_argument("--fp16", action="store_true", help="half precision (CUDA only)")
    p.add_argument("--quick", action="store_true", help="a short run: few timed runs, no torch.compile")
    p.add_argument("--json", action="store_true", help="print the rows as a JSON list instead of the table")
    p.add_argument("--save-json", type=Path, default=None, metavar="FILE", help="also write the JSON rows to FILE")
    p.add_argument("--plot", type=Path, default=Path("bench_latency_vs_madds.png"), help="PNG plot path")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = BenchSettings(models=args.models, peers=args.peers, runtimes=args.runtimes,
                             peer_runtimes=args.peer_runtimes, batches=args.batches, input_size=args.input_size,
                             threads=args.threads, device=args.device, fp16=args.fp16, quick=args.quick)
    rows = run_bench(settings)
    plot = plot_latency_vs_madds(rows, args.plot, batch=min(settings.batches))
    if args.save_json is not None:
        write_rows(rows, args.save_json)
    if args.json:
        print(rows_json(rows))
        return 0
    print(format_header(machine_info(settings), rows))
    print(format_table(rows))
    print(f"plot: {plot}" + (f"\njson: {args.save_json}" if args.save_json else ""))
    return 0
