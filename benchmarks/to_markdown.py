"""Render an ``edgenext bench --save-json`` file (and its ``.machine.json``) as the markdown used in
results.md: the machine header, the table, and the issue-9 targets computed from the rows.

    python benchmarks/to_markdown.py benchmarks/results_cpu.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

REDUCED = ("bf16", "int8")


def _f(value: Any, spec: str, default: str = "-") -> str:
    return default if value is None else format(value, spec)


def header(machine: dict) -> list[str]:
    isa = ", ".join(k for k, v in (machine.get("isa") or {}).items() if v) or "unknown"
    peaks = ", ".join(f"{k} {v:.0f}" for k, v in (machine.get("gemm_peak_gflops") or {}).items())
    return [f"Machine: `lscpu` model **{machine.get('cpu', '?')}**, {machine.get('cores', '?')} cores; ISA: {isa}; "
            f"{machine.get('threads', '?')} threads; torch {machine.get('torch', '?')}; "
            f"measured GEMM peak (GFLOP/s): {peaks or 'not measured'}."]


def table(rows: list[dict]) -> list[str]:
    out = ["| model | impl | runtime | precision | batch | median ms | p10-p90 ms | img/s | % peak | vs timm eager | vs timm same runtime |",
           "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        head = f"| {r['model']} | {r['impl']} | {r['runtime']} | {r.get('precision', 'fp32')} | {r['batch']} |"
        if r.get("latency_ms_median") is None:
            out.append(f"{head} - | - | - | - | {str(r.get('error', '-'))[:90]} | - |")
            continue
        spread = f"{_f(r.get('latency_ms_p10'), '.2f')}-{_f(r.get('latency_ms_p90'), '.2f')}"
        out.append(f"{head} {r['latency_ms_median']:.2f} | {spread} | {r['throughput_img_s']:.1f} | "
                   f"{_f(r.get('pct_of_peak'), '.1f')} | {_f(r.get('ratio_vs_timm_eager'), '.2f')}x | "
                   f"{_f(r.get('ratio_vs_timm_same_runtime'), '.2f')}{'x' if r.get('ratio_vs_timm_same_runtime') else ''} |")
    return out


def _ok(r: dict) -> bool:
    return r.get("latency_ms_median") is not None


def _best(rows: list[dict], batch: int, pred) -> Optional[dict]:
    cands = [r for r in rows if _ok(r) and r["batch"] == batch and pred(r)]
    return min(cands, key=lambda r: r["latency_ms_median"]) if cands else None


def targets(rows: list[dict], model: str = "edgenext_xx_small") -> list[str]:
    out = ["| target | batch | figure | met |", "|---|---:|---|---|"]
    batches = sorted({r["batch"] for r in rows})
    for b in batches:
        for r in rows:
            if r["model"] == model and r["impl"] == "ours" and r["batch"] == b and _ok(r) \
                    and r.get("ratio_vs_timm_same_runtime") is not None:
                ratio = r["ratio_vs_timm_same_runtime"]
                out.append(f"| ours >= 1.2x timm in {r['runtime']} {r.get('precision', 'fp32')} | {b} | {ratio:.2f}x | "
                           f"{'yes' if ratio >= 1.2 else 'no'} |")
    for b in batches:
        ours = _best(rows, b, lambda r: r["impl"] == "ours" and r.get("precision", "fp32") == "fp32")
        peer = _best(rows, b, lambda r: r["impl"] != "ours" and r.get("precision", "fp32") == "fp32")
        eager = _best(rows, b, lambda r: r["impl"] == "timm" and r["model"] == model and r["runtime"] == "eager"
                      and r.get("precision", "fp32") == "fp32")
        if ours and peer:
            out.append(f"| best ours fp32 ahead of best peer fp32 | {b} | ours {ours['runtime']} {ours['latency_ms_median']:.2f} ms "
                       f"vs {peer['impl']} {peer['model']} {peer['runtime']} {peer['latency_ms_median']:.2f} ms | "
                       f"{'yes' if ours['latency_ms_median'] < peer['latency_ms_median'] else 'no'} |")
        if ours and eager:
            ratio, want = eager["latency_ms_median"] / ours["latency_ms_median"], (1.5 if b == 1 else 1.8)
            out.append(f"| best ours fp32 >= {want}x timm eager | {b} | {ratio:.2f}x ({ours['runtime']}) | "
                       f"{'yes' if ratio >= want else 'no'} |")
        low = _best(rows, b, lambda r: r["impl"] == "ours" and r.get("precision") in REDUCED)
        if low and eager and b == max(batches):
            ratio = eager["latency_ms_median"] / low["latency_ms_median"]
            out.append(f"| best ours reduced precision >= 3x timm eager | {b} | {ratio:.2f}x ({low['runtime']} "
                       f"{low['precision']}) | {'yes' if ratio >= 3 else 'no'} |")
    return out


def main(path: str) -> None:
    rows = json.loads(Path(path).read_text())
    machine_file = Path(path).with_suffix(".machine.json")
    machine = json.loads(machine_file.read_text()) if machine_file.exists() else {}
    print("\n".join(header(machine) + [""] + table(rows) + ["", "Targets (issue 9):", ""] + targets(rows)))


if __name__ == "__main__":
    main(sys.argv[1])
