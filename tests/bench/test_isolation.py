"""The bench's isolation engine: a candidate timed in its own process, rounds whose order rotates,
the statistics of the rounds, the machine header, % of peak, precision rows. The end-to-end
checks replace the worker processes by a fake (``run_isolated``) that returns chosen timings,
so they assert the arithmetic exactly and take no time; one test starts a real worker."""

import json
import os

import pytest

from edgenext.bench import candidates as candidates_mod
from edgenext.bench import run as run_mod
from edgenext.bench.candidates import CandidateSpec, precision_absent
from edgenext.bench.isolate import IsolatedError, run_isolated
from edgenext.bench.peak import gemm_peak
from edgenext.bench.report import format_header, format_table, machine_path
from edgenext.bench.run import bench_settings, machine_info, pct_of_peak, run_bench
from edgenext.bench.timing import percentile, round_orders, summarize_rounds
from edgenext.bench.worker import time_candidate
from edgenext.cli.main import main
from edgenext.hardware import ISA_FEATURES
from edgenext.tasks.efficiency import bench_plan

KEYS = {"model", "impl", "runtime", "precision", "batch", "latency_ms_median", "latency_ms_p10", "latency_ms_p90",
        "throughput_img_s", "pct_of_peak", "ratio_vs_timm_eager", "ratio_vs_timm_same_runtime", "madds", "cpu",
        "input_size", "threads"}
NO_BF16 = "this test's CPU has no native bf16"


def test_worker_times_a_candidate_in_its_own_process_with_its_threads():
    spec = CandidateSpec("edgenext_xx_small", "ours", "eager", input_size=(32, 32), threads=1,
                         schedule=((1, 1, 3), (2, 0, 2)))
    result = run_isolated("edgenext.bench.worker:time_candidate", {"spec": spec.to_json()}, threads=1, timeout=300)
    assert result["pid"] != os.getpid()
    assert result["threads"] == 1
    assert not result["errors"]
    assert [len(result["times_ms"][b]) for b in ("1", "2")] == [3, 2]
    assert all(t > 0 for times in result["times_ms"].values() for t in times)


def test_worker_reports_a_missing_export_per_batch(tmp_path):
    spec = CandidateSpec("edgenext_xx_small", "ours", "onnxruntime", input_size=(32, 32), threads=1,
                         schedule=((1, 0, 1),), workdir=str(tmp_path))
    result = time_candidate(spec.to_json())
    assert result["times_ms"] == {} and "was not exported" in result["errors"]["1"]


def test_spec_round_trips_through_json_and_names_its_export_file(tmp_path):
    spec = CandidateSpec("mobilevit_xxs", "timm", "executorch", "int8", input_size=(64, 32),
                         schedule=((1, 2, 3), (4, 1, 1)), workdir=str(tmp_path))
    back = CandidateSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back == spec and back.batches == (1, 4)
    # static-batch programs: one file per batch; the precision and the size are in the name
    assert spec.export_path(1) != spec.export_path(4) and "int8" in spec.export_path(1).name
    assert spec.export_path(1).parent == tmp_path and "64x32" in spec.export_path(1).name
    assert CandidateSpec("m", "ours", "eager").export_path(1) is None


def test_rounds_rotate_and_alternate():
    orders = round_orders(6, 3)
    assert orders == [[0, 1, 2, 3, 4, 5], [1, 0, 5, 4, 3, 2], [4, 5, 0, 1, 2, 3]]
    assert all(sorted(o) == list(range(6)) for o in orders)
    assert len({o[0] for o in orders}) == 3  # nobody starts every round
    assert round_orders(3, 1) == [[0, 1, 2]] and round_orders(0, 2) == [[], []]
    with pytest.raises(ValueError):
        round_orders(3, 0)


def test_round_statistics():
    stats = summarize_rounds([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 100.0], [7.0, 8.0, 9.0]])
    # median of all 10 calls; p10 / p90 of the per-round medians 2, 5.5, 8
    assert stats["median"] == 5.5 and stats["rounds"] == 3 and stats["calls"] == 10
    assert stats["p10"] == pytest.approx(2.7) and stats["p90"] == pytest.approx(7.5)
    one = summarize_rounds([[3.0, 1.0, 2.0]])
    assert one["median"] == one["p10"] == one["p90"] == 2.0
    assert percentile([10.0, 0.0], 50) == 5.0
    with pytest.raises(ValueError):
        summarize_rounds([[], []])


def test_pct_of_peak_arithmetic():
    # 2 x 1 GMAdds x batch 2 in 100 ms = 40 GFLOP/s = 40 % of 100 GFLOP/s
    assert pct_of_peak(1_000_000_000, 2, 100.0, 100.0) == 40.0
    assert pct_of_peak(None, 1, 1.0, 100.0) is None and pct_of_peak(10, 1, 1.0, None) is None


def test_gemm_peak_is_measured():
    assert gemm_peak("fp32", size=64, repeats=2) > 0
    with pytest.raises(ValueError, match="int4"):
        gemm_peak("int4")


def test_machine_header_fields():
    info = machine_info(bench_settings(threads=3), peaks={"fp32": 123.4})
    assert info["cpu"] and info["cores"] >= 1 and info["threads"] == 3 and info["torch"]
    assert set(info["isa"]) == set(ISA_FEATURES) and info["gemm_peak_gflops"] == {"fp32": 123.4}
    assert "fp32 peak" in info["peak_note"] and info["bf16_note"] and info["int8_note"]
    header = format_header(info, [])
    assert info["cpu"] in header and "3 threads" in header and "fp32 123" in header


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setattr(candidates_mod, "native_bf16", lambda: (False, NO_BF16))
    monkeypatch.setattr(run_mod.hardware, "native_bf16", lambda: (False, NO_BF16))


class FakeWorkers:
    """Stands in for the worker processes: each candidate takes ``base[model, impl, runtime]`` ms
    per call, times the round (1, 2, 3, ...); ``fail`` raises like a crashed worker."""

    def __init__(self, base, fail=()):
        self.base, self.fail, self.order, self.rounds = base, set(fail), [], {}

    def __call__(self, target, kwargs, *, threads=None, timeout=None, preload=()):
        if target.endswith(":prepare"):
            return [{"madds": 1_000_000, "errors": {}} for _ in kwargs["specs"]]
        spec = CandidateSpec.from_json(kwargs["spec"])
        key = (spec.model, spec.impl, spec.runtime)
        self.order.append(key)
        r = self.rounds[key] = self.rounds.get(key, 0) + 1
        if key in self.fail:
            raise IsolatedError(f"{target} failed in its worker process: RuntimeError: boom\nTraceback ...")
        times = {str(b): [self.base[key] * r * b] * runs for b, _, runs in spec.schedule}
        return {"pid": 1, "threads": threads, "times_ms": times, "errors": {}}


def _settings(**given):
    values = dict(models=("edgenext_xx_small",), peers=("mobilevit_xxs",), runtimes=("eager", "fused"),
                  peer_runtimes=("eager",), batches=(1, 2), input_size=32, threads=1, rounds=3,
                  precisions=("fp32", "bf16"))
    return bench_settings(**{**values, **given})


BASE = {("edgenext_xx_small", "ours", "eager"): 4.0, ("edgenext_xx_small", "ours", "fused"): 2.0,
        ("edgenext_xx_small", "timm", "eager"): 8.0, ("mobilevit_xxs", "timm", "eager"): 10.0}


def test_rows_from_rounds_of_fake_workers(monkeypatch, no_bf16, tmp_path):
    fake = FakeWorkers(BASE, fail={("mobilevit_xxs", "timm", "eager")})
    monkeypatch.setattr(run_mod, "run_isolated", fake)
    rows = run_bench(_settings(), workdir=tmp_path, machine={"cpu": "test CPU", "gemm_peak_gflops": {"fp32": 10.0}})
    live = [("edgenext_xx_small", "ours", "eager"), ("edgenext_xx_small", "ours", "fused"),
            ("edgenext_xx_small", "timm", "eager"), ("mobilevit_xxs", "timm", "eager")]
    # three rounds, each candidate once per round, the order rotated and reversed
    assert fake.order == [live[i] for order in round_orders(4, 3) for i in order]
    got = {(r["model"], r["impl"], r["runtime"], r["precision"], r["batch"]): r for r in rows}
    expected = {(*key, "fp32", b) for key in live for b in (1, 2)}
    # bf16 exists for eager PyTorch only: those rows say why they are absent on this CPU
    expected |= {(m, i, "eager", "bf16", b) for m, i in (("edgenext_xx_small", "ours"), ("edgenext_xx_small", "timm"),
                                                         ("mobilevit_xxs", "timm")) for b in (1, 2)}
    assert set(got) == expected and len(rows) == len(expected)
    for row in rows:
        assert KEYS <= row.keys() and row["cpu"] == "test CPU"
    for key in got:
        if key[3] == "bf16":
            assert got[key]["absent"] and got[key]["error"] == NO_BF16 and got[key]["latency_ms_median"] is None
    failed = got["mobilevit_xxs", "timm", "eager", "fp32", 1]
    assert "boom" in failed["error"] and failed["latency_ms_median"] is None
    ours = got["edgenext_xx_small", "ours", "eager", "fp32", 2]
    # rounds 1, 2, 3 at 4 ms x round x batch: per-round medians 8, 16, 24
    assert ours["latency_ms_median"] == 16.0 and ours["rounds"] == 3
    assert ours["latency_ms_p10"] == pytest.approx(9.6) and ours["latency_ms_p90"] == pytest.approx(22.4)
    assert ours["throughput_img_s"] == 125.0
    assert ours["pct_of_peak"] == pytest.approx(100 * 2 * 1e6 * 2 / 16e-3 / 10e9, abs=0.01)
    assert ours["ratio_vs_timm_eager"] == 2.0 and ours["ratio_vs_timm_same_runtime"] == 2.0
    fused = got["edgenext_xx_small", "ours", "fused", "fp32", 1]
    assert fused["ratio_vs_timm_eager"] == 4.0 and fused["ratio_vs_timm_same_runtime"] is None
    timm = got["edgenext_xx_small", "timm", "eager", "fp32", 1]
    assert timm["ratio_vs_timm_eager"] == 1.0 and timm["ratio_vs_timm_same_runtime"] == 1.0
    table = format_table(rows)
    assert "% peak" in table and "same rt" in table and f"absent: {NO_BF16}" in table and "boom" in table


def test_cli_json_stays_a_list_and_the_machine_goes_beside_it(monkeypatch, no_bf16, tmp_path, capsys):
    monkeypatch.setattr(run_mod, "run_isolated", FakeWorkers(BASE))
    monkeypatch.setattr(run_mod, "measure_peaks", lambda precisions, threads, **_: {p: 50.0 for p in precisions})
    monkeypatch.setattr("edgenext.cli.bench._plot", lambda rows, output, machine: [])
    out = tmp_path / "rows.json"
    rc = main(["bench", "--input-size", "32", "--peers", "none", "--runtimes", "eager", "--peer-runtimes", "eager",
               "--batches", "1", "--threads", "1", "--rounds", "2", "--precisions", "fp32", "--json", "--save-json", str(out)])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert isinstance(rows, list) and rows == json.loads(out.read_text())
    assert {(r["impl"], r["precision"], r["rounds"]) for r in rows} == {("ours", "fp32", 2), ("timm", "fp32", 2)}
    machine = json.loads(machine_path(out).read_text())
    assert machine["gemm_peak_gflops"] == {"fp32": 50.0} and machine["threads"] == 1 and machine["rounds"] == 2
    assert all(r["pct_of_peak"] > 0 for r in rows)


def test_precision_choices(no_bf16):
    assert precision_absent("eager", "fp32") is None
    assert precision_absent("eager", "bf16") == NO_BF16
    assert "CPU only" in precision_absent("eager", "bf16", device="cuda")
    s = bench_settings(runtimes=("eager", "executorch-int8"), precisions=("fp32",))
    assert s.runtimes == ("eager", "executorch") and s.measured_precisions == ("fp32", "int8")
    assert bench_settings(peer_runtimes=("all",)).peer_runtimes == bench_plan("classify").peer_runtimes
    assert "bf16" not in run_mod.default_precisions()
    assert bench_settings("detect").measured_precisions == ("fp32",)
    with pytest.raises(ValueError, match="unknown precisions"):
        run_mod.check_settings(bench_settings(precisions=("fp8",)))


def test_cli_train_passes_its_settings_and_prints_the_rows(monkeypatch, no_bf16, capsys):
    import edgenext.bench.train_step as train_step

    seen = {}

    def fake_bench_train(models, **kwargs):
        seen.update(kwargs, models=models)
        return [{"model": models[0], "impl": impl, "precision": "fp32", "batch": kwargs["batch"], "input_size": [64, 64],
                 "throughput_img_s": rate, "ratio_vs_timm": rate / 10.0, "p10_img_s": rate, "p90_img_s": rate}
                for impl, rate in (("ours", 13.0), ("timm", 10.0))]

    monkeypatch.setattr(train_step, "bench_train", fake_bench_train)
    assert main(["bench", "--train", "--batches", "1,8", "--input-size", "64", "--threads", "1", "--rounds", "2",
                 "--steps", "4"]) == 0
    assert seen == {"models": ("edgenext_xx_small",), "batch": 8, "input_size": (64, 64), "threads": 1, "steps": 4,
                    "rounds": 2, "precisions": ("fp32",), "quick": False, "device": "cpu"}
    table = capsys.readouterr().out
    assert "1.30x" in table and "13.0" in table
