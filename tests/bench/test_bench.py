"""``edgenext bench --quick``: every requested row in the JSON, the table and the plot written.
No timing assertions: only that every candidate was measured and reported."""

import json

import pytest

from edgenext.bench.candidates import RUNTIME_FORMATS, runtime_available
from edgenext.bench.report import format_table
from edgenext.bench.run import BenchSettings
from edgenext.bench.timing import Timing, time_interleaved
from edgenext.cli.main import main
from edgenext.deploy.formats import FORMATS
from edgenext.optional import is_installed

KEYS = {"model", "impl", "runtime", "batch", "latency_ms_median", "latency_ms_p90", "throughput_img_s",
        "ratio_vs_timm_eager", "madds", "cpu", "input_size"}


def test_bench_quick_json_has_every_row(tmp_path, capsys):
    runtimes = ["eager", "fused"] + (["onnxruntime"] if is_installed("onnxruntime") else [])
    plot = tmp_path / "plot.png"
    rc = main(["bench", "--quick", "--input-size", "32", "64", "--models", "edgenext_xx_small", "--peers", "mobilevit_xxs",
               "--runtimes", ",".join(runtimes), "--peer-runtimes", "eager", "--batches", "1,2", "--threads", "1",
               "--plot", str(plot), "--json", "--save-json", str(tmp_path / "rows.json")])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == json.loads((tmp_path / "rows.json").read_text())
    expected = {("edgenext_xx_small", "ours", r, b) for r in runtimes for b in (1, 2)}
    # timm's EdgeNeXt of the same size runs in every runtime of ours it supports
    expected |= {("edgenext_xx_small", "timm", r, b) for r in ("eager", "onnxruntime") if r == "eager" or r in runtimes
                 for b in (1, 2)}
    expected |= {("mobilevit_xxs", "timm", "eager", b) for b in (1, 2)}
    assert {(r["model"], r["impl"], r["runtime"], r["batch"]) for r in rows} == expected
    for row in rows:
        assert KEYS <= row.keys() and not row.get("error")
        assert row["input_size"] == [32, 64] and row["cpu"]
        assert row["latency_ms_median"] > 0 and row["latency_ms_p90"] >= row["latency_ms_median"]
        assert row["throughput_img_s"] > 0 and row["ratio_vs_timm_eager"] > 0 and row["madds"] > 0
    timm_eager = [r for r in rows if r["impl"] == "timm" and r["runtime"] == "eager" and r["model"].startswith("edgenext")]
    assert all(r["ratio_vs_timm_eager"] == 1.0 for r in timm_eager)
    assert plot.stat().st_size > 10_000 and plot.read_bytes()[:4] == b"\x89PNG"
    assert "vs timm" in format_table(rows)


def test_quick_leaves_out_torch_compile():
    runtimes = ("eager", "compiled", "fused")
    assert BenchSettings(runtimes=runtimes, quick=True).measured_runtimes == ("eager", "fused")
    assert BenchSettings(runtimes=runtimes).measured_runtimes == runtimes


def test_runtimes_outside_torch_follow_the_export_formats():
    assert set(RUNTIME_FORMATS.values()) <= set(FORMATS)
    for runtime, fmt in RUNTIME_FORMATS.items():
        assert runtime_available(runtime) == is_installed(FORMATS[fmt].module)
    assert runtime_available("eager") and runtime_available("fused")


def test_bench_rejects_bad_settings(capsys):
    assert main(["bench", "--quick", "--runtimes", "tflite", "--peers", "none"]) == 2
    assert "unknown runtimes" in capsys.readouterr().err
    assert main(["bench", "--quick", "--fp16", "--peers", "none"]) == 2


def test_interleaved_timing_statistics():
    calls = [lambda: sum(range(100)), lambda: None]
    timings = time_interleaved(calls, warmup=1, runs=7)
    assert len(timings) == 2 and all(len(t.times_ms) == 7 for t in timings)
    t = Timing((1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0))
    assert t.median == 6.0 and t.p90 == 10.0
    with pytest.raises(ValueError):
        time_interleaved(calls, warmup=0, runs=0)
