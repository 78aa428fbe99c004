"""The machine's measured GEMM peak: what "% of peak" in the bench is a percentage of.

A large square ``torch.mm`` is the most arithmetic a CPU does per second through PyTorch's
BLAS (oneDNN / MKL): best of a few calls, in GFLOP/s (2 flops per multiply-add). It is
measured in its own worker process at the bench's thread count (``measure_peaks``), so it
sees the same threads and no other runtime's leftovers; a second or two per precision.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

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


def gemm_peaks(precisions: Sequence[str], size: int = DEFAULT_SIZE, repeats: int = 5,
               device: str = "cpu") -> dict[str, float]:
    """``gemm_peak`` of each precision (the worker's entry point: JSON in, JSON out)."""
    return {p: round(gemm_peak(p, size=size, repeats=repeats, device=device), 1) for p in precisions}


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
