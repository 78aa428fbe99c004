"""The export formats: a registry (``registry.py``) and one module per runtime that registers
itself, holding its writer, its runner and its int8 path together.

Importing this package imports every public module in it, so adding a format is adding a
module here (plus its tests); modules whose names start with ``_`` are shared helpers. The
format modules import their runtimes only when a function is called: listing the formats and
their availability imports no optional package.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import (
    FORMATS,
    MULTI_OUTPUT_FORMATS,
    PRECISIONS,
    ExportFormat,
    Runner,
    Writer,
    export_format,
    format_names,
    register,
    unregister,
)

__all__ = ["FORMATS", "MULTI_OUTPUT_FORMATS", "PRECISIONS", "ExportFormat", "Runner", "Writer", "export_format",
           "format_names", "register", "unregister"]


def _load_builtin_formats() -> None:
    for module in pkgutil.iter_modules(__path__):
        if not module.name.startswith("_") and module.name != "registry":
            importlib.import_module(f"{__name__}.{module.name}")


_load_builtin_formats()
