"""Core ML (``.mlpackage``, ML program, fp32); an optional extra.

Conversion runs anywhere coremltools installs; prediction needs macOS, so off macOS the
check is structural (the saved package's input and output descriptions and shapes).
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from ...optional import require
from ..parity import HW, example_input
from .registry import ExportFormat, register

EXTRA = "coreml"


def export_coreml(
    model: nn.Module,
    output: Union[str, Path],
    *,
    input_size: HW = (256, 256),
    batch: Optional[int] = 1,
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
) -> Path:
    """Convert ``model`` at ``input_size`` (height, width) to a Core ML ML program at ``output``
    (a ``.mlpackage`` directory). fp32 only (``calibration`` unused)."""
    ct = require("coremltools", EXTRA, "Core ML export")
    output = Path(output)
    if output.suffix != ".mlpackage":
        raise ValueError(f"a Core ML ML program is saved as a .mlpackage directory, got {output}")
    x = example_input(batch or 1, input_size, getattr(model, "in_chans", 3))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model.eval(), (x,), strict=False).run_decompositions({})
        converted = ct.convert(
            program,
            inputs=[ct.TensorType(name="input", shape=tuple(x.shape))],
            outputs=[ct.TensorType(name="logits")],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32,
            minimum_deployment_target=ct.target.iOS16,
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    converted.save(str(output))
    return output


def can_predict() -> bool:
    return platform.system() == "Darwin"


def describe_coreml(path: Union[str, Path]) -> dict[str, list[int]]:
    """Input and output names with their shapes, read from the saved package's spec."""
    ct = require("coremltools", EXTRA, "Core ML inspection")
    spec = ct.utils.load_spec(str(path))
    shapes = {}
    for desc in list(spec.description.input) + list(spec.description.output):
        shapes[desc.name] = list(desc.type.multiArrayType.shape)
    return shapes


class CoreMLRunner:
    """A saved ``.mlpackage`` predicting on macOS (``threads`` is ignored: Core ML schedules its own)."""

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        ct = require("coremltools", EXTRA, "Core ML inference")
        if not can_predict():
            raise RuntimeError("Core ML prediction needs macOS; off macOS only the structure can be checked")
        self.model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        self.output = self.model.get_spec().description.output[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.model.predict({"input": x.detach().cpu().numpy()})[self.output])


register(ExportFormat("coreml", ".mlpackage", EXTRA, "coremltools", export_coreml, CoreMLRunner, static_batch=True,
                      can_run=can_predict, describe=describe_coreml, order=50))
