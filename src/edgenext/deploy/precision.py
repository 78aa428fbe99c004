"""Numeric precisions of an export: which format writes which, and whether this machine runs it.

``fp32`` is every format's default and the only one checked against eager PyTorch to 1e-4.
``bf16`` is OpenVINO's inference-precision hint, offered only where the CPU computes bf16
natively (``hardware.native_bf16``): emulated bf16 is slower than fp32. ``int8`` is
post-training quantisation (``quantize.py``): ONNX Runtime, ExecuTorch XNNPACK, OpenVINO (NNCF).
"""

from __future__ import annotations

from typing import Optional

from ..hardware import native_bf16
from ..optional import is_installed

PRECISIONS = ("fp32", "bf16", "int8")

#: packages a reduced precision needs beyond the format's own runtime: (module, extra)
_NEEDS: dict[tuple[str, str], tuple[str, str]] = {
    ("openvino", "int8"): ("nncf", "openvino"),
    ("executorch", "int8"): ("torchao", "executorch"),
}


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``, else a ``ValueError`` listing them."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def format_cannot(format_name: str, format_precisions: tuple[str, ...], precision: str) -> Optional[str]:
    """Why a format writing ``format_precisions`` cannot write ``precision`` (None: it can)."""
    check_precision(precision)
    if precision in format_precisions:
        return None
    writers = [name for name, spec in _formats().items() if precision in spec.precisions]
    return (f"--format {format_name} cannot write --precision {precision} (it writes "
            f"{', '.join(format_precisions)}); {precision} is written by {', '.join(writers) or 'no format'}")


def check_format_precision(format_name: str, format_precisions: tuple[str, ...], precision: str) -> None:
    """Raise ``ValueError`` (``format_cannot``'s sentence) when the format cannot write ``precision``."""
    cannot = format_cannot(format_name, format_precisions, precision)
    if cannot is not None:
        raise ValueError(cannot)


def precision_unavailable(format_name: str, precision: str) -> Optional[str]:
    """None where ``format_name`` can write and run ``precision`` on this machine, else a
    sentence saying why not (the format cannot, a package is missing, or no native bf16).

    Unknown format or precision names raise ``ValueError``.
    """
    from .formats import export_format

    spec = export_format(format_name)
    cannot = format_cannot(spec.name, spec.precisions, precision)
    if cannot is not None:
        return cannot
    if not spec.installed:
        return f"{spec.name} needs the '{spec.module}' package: pip install \"edgenext[{spec.extra}]\""
    needed = _NEEDS.get((spec.name, precision))
    if needed is not None and not is_installed(needed[0]):
        return f"{spec.name} {precision} needs the '{needed[0]}' package: pip install \"edgenext[{needed[1]}]\""
    if precision == "bf16":
        native, why = native_bf16()
        if not native:
            return f"{spec.name} bf16 is not offered on this machine: {why}"
    return None


def require_precision(format_name: str, precision: str) -> None:
    """Raise ``ValueError`` with ``precision_unavailable``'s sentence where it is not None."""
    why = precision_unavailable(format_name, precision)
    if why is not None:
        raise ValueError(why)


def _formats() -> dict:
    from .formats import FORMATS

    return FORMATS
