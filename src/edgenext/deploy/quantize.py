"""Post-training int8 quantisation, calibrated on real images.

Three runtimes, each with its own quantiser (they disagree on what an int8 graph looks like):
  * ONNX Runtime: by default ``dynamic``: per-channel symmetric int8 weights of every
    MatMul/Gemm with a constant weight, activations quantised per call inside ONNX Runtime's
    fused ``DynamicQuantizeMatMul`` (quantise + int8 GEMM + dequantise + bias in one kernel).
    ``static`` is the QDQ graph (QuantizeLinear/DequantizeLinear pairs around every
    quantisable op, uint8 activations from min/max calibration): on EdgeNeXt it is no faster
    than fp32, because LayerNorm and GELU have no int8 kernels and every one of them gets a
    dequantise and a quantise pass (/work/notes/int8_findings.md has the measurements);
  * ExecuTorch: the PT2E flow with XNNPACK's quantiser (per-channel symmetric int8),
    then lowered to XNNPACK like the fp32 program;
  * OpenVINO: NNCF post-training quantisation of the converted model (its default preset:
    symmetric int8 weights and activations, min/max statistics on the calibration images).
All start from the ``fuse``d model, so folded BatchNorms/layer scales are quantised once.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..models.edgenext import InputSize, input_hw
from ..optional import require
from . import executorch
from .common import example_input
from .onnx import EXTRA as ONNX_EXTRA
from .openvino import EXTRA as OPENVINO_EXTRA

#: ONNX Runtime int8 methods; the first is the default (the faster one on EdgeNeXt, measured)
ONNX_INT8_METHODS = ("dynamic", "static")

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
    calibration: Optional[torch.Tensor] = None,
    *,
    method: str = ONNX_INT8_METHODS[0],
    batch_size: int = 8,
    per_channel: bool = True,
) -> Path:
    """Write an int8 copy of the ONNX model ``fp32_path``: ``method="dynamic"`` (int8 weights,
    activations quantised per call; ``calibration`` unused) or ``"static"`` (QDQ, calibrated on
    ``calibration``, ``(N, C, H, W)`` preprocessed images)."""
    if method not in ONNX_INT8_METHODS:
        raise ValueError(f"unknown ONNX Runtime int8 method {method!r}: choose one of {', '.join(ONNX_INT8_METHODS)}")
    if method == "static" and calibration is None:
        raise ValueError("static int8 quantisation needs calibration images (calibration_tensor('digits' | DIR, ...))")
    require("onnxruntime", ONNX_EXTRA, "ONNX Runtime quantisation")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    prepared = output.with_suffix(".prep.onnx")
    import onnx

    input_name = onnx.load(str(fp32_path), load_external_data=False).graph.input[0].name
    try:
        # shape inference + ORT graph optimisation first, as onnxruntime recommends
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if method == "dynamic":
                # NOTE: MatMul/Gemm only: ORT's int8 convs (depth-wise above all) are no faster here.
                quantize_dynamic(str(prepared), str(output), op_types_to_quantize=["MatMul", "Gemm"],
                                 per_channel=per_channel, weight_type=QuantType.QInt8)
                return output
            batches = [calibration[i : i + batch_size] for i in range(0, len(calibration), batch_size)]
            quantize_static(
                str(prepared), str(output), _Reader(input_name, batches),
                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    finally:
        prepared.unlink(missing_ok=True)
    return output


#: images per forward pass while calibrating (PT2E, NNCF)
CALIBRATION_BATCH = 32


def static_batches(calibration: torch.Tensor, batch: int) -> list[torch.Tensor]:
    """``calibration`` cut into batches of exactly ``batch`` (a static-shape program's), the
    images repeated where fewer than one batch are given and the last partial batch dropped."""
    if len(calibration) == 0:
        raise ValueError("no calibration images were given")
    if len(calibration) < batch:
        calibration = calibration.repeat((batch + len(calibration) - 1) // len(calibration), 1, 1, 1)
    return [calibration[i : i + batch] for i in range(0, len(calibration) - batch + 1, batch)]


def quantize_executorch(
    model: nn.Module,
    output: Union[str, Path],
    calibration: torch.Tensor,
    *,
    input_size: InputSize = 256,
    batch: int = 1,
) -> Path:
    """Write an int8 XNNPACK ``.pte`` (static ``batch``, mobile apps run 1) of ``model`` at
    ``input_size`` (a side or ``(height, width)``), calibrated on ``calibration``."""
    require("executorch", executorch.EXTRA, "ExecuTorch int8 quantisation")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if len(calibration) == 0:
        raise ValueError("no calibration images were given")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    size = input_hw(input_size)
    in_chans = getattr(model, "in_chans", 3)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # NOTE: calibrated on a dynamic-batch graph in batches (the histogram observers cost per
        # call: 128 single images took 9x as long), then exported again at the static batch.
        graph = executorch.export_program(model, example_input(2, size, in_chans), dynamic_batch=True).module()
        prepared = prepare_pt2e(graph, quantizer)
        for xb in calibration.split(CALIBRATION_BATCH):
            prepared(xb)
        quantized = convert_pt2e(prepared)
        program = executorch.export_program(quantized, example_input(batch, size, in_chans), dynamic_batch=False)
    output.write_bytes(executorch.lower_to_xnnpack(program))
    return output


def quantize_openvino(ov_model: Any, calibration: torch.Tensor, *, batch: Optional[int] = None,
                      batch_size: int = CALIBRATION_BATCH) -> Any:
    """NNCF post-training int8 quantisation of an ``openvino.Model`` (fp32, as converted),
    calibrated on ``calibration``; a static ``batch`` calibrates in batches of exactly that size."""
    nncf = require("nncf", OPENVINO_EXTRA, "OpenVINO int8 quantisation")
    if len(calibration) == 0:
        raise ValueError("no calibration images were given")
    chunks = static_batches(calibration, batch) if batch else list(calibration.split(batch_size))
    items = [np.ascontiguousarray(c.detach().cpu().numpy(), dtype=np.float32) for c in chunks]
    nncf.set_log_level(logging.WARNING)
    # NOTE: NNCF draws progress bars on stdout: to stderr, so that `edgenext export --json` stays JSON
    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        # NOTE: not model_type=TRANSFORMER: its per-channel activation quantisers of the XCA's
        # batched matmuls are rejected by the CPU plugin (FakeQuantize axis 2) on compile.
        return nncf.quantize(ov_model, nncf.Dataset(items), subset_size=sum(len(c) for c in chunks),
                             preset=nncf.QuantizationPreset.PERFORMANCE)
