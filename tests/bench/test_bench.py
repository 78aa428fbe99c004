"""``edgenext bench --quick``: every requested row in the JSON, the table and the plots written,
each candidate timed by a real worker process. No timing assertions: only that every candidate
was measured and reported."""

import contextlib
import io
import json
from dataclasses import replace

import pytest

from edgenext.bench.candidates import RUNTIME_FORMATS, CandidateSpec, runtime_available
from edgenext.bench.report import format_table
from edgenext.bench.run import BenchSettings
from edgenext.bench.timing import Timing, time_calls, time_interleaved
from edgenext.bench.worker import prepare, time_candidate
from edgenext.cli.main import main
from edgenext.deploy.formats import FORMATS
from edgenext.optional import is_installed

KEYS = {"model", "impl", "runtime", "precision", "batch", "latency_ms_median", "latency_ms_p10", "latency_ms_p90",
        "throughput_img_s", "pct_of_peak", "ratio_vs_timm_eager", "ratio_vs_timm_same_runtime", "madds", "cpu",
        "input_size"}


RUNTIMES = ["eager"] + (["onnxruntime"] if FORMATS["onnx"].installed else [])


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    """One ``edgenext bench --quick`` run, its printed JSON and its folder: every worker process
    (a Python + torch start each) and every export is paid once for the tests below."""
    tmp = tmp_path_factory.mktemp("bench")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        # no peers of their own: test_isolation's fake workers cover a peer's rows and ratios, and the
        # dense bench (tests/dense/test_export_bench.py) times real peers
        rc = main(["bench", "--quick", "--input-size", "32", "64", "--models", "edgenext_xx_small", "--peers", "none",
                   "--runtimes", ",".join(RUNTIMES), "--peer-runtimes", "eager", "--batches", "1,2", "--threads", "1",
                   "--precisions", "fp32", "--plot", str(tmp / "plot.png"), "--json",
                   "--save-json", str(tmp / "rows.json"), "--workdir", str(tmp / "work")])
    return rc, printed.getvalue(), tmp


@pytest.mark.slow
def test_bench_quick_json_has_every_row(quick_bench):
    rc, out, tmp_path = quick_bench
    assert rc == 0
    rows = json.loads(out)
    assert rows == json.loads((tmp_path / "rows.json").read_text())
    # timm's EdgeNeXt of the same size runs in every runtime of ours it supports
    expected = {("edgenext_xx_small", impl, r, b) for impl in ("ours", "timm") for r in RUNTIMES for b in (1, 2)}
    assert {(r["model"], r["impl"], r["runtime"], r["batch"]) for r in rows} == expected
    for row in rows:
        assert KEYS <= row.keys() and not row.get("error") and row["precision"] == "fp32"
        assert row["input_size"] == [32, 64] and row["cpu"] and row["rounds"] == 1
        # one round: its median is the spread's both ends
        assert row["latency_ms_median"] > 0 and row["latency_ms_p10"] == row["latency_ms_p90"] == row["latency_ms_median"]
        assert row["throughput_img_s"] > 0 and row["ratio_vs_timm_eager"] > 0 and row["madds"] > 0
        assert row["pct_of_peak"] > 0 and row["ratio_vs_timm_same_runtime"] > 0
    timm_eager = [r for r in rows if r["impl"] == "timm" and r["runtime"] == "eager"]
    assert all(r["ratio_vs_timm_eager"] == 1.0 == r["ratio_vs_timm_same_runtime"] for r in timm_eager)
    machine = json.loads((tmp_path / "rows.machine.json").read_text())
    assert machine["gemm_peak_gflops"]["fp32"] > 0 and machine["threads"] == 1
    for name in ("plot_pareto.png", "plot_runtimes.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    assert "vs timm" in format_table(rows)


@pytest.mark.slow
@pytest.mark.skipif(not FORMATS["onnx"].installed, reason="onnxruntime is not installed")
def test_exports_are_written_once_then_only_loaded(quick_bench):
    work = quick_bench[2] / "work"
    spec = CandidateSpec("edgenext_xx_small", "ours", "onnxruntime", input_size=(32, 64), threads=1,
                         schedule=((1, 0, 2), (2, 0, 1)), workdir=str(work))
    path = spec.export_path(1)
    assert spec.export_path(2) == path  # a dynamic batch: one file for every batch
    # the bench's preparation wrote one file per model (its rows at batch 1 and 2 ran from it)
    assert sorted(p.name for p in work.glob("*.onnx")) == sorted([path.name, replace(spec, impl="timm").export_path(1).name])
    stamp = path.stat().st_mtime_ns
    again = prepare([spec.to_json()])
    assert again == [{"madds": again[0]["madds"], "errors": {}}] and again[0]["madds"] > 0
    assert path.stat().st_mtime_ns == stamp  # found, not written again
    result = time_candidate(spec.to_json())
    assert not result["errors"] and [len(result["times_ms"][b]) for b in ("1", "2")] == [2, 1]


def test_quick_leaves_out_torch_compile():
    runtimes = ("eager", "compiled", "fused")
    assert BenchSettings(runtimes=runtimes, quick=True).measured_runtimes == ("eager", "fused")
    assert BenchSettings(runtimes=runtimes).measured_runtimes == runtimes


def test_runtimes_outside_torch_follow_the_export_formats():
    assert set(RUNTIME_FORMATS.values()) <= set(FORMATS)
    from edgenext.deploy.formats.openvino import telemetry_off

    with telemetry_off():  # is_installed imports each package: openvino's import would send an event
        for runtime, fmt in RUNTIME_FORMATS.items():
            assert runtime_available(runtime) == is_installed(FORMATS[fmt].module)
    assert runtime_available("eager") and runtime_available("fused")


def test_bench_rejects_bad_settings(capsys):
    assert main(["bench", "--quick", "--runtimes", "tflite", "--peers", "none"]) == 2
    assert "unknown runtimes" in capsys.readouterr().err
    assert main(["bench", "--quick", "--fp16", "--peers", "none"]) == 2
    assert main(["bench", "--quick", "--peer-runtimes", "fused", "--peers", "none"]) == 2
    assert "peer runtimes ['fused']" in capsys.readouterr().err
    assert main(["bench", "--quick", "--rounds", "0", "--peers", "none"]) == 2
    assert "rounds must be >= 1" in capsys.readouterr().err


def test_interleaved_timing_statistics():
    calls = [lambda: sum(range(100)), lambda: None]
    timings = time_interleaved(calls, warmup=1, runs=7)
    assert len(timings) == 2 and all(len(t.times_ms) == 7 for t in timings)
    t = Timing((1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0))
    assert t.median == 6.0 and t.p90 == 10.0
    with pytest.raises(ValueError):
        time_interleaved(calls, warmup=0, runs=0)
    assert len(time_calls(calls[0], warmup=2, runs=4)) == 4
    with pytest.raises(ValueError):
        time_calls(calls[0], warmup=-1, runs=1)
