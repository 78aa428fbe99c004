"""Shared pieces of the deploy modules: optional imports, example inputs, parity."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Union

import numpy as np
import torch

from ..models.edgenext import InputSize
from ..models.edgenext import input_hw as hw

# fp32 exports must reproduce eager PyTorch to this max-abs difference (the bound).
FP32_TOLERANCE = 1e-4


class MissingExtraError(RuntimeError):
    """An optional runtime/converter is not installed; the message names the extra to install."""


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or fail with the pip command that installs ``extra``."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{what} needs the '{module}' package, which is not installed: pip install \"edgenext[{extra}]\""
            f" ({err})"
        ) from err


def is_installed(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def example_input(batch: int, input_size: InputSize, in_chans: int = 3, seed: int = 0) -> torch.Tensor:
    """A fixed, seeded input: parity lines are reproducible run to run."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, in_chans, *hw(input_size), generator=gen)


def max_abs_diff(a: Union[torch.Tensor, np.ndarray], b: Union[torch.Tensor, np.ndarray]) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    if a.shape != b.shape:
        raise RuntimeError(f"exported model returned shape {a.shape}, eager PyTorch {b.shape}")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
