"""Post-training static int8 quantisation, calibrated on real images.

Two runtimes, each with its own quantiser (they disagree on what an int8 graph looks like):
  * ONNX Runtime: QDQ (QuantizeLinear/DequantizeLinear pairs around Conv/MatMul/Gemm),
    per-channel symmetric int8 weights, uint8 activations from min/max calibration;
  * ExecuTorch: the PT2E flow with XNNPACK's quantiser (per-channel symmetric int8),
    then lowered to XNNPACK like the fp32 program.
Both start from the ``fuse``d model, so folded BatchNorms/layer scales are quantised once.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..models.edgenext import InputSize, input_hw
from ..optional import require
from . import executorch
from .common import example_input
from .onnx import EXTRA as ONNX_EXTRA

log = logging.getLogger(__name__)


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of batches."""

    def __init__(self, input_name: str, batches: Sequence[torch.Tensor]) -> None:
        self._items = iter([{input_name: b.detach().cpu().numpy().astype(np.float32)} for b in batches])

    def get_next(self) -> Optional[dict]:
        return next(self._items, None)


def quantize_onnx(
    fp32_path: Union[str, Path],
    output: Union[str, Path],
    calibration: torch.Tensor,
    *,
    batch_size: int = 8,
    per_channel: bool = True,
) -> Path:
    """Write an int8 QDQ copy of the ONNX model ``fp32_path``, calibrated on ``calibration``
    (``(N, C, H, W)`` preprocessed images)."""
    require("onnxruntime", ONNX_EXTRA, "ONNX Runtime quantisation")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    prepared = output.with_suffix(".prep.onnx")
    import onnx

    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    batches = [calibration[i : i + batch_size] for i in range(0, len(calibration), batch_size)]
    try:
        # shape inference + ORT graph optimisation first, as onnxruntime recommends for QDQ
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(
                str(prepared), str(output), _Reader(input_name, batches),
                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    finally:
        prepared.unlink(missing_ok=True)
    return output


def quantize_executorch(
    model: nn.Module,
    output: Union[str, Path],
    calibration: torch.Tensor,
    *,
    input_size: InputSize = 256,
) -> Path:
    """Write an int8 XNNPACK ``.pte`` (batch 1) of ``model`` at ``input_size`` (a side or
    ``(height, width)``), calibrated on ``calibration``."""
    require("executorch", executorch.EXTRA, "ExecuTorch int8 quantisation")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    x = example_input(1, input_hw(input_size), getattr(model, "in_chans", 3))
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = executorch.export_program(model, x, dynamic_batch=False).module()
        prepared = prepare_pt2e(graph, quantizer)
        for i in range(len(calibration)):  # the exported graph is batch 1
            prepared(calibration[i : i + 1])
        quantized = convert_pt2e(prepared)
        program = executorch.export_program(quantized, x, dynamic_batch=False)
    output.write_bytes(executorch.lower_to_xnnpack(program))
    return output
