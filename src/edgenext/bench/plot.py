"""The bench's two pictures: accuracy against measured latency (the paper's first figure, on this
machine) and every runtime of every model side by side.

``plot_summary`` writes both. The accuracy axis uses published ImageNet-1k top-1 figures, kept in
``PUBLISHED_TOP1`` with their sources; the latency axis uses the bench's rows (``run_bench``'s JSON).
Labels are placed by a small deterministic placer (``place_labels``) that measures each label with
the renderer and never lets two labels overlap when a free spot exists.
"""

from __future__ import annotations

import functools

import math
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from ..constants import EDGENEXT_TOP1_SOURCE, PEER_TOP1, RELEASE_TOP1
from ..hardware import ISA_FEATURES
from ..optional import require

#: published ImageNet-1k (1000 classes) top-1 in %, and where it was published: each variant's ImageNet-1k
#: release (its default) and the peers (``edgenext.constants``). timm's EdgeNeXt rows are the same network and
#: weights, so they share ours.
PUBLISHED_TOP1: dict[str, tuple[float, str]] = {
    **{release.partition(".")[0]: (top1, EDGENEXT_TOP1_SOURCE) for release, top1 in RELEASE_TOP1.items()
       if release.endswith(".in1k")},
    **PEER_TOP1,
}

REDUCED_PRECISIONS = ("bf16", "fp16", "int8")

#: directions tried around a point on each ring: (dx, dy) as multiples of the ring's radius (points),
#: and the label's horizontal and vertical alignment there (so the label grows away from the point)
_DIRECTIONS = ((1, 0.35, "left", "bottom"), (1, -0.35, "left", "top"), (-1, 0.35, "right", "bottom"),
               (-1, -0.35, "right", "top"), (0, 1, "center", "bottom"), (0, -1, "center", "top"),
               (1, 1, "left", "bottom"), (-1, 1, "right", "bottom"), (1, -1, "left", "top"),
               (-1, -1, "right", "top"))
_RINGS = (5.0, 12.0, 22.0, 34.0, 48.0, 64.0, 82.0)
_TICK_SUBS = ((1.0,), (1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0), (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 7.0),
              (1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0))


IMAGENET_LABEL = "ImageNet-1k top-1 (%, published)"


@functools.lru_cache(maxsize=1)
def dense_published() -> dict[str, tuple[float, str, str]]:
    """The dense bench rows' published accuracy: row name -> (value %, source, axis label). COCO box mAP of
    the SSDLites at 320 and Pascal VOC val mIoU of the DeepLabv3s at 512 from the EdgeNeXt paper (which
    quotes MobileViT-S's from its paper), and torchvision's SSDLite from its weights' metadata.
    torchvision's DeepLabv3 has none on VOC val (its 60.3 mIoU is on a COCO subset): it is not plotted."""
    from ..dense.constants import PAPER_DEEPLABV3, PAPER_SSDLITE

    coco, voc = "COCO val2017 box mAP (%, published)", "Pascal VOC val mIoU (%, published)"
    paper = "EdgeNeXt paper (arXiv 2206.10589)"
    return {
        "ssdlite_edgenext_small": (PAPER_SSDLITE["edgenext_small"]["box_map"], f"{paper} Table 3, 320 px", coco),
        "ssdlite_mobilevit_s": (PAPER_SSDLITE["mobilevit_s"]["box_map"],
                                f"MobileViT (arXiv 2110.02178) as quoted in the {paper} Table 3, 320 px", coco),
        "ssdlite320_mobilenet_v3_large": (21.3, "torchvision's SSDLite320_MobileNet_V3_Large_Weights.COCO_V1 "
                                                "metadata, 320 px", coco),
        "deeplabv3_edgenext_small": (PAPER_DEEPLABV3["edgenext_small"]["miou"], f"{paper} Table 4, 512 px", voc),
        "deeplabv3_mobilevit_s": (PAPER_DEEPLABV3["mobilevit_s"]["miou"],
                                  f"MobileViT (arXiv 2110.02178) as quoted in the {paper} Table 4, 512 px", voc),
    }


def published_top1(model: str) -> Optional[tuple[float, str]]:
    """(accuracy %, source) of ``model``: its released ImageNet-1k weights' top-1, or for a dense bench row
    (``ssdlite_edgenext_small``) the published box mAP / mIoU (``dense_published``); None when none is on record."""
    if model in PUBLISHED_TOP1:
        return PUBLISHED_TOP1[model]
    dense = dense_published().get(model)
    return dense[:2] if dense else None


def metric_label(models: Sequence[str]) -> str:
    """The accuracy axis' label for ``models``: a dense task's metric, else ImageNet top-1."""
    if all(m in PUBLISHED_TOP1 for m in models):  # classifiers: no need to import the dense package's data sets
        return IMAGENET_LABEL
    dense = dense_published()
    return next((dense[m][2] for m in models if m in dense), IMAGENET_LABEL)


def row_precision(row: dict[str, Any]) -> str:
    """The row's ``precision``; rows written before that key existed are fp32 unless the runtime's
    name carries the precision (``executorch-int8``)."""
    if row.get("precision"):
        return str(row["precision"])
    runtime = str(row.get("runtime", ""))
    return next((p for p in REDUCED_PRECISIONS if runtime.endswith(f"-{p}")), "fp32")


def _runtime_name(row: dict[str, Any]) -> str:
    """The runtime without a precision suffix (the precision is shown on its own)."""
    runtime = str(row["runtime"])
    suffix = f"-{row_precision(row)}"
    return runtime[: -len(suffix)] if runtime.endswith(suffix) else runtime


def _measured(row: dict[str, Any]) -> bool:
    return not row.get("error") and bool(row.get("latency_ms_median"))


@dataclass(frozen=True)
class Point:
    """One model (in one implementation) at one runtime and precision, at batch 1."""

    model: str
    impl: str
    runtime: str
    precision: str
    latency_ms: float
    #: another release of the same network ("usi": EdgeNeXt-S/B's USI weights): same latency, its own top-1
    weights: str = ""

    @property
    def reduced(self) -> bool:
        return self.precision != "fp32"

    @property
    def series(self) -> str:
        """The name a reader knows it by: timm's EdgeNeXt is named as such, every other peer by its model."""
        name = f"{self.impl} {self.model}" if self.model.startswith("edgenext") and self.impl != "ours" else self.model
        return f"{name} ({self.weights.upper()} weights)" if self.weights else name

    @property
    def top1(self) -> Optional[float]:
        if self.weights:
            return RELEASE_TOP1.get(f"{self.model}.{self.weights}")
        published = published_top1(self.model)
        return published[0] if published else None

    @property
    def label(self) -> str:
        how = self.runtime if not self.reduced else f"{self.runtime} {self.precision}"
        return f"{self.series}\n{how}, {self.latency_ms:.1f} ms"


def best_points(rows: Sequence[dict[str, Any]], *, batch: int = 1) -> list[Point]:
    """Per (model, impl): its fastest fp32 row at ``batch``, and its fastest reduced-precision row
    when it has one. Rows with an ``error`` or no latency are skipped; ties go to the runtime name."""
    best: dict[tuple[str, str, bool], Point] = {}
    for row in rows:
        if row.get("batch") != batch or not _measured(row):
            continue
        point = Point(row["model"], row["impl"], _runtime_name(row), row_precision(row), float(row["latency_ms_median"]))
        key = (point.model, point.impl, point.reduced)
        held = best.get(key)
        if held is None or (point.latency_ms, point.runtime, point.precision) < (held.latency_ms, held.runtime, held.precision):
            best[key] = point
    points = [best[k] for k in sorted(best, key=lambda k: (k[1] != "ours", k[0], k[1], k[2]))]
    # EdgeNeXt-S / -B have a second ImageNet-1k release (USI, 81.07 / 83.68): the same network, a second point
    return points + [replace(p, weights="usi") for p in points
                     if p.model.startswith("edgenext") and f"{p.model}.usi" in RELEASE_TOP1 and p.impl == "ours"]


def pareto_front(points: Sequence[Point]) -> list[Point]:
    """The points no other point beats on both axes (faster and at least as accurate), fastest first.
    Points without a published top-1 are ignored."""
    front: list[Point] = []
    for point in sorted((p for p in points if p.top1 is not None), key=lambda p: (p.latency_ms, -p.top1)):
        if not front or point.top1 > front[-1].top1:
            front.append(point)
    return front


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    """Area shared by two boxes given as (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _outside(box: Sequence[float], frame: Sequence[float]) -> float:
    """Area of ``box`` that lies outside ``frame``."""
    return (box[2] - box[0]) * (box[3] - box[1]) - _overlap(box, frame)


def place_labels(ax: Any, anchors: Sequence[tuple[float, float]], texts: Sequence[str], *, fontsize: float = 7.5,
                 obstacles: Sequence[Sequence[float]] = (), marker_px: float = 6.0, pad_px: float = 2.0) -> list[Any]:
    """Annotate each data point ``anchors[i]`` with ``texts[i]`` where it collides with nothing.

    Each label's size is measured with the figure's renderer; offsets on growing rings around the
    point are tried in a fixed order and the first whose box (padded by ``pad_px``) overlaps no
    label placed so far, no marker (a ``marker_px`` square around every anchor), no ``obstacles``
    (display-coordinate boxes) and stays inside the axes wins. If none is free, the least-overlapping
    offset is used. Labels set off beyond the second ring get a thin leader line. Call it after the
    axes' limits and the figure's layout are final: positions are computed in display coordinates.
    """
    if len(anchors) != len(texts):
        raise ValueError(f"place_labels got {len(anchors)} anchors but {len(texts)} texts: pass one text per anchor")
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    scale = fig.dpi / 72.0  # points -> display pixels
    frame = ax.get_window_extent(renderer).extents
    pixels = [tuple(ax.transData.transform(xy)) for xy in anchors]
    blocked = [(x - marker_px, y - marker_px, x + marker_px, y + marker_px) for x, y in pixels]
    blocked += [tuple(b) for b in obstacles]
    placed = []
    for (px, py), xy, text in zip(pixels, anchors, texts):
        probe = ax.text(0, 0, text, fontsize=fontsize, transform=None)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        width, height = extent.width, extent.height
        best = None
        for ring_index, ring in enumerate(_RINGS):
            for dx, dy, ha, va in _DIRECTIONS:
                ox, oy = dx * ring * scale, dy * ring * scale
                x0 = px + ox - {"left": 0.0, "center": width / 2, "right": width}[ha]
                y0 = py + oy - {"bottom": 0.0, "center": height / 2, "top": height}[va]
                box = (x0 - pad_px, y0 - pad_px, x0 + width + pad_px, y0 + height + pad_px)
                cost = sum(_overlap(box, b) for b in blocked) + _outside(box, frame)
                candidate = (cost, ring_index, (dx * ring, dy * ring), ha, va, box)
                if best is None or cost < best[0]:
                    best = candidate
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, ring_index, offset, ha, va, box = best
        arrow = dict(arrowstyle="-", lw=0.5, color="0.45", shrinkA=0, shrinkB=3) if ring_index > 1 else None
        placed.append(ax.annotate(text, xy, xytext=offset, textcoords="offset points", ha=ha, va=va,
                                  fontsize=fontsize, arrowprops=arrow, zorder=5))
        blocked.append(box)
    return placed


def text_box(annotation: Any, renderer: Any) -> Any:
    """The display-coordinate box of an annotation's text alone (without its leader line)."""
    from matplotlib.text import Text

    return Text.get_window_extent(annotation, renderer)


def machine_header(machine: dict[str, Any], rows: Sequence[dict[str, Any]] = ()) -> str:
    """One line naming the machine: CPU, ISA features, threads, torch, GEMM peak. Missing keys are
    taken from the rows (``cpu``, ``threads``) or left out."""
    first = next((r for r in rows if _measured(r)), {})
    parts = [str(machine.get("cpu") or first.get("cpu") or "unknown CPU")]
    isa = machine.get("isa") or {}
    if isa:
        order = [f for f in ISA_FEATURES if f in isa] + sorted(f for f in isa if f not in ISA_FEATURES)
        have = [f for f in order if isa[f]]
        parts.append("ISA: " + (", ".join(have) if have else "none of " + ", ".join(order)))
    threads = machine.get("threads") or first.get("threads")
    if threads:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    if machine.get("torch"):
        parts.append(f"torch {machine['torch']}")
    peaks = machine.get("gemm_peak_gflops") or {}
    if peaks:
        parts.append("GEMM peak " + ", ".join(f"{v:.0f} GFLOP/s {k}" for k, v in peaks.items() if v))
    size = first.get("input_size")
    if size:
        parts.append("input " + ("x".join(str(s) for s in size) if isinstance(size, (list, tuple)) else f"{size}x{size}"))
    return " | ".join(parts)


def _caption(machine: dict[str, Any], rows: Sequence[dict[str, Any]], models: Sequence[str], width: int,
             extra: Sequence[str] = ()) -> str:
    sources = sorted({published_top1(m)[1] for m in models if published_top1(m)})
    lines = ["Machine: " + machine_header(machine, rows)]
    if sources and metric_label(models) != IMAGENET_LABEL:
        lines.append(f"Accuracy: {metric_label(models)} of each network as published; latency of the same network "
                     "with random weights at the input size above. " + "; ".join(sources) + ".")
    elif sources:
        lines.append("Top-1: published ImageNet-1k figures at each paper's evaluation size (timm's EdgeNeXt shares ours: "
                     "same weights); latency at the input size above, or where a model's rows say another, at "
                     "that (its source's px). " + "; ".join(sources) + ".")
    lines.extend(extra)
    return "\n".join(textwrap.fill(line, width) for line in lines)


def _add_caption(fig: Any, text: str, fontsize: float = 7.0) -> None:
    fig.text(0.01, 0.005, text, ha="left", va="bottom", fontsize=fontsize, color="0.25")


def _bottom(fig: Any, caption: str, axis_in: float, fontsize: float = 7.0) -> float:
    """The bottom margin (figure fraction) that fits the x axis' labels (``axis_in`` inches) and the caption."""
    caption_in = (caption.count("\n") + 1) * fontsize * 1.3 / 72
    return (axis_in + caption_in + 0.1) / fig.get_figheight()


def _colours(points: Sequence[Point]) -> dict[str, Any]:
    """One colour per model (ours and timm's EdgeNeXt of a size share it; the marker tells them apart)."""
    import matplotlib

    models = list(dict.fromkeys(p.model for p in points))
    cmap = matplotlib.colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {name: cmap(i % cmap.N) for i, name in enumerate(models)}


#: marker per kind of point: our EdgeNeXt, timm's EdgeNeXt, then the peers by family
_MARKERS = (("ours", "o", "ours"), ("timm edgenext", "s", "timm's EdgeNeXt"), ("mobilevit", "^", "MobileViT"),
            ("mobilenet", "D", "MobileNet"))


def _marker(point: Point) -> str:
    name = point.series if point.impl != "ours" else "ours"
    return next((m for prefix, m, _ in _MARKERS if name.startswith(prefix)), "v")


def _tick_subs(low: float, high: float, wanted: int = 5) -> tuple[float, ...]:
    """The coarsest set of mantissas (1, 2, 5, ...) that puts at least ``wanted`` ticks in [low, high]."""
    for subs in _TICK_SUBS:
        ticks = [m * 10.0**e for e in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1) for m in subs]
        if sum(low <= t <= high for t in ticks) >= wanted:
            return subs
    return _TICK_SUBS[-1]


def _log_axis(ax: Any, low: float, high: float) -> None:
    """A latency axis with plain numbers (20, 30, 50, 100) rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.set_xlim(low, high)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=_tick_subs(low, high)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def pareto_figure(rows: Sequence[dict[str, Any]], machine: dict[str, Any], *, batch: int = 1) -> Any:
    """Top-1 against batch-``batch`` latency: filled markers fp32, hollow reduced precision, the fp32
    Pareto front as a step line. Each scatter artist's gid is ``"point:<series>:<precision>"``."""
    import matplotlib.pyplot as plt

    points = best_points(rows, batch=batch)
    shown = [p for p in points if p.top1 is not None]
    if not shown:
        raise ValueError(f"no measured batch-{batch} rows of a model with a published top-1 to plot "
                         f"(known: {', '.join(sorted(PUBLISHED_TOP1))})")
    missing = sorted({p.series for p in points if p.top1 is None})
    colours = _colours(shown)

    extra = [f"Not plotted (no published top-1): {', '.join(missing)}."] if missing else []
    caption = _caption(machine, rows, [p.model for p in shown], 150, extra)
    fig, ax = plt.subplots(figsize=(9.0, 6.2), dpi=150)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.93, bottom=_bottom(fig, caption, 0.55))
    front = pareto_front([p for p in shown if not p.reduced])
    xs = [p.latency_ms for p in front]
    ys = [p.top1 for p in front]
    lows = [p.latency_ms for p in shown]
    tops = [p.top1 for p in shown]
    # NOTE: the step runs on to the axis' right edge: beyond the slowest front point nothing is better
    low, high = min(lows) / 1.35, max(lows) * 1.6
    _log_axis(ax, low, high)
    ax.set_ylim(min(tops) - 1.6, max(tops) + 1.4)
    (step,) = ax.step(xs + [high], ys + [ys[-1]], where="post", color="0.35", lw=1.2, ls="--", zorder=1,
                      label="Pareto front (fp32)")
    for p in shown:
        colour = colours[p.model]
        face = "none" if p.reduced else colour
        artist = ax.scatter([p.latency_ms], [p.top1], s=58, marker=_marker(p), facecolors=face,
                            edgecolors=colour, linewidths=1.6, zorder=4)
        artist.set_gid(f"point:{p.series}:{p.precision}")
    ax.set_xlabel(f"measured latency, batch {batch}, median (ms, log scale): lower is better")
    ax.set_ylabel(metric_label([p.model for p in shown]))
    ax.set_title("Accuracy against latency on this machine: each model at its fastest runtime", fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    kinds = {_marker(p) for p in shown}
    handles = [step,
               plt.Line2D([], [], marker="o", ls="", color="0.3", label="fp32, fastest runtime (filled)"),
               plt.Line2D([], [], marker="o", ls="", color="0.3", markerfacecolor="none",
                          label="bf16 / int8, fastest runtime (hollow)")]
    handles += [plt.Line2D([], [], marker=m, ls="", color="0.55", label=name) for _, m, name in _MARKERS if m in kinds]
    if "v" in kinds:
        handles.append(plt.Line2D([], [], marker="v", ls="", color="0.55", label="other peers"))
    ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.9)

    fig.canvas.draw()  # layout and limits are final: the placer works in display coordinates
    legend_box = ax.get_legend().get_window_extent(fig.canvas.get_renderer()).extents
    obstacles = [legend_box, *_line_boxes(ax, xs + [high], ys + [ys[-1]])]
    place_labels(ax, [(p.latency_ms, p.top1) for p in shown], [p.label for p in shown], obstacles=obstacles)
    _add_caption(fig, caption)
    return fig


def _line_boxes(ax: Any, xs: Sequence[float], ys: Sequence[float], half: float = 1.5) -> list[tuple[float, ...]]:
    """Thin display boxes along a post-step line, so labels keep off it."""
    pts = [tuple(ax.transData.transform(xy)) for xy in zip(xs, ys)]
    boxes = []
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        boxes.append((x0, y0 - half, x1, y0 + half))  # the horizontal run at the left point's height
        boxes.append((x1 - half, min(y0, y1), x1 + half, max(y0, y1)))  # the rise to the next point
    return boxes


BarKey = tuple[str, str, str, str]  # (model, impl, runtime, precision)


def _bar_key(row: dict[str, Any]) -> BarKey:
    return row["model"], row["impl"], _runtime_name(row), row_precision(row)


@dataclass(frozen=True)
class RuntimeBars:
    """The bars of ``runtimes_figure`` in drawing order, one y position per line of the figure: each
    model's header line (bold), then one bar per (implementation, runtime, precision) of it."""

    latency: dict[BarKey, float]  # batch-1 median latency (ms)
    throughput: dict[BarKey, float]  # img/s at batch ``big``
    big: int  # the largest measured batch
    models: list[str]
    ticks: list[float]
    labels: list[str]
    header_rows: list[int]  # indices into ``labels`` of the model headers
    bars: list[tuple[float, BarKey]]
    height: float  # y below the last bar


def runtime_bars(rows: Sequence[dict[str, Any]]) -> RuntimeBars:
    """Order the measured rows for ``runtimes_figure``: EdgeNeXt models first, by published top-1; within
    a model each runtime's rows together (the runtime that ran fastest first), fp32 before reduced
    precisions, and within a precision ours next to timm's."""
    measured = [r for r in rows if _measured(r)]
    if not measured:
        raise ValueError("no measured rows to plot (every row has an error or no latency)")
    big = max(r["batch"] for r in measured)
    latency = {_bar_key(r): r["latency_ms_median"] for r in measured if r["batch"] == 1}
    throughput = {_bar_key(r): r["throughput_img_s"] for r in measured if r["batch"] == big and r.get("throughput_img_s")}
    keys = set(latency) | set(throughput)
    models = sorted({k[0] for k in keys},
                    key=lambda m: (not m.startswith("edgenext"), (published_top1(m) or (math.inf,))[0], m))
    rank = {"fp32": 0, **{p: i + 1 for i, p in enumerate(REDUCED_PRECISIONS)}}
    ticks, labels, header_rows, bars = [], [], [], []
    y = 0.0
    for model in models:
        group = [k for k in keys if k[0] == model]
        fastest = {k[2]: min(latency.get(j, math.inf) for j in group if j[2] == k[2]) for k in group}
        group.sort(key=lambda k: (fastest[k[2]], k[2], rank.get(k[3], len(rank)), k[3], k[1] != "ours", k[1]))
        published = published_top1(model)
        ticks.append(y)
        labels.append(f"{model}" + (f"  (top-1 {published[0]:.1f}%)" if published else "  (no published top-1)"))
        header_rows.append(len(labels) - 1)
        y += 1.0
        for key in group:
            ticks.append(y)
            labels.append(f"{key[1]} · {key[2]} {key[3]}")
            bars.append((y, key))
            y += 1.0
        y += 0.6  # a gap between models
    return RuntimeBars(latency, throughput, big, models, ticks, labels, header_rows, bars, y)


def runtimes_figure(rows: Sequence[dict[str, Any]], machine: dict[str, Any]) -> Any:
    """Every (implementation, runtime, precision) of every model as horizontal bars, grouped by model
    (``runtime_bars``): batch-1 latency on the left, throughput at the largest measured batch on the right."""
    import matplotlib.pyplot as plt

    layout = runtime_bars(rows)
    bars, y = layout.bars, layout.height
    impl_colour = {"ours": "#1f77b4", "timm": "#ff7f0e"}
    caption = _caption(machine, rows, layout.models, 175)
    fig, (left, right) = plt.subplots(1, 2, sharey=True, figsize=(11.0, 1.6 + 0.24 * y), dpi=150)
    fig.subplots_adjust(left=0.25, right=0.97, top=1 - 0.6 / fig.get_figheight(), bottom=_bottom(fig, caption, 0.3),
                        wspace=0.08)
    for ax, values, fmt, title in (
            (left, layout.latency, "{:.1f}", "batch 1: median latency (ms), lower is better"),
            (right, layout.throughput, "{:.0f}", f"batch {layout.big}: throughput (img/s), higher is better")):
        top = max(values.values(), default=1.0)
        for pos, key in bars:
            value = values.get(key)
            if value is None:
                ax.text(0, pos, " not measured", va="center", fontsize=6.5, color="0.5")
                continue
            reduced = key[3] != "fp32"
            colour = impl_colour.get(key[1], "#7f7f7f")
            ax.barh(pos, value, height=0.78, color="white" if reduced else colour, edgecolor=colour,
                    hatch="////" if reduced else None, linewidth=1.0)
            ax.text(value + top * 0.01, pos, fmt.format(value), va="center", fontsize=6.5)
        ax.set_xlim(0, top * 1.14)
        ax.set_title(title, fontsize=9.5)
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(axis="y", length=0)
    left.set_yticks(layout.ticks, layout.labels, fontsize=7.5)
    for index in layout.header_rows:
        left.get_yticklabels()[index].set_fontweight("bold")
    left.set_ylim(y - 0.6, -1.0)  # first model on top
    impls = sorted({key[1] for _, key in bars}, key=lambda i: (i != "ours", i))
    handles = [plt.Rectangle((0, 0), 1, 1, color=impl_colour.get(i, "#7f7f7f"), label=f"{i} fp32") for i in impls]
    if any(key[3] != "fp32" for _, key in bars):
        handles.append(plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="0.3", hatch="////",
                                     label="reduced precision (bf16 / int8), hatched"))
    # above the panels, so that it never covers a bar
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.61, 1.0))
    _add_caption(fig, caption)
    return fig


def _derived(output: Union[str, Path], suffix: str) -> Path:
    output = Path(output)
    return output.with_name(f"{output.stem}_{suffix}{output.suffix or '.png'}")


def plot_summary(rows: Sequence[dict[str, Any]], output: Union[str, Path], machine: dict[str, Any]) -> list[Path]:
    """Write the two bench pictures next to ``output`` and return their paths.

    For ``output="bench.png"``: ``bench_pareto.png`` (published ImageNet-1k top-1 against measured
    batch-1 latency, each model at its fastest fp32 runtime and, hollow, its fastest bf16/int8 one,
    with the fp32 Pareto front; models without a published top-1 are named in the caption only)
    and ``bench_runtimes.png`` (every runtime and precision of every model: batch-1 latency and
    throughput at the largest batch). Rows with an ``error`` are skipped. ``machine`` gives the
    caption's header (``cpu``, ``isa``, ``threads``, ``torch``, ``gemm_peak_gflops``; any may be missing).
    """
    require("matplotlib", "bench", "the bench plots")
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    written = []
    for suffix, build in (("pareto", pareto_figure), ("runtimes", runtimes_figure)):
        fig = build(rows, machine)
        path = _derived(output, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=fig.dpi, bbox_inches="tight", pad_inches=0.15)
        plt.close(fig)
        written.append(path)
    return written
