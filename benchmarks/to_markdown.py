"""Render a ``edgenext bench --save-json`` file as the markdown table used in results.md.

    python benchmarks/to_markdown.py benchmarks/results_cpu.json
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    rows = json.loads(open(path).read())
    print("| model | impl | runtime | batch | MAdds | median ms | p90 ms | img/s | vs timm eager |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r.get("latency_ms_median") is None:
            print(f"| {r['model']} | {r['impl']} | {r['runtime']} | {r['batch']} | {r['madds'] / 1e6:.0f}M | - | - | - | {r.get('error', '-')} |")
            continue
        ratio = f"{r['ratio_vs_timm_eager']:.2f}x" if r.get("ratio_vs_timm_eager") else "-"
        print(f"| {r['model']} | {r['impl']} | {r['runtime']} | {r['batch']} | {r['madds'] / 1e6:.0f}M | "
              f"{r['latency_ms_median']:.2f} | {r['latency_ms_p90']:.2f} | {r['throughput_img_s']:.1f} | {ratio} |")


if __name__ == "__main__":
    main(sys.argv[1])
