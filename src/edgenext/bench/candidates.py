"""What ``edgenext bench`` measures: candidates, each a JSON value (``CandidateSpec``).

A candidate is one (model, implementation, runtime, precision) at one or more batch sizes.
It travels as JSON to the worker process that builds and times it (``worker.py``), so the
spec carries everything that worker needs: input size, threads, the warm-up / timed calls per
batch and the run's scratch folder, where each exported file is written once and then only
loaded. This module also says which (runtime, precision) pairs exist and, for those that
cannot run on this machine, why (a row's reason rather than a silent gap).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

from ..deploy.formats import FORMATS, ExportFormat
from ..deploy.request import precision_unavailable
from ..hardware import native_bf16
from ..tasks.efficiency import RUNTIMES, bench_plan
from ..tasks.registry import DEFAULT_TASK

#: every runtime, in table order; which of them a task runs, for ours and its peers, its ``BenchPlan`` says
OUR_RUNTIMES = RUNTIMES
#: runtimes that stay in PyTorch (no exported file)
TORCH_RUNTIMES = ("eager", "fused", "compiled")
CUDA_RUNTIMES = ("eager", "fused", "compiled")
#: the export format (``edgenext.deploy.formats``) each runtime outside PyTorch runs
RUNTIME_FORMATS = {"onnxruntime": "onnx", "executorch": "executorch", "openvino": "openvino", "litert": "litert",
                   "ncnn": "ncnn", "mnn": "mnn"}
#: old runtime names still accepted: name -> (runtime, precision)
RUNTIME_ALIASES = {"executorch-int8": ("executorch", "int8")}
#: the precisions each torch runtime offers (bf16: CPU autocast); export formats say theirs
#: (``ExportFormat.precisions``)
_TORCH_PRECISIONS = {"eager": ("fp32", "bf16"), "fused": ("fp32",), "compiled": ("fp32",)}
#: a worker that runs longer is stopped (torch.compile on a busy 2-core machine takes minutes)
WORKER_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class CandidateSpec:
    """One candidate, as the worker process receives it (``to_json`` / ``from_json``)."""

    model: str  # the row's name
    impl: str  # "ours", "timm" or "torchvision"
    runtime: str
    precision: str = "fp32"
    task: str = DEFAULT_TASK  # the worker builds what ``edgenext.tasks.efficiency.bench_plan(task)`` says
    #: what to build when it differs from ``model`` (a detector's or segmenter's row: its backbone)
    arch: str = ""
    input_size: tuple[int, int] = (256, 256)
    threads: int = 2
    device: str = "cpu"
    dtype: str = "fp32"  # of the tensors in torch runtimes ("fp16": CUDA with --fp16)
    #: (batch, warm-up calls, timed calls) for each batch size, in the order timed
    schedule: tuple[tuple[int, int, int], ...] = ((1, 10, 60),)
    workdir: str = ""  # the run's scratch folder: exported files, compile caches

    @property
    def batches(self) -> tuple[int, ...]:
        return tuple(b for b, _, _ in self.schedule)

    @property
    def label(self) -> str:
        return f"{self.impl}/{self.model}/{self.runtime}/{self.precision}"

    @property
    def source(self) -> str:
        """The name the model is built from."""
        return self.arch or self.model

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> "CandidateSpec":
        value = dict(value)
        value["input_size"] = tuple(value["input_size"])
        value["schedule"] = tuple(tuple(step) for step in value["schedule"])
        return cls(**value)

    def export_path(self, batch: Optional[int]) -> Optional[Path]:
        """Where this candidate's exported file lives (None: a torch runtime, no file); ``batch``
        only names the file of formats that build static-batch programs."""
        fmt = runtime_format(self.runtime)
        if fmt is None:
            return None
        h, w = self.input_size
        static = f"-b{batch}" if fmt.static_batch else ""
        name = f"{self.impl}-{self.source}-{self.task}-{h}x{w}-{self.precision}{static}{fmt.suffix}"
        return Path(self.workdir) / name


def runtime_format(runtime: str) -> Optional[ExportFormat]:
    """The export format ``runtime`` runs, or None for the torch runtimes."""
    return FORMATS[RUNTIME_FORMATS[runtime]] if runtime in RUNTIME_FORMATS else None


def fork_preloads(spec: "CandidateSpec") -> tuple[str, ...]:
    """Modules the worker timing ``spec`` imports that start no thread at import (ONNX Runtime's and
    OpenVINO's do): a fork server (``forkserver``) imports them once for all the workers it forks."""
    plan = bench_plan(spec.task)
    modules = plan.ours_preload if spec.impl == "ours" else plan.peer_preload
    return (*modules, "executorch.runtime") if spec.runtime == "executorch" else modules


def runtime_available(runtime: str) -> bool:
    """Torch runtimes always; the others when their export format's package is installed."""
    fmt = runtime_format(runtime)
    return fmt is None or fmt.installed


def runtime_precisions(runtime: str) -> tuple[str, ...]:
    """The precisions ``runtime`` offers at all (on some machine)."""
    if runtime in _TORCH_PRECISIONS:
        return _TORCH_PRECISIONS[runtime]
    fmt = runtime_format(runtime)
    if fmt is None:
        raise ValueError(f"unknown runtime {runtime!r}: choose from {', '.join(OUR_RUNTIMES)}")
    return fmt.precisions


def precision_absent(runtime: str, precision: str, device: str = "cpu") -> Optional[str]:
    """Why ``runtime`` cannot run ``precision`` here (a sentence), or None when it can."""
    if precision == "fp32":
        return None
    if device.startswith("cuda"):
        return f"{precision} rows are measured on the CPU only (--device cpu)"
    fmt = runtime_format(runtime)
    if fmt is not None:
        return precision_unavailable(fmt.name, precision)
    if precision == "bf16":
        native, why = native_bf16()
        return None if native else why
    return None


