"""Where the time goes inside the exported runtimes: per-operator tables from each engine's own profiler.

    python benchmarks/profile_runtimes.py --onnx ours.onnx mnv3.onnx [--openvino ours.xml ...]
        [--batch 1] [--input-size 256] [--threads 2] [--runs 30]

ONNX Runtime: ``SessionOptions.enable_profiling`` (kernel events, summed per op type, the node
names kept for the table's "nodes" column); OpenVINO: ``PERF_COUNT`` and
``InferRequest.get_profiling_info`` (real time per layer type, summed). Each file is profiled in
turn in this process, so run it on a quiet machine; the shares matter, not the absolute times.
``--json FILE`` writes every table as JSON (op type -> ms per run and share).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def profile_onnxruntime(path: Path, batch: int, size: int, threads: int, runs: int) -> dict:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal(
            (batch, 3, size, size), dtype=np.float32)}
        for _ in range(max(3, runs // 3)):
            session.run(None, feed)
        walls = []
        for _ in range(runs):
            t = time.perf_counter()
            session.run(None, feed)
            walls.append((time.perf_counter() - t) * 1e3)
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    # the warm-up calls are profiled too: count from the first of the last ``runs`` model runs
    timed = [e for e in events if e.get("name") == "model_run"][-runs:]
    first_ts = timed[0]["ts"] if timed else 0
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= first_ts:
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3 / runs
    return {"engine": "onnxruntime", "file": path.name, "batch": batch, "median_ms": float(np.median(walls)),
            "ops": dict(sorted(per_op.items(), key=lambda kv: -kv[1]))}


def profile_openvino(path: Path, batch: int, size: int, threads: int, runs: int) -> dict:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    if model.inputs[0].get_partial_shape().is_dynamic:
        model.reshape([batch, 3, size, size])
    compiled = core.compile_model(model, "CPU", {"PERF_COUNT": "YES", "INFERENCE_NUM_THREADS": threads,
                                                 "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).standard_normal((batch, 3, size, size), dtype=np.float32)
    per_op: dict[str, float] = defaultdict(float)
    walls = []
    for i in range(runs + max(3, runs // 3)):
        t = time.perf_counter()
        request.infer({0: x})
        wall = (time.perf_counter() - t) * 1e3
        if i < max(3, runs // 3):
            continue
        walls.append(wall)
        for info in request.get_profiling_info():
            if info.status == info.Status.EXECUTED:
                per_op[f"{info.node_type} [{info.exec_type}]"] += info.real_time.total_seconds() * 1e3 / runs
    return {"engine": "openvino", "file": path.name, "batch": batch, "median_ms": float(np.median(walls)),
            "ops": dict(sorted(per_op.items(), key=lambda kv: -kv[1]))}


def table(result: dict, rows: int) -> str:
    total = sum(result["ops"].values()) or 1.0
    lines = [f"\n== {result['engine']}: {result['file']}, batch {result['batch']}: run median "
             f"{result['median_ms']:.2f} ms, kernels {total:.2f} ms",
             f"{'op':<48} {'ms/run':>8} {'share':>7}"]
    for op, ms in list(result["ops"].items())[:rows]:
        lines.append(f"{op:<48} {ms:8.3f} {100 * ms / total:6.1f}%")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", nargs="*", type=Path, default=[])
    parser.add_argument("--openvino", nargs="*", type=Path, default=[])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = [profile_onnxruntime(p, args.batch, args.input_size, args.threads, args.runs) for p in args.onnx]
    results += [profile_openvino(p, args.batch, args.input_size, args.threads, args.runs) for p in args.openvino]
    for result in results:
        print(table(result, args.rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
