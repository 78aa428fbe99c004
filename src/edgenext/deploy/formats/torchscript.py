"""TorchScript: a traced, frozen module loadable with ``torch.jit.load`` (C++ / mobile); torch alone."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ..parity import HW, example_input
from .registry import ExportFormat, register


def export_torchscript(
    model: nn.Module,
    output: Union[str, Path],
    *,
    input_size: HW = (256, 256),
    batch: Optional[int] = None,
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
) -> Path:
    """Trace ``model`` at ``input_size`` (height, width) and save it. Shapes are read from
    tensors, so the batch stays dynamic; the spatial size is the traced one (the precomputed
    positional encoding is baked in). fp32 only (``calibration`` unused)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    x = example_input(batch or 2, input_size, getattr(model, "in_chans", 3))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation and tracer warnings
        traced = torch.jit.trace(model.eval(), (x,), check_trace=False)
        traced = torch.jit.freeze(traced)
        torch.jit.save(traced, str(output))
    return output


class TorchScriptRunner:
    """A saved TorchScript file, callable like the module.

    ``threads``: TorchScript runs on torch's own intra-op pool, so this sets ``torch.set_num_threads``.
    """

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        if threads:
            torch.set_num_threads(threads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.module(x)


register(ExportFormat("torchscript", ".pt", None, "torch", export_torchscript, TorchScriptRunner, order=30))
