"""``run_bench``: every candidate timed side by side, one row per (model, runtime, batch)."""

from __future__ import annotations

import logging
import platform
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch

from ..models.edgenext import InputSize, input_hw
from .candidates import (
    CUDA_RUNTIMES,
    DEFAULT_PEERS,
    OUR_RUNTIMES,
    PEER_RUNTIMES,
    BenchContext,
    Candidate,
    our_candidate,
    peer_candidate,
    runtime_available,
)
from .dense import DEFAULT_DENSE_BACKBONES, DENSE_RUNTIMES, DENSE_TASKS, TIMED, TORCHVISION_PEERS, dense_candidates
from .profile import count_madds
from .timing import time_interleaved

log = logging.getLogger(__name__)

TIMM_EDGENEXT = ("edgenext_xx_small", "edgenext_x_small", "edgenext_small", "edgenext_base")
TASKS = ("classify", *DENSE_TASKS)


#: runtimes a quick run leaves out: torch.compile takes minutes before the first call
SLOW_TO_START = ("compiled",)


@dataclass(frozen=True)
class BenchSettings:
    models: tuple[str, ...] = ("edgenext_xx_small",)
    peers: tuple[str, ...] = DEFAULT_PEERS
    runtimes: tuple[str, ...] = OUR_RUNTIMES
    peer_runtimes: tuple[str, ...] = ("eager", "onnxruntime")
    batches: tuple[int, ...] = (1, 32)
    input_size: InputSize = 256  # a side or (height, width)
    threads: int = 2
    device: str = "cpu"
    fp16: bool = False
    quick: bool = False  # few timed rounds and none of SLOW_TO_START
    #: classify: EdgeNeXt against timm's models; detect / segment: our SSDLite / DeepLabv3 against
    #: torchvision's (``models`` are then the backbones, ``peers`` torchvision model names)
    task: str = "classify"

    @property
    def measured_runtimes(self) -> tuple[str, ...]:
        """Our runtimes this run measures: ``runtimes`` less the slow-to-start ones when quick."""
        return tuple(r for r in self.runtimes if not (self.quick and r in SLOW_TO_START))

    def runs(self, batch: int) -> tuple[int, int]:
        """(warm-up rounds, timed rounds): >= 50 timed batch-1 runs unless quick."""
        if self.quick:
            return (2, 10) if batch == 1 else (1, 3)
        return (10, 60) if batch == 1 else (2, 10)


#: what ``bench_settings`` fills in for detect / segment (classify: BenchSettings' own defaults)
_DENSE_DEFAULTS = {
    task: dict(models=DEFAULT_DENSE_BACKBONES, peers=TORCHVISION_PEERS[task], runtimes=DENSE_RUNTIMES,
               peer_runtimes=DENSE_RUNTIMES, batches=(1,), input_size=side)
    for task, side in (("detect", 320), ("segment", 512))
}


def bench_settings(task: str = "classify", **given: Any) -> BenchSettings:
    """``BenchSettings`` for ``task``: what ``given`` sets (None counts as not given), the task's defaults
    for the rest (detect / segment: edgenext_small against torchvision's MobileNetV3 model, batch 1, the
    paper's 320 / 512, in eager PyTorch, ONNX Runtime and ExecuTorch)."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}: choose one of {', '.join(TASKS)}")
    values = {k: v for k, v in given.items() if v is not None}
    return BenchSettings(task=task, **{**_DENSE_DEFAULTS.get(task, {}), **values})


def machine_info(settings: BenchSettings) -> dict[str, Any]:
    info = {"cpu": _cpu_name(), "cores": _cores(), "threads": settings.threads, "torch": torch.__version__,
            "python": platform.python_version(), "device": settings.device}
    if settings.device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _available(runtimes: Sequence[str], who: str) -> tuple[str, ...]:
    for runtime in runtimes:
        if not runtime_available(runtime):
            log.info("skipping %s/%s: the runtime is not installed", who, runtime)
    return tuple(r for r in runtimes if runtime_available(r))


def _candidates(s: BenchSettings, ctx: BenchContext) -> list[Candidate]:
    on_cuda = s.device.startswith("cuda")
    if s.task != "classify":
        ours, peers = s.measured_runtimes, s.peer_runtimes
        if on_cuda:  # the exported runtimes run on the CPU
            ours, peers = tuple(r for r in ours if r == "eager"), tuple(r for r in peers if r == "eager")
        return dense_candidates(s.task, s.models, s.peers, _available(ours, "ours"), _available(peers, "torchvision"),
                                ctx)
    out: list[Candidate] = []
    for name in s.models:
        for runtime in s.measured_runtimes:
            if on_cuda and runtime not in CUDA_RUNTIMES:
                continue
            if runtime_available(runtime):
                out.append(our_candidate(name, runtime, ctx))
            else:
                log.info("skipping ours/%s: the runtime is not installed", runtime)
        if name in TIMM_EDGENEXT:  # timm has no _bn_hs variants
            # timm's EdgeNeXt is the direct rival: it runs in every runtime ours runs in that it can
            same = tuple(r for r in PEER_RUNTIMES if r == "eager" or r in s.measured_runtimes or r in s.peer_runtimes)
            out += _peer(name, s, ctx, on_cuda, same)
    for peer in s.peers:
        out += _peer(peer, s, ctx, on_cuda)
    return out


def _peer(name: str, s: BenchSettings, ctx: BenchContext, on_cuda: bool, runtimes: Sequence[str] = ()) -> list[Candidate]:
    wanted = tuple(runtimes) or s.peer_runtimes
    runtimes = [r for r in wanted if (not on_cuda or r == "eager") and runtime_available(r)]
    unknown = set(s.peer_runtimes) - set(PEER_RUNTIMES)
    if unknown:
        raise ValueError(f"peer runtimes {sorted(unknown)} are not supported: choose from {', '.join(PEER_RUNTIMES)}")
    return [peer_candidate(name, r, ctx) for r in runtimes]


def _set_ratios(rows: list[dict], s: BenchSettings) -> None:
    """Each row's speed against the reference at its batch (>1: faster): timm's eager EdgeNeXt for
    classify (``ratio_vs_timm_eager``), the first torchvision peer in eager PyTorch for detect / segment
    (``ratio_vs_torchvision_eager``)."""
    if s.task == "classify":
        key, find = "ratio_vs_timm_eager", lambda row: _reference(row, rows, s.models[0] if s.models else None)
    else:
        key, find = "ratio_vs_torchvision_eager", lambda row: _peer_reference(row, rows, s.peers)
    for row in rows:
        ref = find(row)
        ok = ref is not None and row["latency_ms_median"] and ref["latency_ms_median"]
        row[key] = round(ref["latency_ms_median"] / row["latency_ms_median"], 3) if ok else None


def _peer_reference(row: dict, rows: list[dict], peers: Sequence[str]) -> Optional[dict]:
    for r in rows:
        if peers and r["model"] == peers[0] and r["impl"] == "torchvision" and r["runtime"] == "eager" \
                and r["batch"] == row["batch"]:
            return r
    return None


def _reference(row: dict, rows: list[dict], first_model: str) -> Optional[dict]:
    """The timm-eager row a row is compared with: the same EdgeNeXt size, else the first one's."""
    target = row["model"] if row["model"] in TIMM_EDGENEXT and row["model"] in {r["model"] for r in rows if r["impl"] == "timm"} else first_model
    for r in rows:
        if r["model"] == target and r["impl"] == "timm" and r["runtime"] == "eager" and r["batch"] == row["batch"]:
            return r
    return None


def run_bench(settings: BenchSettings, workdir: Optional[Path] = None) -> list[dict[str, Any]]:
    """Measure every candidate at every batch size; rows carry medians, p90, throughput, MAdds,
    the machine's CPU and the speed ratio against the reference (>1: faster): timm's eager EdgeNeXt
    of the same size (classify), torchvision's model in eager PyTorch (detect / segment)."""
    s = settings
    size = input_hw(s.input_size)
    if s.threads < 1 or not s.batches or min(s.batches) < 1:
        raise ValueError(f"threads >= 1 and positive batch sizes are required, got threads={s.threads}, "
                         f"batches={tuple(s.batches)}")
    if s.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked, but torch sees no CUDA device")
    if s.task not in TASKS:
        raise ValueError(f"unknown task {s.task!r}: choose one of {', '.join(TASKS)}")
    allowed = OUR_RUNTIMES if s.task == "classify" else DENSE_RUNTIMES
    unknown = set(s.runtimes) - set(allowed)
    if s.task != "classify":  # (classify: _peer checks the peers' runtimes)
        unknown |= set(s.peer_runtimes) - set(DENSE_RUNTIMES)
    if unknown:
        raise ValueError(f"unknown runtimes {sorted(unknown)} for --task {s.task}: choose from {', '.join(allowed)}")
    torch.set_num_threads(s.threads)
    dtype = torch.float16 if s.fp16 else torch.float32
    if s.fp16 and not s.device.startswith("cuda"):
        raise ValueError("fp16 is measured on CUDA only (--device cuda)")
    with tempfile.TemporaryDirectory(prefix="edgenext-bench-") as tmp:
        ctx = BenchContext(size, s.threads, s.device, dtype, Path(workdir or tmp))
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        if "executorch-int8" in s.measured_runtimes:
            from ..deploy.calibration import calibration_tensor

            ctx.calibration = calibration_tensor("digits", size, limit=16)  # speed only: few images
        candidates = _candidates(s, ctx)
        madds = {(c.impl, c.model): count_madds(c.module, size) for c in candidates}
        common = {"task": s.task, "input_size": list(size), "threads": s.threads, "device": s.device,
                  "dtype": "fp16" if s.fp16 else "fp32", "cpu": _cpu_name()}
        if s.task in TIMED:
            common["timed"] = TIMED[s.task]
        rows = []
        for batch in s.batches:
            rows += _measure_batch(candidates, batch, s, madds, common)
    _set_ratios(rows, s)
    return rows


def _measure_batch(candidates: list[Candidate], batch: int, s: BenchSettings, madds: dict, common: dict) -> list[dict]:
    calls, live, rows = [], [], []
    for c in candidates:
        row = {"model": c.model, "impl": c.impl, "runtime": c.runtime, "batch": batch, **common,
               "madds": madds[c.impl, c.model],
               "latency_ms_median": None, "latency_ms_p90": None, "throughput_img_s": None}
        try:
            call = c.build(batch)
        except Exception as err:  # one runtime failing to export must not sink the whole table
            log.warning("%s/%s/%s at batch %d: %s", c.impl, c.model, c.runtime, batch, err)
            row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
            call = None
        if call is None and "error" not in row:
            row["error"] = "not measured at this batch (static batch-1 program)"
        rows.append(row)
        if call is not None:
            calls.append(call)
            live.append(row)
    warmup, runs = s.runs(batch)
    log.info("batch %d: %d candidates, %d warm-up + %d timed rounds", batch, len(calls), warmup, runs)
    for row, timing in zip(live, time_interleaved(calls, warmup=warmup, runs=runs, device=s.device)):
        row["latency_ms_median"] = round(timing.median, 3)
        row["latency_ms_p90"] = round(timing.p90, 3)
        row["throughput_img_s"] = round(1000.0 * batch / timing.median, 2)
    return rows
