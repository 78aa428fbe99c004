"""Fused or not, channels-first or -last: which graph each phone engine (LiteRT, ncnn, MNN) runs fastest.

Exports EdgeNeXt-XXS (random weights) at 256x256 in three forms per engine: the training graph
(``fused=False``), the fused model channels-last and the fused model channels-first, each checked
against eager (1e-4) by ``export_model``, then times each file in its engine at batch 1 with the
same thread count, the forms interleaved over rounds. Prints a table (median ms and the ratio to
the engine's default form) and writes it as JSON when ``--json`` is given.

    python benchmarks/engine_fusion.py --json benchmarks/results_engine_fusion.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from edgenext import create_model
from edgenext.deploy.export import export_model
from edgenext.deploy.formats import FORMATS
from edgenext.hardware import cores, cpu_flags, cpu_name

FORMS = {"unfused": dict(fused=False), "fused, channels-last": dict(layout="channels_last"),
         "fused, channels-first": dict(layout="channels_first")}


def machine_line(threads: int) -> str:
    isa = " ".join(sorted(f for f in cpu_flags() if f.startswith(("avx", "fma", "f16c", "amx"))))
    return f"{cpu_name()} ({cores()} cores; {isa}), {threads} threads, torch {torch.__version__}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--engines", default="litert,ncnn,mnn")
    p.add_argument("--model", default="edgenext_xx_small")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--calls", type=int, default=20, help="timed calls per form per round")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.manual_seed(0)
    model = create_model(args.model).eval()
    x = torch.randn(1, 3, args.size, args.size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            fmt = FORMATS[engine]
            runners, parity = {}, {}
            for form, options in FORMS.items():
                path = Path(tmp) / f"{engine}-{len(runners)}{fmt.suffix}"
                result = export_model(model, engine, path, input_size=args.size, batch=1, **options)
                parity[form] = result.max_abs_diff
                runners[form] = fmt.runner(path, threads=args.threads)
                print(f"{engine} {form}: {result.parity_line()}", flush=True)
            times = {form: [] for form in FORMS}
            for _ in range(args.rounds):  # forms interleaved: drift hits all of them alike
                for form, run in runners.items():
                    run(x)  # warm-up
                    for _ in range(args.calls):
                        start = time.perf_counter()
                        run(x)
                        times[form].append(1000 * (time.perf_counter() - start))
            default = "fused, " + fmt.layout.replace("_", "-")
            for form in FORMS:
                median = statistics.median(times[form])
                rows.append({"engine": engine, "form": form, "default": form == default, "median_ms": median,
                             "vs_default": statistics.median(times[default]) / median,
                             "max_abs_diff": parity[form]})
    print(f"\nmachine: {machine_line(args.threads)}; {args.model} {args.size}x{args.size} batch 1")
    print(f"{'engine':<8}{'form':<24}{'median ms':>10}{'vs default':>12}{'parity':>10}")
    for r in rows:
        mark = " (default)" if r["default"] else ""
        print(f"{r['engine']:<8}{r['form']:<24}{r['median_ms']:>10.2f}{r['vs_default']:>11.2f}x"
              f"{r['max_abs_diff']:>10.1e}{mark}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_line(args.threads), "model": args.model,
                                         "size": args.size, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
