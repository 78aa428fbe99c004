"""The default bench is a short run that says what it left out; ``--full`` is the whole sweep; a
run stopped half-way and started again with the same ``--workdir`` times only what is left; a
model whose export worker dies still gets its other candidates; progress without a terminal is
logged with an estimate. Worker processes are replaced by a fake that counts its calls."""

import json
import logging

import pytest

from edgenext import hardware
from edgenext.bench import run as run_mod
from edgenext.bench.candidates import CandidateSpec
from edgenext.bench.isolate import IsolatedError, _exit_reason, _informative
from edgenext.bench.peak import DEFAULT_SIZE, gemm_peaks, onnxruntime_gemm_peak
from edgenext.bench.progress import PhaseProgress
from edgenext.bench.run import SLOW_TO_PREPARE, TIMINGS_FILE, bench_settings, run_bench
from edgenext.cli.main import main
from edgenext.deploy.formats import FORMATS
from edgenext.tasks.efficiency import bench_plan

MACHINE = {"cpu": "test CPU", "gemm_peak_gflops": {"fp32": 10.0}}


class CountingWorkers:
    """Every timing worker answers 2 ms per call; ``die`` lists candidate labels whose timing worker dies,
    ``die_preparing`` labels whose export worker dies whenever it is among the worker's specs."""

    def __init__(self, die=(), die_preparing=()):
        self.die, self.die_preparing = set(die), set(die_preparing)
        self.timed, self.prepared = [], []

    def __call__(self, target, kwargs, *, threads=None, timeout=None, preload=()):
        if target.endswith(":prepare"):
            specs = [CandidateSpec.from_json(s) for s in kwargs["specs"]]
            self.prepared.append([s.label for s in specs])
            if any(s.label in self.die_preparing for s in specs):
                raise IsolatedError(f"{target}: the worker process died (killed by SIGSEGV (exit code -11))")
            return [{"madds": 1_000_000, "errors": {}} for _ in specs]
        spec = CandidateSpec.from_json(kwargs["spec"])
        self.timed.append(spec.label)
        if spec.label in self.die:
            raise IsolatedError(f"{target}: the worker process died (exit code 1)")
        return {"pid": 1, "threads": threads, "times_ms": {str(b): [2.0] * runs for b, _, runs in spec.schedule},
                "errors": {}}


def test_the_default_run_leaves_out_the_slow_parts_and_names_the_flags_that_add_them():
    plan = bench_plan("classify")
    short = bench_settings()
    assert not set(short.runtimes) & set(SLOW_TO_PREPARE) and "onnxruntime" in short.runtimes
    assert short.peers == plan.short_peers and set(short.peers) < set(plan.peers)
    assert short.peer_runtimes == plan.short_peer_runtimes and short.round_count == 2
    text = " ".join(short.left_out)
    for flag in ("--runtimes", "--peers", "--peer-runtimes", "--rounds 3", "--full", "compiled", "executorch",
                 "mobilevit_s"):
        assert flag in text
    full = bench_settings(full=True)
    assert full.runtimes == plan.runtimes and full.peers == plan.peers and full.round_count == 3
    assert full.peer_runtimes == plan.default_peer_runtimes and full.left_out == ()
    # what the user names is measured, and not reported as left out
    given = bench_settings(runtimes=("eager", "executorch"), peers=("mobilevit_s",), peer_runtimes=("eager",), rounds=3)
    assert given.runtimes == ("eager", "executorch") and given.peers == ("mobilevit_s",) and given.left_out == ()
    # a batch-1 worker times enough calls for >= 60 over the rounds
    assert short.runs(1)[1] * short.round_count >= 60 and full.runs(1)[1] * full.round_count >= 60


def test_cli_prints_what_the_default_run_left_out(monkeypatch, capsys):
    monkeypatch.setattr(run_mod, "run_isolated", CountingWorkers())
    monkeypatch.setattr(run_mod, "measure_peaks", lambda precisions, threads, **_: {p: 50.0 for p in precisions})
    monkeypatch.setattr("edgenext.cli.bench._plot", lambda rows, output, machine: [])
    # the default selection (models, peers, runtimes), small sizes so that the fake's rows stay few
    assert main(["bench", "--input-size", "32", "--batches", "1", "--precisions", "fp32"]) == 0
    out, err = capsys.readouterr()
    left = [line for line in out.splitlines() if line.startswith("left out: ")]
    assert len(left) == len(bench_settings().left_out) >= 3 and any("--full" in line for line in left)
    # the phases and what was left out, on stderr as the run starts (no terminal here: log lines)
    assert "phase 1/2: exports" in err and "phase 2/2: timing" in err and "about" in err and "left out of this run" in err
    assert "mobilevit_s " not in out and "executorch" not in out.split("left out")[0]


def test_a_run_started_again_with_its_workdir_times_only_what_is_left(monkeypatch, tmp_path):
    settings = bench_settings(models=("edgenext_xx_small",), peers=("mobilevit_xxs",), runtimes=("eager", "fused"),
                              peer_runtimes=("eager",), batches=(1,), input_size=32, rounds=2, precisions=("fp32",))
    labels = {"ours/edgenext_xx_small/eager/fp32", "ours/edgenext_xx_small/fused/fp32",
              "timm/edgenext_xx_small/eager/fp32", "timm/mobilevit_xxs/eager/fp32"}
    dying = "timm/mobilevit_xxs/eager/fp32"
    first = CountingWorkers(die={dying})
    monkeypatch.setattr(run_mod, "run_isolated", first)
    rows = run_bench(settings, workdir=tmp_path, machine=MACHINE)
    assert sorted(first.timed) == sorted([*labels, *labels])  # 4 candidates x 2 rounds
    assert [r for r in rows if r.get("error")] == [r for r in rows if r["model"] == "mobilevit_xxs"]
    # the log keeps the finished worker runs only (the dead worker's is not one)
    kept = (tmp_path / TIMINGS_FILE).read_text().splitlines()
    assert len(kept) == 6 and all(json.loads(line)["result"]["times_ms"] for line in kept)
    (tmp_path / TIMINGS_FILE).write_text("\n".join(kept) + '\n{"key": "cut sh')  # a crash mid-line
    again = CountingWorkers()
    monkeypatch.setattr(run_mod, "run_isolated", again)
    rows = run_bench(settings, workdir=tmp_path, machine=MACHINE)
    assert again.timed == [dying, dying]  # only the runs that had not finished
    assert all(r["latency_ms_median"] == 2.0 and r["rounds"] == 2 for r in rows)
    # another CPU's runs do not count
    monkeypatch.setattr(run_mod, "run_isolated", CountingWorkers())
    other = CountingWorkers()
    monkeypatch.setattr(run_mod, "run_isolated", other)
    run_bench(settings, workdir=tmp_path, machine={**MACHINE, "cpu": "another CPU"})
    assert len(other.timed) == 8


def test_a_model_whose_export_worker_dies_keeps_its_other_candidates(monkeypatch, tmp_path):
    settings = bench_settings(models=("edgenext_xx_small",), peers=(), runtimes=("eager", "onnxruntime", "openvino"),
                              batches=(1,), input_size=32, rounds=1, precisions=("fp32",))
    bad = "ours/edgenext_xx_small/openvino/fp32"
    fake = CountingWorkers(die_preparing={bad})
    monkeypatch.setattr(run_mod, "run_isolated", fake)
    rows = run_bench(settings, workdir=tmp_path, machine=MACHINE)
    ours = {r["runtime"]: r for r in rows if r["impl"] == "ours"}
    assert "SIGSEGV" in ours["openvino"]["error"] and ours["openvino"]["latency_ms_median"] is None
    assert ours["onnxruntime"]["latency_ms_median"] == 2.0 and ours["eager"]["madds"] == 1_000_000
    assert bad not in fake.timed and "ours/edgenext_xx_small/onnxruntime/fp32" in fake.timed
    # one worker for the model, then one per candidate after it died
    assert len(fake.prepared[0]) == 3 and [len(p) for p in fake.prepared[1:4]] == [1, 1, 1]


def test_a_quick_run_prepares_every_model_in_one_worker_and_falls_back_to_one_per_model(monkeypatch, tmp_path,
                                                                                         caplog):
    settings = bench_settings(models=("edgenext_xx_small",), peers=("mobilevit_xxs",), runtimes=("eager", "onnxruntime"),
                              peer_runtimes=("eager",), batches=(1,), input_size=32, precisions=("fp32",), quick=True)
    fake = CountingWorkers()
    clock = [1000.0]  # the progress's clock: the one export worker takes 40 s

    def slow_worker(target, kwargs, **options):
        clock[0] += 40.0 if target.endswith(":prepare") else 0.0
        return fake(target, kwargs, **options)

    monkeypatch.setattr("edgenext.bench.progress.time.monotonic", lambda: clock[0])
    monkeypatch.setattr(run_mod, "run_isolated", slow_worker)
    with caplog.at_level(logging.INFO, logger="edgenext"):
        rows = run_bench(settings, workdir=tmp_path, machine=MACHINE)
    assert len(fake.prepared) == 1 and len(fake.prepared[0]) == 5  # 3 models, 5 candidates: one worker
    # its time counts in the exports' progress, which says how the models were written
    assert "exports: 3/3 models, 40s elapsed, about 0s left (last: all 3 models in one worker)" in caplog.text
    assert all(r["madds"] == 1_000_000 and r["latency_ms_median"] == 2.0 for r in rows) and len(rows) == 5
    # that worker dies: each model gets its own, and only the dying candidate's model loses its export
    bad = "timm/edgenext_xx_small/onnxruntime/fp32"
    dying = CountingWorkers(die_preparing={bad})
    monkeypatch.setattr(run_mod, "run_isolated", dying)
    rows = run_bench(settings, workdir=tmp_path / "again", machine=MACHINE)
    assert [len(p) for p in dying.prepared[:4]] == [5, 2, 2, 1]
    failed = [r for r in rows if r.get("error")]
    assert [(r["impl"], r["runtime"]) for r in failed] == [("timm", "onnxruntime")] and "SIGSEGV" in failed[0]["error"]


def test_quick_measures_the_peak_on_smaller_matrices(monkeypatch):
    asked = []
    monkeypatch.setattr(run_mod, "measure_peaks", lambda precisions, threads, **kw: asked.append(kw["size"]) or {})
    run_mod.machine_info(bench_settings(quick=True, precisions=("fp32",)))
    run_mod.machine_info(bench_settings(precisions=("fp32",)))
    assert asked == [run_mod.QUICK_PEAK_SIZE, DEFAULT_SIZE] and asked[0] < asked[1]


def test_progress_without_a_terminal_logs_done_total_and_an_estimate(caplog):
    with caplog.at_level(logging.INFO, logger="edgenext"):
        with PhaseProgress(30, "timing", "run", terminal=False) as bar:
            for i in range(30):
                bar.set_postfix_str(f"candidate {i}")
                bar.update()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 10 and lines[0].startswith("timing: 3/30 runs") and lines[-1].startswith("timing: 30/30 runs")
    assert all("left" in line for line in lines) and "candidate 29" in lines[-1]
    assert bar.estimate_left() == 0.0


def test_a_dead_workers_reason_is_the_signal_not_a_warning_line():
    assert _exit_reason(-11) == "killed by SIGSEGV (exit code -11)" and _exit_reason(3) == "exit code 3"
    lines = ["W1201 05:30:09.327000 18565 torch/utils/cpp_extension.py:183] No CUDA runtime is found", "",
             "Fatal Python error: Segmentation fault"]
    assert _informative(lines) == ["Fatal Python error: Segmentation fault"]


@pytest.mark.parametrize("cap, native", [("AVX2", False), ("avx512_core", False), ("AVX512_CORE_BF16", True), ("", True)])
def test_a_onednn_cap_below_bf16_means_no_native_bf16(monkeypatch, cap, native):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bf16"}))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    have, why = hardware.native_bf16()
    assert have is native and (native or "ONEDNN_MAX_CPU_ISA" in why)


@pytest.mark.skipif(not FORMATS["onnx"].installed, reason="onnxruntime is not installed")
def test_the_fp32_peak_also_asks_onnxruntime():
    # MKL takes its AVX2 path on AMD CPUs: torch.mm alone would understate the peak there
    assert onnxruntime_gemm_peak(size=64, repeats=2, threads=1) > 0
    assert gemm_peaks(["fp32"], size=64, repeats=2)["fp32"] > 0


def test_the_whole_mobile_map_each_peer_at_the_size_of_its_published_top1(tmp_path):
    from edgenext.bench.plot import published_top1
    from edgenext.constants import MOBILE_MAP, PEER_EVAL_SIZE
    from edgenext.models import list_models

    s = bench_settings(models=("all",), peers=("all-mobile",), runtimes=("eager",), peer_runtimes=("eager",),
                       precisions=("fp32",), batches=(1,))
    assert s.models == tuple(list_models()) and len(s.models) == 7
    assert set(MOBILE_MAP) < set(s.peers) and {"mobilevit_s", "mobilenetv3_large_100"} < set(s.peers)
    for family in ("mobilenetv4", "fastvit", "repvit", "efficientformerv2", "efficientvit", "mobilevitv2"):
        assert any(p.startswith(family) for p in s.peers)
    assert bench_settings(full=True).peers == s.peers
    # every peer has a cited top-1 and is timed at its size unless --input-size says otherwise
    assert all(published_top1(p) and "px" in published_top1(p)[1] for p in s.peers)
    specs = {sp.model: sp for sp in run_mod._specs(s, tmp_path) if sp.impl == "timm"}
    assert specs["mobilenetv3_large_100"].input_size == (224, 224) == (PEER_EVAL_SIZE["repvit_m1_1"],) * 2
    assert specs["mobilevitv2_100"].input_size == (256, 256) and specs["edgenext_small"].input_size == (256, 256)
    given = bench_settings(peers=("repvit_m1_1",), input_size=192, runtimes=("eager",), peer_runtimes=("eager",))
    assert {sp.input_size for sp in run_mod._specs(given, tmp_path)} == {(192, 192)}


def test_reparameterisable_peers_are_timed_reparameterised():
    model = bench_plan("classify").build_peer("repvit_m0_9", (224, 224))
    # RepViT's training-time branches are folded: no BatchNorm left beside a conv of a RepVGG-style block
    assert not any(type(m).__name__ == "RepVggDw" and hasattr(m, "conv1") for m in model.modules())
