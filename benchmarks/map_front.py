"""The mobile map as a table: each model at its fastest runtime, its published top-1, and whether it is
on the measured Pareto front or which model dominates it (faster and at least as accurate) and by how much.

    python benchmarks/map_front.py benchmarks/results_cpu_mobile_map.json [--batch 1]

The points are the Pareto plot's (``edgenext.bench.plot.best_points``: fastest fp32 runtime per model
and implementation; EdgeNeXt-S / -B also with their USI weights' top-1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgenext.bench.plot import best_points, pareto_front


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=Path)
    parser.add_argument("--batch", type=int, default=1)
    args = parser.parse_args()
    rows = json.loads(args.rows.read_text())
    sizes = {(r["model"], r["impl"]): "x".join(map(str, r["input_size"])) for r in rows}
    points = [p for p in best_points(rows, batch=args.batch) if not p.reduced and p.top1 is not None]
    front = pareto_front(points)
    print("| model | px | fastest runtime | ms | top-1 | on the front? |\n|---|---|---|---:|---:|---|")
    for p in sorted(points, key=lambda q: q.latency_ms):
        if p in front:
            verdict = "**on the front**"
        else:
            # another release of the same network (USI) is not a rival: name the model one would pick instead
            beaters = [q for q in points if q.latency_ms <= p.latency_ms and q.top1 >= p.top1 and (q.model, q.impl) != (p.model, p.impl)]
            if not beaters:
                verdict = "on the front but for its own other release"
            else:
                best = max(beaters, key=lambda q: (q.top1 - p.top1, p.latency_ms / q.latency_ms))
                verdict = (f"dominated by {best.series} ({p.latency_ms / best.latency_ms:.2f}x faster, "
                           f"{best.top1 - p.top1:+.1f} top-1)")
        print(f"| {p.series} | {sizes[(p.model, p.impl)]} | {p.runtime} | {p.latency_ms:.2f} | {p.top1:.2f} | {verdict} |")


if __name__ == "__main__":
    main()
