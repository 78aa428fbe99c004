"""``run_bench``: every candidate timed in its own worker process over several rounds, one row
per (model, implementation, runtime, precision, batch); ``machine_info``: the header."""

from __future__ import annotations

import json
import logging
import platform
import tempfile
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from .. import hardware
from ..deploy.formats import PRECISIONS
from ..models.edgenext import InputSize, input_hw
from ..tasks import DEFAULT_TASK
from ..tasks.efficiency import BenchPlan, bench_plan
from .candidates import (
    CUDA_RUNTIMES,
    RUNTIME_ALIASES,
    WORKER_TIMEOUT_S,
    CandidateSpec,
    fork_preloads,
    precision_absent,
    runtime_available,
    runtime_format,
    runtime_precisions,
)
from .isolate import IsolatedError, run_isolated
from .peak import DEFAULT_SIZE as DEFAULT_PEAK_SIZE
from .peak import measure_peaks
from .progress import PhaseProgress
from .timing import round_orders, summarize_rounds

log = logging.getLogger(__name__)

#: runtimes a quick run leaves out: torch.compile takes minutes before the first call
SLOW_TO_START = ("compiled",)
#: runtimes the default run leaves out (``--full`` or naming them in --runtimes adds them), and why
SLOW_TO_PREPARE = {"compiled": "torch.compile takes minutes before its first call",
                   "executorch": "its exports take minutes each on 2 cores, int8 most",
                   "litert": "a phone engine (x86 figures here), about a minute per conversion on 2 cores",
                   "ncnn": "a phone engine (x86 figures here), one image per call",
                   "mnn": "a phone engine (x86 figures here)"}
WORKER = "edgenext.bench.worker"
#: the GEMM side of a quick run's peak: an eighth of the arithmetic of ``peak.DEFAULT_SIZE``, still large
#: enough for the BLAS to run at its peak on a few cores (a quick run is a smoke run, not the bench's figures)
QUICK_PEAK_SIZE = 1024
#: the finished worker runs, in the work folder (``TimingLog``)
TIMINGS_FILE = "timings.jsonl"


def default_precisions() -> tuple[str, ...]:
    """fp32 and int8 everywhere, bf16 where the CPU computes it natively."""
    return tuple(p for p in PRECISIONS if p != "bf16" or hardware.native_bf16()[0])


@dataclass(frozen=True)
class BenchSettings:
    """One bench run. The fields left None take the task's defaults (its ``BenchPlan``): for classify,
    EdgeNeXt-XXS against timm's models at 256, batches 1 and 32; for a detector or segmenter, its
    network on EdgeNeXt-S against torchvision's (``models`` are then the backbones, ``peers``
    torchvision model names) at the paper's size, batch 1."""

    models: Optional[tuple[str, ...]] = None
    peers: Optional[tuple[str, ...]] = None
    runtimes: Optional[tuple[str, ...]] = None
    peer_runtimes: Optional[tuple[str, ...]] = None
    batches: Optional[tuple[int, ...]] = None
    input_size: Optional[InputSize] = None  # a side or (height, width)
    threads: int = 2
    device: str = "cpu"
    fp16: bool = False
    #: one round, few timed calls and none of SLOW_TO_START; the exports of every model written by one
    #: worker (``_prepare``) and the GEMM peak measured on smaller matrices (``QUICK_PEAK_SIZE``)
    quick: bool = False
    task: str = DEFAULT_TASK
    #: None: every precision this machine supports (``default_precisions``); a task's plan may fix them
    precisions: Optional[tuple[str, ...]] = None
    rounds: Optional[int] = None  # None: 3 with full, 2 without, 1 when quick
    #: the whole sweep: every runtime and peer of the task's plan where --runtimes / --peers are not
    #: given; without it the defaults leave out ``SLOW_TO_PREPARE`` and the plan's extra peers
    full: bool = False
    #: what the defaults left out, one sentence each naming the flag that adds it (filled in here)
    left_out: tuple[str, ...] = ()
    #: each peer timed at its own evaluation side (``BenchPlan.peer_input_size``): set here when
    #: --input-size is not given
    own_sizes: bool = False

    def __post_init__(self) -> None:
        plan = self.plan  # a ValueError here for an unknown task
        left_out = []
        runtimes, peers, peer_runtimes = plan.runtimes, plan.peers, plan.default_peer_runtimes
        if not self.full:
            slow = [r for r in runtimes if r in SLOW_TO_PREPARE]
            if self.runtimes is None and slow:
                runtimes = tuple(r for r in runtimes if r not in slow)
                why = "; ".join(f"{r}: {SLOW_TO_PREPARE[r]}" for r in slow)
                left_out.append(f"runtimes {', '.join(slow)} ({why}): add them with --runtimes "
                                f"{','.join(plan.runtimes)} or --full")
            if self.peers is None and plan.short_peers is not None:
                peers = plan.short_peers
                extra = [p for p in plan.peers if p not in peers]
                if extra:
                    left_out.append(f"peers {', '.join(extra)}: add them with --peers {','.join(plan.peers)} or --full")
            if self.peer_runtimes is None:
                short = plan.short_peer_runtimes if plan.short_peer_runtimes is not None else plan.default_peer_runtimes
                peer_runtimes = tuple(r for r in short if r not in SLOW_TO_PREPARE)
                extra = [r for r in plan.default_peer_runtimes if r not in peer_runtimes and r not in slow]
                if extra:
                    left_out.append(f"{', '.join(extra)} rows of the peers other than {plan.peer_impl}'s EdgeNeXt (which "
                                    f"runs in all of ours): add them with --peer-runtimes "
                                    f"{','.join(plan.default_peer_runtimes)} or --full")
            if self.rounds is None and not self.quick:
                left_out.append("a third round of every candidate (a firmer p10-p90 spread): --rounds 3 or --full")
        object.__setattr__(self, "own_sizes", self.input_size is None and plan.peer_input_size is not None)
        defaults = dict(models=plan.models, peers=peers, runtimes=runtimes,
                        peer_runtimes=peer_runtimes, batches=plan.batches, input_size=plan.input_size,
                        left_out=tuple(left_out))
        for key, value in defaults.items():
            if getattr(self, key) is None or key == "left_out":
                object.__setattr__(self, key, value)  # frozen: filled in once, here

    @cached_property
    def plan(self) -> BenchPlan:
        return bench_plan(self.task)

    @property
    def measured_runtimes(self) -> tuple[str, ...]:
        """Our runtimes this run measures: ``runtimes`` less the slow-to-start ones when quick."""
        return tuple(r for r in self.runtimes if not (self.quick and r in SLOW_TO_START))

    @property
    def measured_peer_runtimes(self) -> tuple[str, ...]:
        return tuple(r for r in self.peer_runtimes if not (self.quick and r in SLOW_TO_START))

    @property
    def measured_precisions(self) -> tuple[str, ...]:
        if self.plan.precisions is not None:
            return self.plan.precisions
        return self.precisions if self.precisions is not None else default_precisions()

    @property
    def round_count(self) -> int:
        if self.rounds is not None:
            return self.rounds
        return 1 if self.quick else (3 if self.full else 2)

    def runs(self, batch: int) -> tuple[int, int]:
        """(warm-up calls, timed calls) per worker: >= 60 timed batch-1 calls over the rounds unless quick."""
        if self.quick:
            return (2, 10) if batch == 1 else (1, 3)
        return (10, max(20, -(-60 // self.round_count))) if batch == 1 else (2, 5)


def bench_settings(task: str = DEFAULT_TASK, **given: Any) -> BenchSettings:
    """``BenchSettings`` for ``task``: what ``given`` sets (None counts as not given), the task's defaults
    for the rest (``BenchPlan``). ``peer_runtimes=("all",)``: every runtime the task's peers run in; old
    runtime names (``executorch-int8``) become runtime + precision."""
    values = {k: v for k, v in given.items() if v is not None}
    if tuple(values.get("models", ())) == ("all",):
        from ..models import list_models

        values["models"] = tuple(list_models())
    if tuple(values.get("peers", ())) in (("all",), ("all-mobile",)):
        values["peers"] = bench_plan(task).peers
    if tuple(values.get("peer_runtimes", ())) == ("all",):
        values["peer_runtimes"] = bench_plan(task).peer_runtimes
    for key in ("runtimes", "peer_runtimes"):
        if key in values and any(r in RUNTIME_ALIASES for r in values[key]):
            names = [RUNTIME_ALIASES.get(r, (r,))[0] for r in values[key]]
            values[key] = tuple(dict.fromkeys(names))
            extra = [RUNTIME_ALIASES[r][1] for r in given[key] if r in RUNTIME_ALIASES]
            values["precisions"] = tuple(dict.fromkeys((*values.get("precisions", default_precisions()), *extra)))
    return BenchSettings(task=task, **values)


def machine_info(settings: BenchSettings, peaks: Optional[dict[str, Optional[float]]] = None) -> dict[str, Any]:
    """The header: CPU, its ISA features, threads, versions and the measured GEMM peaks
    (``gemm_peak_gflops``: fp32, bf16 where native, fp16 on CUDA with fp16; measured in a worker
    unless ``peaks`` is given). int8 rows are a percentage of the fp32 peak."""
    on_cuda = settings.device.startswith("cuda")
    bf16, bf16_why = hardware.native_bf16()
    int8, int8_why = hardware.int8_dot_product()
    if peaks is None:
        wanted = ["fp32"] + (["fp16"] if on_cuda and settings.fp16 else []) + (["bf16"] if bf16 and not on_cuda else [])
        size = QUICK_PEAK_SIZE if settings.quick else DEFAULT_PEAK_SIZE
        peaks = measure_peaks(wanted, settings.threads, device="cuda" if on_cuda else "cpu", size=size)
    info = {"cpu": hardware.cpu_name(), "cores": hardware.cores(), "threads": settings.threads,
            "torch": torch.__version__, "python": platform.python_version(), "device": settings.device,
            "isa": hardware.isa_features(), "native_bf16": bf16, "bf16_note": bf16_why,
            "int8_dot_product": int8, "int8_note": int8_why, "gemm_peak_gflops": dict(peaks),
            "peak_note": "int8 rows: % of the fp32 peak (no int8 peak is measured)",
            "rounds": settings.round_count}
    if on_cuda and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _available(runtimes: Sequence[str], who: str) -> tuple[str, ...]:
    for runtime in runtimes:
        if not runtime_available(runtime):
            log.info("skipping %s/%s: the runtime is not installed", who, runtime)
    return tuple(r for r in runtimes if runtime_available(r))


def _specs(s: BenchSettings, workdir: Path) -> list[CandidateSpec]:
    """Every candidate of the run, in table order, with the settings every one shares: each of our
    models (then its twin in the peers' implementation), then each peer."""
    plan = s.plan
    on_cuda = s.device.startswith("cuda")
    schedule = tuple((b, *s.runs(b)) for b in s.batches)
    base = CandidateSpec(model="", impl="", runtime="", task=s.task, input_size=input_hw(s.input_size),
                         threads=s.threads, device=s.device, dtype="fp16" if s.fp16 else "fp32", schedule=schedule,
                         workdir=str(workdir))
    # on CUDA only the torch runtimes (the peers: eager); the exported runtimes run on the CPU
    ours = _available(tuple(r for r in s.measured_runtimes if not on_cuda or r in CUDA_RUNTIMES), "ours")
    peer_runtimes = _available(tuple(r for r in s.measured_peer_runtimes if not on_cuda or r == "eager"),
                               plan.peer_impl)
    out: list[CandidateSpec] = []
    for name in s.models:
        row = plan.row_name(name)
        out += _with_precisions(replace(base, arch=name if row != name else ""), row, "ours", ours,
                                s.measured_precisions)
        if name in plan.twins:
            # the peers' build of our own model is the direct rival: it runs in every runtime ours runs in that it can
            same = tuple(r for r in plan.peer_runtimes if r in ours or r in peer_runtimes)
            out += _with_precisions(base, name, plan.peer_impl, same, s.measured_precisions)
    for peer in s.peers:
        side = plan.peer_input_size(peer) if s.own_sizes else None
        at = replace(base, input_size=(side, side)) if side else base
        out += _with_precisions(at, peer, plan.peer_impl, peer_runtimes, s.measured_precisions)
    return out


def _with_precisions(base: CandidateSpec, model: str, impl: str, runtimes: Sequence[str],
                     precisions: Sequence[str]) -> list[CandidateSpec]:
    return [replace(base, model=model, impl=impl, runtime=r, precision=p)
            for r in runtimes for p in precisions if p in runtime_precisions(r)]


def check_settings(s: BenchSettings) -> None:
    """A ``ValueError`` naming the first bad setting (before anything is measured)."""
    if s.threads < 1 or not s.batches or min(s.batches) < 1:
        raise ValueError(f"threads >= 1 and positive batch sizes are required, got threads={s.threads}, "
                         f"batches={tuple(s.batches)}")
    if s.round_count < 1:
        raise ValueError(f"rounds must be >= 1, got {s.round_count}")
    if s.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked, but torch sees no CUDA device")
    if s.fp16 and not s.device.startswith("cuda"):
        raise ValueError("fp16 is measured on CUDA only (--device cuda)")
    plan = s.plan
    unknown = set(s.runtimes) - set(plan.runtimes)
    if unknown:
        raise ValueError(f"unknown runtimes {sorted(unknown)} for --task {s.task}: choose from {', '.join(plan.runtimes)}")
    unknown = set(s.peer_runtimes) - set(plan.peer_runtimes)
    if unknown:
        raise ValueError(f"peer runtimes {sorted(unknown)} are not supported for --task {s.task}: choose from "
                         f"{', '.join(plan.peer_runtimes)} (or 'all')")
    unknown = set(s.measured_precisions) - set(PRECISIONS)
    if unknown:
        raise ValueError(f"unknown precisions {sorted(unknown)}: choose from {', '.join(PRECISIONS)}")


def run_bench(settings: BenchSettings, workdir: Optional[Path] = None,
              machine: Optional[dict[str, Any]] = None) -> list[dict[str, Any]]:
    """Measure every candidate at every batch size, each in its own worker process, over
    ``settings.round_count`` rounds; rows carry the median, the spread between rounds (p10 / p90),
    throughput, MAdds, % of the GEMM peak (``machine``'s, measured when not given), the CPU and
    the speed ratios against the task's references (``_set_ratios``; >1: faster). A candidate that fails gives a row
    with ``error``; one that cannot run here (bf16 without native bf16, ...) a row with ``absent`` and the reason as
    ``error``. With a ``workdir``, exports and finished worker runs (``TIMINGS_FILE``) are kept there: a run
    stopped half-way and started again with the same folder times only what is left."""
    s = settings
    check_settings(s)
    machine = machine if machine is not None else machine_info(s)
    with tempfile.TemporaryDirectory(prefix="edgenext-bench-") as tmp:
        root = Path(workdir or tmp)
        root.mkdir(parents=True, exist_ok=True)
        specs = _specs(s, root)
        absent = {spec: precision_absent(spec.runtime, spec.precision, s.device) for spec in specs}
        live = [spec for spec in specs if absent[spec] is None]
        prepared = _prepare(specs, absent, s)
        timings = _time_rounds(live, prepared, s, TimingLog(root / TIMINGS_FILE, machine.get("cpu", "")))
    common = {"task": s.task, "input_size": list(input_hw(s.input_size)), "threads": s.threads, "device": s.device,
              "dtype": "fp16" if s.fp16 else "fp32", "cpu": machine.get("cpu", hardware.cpu_name())}
    if s.plan.timed:
        common["timed"] = s.plan.timed
    rows = [_row(spec, batch, common, prepared[spec], timings.get(spec, {}), absent[spec], machine)
            for batch in s.batches for spec in specs]
    _set_ratios(rows, s)
    return rows


def _model_key(spec: CandidateSpec) -> tuple[str, str, str]:
    return spec.task, spec.impl, spec.source


def _prepare(specs: list[CandidateSpec], absent: dict, s: BenchSettings) -> dict[CandidateSpec, dict]:
    """MAdds of every model and the exported files the live candidates need, written once for the
    whole run (files already in the folder are kept): one worker per model (exports are not timed)."""
    groups: dict[tuple, list[CandidateSpec]] = {}
    for spec in specs:
        groups.setdefault(_model_key(spec), []).append(spec)
    # NOTE: a model whose candidates are all absent gets an eager stand-in, which only counts its MAdds
    todo = {key: [sp for sp in group if absent[sp] is None] or [replace(group[0], runtime="eager", precision="fp32")]
            for key, group in groups.items()}
    files = sum(1 for group in todo.values() for sp in group if runtime_format(sp.runtime) is not None)
    log.info("phase 1/2: exports of %d models (%d exported candidates; files already in the work folder are reused)",
             len(groups), files)
    results: dict[CandidateSpec, dict] = {}
    with PhaseProgress(len(groups), "exports", "model") as bar:
        if s.quick and len(todo) > 1:
            # a quick run spends more on starting workers than on its exports: one worker writes every model's
            # (exports are not timed); should it fail, each model gets its own worker below
            every = [sp for group in todo.values() for sp in group]
            bar.set_postfix_str(f"all {len(todo)} models in one worker")
            try:
                results.update(zip(every, _run_prepare(every, s)))
            except IsolatedError as err:
                log.warning("preparing every model in one worker failed: %s; one worker per model instead",
                            _isolated_message(err))
            if results:
                bar.update(len(todo))
        for key, group in todo.items():
            if all(sp in results for sp in group):
                continue
            bar.set_postfix_str(f"{key[1]}/{key[2]}")
            try:
                results.update(zip(group, _run_prepare(group, s)))
            except IsolatedError as err:
                log.warning("preparing %s/%s failed: %s; one worker per candidate instead", key[1], key[2],
                            _isolated_message(err))
                # the files written before the failure stay; each candidate's own worker finds its fate
                for sp in group:
                    try:
                        results.update(zip([sp], _run_prepare([sp], s)))
                    except IsolatedError as err:
                        message = _isolated_message(err)
                        log.warning("preparing %s failed: %s", sp.label, message)
                        results[sp] = {"madds": None, "errors": {str(b): message for b in s.batches}}
            bar.update()
    prepared = {}
    for key, group in groups.items():
        madds = next((results[sp]["madds"] for sp in todo[key] if results[sp]["madds"]), None)
        prepared.update({sp: results.get(sp, {"madds": madds, "errors": {}}) for sp in group})
    return prepared


def _run_prepare(specs: list[CandidateSpec], s: BenchSettings) -> list[dict]:
    return run_isolated(f"{WORKER}:prepare", {"specs": [sp.to_json() for sp in specs]}, threads=s.threads,
                        timeout=WORKER_TIMEOUT_S)


class TimingLog:
    """The finished worker runs of a bench, one JSON line each in the work folder, so that a run started
    again with the same folder (``--workdir``) skips them. A line counts only for the same candidate, round
    and CPU; anything else in the file is ignored."""

    def __init__(self, path: Path, cpu: str) -> None:
        self.path, self.cpu = path, cpu
        self.done: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    record = json.loads(line)
                    self.done[record["key"]] = record["result"]
                except (ValueError, KeyError, TypeError):  # a line cut short by a crash
                    continue

    def key(self, spec: CandidateSpec, round_index: int) -> str:
        return json.dumps({"spec": spec.to_json(), "round": round_index, "cpu": self.cpu}, sort_keys=True)

    def get(self, spec: CandidateSpec, round_index: int) -> Optional[dict]:
        return self.done.get(self.key(spec, round_index))

    def add(self, spec: CandidateSpec, round_index: int, result: dict) -> None:
        key = self.key(spec, round_index)
        self.done[key] = result
        with self.path.open("a") as f:
            f.write(json.dumps({"key": key, "result": result}) + "\n")


def _time_rounds(live: list[CandidateSpec], prepared: dict, s: BenchSettings,
                 kept: TimingLog) -> dict[CandidateSpec, dict]:
    """Per candidate: ``{"rounds": {batch: [per-round call times]}, "errors": {batch: message}}``."""
    out = {spec: {"rounds": {}, "errors": dict(prepared[spec]["errors"])} for spec in live}
    orders = round_orders(len(live), s.round_count)
    total = len(live) * s.round_count
    log.info("phase 2/2: timing %d candidates x %d rounds = %d worker runs, one at a time", len(live),
             s.round_count, total)
    reused = 0
    with PhaseProgress(total, "timing", "run") as bar:
        for r, order in enumerate(orders):
            for i in order:
                spec = live[i]
                bar.set_postfix_str(f"round {r + 1}/{len(orders)}: {spec.label}")
                todo = tuple(step for step in spec.schedule if str(step[0]) not in prepared[spec]["errors"])
                if todo:
                    spec_now = replace(spec, schedule=todo)
                    result = kept.get(spec_now, r)
                    if result is None:
                        result, finished = _time_one(spec_now, s)
                        if finished:  # a worker that died or overran is tried again by the next run
                            kept.add(spec_now, r, result)
                    else:
                        reused += 1
                    _merge(result, out[spec])
                bar.update()
    if reused:
        log.info("reused %d finished worker runs from %s", reused, kept.path)
    return out


def _time_one(spec: CandidateSpec, s: BenchSettings) -> tuple[dict, bool]:
    """The worker's result, and whether the worker finished (False: it died, overran or raised)."""
    try:
        return run_isolated(f"{WORKER}:time_candidate", {"spec": spec.to_json()}, threads=s.threads,
                            timeout=WORKER_TIMEOUT_S, preload=fork_preloads(spec)), True
    except IsolatedError as err:
        log.warning("%s: %s", spec.label, err)
        return {"times_ms": {}, "errors": {str(b): _isolated_message(err) for b in spec.batches}}, False


def _merge(result: dict, into: dict) -> None:
    for batch, times in result["times_ms"].items():
        into["rounds"].setdefault(batch, []).append(times)
    for batch, message in result["errors"].items():
        into["errors"].setdefault(batch, message)


def _isolated_message(err: IsolatedError) -> str:
    """The worker's failure in one line: its first line and the traceback's last."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0][:300] if len(lines) < 2 else f"{lines[0][:200]} ... {lines[-1][:200]}"


def _row(spec: CandidateSpec, batch: int, common: dict, prepared: dict, timing: dict, absent: Optional[str],
         machine: dict) -> dict[str, Any]:
    precision = spec.dtype if spec.dtype != "fp32" else spec.precision  # fp16: CUDA with --fp16
    row = {"model": spec.model, "impl": spec.impl, "runtime": spec.runtime, "precision": precision, "batch": batch,
           **common, "input_size": list(spec.input_size), "madds": prepared["madds"], "latency_ms_median": None, "latency_ms_p10": None,
           "latency_ms_p90": None, "throughput_img_s": None, "pct_of_peak": None, "rounds": 0}
    rounds = timing.get("rounds", {}).get(str(batch), [])
    if absent is not None:
        row.update(error=absent, absent=True)
    elif not rounds:
        row["error"] = timing.get("errors", {}).get(str(batch), "not measured")
    else:
        stats = summarize_rounds(rounds)
        row.update(latency_ms_median=round(stats["median"], 3), latency_ms_p10=round(stats["p10"], 3),
                   latency_ms_p90=round(stats["p90"], 3), throughput_img_s=round(1000.0 * batch / stats["median"], 2),
                   rounds=stats["rounds"])
        peaks = machine.get("gemm_peak_gflops", {})
        peak = peaks.get(precision, peaks.get("fp32"))  # int8: the fp32 peak (the header says so)
        row["pct_of_peak"] = pct_of_peak(row["madds"], batch, stats["median"], peak)
    return row


def pct_of_peak(madds: Optional[int], batch: int, latency_ms: float, peak_gflops: Optional[float]) -> Optional[float]:
    """2 x MAdds x batch / time as a percentage of the GEMM peak (None when either is unknown)."""
    if not madds or not peak_gflops or not latency_ms:
        return None
    return round(100.0 * 2.0 * madds * batch / (latency_ms / 1e3) / (peak_gflops * 1e9), 2)


def _set_ratios(rows: list[dict], s: BenchSettings) -> None:
    """Each row's speed against its references at its batch (>1: faster), ``P`` being the plan's
    ``peer_impl``: ``ratio_vs_P_eager`` against the peers' eager build of the row's own model where it
    was measured (timm's EdgeNeXt), else of our first model's (``reference="first_model"``) or the
    first peer (``"first_peer"``); with twins, ``ratio_vs_P_same_runtime`` against the twin in the same
    runtime and precision."""
    plan = s.plan
    impl = plan.peer_impl
    measured_twins = {r["model"] for r in rows if r["impl"] == impl and r["model"] in plan.twins}
    fallback = s.models if plan.reference == "first_model" else s.peers
    precision = "fp16" if s.fp16 else "fp32"
    for row in rows:
        target = row["model"] if row["model"] in measured_twins else (fallback[0] if fallback else None)
        row[f"ratio_vs_{impl}_eager"] = _ratio(row, _find(rows, impl, target, "eager", precision, row["batch"]))
        if plan.twins:
            same = _find(rows, impl, row["model"], row["runtime"], row["precision"], row["batch"]) \
                if row["model"] in plan.twins else None
            row[f"ratio_vs_{impl}_same_runtime"] = _ratio(row, same)


def _ratio(row: dict, ref: Optional[dict]) -> Optional[float]:
    ok = ref is not None and row["latency_ms_median"] and ref["latency_ms_median"]
    return round(ref["latency_ms_median"] / row["latency_ms_median"], 3) if ok else None


def _find(rows: list[dict], impl: str, model: Optional[str], runtime: str, precision: str,
          batch: int) -> Optional[dict]:
    return next((r for r in rows if r["model"] == model and r["impl"] == impl and r["runtime"] == runtime
                 and r["precision"] == precision and r["batch"] == batch), None)
