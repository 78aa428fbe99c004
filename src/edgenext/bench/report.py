"""The bench's table and its plot (latency against MAdds, one point per model and runtime)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence, Union

from ..optional import require


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if value is not None else "-"


def _size(row: dict[str, Any]) -> str:
    return "x".join(str(side) for side in row["input_size"])


def format_header(info: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """One line naming the machine (``machine_info``) and the settings every row shares."""
    line = (f"machine: {info['cpu']} ({info['cores']} cores), {info['threads']} threads, torch {info['torch']}, "
            f"{info['device']}")
    if info.get("gpu"):
        line += f" ({info['gpu']})"
    if rows:
        line += f" {rows[0]['dtype']}, {_size(rows[0])} px"
        if rows[0].get("timed"):
            line += f"\ntimed: {rows[0]['timed']}"
    return line


def write_rows(rows: Sequence[dict[str, Any]], path: Union[str, Path]) -> Path:
    """The rows as a JSON list at ``path`` (what ``--json`` prints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rows_json(rows) + "\n")
    return path


def rows_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2)


#: the speed-ratio column: its row key and header (timm's EdgeNeXt for classify, torchvision for detect / segment)
_RATIOS = (("ratio_vs_torchvision_eager", "vs tv"), ("ratio_vs_timm_eager", "vs timm"))


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table; the ratio is the reference's eager latency / this latency (>1: faster)."""
    key, title = next(((k, t) for k, t in _RATIOS if any(k in r for r in rows)), _RATIOS[-1])
    width = max([24, *(len(r["model"]) + 2 for r in rows)])
    impl = max([6, *(len(r["impl"]) + 1 for r in rows)])
    head = (f"{'model':<{width}}{'impl':<{impl}}{'runtime':<17}{'batch':>5}{'MAdds':>9}{'median ms':>11}{'p90 ms':>10}"
            f"{'img/s':>9}{title:>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        madds = f"{r['madds'] / 1e6:.0f}M" if r.get("madds") else "-"
        ratio = f"{r[key]:.2f}x" if r.get(key) else "-"
        line = (f"{r['model']:<{width}}{r['impl']:<{impl}}{r['runtime']:<17}{r['batch']:>5}{madds:>9}"
                f"{_fmt(r['latency_ms_median'], '.2f'):>11}{_fmt(r['latency_ms_p90'], '.2f'):>10}"
                f"{_fmt(r['throughput_img_s'], '.1f'):>9}{ratio:>9}")
        if r.get("error"):
            line += f"  ({r['error']})"
        lines.append(line)
    return "\n".join(lines)


def plot_latency_vs_madds(rows: Sequence[dict[str, Any]], output: Union[str, Path], *, batch: int = 1) -> Path:
    """Scatter of batch-``batch`` median latency against MAdds, one point per model and runtime."""
    require("matplotlib", "bench", "the bench plot")
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    points = [r for r in rows if r["batch"] == batch and r["latency_ms_median"]]
    if not points:
        raise ValueError(f"no measured rows at batch {batch} to plot")
    runtimes = sorted({(r["impl"], r["runtime"]) for r in points})
    markers = "os^Dv<>P*Xh"
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for i, (impl, runtime) in enumerate(runtimes):
        pts = [r for r in points if (r["impl"], r["runtime"]) == (impl, runtime)]
        ax.scatter([r["madds"] / 1e6 for r in pts], [r["latency_ms_median"] for r in pts],
                   marker=markers[i % len(markers)], s=46, label=f"{impl} {runtime}")
        for r in pts:
            ax.annotate(r["model"].replace("edgenext_", "en_"), (r["madds"] / 1e6, r["latency_ms_median"]),
                        fontsize=6, xytext=(3, 2), textcoords="offset points")
    first = points[0]
    ax.set_xlabel("MAdds (M, fvcore)")
    ax.set_ylabel(f"median latency, batch {batch} (ms)")
    ax.set_yscale("log")
    ax.set_title(f"latency vs MAdds at {_size(first)} px, {first['threads']} threads, {first['device']} {first['dtype']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=130)
    plt.close(fig)
    return output
