"""Optional packages: import one, or fail with the pip command of the extra that installs it.

A leaf module (it imports nothing from the package), so every layer can probe its optional
dependencies the same way: the export runtimes, the bench's runtimes and its plot.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(RuntimeError):
    """An optional package is not installed; the message names the extra that installs it."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or fail with the pip command that installs ``edgenext[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{what} needs the '{module}' package, which is not installed: pip install \"edgenext[{extra}]\""
            f" ({err})"
        ) from err


def is_installed(module: str) -> bool:
    """Whether ``module`` imports (a real import, so a broken install counts as missing)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
