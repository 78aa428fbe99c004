"""An export request (format x precision x the graph's needs x batch), validated once.

``validate_export`` is the one place that decides whether a request can be served, here: the
format exists and writes the precision, the graph's outputs and precision suit the format, the
batch is valid, and this machine has what the precision needs (the format's package, the
packages of its int8 path, native bf16). Its message lists what would work. Writers and
runners trust it: ``export_model``, ``export_network`` and ``edgenext export`` call it before
any work, the bench asks ``precision_unavailable`` for a row's reason.

``fp32`` is every format's default and the only precision checked against eager PyTorch to
1e-4. ``bf16`` is OpenVINO's inference-precision hint, offered only where the CPU computes
bf16 natively (``hardware.native_bf16``): emulated bf16 is slower than fp32. ``int8`` is
post-training quantisation (each format module's int8 path).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from ..hardware import native_bf16
from .formats import PRECISIONS, ExportFormat, export_format, format_names
from .formats.registry import is_present


#: the layouts a fused model can be written in (``edgenext.deploy.fusion.channels_first.LAYOUTS``)
LAYOUT_NAMES = ("channels_last", "channels_first")


@dataclass(frozen=True)
class ExportRequest:
    """A validated request: the format, the precision, and the batch the file gets (None:
    dynamic; a static-batch format's default 1 filled in)."""

    format: ExportFormat
    precision: str
    batch: Optional[int]
    multi_output: bool = False
    #: the layout a fused model is written in; None: the format's choice for the precision
    #: (``ExportFormat.layout_for``)
    layout: Optional[str] = None

    @property
    def written_layout(self) -> str:
        return self.layout or self.format.layout_for(self.precision)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else a ``ValueError`` listing them."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def validate_export(
    fmt: str,
    precision: str = "fp32",
    *,
    batch: Optional[int] = None,
    multi_output: bool = False,
    precisions: Sequence[str] = PRECISIONS,
    task: Optional[str] = None,
    layout: Optional[str] = None,
) -> ExportRequest:
    """Whether ``fmt`` can write ``precision`` here for a graph with several outputs
    (``multi_output``) that may be exported in ``precisions`` (a detector's: fp32 only), at
    ``batch`` (None: dynamic). ``task`` names the graph in messages (``--task detect``).

    Returns the request with its batch resolved; raises ``ValueError`` saying why not and
    what would work.
    """
    spec = export_format(fmt)
    check_precision(precision)
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be a positive integer or None (dynamic), got {batch}")
    if layout is not None and layout not in LAYOUT_NAMES:
        raise ValueError(f"unknown layout {layout!r}: choose from {', '.join(LAYOUT_NAMES)} (or leave it to the format)")
    why = _why_not(spec, precision, multi_output, tuple(precisions), task)
    if why is not None:
        raise ValueError(why)
    if spec.static_batch and batch is None:
        batch = 1  # mobile runtimes: a static batch-1 program unless asked otherwise
    return ExportRequest(spec, precision, batch, multi_output, layout)


def precision_unavailable(format_name: str, precision: str) -> Optional[str]:
    """None where ``format_name`` can write and run ``precision`` on this machine, else a
    sentence saying why not (the format cannot, a package is missing, or no native bf16).

    Unknown format or precision names raise ``ValueError``.
    """
    spec = export_format(format_name)
    return _why_not(spec, check_precision(precision), False, PRECISIONS, None)


def require_precision(format_name: str, precision: str) -> None:
    """Raise ``ValueError`` with ``precision_unavailable``'s sentence where it is not None."""
    validate_export(format_name, precision)


def _why_not(spec: ExportFormat, precision: str, multi_output: bool, precisions: tuple[str, ...],
             task: Optional[str]) -> Optional[str]:
    """Why ``spec`` cannot serve the request (None: it can): what the graph allows first, then
    what the format writes, then what this machine has."""
    graph = f"--task {task}" if task else "this network"
    if precision not in precisions:
        return f"--precision {precision}: {graph} exports {', '.join(precisions)} only"
    if multi_output and not spec.multi_output:
        writers = format_names(precision=precision, multi_output=True)
        return (f"--format {spec.name}: {graph} exports to {_either(writers)} "
                f"(the formats that write graphs with several outputs)")
    if precision not in spec.precisions:
        writers = format_names(precision=precision, multi_output=multi_output)
        return (f"--format {spec.name} cannot write --precision {precision} (it writes "
                f"{', '.join(spec.precisions)}); {precision} is written by {', '.join(writers) or 'no format'}")
    return _missing_here(spec, precision)


def _missing_here(spec: ExportFormat, precision: str) -> Optional[str]:
    """What this machine lacks for ``spec`` to write and run ``precision`` (None: nothing)."""
    if not spec.installed:
        return f"{spec.name} needs the '{spec.module}' package: pip install \"edgenext[{spec.extra}]\""
    needed = spec.needs.get(precision)
    if needed is not None and not is_present(needed[0]):
        return f"{spec.name} {precision} needs the '{needed[0]}' package: pip install \"edgenext[{needed[1]}]\""
    if precision == "bf16":
        native, why = native_bf16()
        if not native:
            return f"{spec.name} bf16 is not offered on this machine: {why}"
    return None


def _either(names: Sequence[str]) -> str:
    """``a``, ``a or b``, ``a, b or c`` (``no format`` for none)."""
    if not names:
        return "no format"
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
