"""LiteRT (the TFLite runtime): a ``.tflite`` flatbuffer through ``litert-torch`` and a runner on
``ai-edge-litert``'s interpreter (XNNPACK on CPU, as on a phone); an optional extra.

fp32 is the converted graph as it is. int8 is LiteRT's own PT2E flow: the ``torch.export`` graph
annotated by ``litert_torch``'s ``PT2EQuantizer`` (per-channel symmetric int8 weights, int8
activations from min/max statistics on the calibration images), calibrated, converted, then
lowered to TFLite's quantised kernels by the same converter.

The input keeps PyTorch's NCHW layout (``(N, 3, H, W)`` float32), as every other format's; the
converter inserts the transposes to the NHWC kernels itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ...optional import require
from ..parity import HW, example_input
from ._int8 import CALIBRATION_BATCH, require_calibration
from .registry import ExportFormat, register, runner_threads

EXTRA = "litert"


#: graphs LiteRT's int8 cannot run (measured: the interpreter fails in DIV, "data[i] != zero_point")
_NO_INT8 = ("SSDLiteRaw", "NcnnSSDLiteRaw")


def export_litert(
    model: nn.Module,
    output: Union[str, Path],
    *,
    input_size: HW = (256, 256),
    batch: Optional[int] = 1,
    output_names: Sequence[str] = (),
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
) -> Path:
    """Write ``model`` at ``input_size`` (height, width) as a ``.tflite`` file with a static
    ``batch`` (None: 1, what a phone app runs). ``output_names`` is not stored (a LiteRT
    signature names its outputs ``output_0``, ``output_1``, ... in the module's order).
    ``precision="int8"``: PT2E quantisation calibrated on ``calibration`` (required)."""
    require("ai_edge_litert", EXTRA, "LiteRT export")
    litert_torch = require("litert_torch", EXTRA, "LiteRT export")
    output = Path(output)
    if output.suffix != ".tflite":
        raise ValueError(f"a LiteRT model is a .tflite file, got {output}")
    if precision == "int8" and any(type(m).__name__ in _NO_INT8 for m in model.modules()):
        raise ValueError("LiteRT int8 cannot run a detector: the quantised box decoding divides by a tensor "
                         "that LiteRT's int8 DIV refuses at run time (a zero at its zero point); export the "
                         "detector in int8 with --format onnx, mnn or openvino, or LiteRT in fp32")
    output.parent.mkdir(parents=True, exist_ok=True)
    x = example_input(batch or 1, input_size, getattr(model, "in_chans", 3))
    kwargs = {}
    if _linear_on_a_1x1_map(model, x):  # before converting: the converter takes minutes to fail on it
        raise ValueError(_one_by_one_message(input_size))
    if precision == "int8":
        model, kwargs["quant_config"] = _quantize(model.eval(), x, require_calibration(calibration, "LiteRT int8"))
    elif not isinstance(model, torch.fx.GraphModule):
        model = model.eval()
    with torch.no_grad(), _quiet():
        try:
            edge = litert_torch.convert(model, (x,), **kwargs)
        except ValueError as err:
            if "invalid output rank" not in str(err):
                raise
            raise ValueError(f"{_one_by_one_message(input_size)} ({err})") from err
        edge.export(str(output))
    return output


def _one_by_one_message(input_size: HW) -> str:
    # NOTE: litert-torch 0.10 lowers the Linears of a 1x1 map (the last stage of a 32 px input) to a
    # batch_matmul of the wrong rank, whatever form they are written in (2-D, addmm, matmul: tried)
    return (f"LiteRT's converter cannot convert this model at {input_size[0]}x{input_size[1]}: its last stage is a "
            "1x1 map, which litert-torch lowers wrongly; export at 64 px or more")


def _linear_on_a_1x1_map(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether a Linear of ``model`` meets a ``(B, 1, 1, C)`` map on ``x`` (one forward pass, hooks on the Linears)."""
    seen: list[bool] = []
    hooks = [m.register_forward_pre_hook(lambda _, args: seen.append(args[0].dim() == 4 and args[0].shape[1:3].numel() == 1))
             for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return any(seen)


def _quantize(model: nn.Module, x: torch.Tensor, calibration: torch.Tensor):
    """The PT2E-quantised graph of ``model`` calibrated on ``calibration``, and the converter's
    ``QuantConfig`` that lowers it."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # NOTE: calibrated on a dynamic-batch graph in batches, as ExecuTorch's int8: one image per
        # call costs the observers many times as long
        batch = torch.export.Dim("batch", min=1, max=1024)
        graph = torch.export.export(model, (x[:1].expand(2, -1, -1, -1).contiguous(),),
                                    dynamic_shapes=({0: batch},), strict=False).module()
        prepared = prepare_pt2e(graph, quantizer)
        for xb in calibration.split(CALIBRATION_BATCH):
            prepared(xb)
        return convert_pt2e(prepared, fold_quantize=False), QuantConfig(pt2e_quantizer=quantizer)


@contextlib.contextmanager
def _quiet():
    """The converter's progress lines and absl logging go to stderr, warnings nowhere, so that
    ``edgenext export --json`` stays JSON."""
    previous = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            logging.getLogger("absl").setLevel(logging.ERROR)
            yield
    finally:
        if previous is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        else:
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = previous


def _output_order(name: str) -> tuple[int, str]:
    """``output_10`` after ``output_2``: a signature's outputs in the module's order."""
    digits = re.findall(r"\d+", name)
    return (int(digits[-1]) if digits else 0, name)


class LiteRTRunner:
    """A ``.tflite`` file in LiteRT's interpreter (XNNPACK delegate, ``threads`` threads).

    The file has a static batch; an input of another batch runs image by image when the file's
    batch is 1 (a phone app's), else is refused. ``precision`` is the file's (an int8 file
    carries its quantisation): nothing to apply."""

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        require("ai_edge_litert", EXTRA, "LiteRT inference")  # NOTE: first the package: its submodule may be loaded
        lite = require("ai_edge_litert.interpreter", EXTRA, "LiteRT inference")
        self.interpreter = lite.Interpreter(model_path=str(path), num_threads=runner_threads(threads))
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        if len(details) != 1:
            raise ValueError(f"{path}: expected one image input, the model has {sorted(details)}")
        (self.input_name, self.input_detail), = details.items()
        self.output_details = self.runner.get_output_details()
        self.batch = int(self.input_detail["shape"][0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output, in the module's order (a detector's boxes and scores)."""
        if len(x) != self.batch:
            if self.batch != 1:
                raise ValueError(f"this LiteRT file runs batches of {self.batch}, got {len(x)}")
            parts = [self.outputs(x[i : i + 1]) for i in range(len(x))]
            return tuple(torch.cat(group) for group in zip(*parts))
        result = self.runner(**{self.input_name: _to_input(x.detach().cpu().numpy(), self.input_detail)})
        return tuple(torch.from_numpy(_from_output(result[k], self.output_details[k]))
                     for k in sorted(result, key=_output_order))


def _to_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """``x`` as the input wants it: float32, or quantised with the input's scale and zero point
    (an int8 file's input is int8)."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return np.ascontiguousarray(x, dtype=np.float32)
    scale, zero = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def _from_output(y: np.ndarray, detail: dict) -> np.ndarray:
    """An output as float32 (an int8 file's outputs dequantised)."""
    y = np.array(y)
    if y.dtype == np.float32:
        return y
    scale, zero = detail["quantization"]
    return ((y.astype(np.float32) - zero) * scale).astype(np.float32)


register(ExportFormat("litert", ".tflite", EXTRA, "ai_edge_litert", export_litert, LiteRTRunner, static_batch=True,
                      multi_output=True, precisions=("fp32", "int8"),
                      order=25))
