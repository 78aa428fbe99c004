"""Latency timing that is fair between the runtimes it compares.

The bench times each candidate in its own worker process (``time_calls`` there), over
several rounds; ``round_orders`` rotates and alternates the order the candidates' workers
start in from round to round, so that no candidate always runs first (a cold machine) or
right after the same neighbour, and ``summarize_rounds`` turns the per-call times of every
round into a row's statistics: the median of all calls, and the spread between rounds
(10th / 90th percentile of the per-round medians), which says how far one run can be trusted.

``time_interleaved`` times several calls round-robin in one process, for comparisons inside
one process (quick decisions, not the bench's figures).
"""

from __future__ import annotations

import math
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


def time_calls(call: Call, *, warmup: int, runs: int, device: str = "cpu") -> list[float]:
    """``runs`` wall times of ``call`` (ms) after ``warmup`` untimed calls."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        call()
    _sync(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        _sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return times


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


def round_orders(count: int, rounds: int) -> list[list[int]]:
    """The order the ``count`` candidates run in, in each of ``rounds`` rounds.

    Round ``r`` starts at candidate ``r * count // rounds`` (the starts spread evenly over the
    list) and odd rounds run backwards, so each candidate's neighbours change between rounds.
    """
    if count < 0 or rounds < 1:
        raise ValueError(f"need count >= 0 and rounds >= 1, got count={count}, rounds={rounds}")
    orders = []
    for r in range(rounds):
        shift = (r * count) // rounds
        order = list(range(shift, count)) + list(range(shift))
        orders.append(order[::-1] if r % 2 else order)
    return orders


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linear between the nearest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within [0, 100], got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low, high = math.floor(pos), math.ceil(pos)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summarize_rounds(rounds: Sequence[Sequence[float]]) -> dict[str, float]:
    """Statistics of one candidate's per-call times (ms), given round by round.

    ``median``: of every timed call pooled; ``p10`` / ``p90``: of the per-round medians (the
    spread between rounds, equal to the median when there is one round); ``rounds``, ``calls``.
    """
    rounds = [list(r) for r in rounds if r]
    if not rounds:
        raise ValueError("no timed calls to summarize")
    medians = [statistics.median(r) for r in rounds]
    pooled = [t for r in rounds for t in r]
    return {"median": statistics.median(pooled), "p10": percentile(medians, 10), "p90": percentile(medians, 90),
            "rounds": len(rounds), "calls": len(pooled)}
