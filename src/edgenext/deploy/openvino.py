"""OpenVINO export (IR ``.xml`` + ``.bin``) and a CPU wrapper; an optional extra."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import nn

from ..optional import require
from .common import HW, example_input

EXTRA = "openvino"


def export_openvino(
    model: nn.Module, output: Union[str, Path], *, input_size: HW = (256, 256), batch: Optional[int] = None
) -> Path:
    """Convert ``model`` at ``input_size`` (height, width) to OpenVINO IR at ``output`` (``.xml``;
    the weights go to the ``.bin`` beside it). ``batch=None`` leaves the batch axis dynamic."""
    ov = require("openvino", EXTRA, "OpenVINO export")
    output = Path(output)
    if output.suffix != ".xml":
        raise ValueError(f"OpenVINO IR is an .xml file (weights go to a .bin beside it), got {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    x = example_input(batch or 2, input_size, getattr(model, "in_chans", 3))
    dynamic = ({0: torch.export.Dim("batch", min=1, max=1024)},) if batch is None else None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # NOTE: from torch.export, not the TorchScript tracer: tracing specialises a reshape in
        # the XCA to the traced batch and the IR then fails at any other batch.
        program = torch.export.export(model.eval(), (x,), dynamic_shapes=dynamic, strict=False)
        converted = ov.convert_model(program)
    ov.save_model(converted, str(output), compress_to_fp16=False)
    return output


class OpenVinoModel:
    """An OpenVINO IR compiled for the CPU in fp32 (no bf16/fp16 hint: parity stays fp32)."""

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, device: str = "CPU") -> None:
        ov = require("openvino", EXTRA, "OpenVINO inference")
        config: dict = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(path), device, config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        result = self.request.infer({0: np.ascontiguousarray(x.detach().cpu().numpy())})
        return torch.from_numpy(np.array(result[self.compiled.output(0)]))
