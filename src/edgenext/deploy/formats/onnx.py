"""ONNX: export (opset 20, dynamic or fixed batch, simplified), int8 by ONNX Runtime's quantiser,
and the ONNX Runtime runner.

int8 ``dynamic`` (the default): per-channel symmetric int8 weights of every MatMul/Gemm with a
constant weight, activations quantised per call inside ONNX Runtime's fused
``DynamicQuantizeMatMul`` (quantise + int8 GEMM + dequantise + bias in one kernel). ``static``
is the QDQ graph (QuantizeLinear/DequantizeLinear pairs around every quantisable op, uint8
activations from min/max calibration): on EdgeNeXt it is no faster than fp32, because LayerNorm
and GELU have no int8 kernels and every one of them gets a dequantise and a quantise pass.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ...optional import is_installed, require
from ..parity import HW, example_input
from ._int8 import require_calibration
from .registry import ExportFormat, register, runner_threads

log = logging.getLogger(__name__)

EXTRA = "onnx"
#: NOTE: opset 20 has a Gelu op; at 18 GELU is exported as Div/Erf/Add/Mul/Mul in an order ONNX
#: Runtime's GELU fusion does not match, and those five passes cost fp32 13-22% (int8_findings).
DEFAULT_OPSET = 20
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
#: ONNX Runtime int8 methods; the first is the default (the faster one on EdgeNeXt, measured)
ONNX_INT8_METHODS = ("dynamic", "static")


def export_onnx(
    model: nn.Module,
    output: Union[str, Path],
    *,
    input_size: HW = (256, 256),
    batch: Optional[int] = None,
    opset: int = DEFAULT_OPSET,
    simplify: bool = True,
    output_names: Sequence[str] = (OUTPUT_NAME,),
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
) -> Path:
    """Write ``model`` as ONNX at ``input_size`` (height, width). ``batch=None`` makes the batch
    axis dynamic; the spatial size is fixed. ``output_names``: one per output of ``model``
    (a detector's ``boxes`` and ``scores``). ``precision="int8"``: the fp32 graph quantised by
    ``quantize_onnx`` (its default method; ``calibration`` is used by the static one).

    The graph comes from the dynamo exporter (already constant-folded by onnxscript's
    optimiser) and, when onnxslim is installed, is slimmed further (fused constants, removed
    identity/cast chains).
    """
    require("onnx", EXTRA, "ONNX export")
    require("onnxscript", EXTRA, "ONNX export")
    if opset < 17:
        raise ValueError(f"opset {opset} is too old: EdgeNeXt's LayerNormalization needs opset 17 or newer")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if precision == "int8":
        fp32 = output.with_name(output.stem + ".fp32.onnx")
        try:
            export_onnx(model, fp32, input_size=input_size, batch=batch, opset=opset, simplify=simplify,
                        output_names=output_names)
            return quantize_onnx(fp32, output, calibration)
        finally:
            fp32.unlink(missing_ok=True)
    x = example_input(batch or 2, input_size, getattr(model, "in_chans", 3))
    dynamic = None if batch else ({0: torch.export.Dim("batch", min=1, max=1024)},)
    model = model.eval()
    with torch.no_grad(), warnings.catch_warnings(), _quiet("onnxscript", "torch.onnx", "onnx_ir"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            model, (x,), dynamo=True, opset_version=opset, dynamic_shapes=dynamic,
            input_names=[INPUT_NAME], output_names=list(output_names), verbose=False, optimize=True,
        )
        program.save(str(output))
    if simplify:
        simplify_onnx(output)
    return output


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """The exporter and its optimiser log every rewrite at INFO: keep the user's console readable."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for logger, _ in saved:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def simplify_onnx(path: Union[str, Path]) -> bool:
    """Slim the graph in place with onnxslim; False (and the graph unchanged) when not installed."""
    if not is_installed("onnxslim"):
        log.info("onnxslim is not installed (pip install \"edgenext[%s]\"): keeping the exporter's graph", EXTRA)
        return False
    import onnx
    import onnxslim

    with _quiet("onnxslim"):
        slim = onnxslim.slim(onnx.load(str(path)))
    onnx.save(slim, str(path))
    return True


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
    if method == "static":
        calibration = require_calibration(calibration, "static int8 quantisation")
    require("onnxruntime", EXTRA, "ONNX Runtime quantisation")
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    prepared = output.with_suffix(".prep.onnx")
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
            batches = list(calibration.split(batch_size))
            quantize_static(
                str(prepared), str(output), _Reader(input_name, batches),
                quant_format=QuantFormat.QDQ, per_channel=per_channel,
                weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                calibrate_method=CalibrationMethod.MinMax,
            )
    finally:
        prepared.unlink(missing_ok=True)
    return output


class OnnxRunner:
    """An ONNX file in an ONNX Runtime CPU session: ``runner(x)`` takes and returns tensors.
    ``precision`` is the file's (an int8 graph carries its own quantisation): nothing to apply."""

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        ort = require("onnxruntime", EXTRA, "ONNX Runtime inference")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = runner_threads(threads)
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        #: the graph's input shape: ints, or a name for a dynamic axis
        self.input_shape = tuple(self.session.get_inputs()[0].shape)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output of the graph, in its order (a detector's boxes and scores)."""
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(x.detach().cpu().numpy())})
        return tuple(torch.from_numpy(o) for o in out)


register(ExportFormat("onnx", ".onnx", EXTRA, "onnxruntime", export_onnx, OnnxRunner, multi_output=True,
                      precisions=("fp32", "int8"), order=10, layout="channels_first",
                      channels_last_precisions=("int8",)))
