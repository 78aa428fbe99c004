"""Packages whose public names are imported on first use (PEP 562), so that a light command does not
pay for PyTorch, timm or torchvision."""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_attributes(package: str, sources: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: each name of ``sources`` comes from its module (relative
    to ``package``) when first asked for, and is then kept in the package's namespace."""

    def __getattr__(name: str) -> Any:
        if name not in sources:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(sources[name], package), name)
        setattr(import_module(package), name, value)  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(import_module(package)), *sources})

    return __getattr__, __dir__
