"""The bench's header and table, and its JSON files (rows, and the machine beside them)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence, Union


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if value is not None else "-"


def _size(row: dict[str, Any]) -> str:
    return "x".join(str(side) for side in row["input_size"])


def format_header(info: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    """The machine (``machine_info``: CPU, ISA features, threads, torch, GEMM peaks) and the
    settings every row shares, a few lines."""
    line = f"machine: {info['cpu']} ({info['cores']} cores), {info['threads']} threads, torch {info['torch']}, " \
           f"{info['device']}"
    if info.get("gpu"):
        line += f" ({info['gpu']})"
    lines = [line]
    isa = info.get("isa") or {}
    if isa:
        have = [name for name, present in isa.items() if present]
        lines.append("ISA: " + (", ".join(have) if have else "none of " + ", ".join(isa)))
    peaks = {k: v for k, v in (info.get("gemm_peak_gflops") or {}).items()}
    if peaks:
        measured = ", ".join(f"{k} {v:.0f}" if v else f"{k} not measured" for k, v in peaks.items())
        lines.append(f"GEMM peak (torch.mm; fp32 on the CPU: the better of torch.mm and ONNX Runtime's MatMul; "
                     f"{info['threads']} threads, GFLOP/s): {measured}; "
                     f"{info.get('peak_note', '')}".rstrip("; "))
    for key in ("bf16_note", "int8_note"):
        if info.get(key):
            lines.append(info[key])
    if rows:
        settings = f"{rows[0]['dtype']}, {_size(rows[0])} px"
        others = {r["model"]: _size(r) for r in rows if _size(r) != _size(rows[0])}
        if others:  # peers timed at their own evaluation size
            settings += " (" + ", ".join(f"{m} at {size}" for m, size in others.items()) + ": each at the size of its top-1)"
        if info.get("rounds"):
            plural = "s" if info["rounds"] > 1 else ""
            settings += f", each candidate in its own process, {info['rounds']} round{plural} " \
                        "(p10-p90: spread of the per-round medians)"
        lines.append(settings)
        if rows[0].get("timed"):
            lines.append(f"timed: {rows[0]['timed']}")
    return "\n".join(lines)


def write_rows(rows: Sequence[dict[str, Any]], path: Union[str, Path]) -> Path:
    """The rows as a JSON list at ``path`` (what ``--json`` prints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rows_json(rows) + "\n")
    return path


def machine_path(rows_path: Union[str, Path]) -> Path:
    """Where the machine header of the rows at ``rows_path`` goes: ``results.json`` -> ``results.machine.json``."""
    rows_path = Path(rows_path)
    return rows_path.with_name(f"{rows_path.stem}.machine.json")


def write_machine(machine: dict[str, Any], rows_path: Union[str, Path]) -> Path:
    """The machine header as JSON beside the rows file (``machine_path``)."""
    path = machine_path(rows_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(machine, indent=2) + "\n")
    return path


def rows_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2)


#: the speed-ratio columns: row key and header (timm's EdgeNeXt for classify, torchvision for detect / segment)
_RATIOS = (("ratio_vs_torchvision_eager", "vs tv"), ("ratio_vs_timm_eager", "vs timm"))


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A fixed-width table; a ratio is the reference's latency / this latency (>1: faster): ``vs timm``
    against timm's eager fp32 EdgeNeXt, ``same rt`` against timm's EdgeNeXt in the same runtime and
    precision; ``% peak``: 2 x MAdds x batch / time over the measured GEMM peak."""
    key, title = next(((k, t) for k, t in _RATIOS if any(k in r for r in rows)), _RATIOS[-1])
    same = any("ratio_vs_timm_same_runtime" in r for r in rows)
    width = max([24, *(len(r["model"]) + 2 for r in rows)])
    impl = max([6, *(len(r["impl"]) + 1 for r in rows)])
    head = (f"{'model':<{width}}{'impl':<{impl}}{'runtime':<13}{'prec':<6}{'batch':>5}{'MAdds':>8}{'median ms':>11}"
            f"{'p10-p90 ms':>18}{'img/s':>9}{'% peak':>8}{title:>9}" + (f"{'same rt':>9}" if same else ""))
    lines = [head, "-" * len(head)]
    for r in rows:
        madds = f"{r['madds'] / 1e6:.0f}M" if r.get("madds") else "-"
        spread = f"{r['latency_ms_p10']:.2f}-{r['latency_ms_p90']:.2f}" if r.get("latency_ms_p10") is not None \
            and r.get("latency_ms_p90") is not None else _fmt(r.get("latency_ms_p90"), ".2f")
        ratio = f"{r[key]:.2f}x" if r.get(key) else "-"
        line = (f"{r['model']:<{width}}{r['impl']:<{impl}}{r['runtime']:<13}{r.get('precision', 'fp32'):<6}"
                f"{r['batch']:>5}{madds:>8}{_fmt(r['latency_ms_median'], '.2f'):>11}{spread:>18}"
                f"{_fmt(r['throughput_img_s'], '.1f'):>9}{_fmt(r.get('pct_of_peak'), '.1f'):>8}{ratio:>9}")
        if same:
            line += f"{r['ratio_vs_timm_same_runtime']:.2f}x".rjust(9) if r.get("ratio_vs_timm_same_runtime") \
                else f"{'-':>9}"
        if r.get("error"):
            line += f"  ({'absent: ' if r.get('absent') else ''}{r['error']})"
        lines.append(line)
    return "\n".join(lines)


def format_train_table(rows: Sequence[dict[str, Any]]) -> str:
    """``edgenext bench --train``'s rows (``train_step.bench_train``): images/s of a training step."""
    width = max([24, *(len(r["model"]) + 2 for r in rows)])
    impl = max([6, *(len(r["impl"]) + 1 for r in rows)])
    head = f"{'model':<{width}}{'impl':<{impl}}{'prec':<6}{'batch':>6}{'img/s':>9}{'p10-p90 img/s':>17}{'vs timm':>9}"
    lines = [head, "-" * len(head)]
    for r in rows:
        spread = f"{r['p10_img_s']:.1f}-{r['p90_img_s']:.1f}" if r.get("p10_img_s") is not None else "-"
        ratio = f"{r['ratio_vs_timm']:.2f}x" if r.get("ratio_vs_timm") else "-"
        line = (f"{r['model']:<{width}}{r['impl']:<{impl}}{r['precision']:<6}{r['batch']:>6}"
                f"{_fmt(r.get('throughput_img_s'), '.1f'):>9}{spread:>17}{ratio:>9}")
        if r.get("absent"):
            line += f"  (absent: {r['absent']})"
        lines.append(line)
    return "\n".join(lines)
