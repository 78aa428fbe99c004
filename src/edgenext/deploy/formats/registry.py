"""What an export format is, and the registry of them: a leaf that imports no format.

Each module of ``edgenext.deploy.formats`` describes its format once, at import, with
``register(ExportFormat(...))``: its name, file suffix, pip extra, the package that makes it
available, its writer and runner, the precisions it writes and what they need. Everything else
(``export_model``, ``edgenext export``, the bench, the tests) reads the registry, so a new
runtime is one new module. Listing the formats and whether their packages are installed
imports none of those packages (``importlib.util.find_spec``, not an import).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Optional, Protocol, Sequence

import torch
from torch import nn

from ..parity import HW

#: every precision some format writes; fp32 is every format's default
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8")
#: allocations between two collections of the garbage collector's youngest generation while a converter
#: runs (CPython's default: 700)
CONVERTER_GC_THRESHOLD = 100_000


@contextlib.contextmanager
def fewer_collections(threshold: int = CONVERTER_GC_THRESHOLD) -> Iterator[None]:
    """The cyclic garbage collector's youngest generation collected every ``threshold`` allocations
    (never more often than it was) until the block ends, then as before.

    The converters (torch.export, the ONNX exporter, ExecuTorch's and LiteRT's lowerings) build and
    rewrite graphs of millions of short-lived Python objects: at CPython's default the collector ran
    828 times in one EdgeNeXt-XXS ONNX export and 2,445 times in its ExecuTorch lowering, 8-9% of
    their time (1.2 s of 13.4 s and 3.3 s of 42.5 s on a 2-core AVX2 EPYC); at 100,000, 5 times (0.2 s).
    """
    old = gc.get_threshold()
    gc.set_threshold(max(threshold, old[0]), *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


class Writer(Protocol):
    """Writes ``model`` to ``output`` in ``precision`` (one of the format's ``precisions``, already
    validated; int8 calibrates on ``calibration``, ``(N, C, H, W)`` images normalised like the
    model's input); the writers of ``multi_output`` formats also take ``output_names``."""

    def __call__(self, model: nn.Module, output: Path, *, input_size: HW, batch: Optional[int],
                 precision: str = "fp32", calibration: Optional[torch.Tensor] = None) -> Path: ...


class Runner(Protocol):
    """A file loaded in its runtime: ``runner(path, threads=..., precision=...)(x)`` returns the
    first output (a classifier's logits); for ``multi_output`` formats ``.outputs(x)`` returns
    all of them. ``precision`` is the file's (OpenVINO: the inference precision hint it compiles
    with), already validated. ``threads=None``: ``runner_threads``' choice."""

    def __call__(self, path: Path, *, threads: Optional[int] = None,
                 precision: str = "fp32") -> Callable[[torch.Tensor], torch.Tensor]: ...


def runner_threads(threads: Optional[int] = None) -> Optional[int]:
    """The threads a runner computes with: ``threads`` when given; else ``OMP_NUM_THREADS`` where the
    environment sets it, the budget PyTorch keeps to (ONNX Runtime, OpenVINO, XNNPACK and ncnn do not read
    it, and would each start one thread per core beside a process that was given a share of them); else
    None, the runtime's own default."""
    if threads:
        return threads
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def runs_on_any_machine() -> bool:
    """``can_run`` of a runtime that runs wherever its package installs."""
    return True


def is_present(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (an entry of None in
    ``sys.modules``, as tests set to fake a missing package, counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module without a spec
        return False


@dataclass(frozen=True)
class ExportFormat:
    """One export format: what it writes, what it needs, and the functions that write and run it."""

    name: str
    suffix: str  # of what the writer writes (OpenVINO: the .xml, its weights in a .bin beside it)
    extra: Optional[str]  # pip install "edgenext[extra]" installs what it needs; None: torch alone
    module: str  # the package whose presence makes the format available here
    writer: Writer
    runner: Runner
    #: a mobile runtime: a static batch-1 program unless a batch is asked for
    static_batch: bool = False
    #: whether the runtime can run on this machine (Core ML predicts on macOS only)
    can_run: Callable[[], bool] = runs_on_any_machine
    #: the saved file's input/output shapes (inputs first), for a structural check where it cannot run
    describe: Optional[Callable[[Path], dict[str, list[int]]]] = None
    #: networks with several outputs (a detector's boxes and scores) export and run: the writer
    #: takes ``output_names`` and the loaded runner's ``outputs(x)`` returns every output
    multi_output: bool = False
    #: the precisions the writer can write, fp32 first
    precisions: tuple[str, ...] = ("fp32",)
    #: packages a precision needs beyond ``module``: precision -> (package, extra that installs it)
    needs: Mapping[str, tuple[str, str]] = field(default_factory=dict, hash=False)
    #: place in listings (the CLI's --format choices, messages naming formats): lower first
    order: int = 100
    #: the layout a fused classifier is written in (``edgenext.deploy.fusion.channels_first.in_layout``):
    #: "channels_first" where the engine's fast kernels are NCHW convolutions (measured per engine,
    #: benchmarks/results.md)
    layout: str = "channels_last"
    #: precisions written channels-last whatever ``layout`` says (ONNX Runtime's int8 quantises the
    #: MatMuls of the channels-last graph; its int8 convolutions are no faster than fp32 here)
    channels_last_precisions: tuple[str, ...] = ()
    #: rewrites the module about to be written (fused or not, already in its layout) into ops this engine's
    #: converter handles, computing the same function (ncnn: no tensor-valued clamp); None: as it is
    graph_form: Optional[Callable[[nn.Module], nn.Module]] = None
    #: the precisions ``graph_form`` applies to; None: every precision
    graph_form_precisions: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        if not self.precisions or self.precisions[0] != "fp32":
            raise ValueError(f"export format {self.name!r}: precisions must start with fp32, got {self.precisions}")
        unknown = (set(self.precisions) | set(self.needs)) - set(PRECISIONS)
        if unknown:
            raise ValueError(f"export format {self.name!r}: unknown precisions {sorted(unknown)}; "
                             f"known: {', '.join(PRECISIONS)}")

    def write(self, model: nn.Module, output: Path, **options: Any) -> Path:
        """``writer(model, output, **options)``, the garbage collector running less often meanwhile
        (``fewer_collections``): how ``export_model`` and the bench write every file."""
        with fewer_collections():
            return self.writer(model, output, **options)

    def graph_form_for(self, precision: str) -> Optional[Callable[[nn.Module], nn.Module]]:
        """The rewrite the module written at ``precision`` goes through, or None."""
        if self.graph_form_precisions is not None and precision not in self.graph_form_precisions:
            return None
        return self.graph_form

    def layout_for(self, precision: str) -> str:
        """The layout a fused model is written in at ``precision``."""
        return "channels_last" if precision in self.channels_last_precisions else self.layout

    @property
    def installed(self) -> bool:
        return is_present(self.module)


_REGISTERED: dict[str, ExportFormat] = {}

#: name -> format, in listing order; a read-only live view (``register`` adds to it)
FORMATS: Mapping[str, ExportFormat] = MappingProxyType(_REGISTERED)


def register(fmt: ExportFormat) -> ExportFormat:
    """Add ``fmt`` to the registry (a ``ValueError`` if its name is taken) and return it."""
    if fmt.name in _REGISTERED:
        raise ValueError(f"an export format called {fmt.name!r} is already registered")
    ordered = sorted([*_REGISTERED.values(), fmt], key=lambda f: f.order)  # stable: ties keep registration order
    _REGISTERED.clear()
    _REGISTERED.update((f.name, f) for f in ordered)
    return fmt


def unregister(name: str) -> ExportFormat:
    """Remove the format called ``name`` (a test's toy format) and return it."""
    return _REGISTERED.pop(export_format(name).name)


def export_format(name: str) -> ExportFormat:
    """The format called ``name``, or a ``ValueError`` listing the known ones."""
    try:
        return _REGISTERED[name]
    except KeyError:
        raise ValueError(f"unknown export format {name!r}: choose one of {', '.join(_REGISTERED)}") from None


def format_names(*, precision: Optional[str] = None, multi_output: bool = False) -> tuple[str, ...]:
    """The registered formats that write ``precision`` (any: None) and, when ``multi_output``,
    graphs with several outputs; in listing order."""
    return tuple(f.name for f in _REGISTERED.values()
                 if (precision is None or precision in f.precisions) and (f.multi_output or not multi_output))


class _MultiOutputNames(Sequence[str]):
    """The names of the multi-output formats, read from the registry at each use, so that a
    format registered after import is listed too."""

    def __getitem__(self, index):  # type: ignore[override]
        return format_names(multi_output=True)[index]

    def __len__(self) -> int:
        return len(format_names(multi_output=True))

    def __iter__(self) -> Iterator[str]:
        return iter(format_names(multi_output=True))

    def __repr__(self) -> str:
        return repr(format_names(multi_output=True))


#: the formats a multi-output network (detector, segmenter) exports to
MULTI_OUTPUT_FORMATS: Sequence[str] = _MultiOutputNames()
