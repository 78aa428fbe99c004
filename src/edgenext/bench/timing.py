"""Latency and throughput timing that is fair between the runtimes it compares.

On a shared or thermally throttled machine, timing one runtime after another hands whoever
runs in the quiet minute an unfair lead. ``time_interleaved`` warms every candidate up, then
times them round-robin (one call of each per round), so background load is spread evenly
over all of them and the ratios of one run are comparable.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

Call = Callable[[], object]


@dataclass(frozen=True)
class Timing:
    """Per-call wall times of one candidate, in milliseconds."""

    times_ms: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p90(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(calls: Sequence[Call], *, warmup: int, runs: int, device: str = "cpu") -> list[Timing]:
    """Time each of ``calls`` ``runs`` times, round-robin, after ``warmup`` untimed rounds."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        for call in calls:
            call()
    _sync(device)
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(runs):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            _sync(device)
            times[i].append((time.perf_counter() - start) * 1e3)
    return [Timing(tuple(t)) for t in times]
