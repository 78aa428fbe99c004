"""The bench's pictures: the Pareto front and best-runtime choice are right, reduced precision is hollow,
labels never overlap (measured with the renderer), unpublished models stay off the accuracy plot."""

import itertools
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from edgenext.bench.plot import (  # noqa: E402
    PUBLISHED_TOP1,
    Point,
    best_points,
    machine_header,
    pareto_figure,
    pareto_front,
    place_labels,
    plot_summary,
    runtimes_figure,
    text_box,
)

MACHINE = {"cpu": "Test CPU 9000", "isa": {"avx2": True, "avx512f": True, "avx512_bf16": False}, "threads": 2,
           "torch": "2.0", "gemm_peak_gflops": {"fp32": 123.4}}


def row(model, impl, runtime, batch, ms, precision=None, **extra):
    r = {"model": model, "impl": impl, "runtime": runtime, "batch": batch, "input_size": 256, "threads": 2,
         "latency_ms_median": ms, "latency_ms_p90": ms and ms * 1.1, "throughput_img_s": ms and 1000.0 * batch / ms,
         "cpu": "Row CPU"}
    if precision:
        r["precision"] = precision
    r.update(extra)
    return r


def crowded_rows():
    """Many models and runtimes with latencies close together: a hard case for the labels."""
    rows = []
    runtimes = ("eager", "fused", "onnxruntime", "openvino", "executorch")
    models = ("edgenext_xx_small", "edgenext_x_small", "edgenext_small", "edgenext_xx_small_bn_hs",
              "edgenext_x_small_bn_hs")
    for i, model in enumerate(models):
        for j, runtime in enumerate(runtimes):
            for impl, slower in (("ours", 1.0), ("timm", 1.15)):
                if impl == "timm" and model.endswith("bn_hs"):
                    continue
                rows.append(row(model, impl, runtime, 1, (20 + 3 * i + j) * slower))
                rows.append(row(model, impl, runtime, 32, (500 + 60 * i + 20 * j) * slower))
            rows.append(row(model, "ours", "openvino", 1, 15 + 2.5 * i, "bf16"))
            rows.append(row(model, "ours", "onnxruntime", 1, 18 - 4 * (i % 2) + 2.5 * i, "int8"))
    for k, peer in enumerate(("mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilenetv3_large_100")):
        rows.append(row(peer, "timm", "onnxruntime", 1, 22 + 5 * k))
        rows.append(row(peer, "timm", "eager", 1, 40 + 9 * k))
        rows.append(row(peer, "timm", "onnxruntime", 32, 700 + 90 * k))
    rows.append(row("resnet18", "timm", "onnxruntime", 1, 30.0))
    rows.append(row("edgenext_xx_small", "ours", "executorch", 32, None, "int8", error="static batch-1 program"))
    return rows


def pairwise_overlaps(boxes):
    return [(a, b) for a, b in itertools.combinations(range(len(boxes)), 2) if boxes[a].overlaps(boxes[b])]


def test_best_points_picks_the_fastest_runtime_per_model_and_precision():
    rows = [
        row("edgenext_xx_small", "ours", "eager", 1, 40.0),
        row("edgenext_xx_small", "ours", "onnxruntime", 1, 20.0),
        row("edgenext_xx_small", "ours", "openvino", 1, 22.0),
        row("edgenext_xx_small", "ours", "openvino", 1, 12.0, "bf16"),
        row("edgenext_xx_small", "ours", "onnxruntime", 1, 14.0, "int8"),
        row("edgenext_xx_small", "ours", "fused", 1, 5.0, error="crashed"),  # errors never win
        row("edgenext_xx_small", "ours", "fused", 32, 1.0),  # another batch
        row("edgenext_xx_small", "timm", "eager", 1, 30.0),
        row("edgenext_xx_small", "timm", "executorch-int8", 1, 25.0),  # a pre-`precision` row
        row("mobilevit_xxs", "timm", "onnxruntime", 1, 35.0),
    ]
    got = {(p.model, p.impl, p.precision): (p.runtime, p.latency_ms) for p in best_points(rows)}
    assert got == {
        ("edgenext_xx_small", "ours", "fp32"): ("onnxruntime", 20.0),
        ("edgenext_xx_small", "ours", "bf16"): ("openvino", 12.0),
        ("edgenext_xx_small", "timm", "fp32"): ("eager", 30.0),
        ("edgenext_xx_small", "timm", "int8"): ("executorch", 25.0),
        ("mobilevit_xxs", "timm", "fp32"): ("onnxruntime", 35.0),
    }
    assert [p.series for p in best_points(rows) if p.impl == "timm"][0] == "timm edgenext_xx_small"


def test_pareto_front_is_the_set_nothing_beats():
    p = {name: Point(model, "ours", "eager", "fp32", ms) for name, model, ms in (
        ("a", "mobilevit_xxs", 10.0),          # 69.0, fastest: on the front
        ("b", "edgenext_xx_small", 12.0),      # 71.23: on
        ("c", "mobilevit_xs", 13.0),           # 74.8: on
        ("d", "edgenext_xx_small_bn_hs", 14.0),  # 70.33: slower and worse than b
        ("e", "mobilenetv3_large_100", 20.0),  # 75.2: on
        ("f", "edgenext_x_small", 25.0),       # 74.96: beaten by e
        ("g", "edgenext_small", 40.0),         # 79.41: on
        ("h", "mobilevit_s", 40.0),            # 78.4 at the same latency as g: beaten
        ("i", "resnet18", 5.0),                # no published top-1: ignored
    )}
    p["j"] = Point("edgenext_small", "timm", "eager", "fp32", 45.0)  # same top-1 as g, slower: beaten
    front = pareto_front(list(p.values()))
    assert front == [p["a"], p["b"], p["c"], p["e"], p["g"]]


def test_reduced_precision_is_hollow_and_fp32_filled():
    fig = pareto_figure(crowded_rows(), MACHINE)
    ax = fig.axes[0]
    points = {c.get_gid(): c for c in ax.collections if (c.get_gid() or "").startswith("point:")}
    assert any(g.endswith(":bf16") for g in points) and any(g.endswith(":int8") for g in points)
    for gid, artist in points.items():
        filled = len(artist.get_facecolors()) > 0 and artist.get_facecolors()[0][3] > 0
        assert filled == gid.endswith(":fp32"), gid
    plt.close(fig)


def test_unpublished_models_stay_off_the_pareto_plot_but_are_named_and_in_the_bars():
    rows = crowded_rows()
    fig = pareto_figure(rows, MACHINE)
    ax = fig.axes[0]
    assert "resnet18" not in PUBLISHED_TOP1
    assert not any("resnet18" in (c.get_gid() or "") for c in ax.collections)
    assert not any("resnet18" in t.get_text() for t in ax.texts)
    caption = " ".join(t.get_text() for t in fig.texts)
    assert "no published top-1): resnet18" in caption.replace("\n", " ")
    assert "Howard et al., ICCV 2019" in caption.replace("\n", " ") and "Test CPU 9000" in caption
    plt.close(fig)
    bars = runtimes_figure(rows, MACHINE)
    assert any(t.get_text().startswith("resnet18") for t in bars.axes[0].get_yticklabels())
    plt.close(bars)


def test_place_labels_never_overlaps_on_a_crowded_set():
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    anchors = [(4 + 0.35 * (i % 4), 4 + 0.4 * (i // 4)) for i in range(14)]
    texts = [f"model_{i}\nruntime {'x' * (i % 5)}" for i in range(14)]
    fig.canvas.draw()
    labels = place_labels(ax, anchors, texts)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [text_box(a, renderer) for a in labels]
    assert [a.get_text() for a in labels] == texts
    assert pairwise_overlaps(boxes) == []
    frame = ax.get_window_extent(renderer)
    assert all(frame.contains(b.x0, b.y0) and frame.contains(b.x1, b.y1) for b in boxes)
    plt.close(fig)


def test_place_labels_wants_one_text_per_anchor():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="2 anchors but 1 texts"):
        place_labels(ax, [(0, 0), (1, 1)], ["one"])
    plt.close(fig)


def test_pareto_labels_do_not_overlap_and_ticks_are_plain_numbers():
    fig = pareto_figure(crowded_rows(), MACHINE)
    ax = fig.axes[0]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    labels = [t for t in ax.texts if t.get_text()]
    assert len(labels) == len([c for c in ax.collections if (c.get_gid() or "").startswith("point:")]) > 10
    assert pairwise_overlaps([text_box(t, renderer) for t in labels]) == []
    ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert len(ticks) >= 3 and all(re.fullmatch(r"\d+(\.\d+)?", t) for t in ticks), ticks
    plt.close(fig)


def test_plot_summary_writes_both_pictures(tmp_path):
    few = [r for r in crowded_rows() if r["model"] in ("edgenext_xx_small", "mobilevit_xxs", "resnet18")]
    paths = plot_summary(few, tmp_path / "out" / "bench.png", MACHINE)
    assert [p.name for p in paths] == ["bench_pareto.png", "bench_runtimes.png"]
    for path in paths:
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 500 and image.shape[1] > 1000
        assert image[..., :3].std() > 0.05  # not a blank canvas


def test_machine_header_tolerates_missing_keys():
    rows = [row("edgenext_xx_small", "ours", "eager", 1, 10.0)]
    assert machine_header({}, rows) == "Row CPU | 2 threads | input 256x256"
    full = machine_header(MACHINE, rows)
    assert full.startswith("Test CPU 9000 | ISA: avx2, avx512f | 2 threads | torch 2.0 | GEMM peak 123 GFLOP/s fp32")


def test_edgenext_s_and_b_get_a_second_point_for_their_usi_weights():
    rows = [row("edgenext_small", "ours", "onnxruntime", 1, 10.0), row("edgenext_small", "timm", "onnxruntime", 1, 12.0),
            row("edgenext_xx_small", "ours", "onnxruntime", 1, 3.0)]
    points = best_points(rows)
    usi = [p for p in points if p.weights]
    # ours only (timm's row is the same network), at the same latency, with the USI release's top-1
    assert [(p.model, p.impl, p.latency_ms, p.top1) for p in usi] == [("edgenext_small", "ours", 10.0, 81.07)]
    assert usi[0].series == "edgenext_small (USI weights)"
    plain = next(p for p in points if p.model == "edgenext_small" and p.impl == "ours" and not p.weights)
    assert plain.top1 == 79.41 and pareto_front(points)[-1] is usi[0]
