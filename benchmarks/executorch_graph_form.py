"""ExecuTorch's graph form before / after the LayerNorm and XCA rewrite, in one run.

Both programs are the fused classifier at 256 px, batch 1, lowered to XNNPACK as ``edgenext export``
lowers it. "tiled-only" applies only the depth-wise strips (``TiledDepthwiseConv``, the form before
the rewrite); "graph-form" is ``executorch_graph_form`` as it is now. The two programs are timed
interleaved in the same process (ExecuTorch's runtime, ``--threads`` threads), median over rounds:

    PYTHONPATH=src python benchmarks/executorch_graph_form.py --threads 2 edgenext_xx_small edgenext_small
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import edgenext
from edgenext.deploy import fuse
from edgenext.deploy.formats._executorch_graph import TiledDepthwiseConv, executorch_graph_form, is_large_depthwise
from edgenext.deploy.formats.executorch import _set_threads, export_program, lower_to_xnnpack
from edgenext.hardware import cpu_flags, cpu_name


def tiled_only(module: nn.Module) -> nn.Module:
    """The graph form before the LayerNorm / XCA rewrite: only the large depth-wise convs as strips."""
    return executorch_graph_form(module, lambda m: TiledDepthwiseConv if is_large_depthwise(m) else None)


def machine() -> str:
    isa = sorted(f for f in cpu_flags() if f.startswith(("avx2", "avx512", "amx", "avx_vnni", "fma")))
    return f"{cpu_name()}; {' '.join(isa)}; torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="variants to compare (e.g. edgenext_xx_small edgenext_small)")
    parser.add_argument("--threads", type=int, default=2, help="ExecuTorch thread pool size (default 2)")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--calls", type=int, default=5, help="timed calls per round (default 5)")
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    from executorch.runtime import Runtime

    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    runtime = Runtime.get()
    _set_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.models:
            model = edgenext.create_model(variant).eval()
            fused = fuse(model, args.input_size)
            x = torch.randn(1, 3, args.input_size, args.input_size)
            with torch.no_grad():
                want = model(x)
            methods, diffs = {}, {}
            for name, form in (("tiled-only", tiled_only), ("graph-form", executorch_graph_form)):
                path = Path(tmp) / f"{variant}-{name}.pte"
                path.write_bytes(lower_to_xnnpack(export_program(form(fused), x, dynamic_batch=False)))
                methods[name] = runtime.load_program(str(path)).load_method("forward")
                diffs[name] = float((methods[name].execute([x])[0] - want).abs().max())
            times: dict[str, list[float]] = {name: [] for name in methods}
            for _ in range(args.rounds):
                for name, method in methods.items():
                    method.execute([x])
                    start = time.perf_counter()
                    for _ in range(args.calls):
                        method.execute([x])
                    times[name].append((time.perf_counter() - start) / args.calls * 1000)
            median = {name: statistics.median(t) for name, t in times.items()}
            row = {"model": variant, "threads": args.threads, "input_size": args.input_size,
                   "median_ms": median, "max_abs_diff_vs_eager": diffs,
                   "speedup": median["tiled-only"] / median["graph-form"]}
            rows.append(row)
            print(f"{variant}, {args.threads} threads: tiled-only {median['tiled-only']:.2f} ms, graph-form "
                  f"{median['graph-form']:.2f} ms, {row['speedup']:.2f}x (max |diff| vs eager "
                  f"{diffs['tiled-only']:.1e} / {diffs['graph-form']:.1e})", flush=True)
    print(f"machine: {machine()}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
