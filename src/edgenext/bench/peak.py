"""The machine's measured GEMM peak: what "% of peak" in the bench is a percentage of.

A large square ``torch.mm`` is the most arithmetic a CPU does per second through PyTorch's
BLAS (oneDNN / MKL): best of a few calls, in GFLOP/s (2 flops per multiply-add). On the CPU the
fp32 peak is the better of that and ONNX Runtime's MatMul on the same matrices, where it is
installed: MKL takes its AVX2 code path on AMD processors, so torch.mm alone reads well below
what the machine does (an AMD EPYC with AVX-512: 225 GFLOP/s through torch.mm, about twice that
through ONNX Runtime's MLAS), and every runtime's "% of peak" would then read too high. It is
measured in its own worker process at the bench's thread count (``measure_peaks``), so it sees
the same threads and no other runtime's leftovers; a second or two per precision.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

import numpy as np
import torch

from .isolate import IsolatedError, run_isolated

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: the side of the square matrices: large enough for the BLAS to reach its peak on a few cores
#: (2 x 2048^3 = 17 GFLOP, tens of ms at a few hundred GFLOP/s)
DEFAULT_SIZE = 2048


def gemm_peak(precision: str = "fp32", *, size: int = DEFAULT_SIZE, repeats: int = 5, device: str = "cpu") -> float:
    """GFLOP/s of ``torch.mm`` of two ``size`` x ``size`` matrices in ``precision``: the best of
    ``repeats`` timed calls after one warm-up call, in this process."""
    if precision not in _DTYPES:
        raise ValueError(f"no GEMM peak for precision {precision!r}: choose from {', '.join(_DTYPES)}")
    if size < 1 or repeats < 1:
        raise ValueError(f"size and repeats must be >= 1, got size={size}, repeats={repeats}")
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=gen).to(device, _DTYPES[precision]) for _ in range(2))
    best = float("inf")
    with torch.inference_mode():
        for i in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            if i:  # the first call is the warm-up (packing, page faults, thread start)
                best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def onnxruntime_gemm_peak(*, size: int = DEFAULT_SIZE, repeats: int = 5, threads: Optional[int] = None) -> Optional[float]:
    """GFLOP/s of ONNX Runtime's fp32 MatMul of two ``size`` x ``size`` matrices (best of ``repeats``
    after one warm-up), or None where ONNX Runtime is not installed."""
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [size, size])
    c = helper.make_tensor_value_info("c", TensorProto.FLOAT, [size, size])
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", [a, b], [c])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"a": rng.standard_normal((size, size), dtype=np.float32), "b": rng.standard_normal((size, size), dtype=np.float32)}
    best = float("inf")
    for i in range(repeats + 1):
        start = time.perf_counter()
        session.run(None, feed)
        if i:
            best = min(best, time.perf_counter() - start)
    return 2.0 * size**3 / best / 1e9


def gemm_peaks(precisions: Sequence[str], size: int = DEFAULT_SIZE, repeats: int = 5,
               device: str = "cpu") -> dict[str, float]:
    """``gemm_peak`` of each precision (the worker's entry point: JSON in, JSON out); on the CPU the
    fp32 peak is the better of torch.mm and ONNX Runtime's MatMul (``onnxruntime_gemm_peak``)."""
    peaks = {p: gemm_peak(p, size=size, repeats=repeats, device=device) for p in precisions}
    if "fp32" in peaks and device == "cpu":
        other = onnxruntime_gemm_peak(size=size, repeats=repeats, threads=torch.get_num_threads())
        peaks["fp32"] = max(peaks["fp32"], other or 0.0)
    return {p: round(v, 1) for p, v in peaks.items()}


def measure_peaks(precisions: Sequence[str], threads: int, *, device: str = "cpu", size: int = DEFAULT_SIZE,
                  timeout: float = 300.0) -> dict[str, Optional[float]]:
    """GEMM peaks (GFLOP/s) of ``precisions`` measured in a fresh process with ``threads`` threads;
    None for each where the measurement failed (the bench then has no "% of peak")."""
    try:
        return run_isolated("edgenext.bench.peak:gemm_peaks",
                            {"precisions": list(precisions), "size": size, "device": device},
                            threads=threads, timeout=timeout)
    except IsolatedError:
        return {p: None for p in precisions}
