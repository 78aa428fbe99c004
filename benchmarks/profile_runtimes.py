"""Where the time goes inside the exported runtimes: per-operator tables from each engine's own profiler.

    python benchmarks/profile_runtimes.py --onnx ours.onnx mnv3.onnx [--openvino ours.xml ...]
        [--executorch ours.pte ...] [--export-executorch mobilenetv3_large_100 --export-dir DIR]
        [--batch 1] [--input-size 256] [--threads 2] [--runs 30]

ONNX Runtime: ``SessionOptions.enable_profiling`` (kernel events, summed per op type, the node
names kept for the table's "nodes" column); OpenVINO: ``PERF_COUNT`` and
``InferRequest.get_profiling_info`` (real time per layer type, summed); ExecuTorch: ETDump
(``Runtime.load_program(..., enable_etdump=True)``, read back by ``executorch.devtools.Inspector``):
the XNNPACK delegate logs one event per XNNPACK operator inside each ``DELEGATE_CALL`` (its own
op names, "Fully Connected (NC, F32) GEMM", "Convolution (NHWC, F32) DWConv", summed per type with
the ``#n`` instance number dropped; microsecond resolution), the ops outside the delegate one event
each ("[portable] ...", inside an ``OPERATOR_CALL`` event), and what the delegate calls, the
operator calls and ``Method::execute`` spend outside those as their own rows, so the rows add up
to ``Method::execute``; the JSON keeps every event in program order too ("instances"). A ``.pte``
has a static batch: its input shape comes from the program. ``--export-executorch MODEL ...``
first writes ``.pte`` files
the way ``edgenext bench`` does (``edgenext.bench.worker.prepare``: weights made to look trained,
ours fused and written as ``edgenext export`` writes it, a timm peer as it is) into
``--export-dir``, at ``--batch`` and ``--input-size``, and profiles them. Each file is profiled in
turn in this process, so run it on a quiet machine; the shares matter, not the absolute times.
``--json FILE`` writes every table as JSON (op type -> ms per run and share).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import time
import warnings
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


def export_executorch_like_bench(model: str, batch: int, size: int, workdir: Path, task: str = "classify") -> Path:
    """``model`` (one of ours or a bench peer, e.g. ``mobilenetv3_large_100``) written as the bench writes
    an ExecuTorch candidate: ``edgenext.bench.worker.prepare`` (random weights made to look trained,
    ours folded by the task's fusion, the XNNPACK lowering of ``edgenext export``)."""
    from edgenext.bench.candidates import CandidateSpec
    from edgenext.bench.worker import prepare
    from edgenext.tasks.efficiency import bench_plan

    plan = bench_plan(task)
    impl = "ours" if model in plan.models or model.startswith("edgenext") else plan.peer_impl
    spec = CandidateSpec(model=model, impl=impl, runtime="executorch", task=task, input_size=(size, size),
                         schedule=((batch, 0, 0),), workdir=str(workdir))
    workdir.mkdir(parents=True, exist_ok=True)
    errors = prepare([spec.to_json()])[0]["errors"]
    if errors:
        raise RuntimeError(f"export of {model} at batch {batch}: {errors}")
    return spec.export_path(batch)


def profile_executorch(path: Path, threads: int, runs: int) -> dict:
    from executorch.devtools import Inspector
    from executorch.runtime import Runtime
    import torch

    from edgenext.deploy.formats.executorch import _set_threads

    _set_threads(threads)
    program = Runtime.get().load_program(str(path), enable_etdump=True)
    method = program.load_method("forward")
    shape = tuple(method.metadata.input_tensor_meta(0).sizes())
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape, dtype=np.float32))
    warmup = max(3, runs // 3)
    walls = []
    for i in range(warmup + runs):
        t = time.perf_counter()
        method.execute([x])
        if i >= warmup:
            walls.append((time.perf_counter() - t) * 1e3)
    with tempfile.TemporaryDirectory() as tmp:
        etdump = os.path.join(tmp, "run.etdp")
        program.write_etdump_result_to_file(etdump, os.path.join(tmp, "debug.bin"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no debug buffer: no tensor data, only times
            inspector = Inspector(etdump_path=etdump)
    per_op: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    instances: dict[str, float] = {}  # every event in program order, "#n" kept (the JSON's)
    delegate_ops = portable_ops = delegate_calls = operator_calls = execute = 0.0
    for block in inspector.event_blocks:
        if block.name != "Execute":  # "Default": Method::init, Program::load_method
            continue
        for event in block.events:
            if event.perf_data is None:
                continue
            raw = event.perf_data.raw
            if len(raw) != warmup + runs:  # one value per execute call, the warm-up calls first
                raise RuntimeError(f"{path.name}: {event.name} has {len(raw)} times for {warmup + runs} calls")
            ms = float(np.sum(raw[warmup:])) / runs
            if event.name == "Method::execute":
                execute += ms
            elif event.name == "DELEGATE_CALL":  # wraps the delegate's op events
                delegate_calls += ms
                counts["(delegate calls outside XNNPACK ops)"] += 1
            elif event.name == "OPERATOR_CALL":  # wraps one native_call_* event, a kernel outside the delegate
                operator_calls += ms
            elif event.is_delegated_op:
                op = re.sub(r" #\d+$", "", event.name)
                instances[f"{len(instances)}: {event.name}"] = ms
                per_op[op] += ms
                counts[op] += 1
                delegate_ops += ms
            else:
                op = f"[portable] {event.name.removeprefix('native_call_')}"
                instances[f"{len(instances)}: {op}"] = ms
                per_op[op] += ms
                counts[op] += 1
                portable_ops += ms
    per_op["(delegate calls outside XNNPACK ops)"] = delegate_calls - delegate_ops
    per_op["(operator calls outside portable kernels)"] = operator_calls - portable_ops
    per_op["(Method::execute outside calls)"] = execute - delegate_calls - operator_calls
    return {"engine": "executorch", "file": path.name, "batch": shape[0], "median_ms": float(np.median(walls)),
            "execute_ms": execute, "delegate_calls_ms": delegate_calls, "operator_calls_ms": operator_calls,
            "ops": dict(sorted(per_op.items(), key=lambda kv: -kv[1])),
            "counts": {op: counts.get(op, 0) for op in per_op}, "instances": instances}


def table(result: dict, rows: int) -> str:
    total = sum(result["ops"].values()) or 1.0
    lines = [f"\n== {result['engine']}: {result['file']}, batch {result['batch']}: run median "
             f"{result['median_ms']:.2f} ms, kernels {total:.2f} ms",
             f"{'op':<48} {'ms/run':>8} {'share':>7} {'count':>6}"]
    counts = result.get("counts", {})
    for op, ms in list(result["ops"].items())[:rows]:
        lines.append(f"{op:<48} {ms:8.3f} {100 * ms / total:6.1f}% {counts.get(op, ''):>6}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", nargs="*", type=Path, default=[])
    parser.add_argument("--openvino", nargs="*", type=Path, default=[])
    parser.add_argument("--executorch", nargs="*", type=Path, default=[], help=".pte files (batch: the program's)")
    parser.add_argument("--export-executorch", nargs="*", default=[], metavar="MODEL",
                        help="write these models as the bench does (at --batch, --input-size) into --export-dir, "
                             "then profile them with --executorch's")
    parser.add_argument("--export-dir", type=Path, default=Path("executorch_profile"))
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = [profile_onnxruntime(p, args.batch, args.input_size, args.threads, args.runs) for p in args.onnx]
    results += [profile_openvino(p, args.batch, args.input_size, args.threads, args.runs) for p in args.openvino]
    exported = [export_executorch_like_bench(m, args.batch, args.input_size, args.export_dir)
                for m in args.export_executorch]
    results += [profile_executorch(p, args.threads, args.runs) for p in [*args.executorch, *exported]]
    for result in results:
        print(table(result, args.rows))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
