"""EdgeNeXt-XXS in the browser: ONNX Runtime Web (WebAssembly; WebGPU where headless Chromium has it)
against native ONNX Runtime in Python with the same threads, ours (fused) beside timm's.

Builds one demo site per model (``edgenext.demo.build_site``: ours fused at 256x256, random weights;
timm's EdgeNeXt-XXS exported by ``export_network`` into a copy of it), serves it cross-origin
isolated, and lets the page time itself (``window.edgenext.bench``: ``--warmup`` calls, then the
median of ``--runs`` calls of ``session.run`` on a fixed input) in the system Chromium driven by
Playwright. Native rows time the same ONNX files with ``onnxruntime`` the same way. Prints a
Markdown table (for results.md) and writes ``--json``.

    python benchmarks/browser_bench.py --threads 1,2 --json benchmarks/results_browser.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from edgenext.demo import build_site, serve_in_background
from edgenext.deploy.export import export_network

SIZE = 256
CHROMIUM_FLAGS = ["--enable-unsafe-webgpu", "--enable-features=Vulkan"]


def machine() -> str:
    """``lscpu``'s model name, cores and the AVX / FMA flags."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = sorted(f for f in fields.get("Flags", "").split() if f.startswith(("avx", "fma")))
    return f"{fields.get('Model name', '?').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs; {' '.join(flags)}"


def sites(work: Path) -> dict[str, Path]:
    """``{"ours": site, "timm": site}``: the same page, each with its model.onnx."""
    import timm

    ours = build_site(work / "ours", model="edgenext_xx_small", input_size=(SIZE, SIZE)).folder
    theirs = work / "timm"
    shutil.copytree(ours, theirs)
    torch.manual_seed(0)
    model = timm.create_model("edgenext_xx_small", pretrained=False).eval()
    export_network(model, "onnx", theirs / "model.onnx", input_size=SIZE, output_names=("logits",), batch=1)
    return {"ours": ours, "timm": theirs}


def native(model: Path, threads: int, runs: int, warmup: int) -> float:
    """Median ms of ``runs`` calls of native ONNX Runtime on ``model`` after ``warmup`` calls."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: np.full((1, 3, SIZE, SIZE), 0.5, dtype=np.float32)}
    for _ in range(warmup):
        session.run(None, feeds)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feeds)
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def in_browser(browser, url: str, backend: str, threads: int, runs: int, warmup: int) -> dict:
    """What the page measures of itself on ``backend`` with ``threads``."""
    page = browser.new_page()
    try:
        page.goto(f"{url}?backend={backend}&threads={threads}")
        page.wait_for_function("document.body.dataset.state !== 'loading'", timeout=300_000)
        if page.evaluate("document.body.dataset.state") != "ready":
            raise RuntimeError(page.inner_text("#messages"))
        return page.evaluate(f"edgenext.bench({runs}, {warmup})")
    finally:
        page.close()


def webgpu_available(browser) -> bool:
    page = browser.new_page()
    try:
        page.goto("about:blank")
        return page.evaluate("navigator.gpu ? navigator.gpu.requestAdapter().then((a) => a !== null) : false")
    finally:
        page.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    p.add_argument("--runs", type=int, default=30)
    p.add_argument("--rounds", type=int, default=3, help="rounds, the models' order alternating (a shared machine's "
                   "load moves between them evenly)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    threads = [int(t) for t in args.threads.split(",")]
    measured: dict[tuple, list] = {}
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS)
        gpu = webgpu_available(browser)
        backends = ["wasm"] + (["webgpu"] if gpu else [])
        folders = sites(Path(tmp))
        served = {impl: serve_in_background(folder) for impl, folder in folders.items()}
        try:
            for round_ in range(args.rounds):
                for impl in sorted(served, reverse=bool(round_ % 2)):
                    url = served[impl][1]
                    for n in threads:
                        measured.setdefault((impl, "onnxruntime (native)", n), []).append(
                            native(folders[impl] / "model.onnx", n, args.runs, args.warmup))
                        for backend in backends:
                            got = in_browser(browser, url, backend, n, args.runs, args.warmup)
                            measured.setdefault((impl, f"browser-{backend}", got["threads"]), []).append(got["median_ms"])
        finally:
            for server, _ in served.values():
                server.shutdown()
        browser.close()
    rows = [{"impl": impl, "runtime": runtime, "threads": n, "median_ms": statistics.median(values),
             "round_medians_ms": values} for (impl, runtime, n), values in measured.items()]
    report = {"machine": machine(), "chromium": args.chromium, "webgpu": gpu, "size": SIZE, "runs": args.runs,
              "warmup": args.warmup, "rounds": args.rounds, "rows": rows}
    print(f"Machine: {report['machine']}; WebGPU in headless Chromium: {'yes' if gpu else 'no adapter'}\n")
    print("| model | impl | runtime | threads | median ms | round medians ms | vs native same threads |\n"
          "|---|---|---|---:|---:|---|---:|")
    for r in rows:
        base = next(b["median_ms"] for b in rows if b["impl"] == r["impl"] and b["threads"] == r["threads"]
                    and b["runtime"].endswith("(native)"))
        spread = ", ".join(f"{v:.1f}" for v in r["round_medians_ms"])
        print(f"| edgenext_xx_small | {r['impl']} | {r['runtime']} | {r['threads']} | {r['median_ms']:.2f} | {spread} | "
              f"{base / r['median_ms']:.2f}x |")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
