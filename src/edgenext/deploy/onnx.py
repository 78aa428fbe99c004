"""ONNX export (opset 20, dynamic or fixed batch, simplified; fp32 or int8) and the ONNX Runtime wrapper."""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..optional import is_installed, require
from .common import HW, example_input
from .precision import format_cannot

log = logging.getLogger(__name__)

EXTRA = "onnx"
PRECISIONS = ("fp32", "int8")
#: NOTE: opset 20 has a Gelu op; at 18 GELU is exported as Div/Erf/Add/Mul/Mul in an order ONNX
#: Runtime's GELU fusion does not match, and those five passes cost fp32 13-22% (int8_findings).
DEFAULT_OPSET = 20
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


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
    ``quantize.quantize_onnx`` (its default method; ``calibration`` is used by the static one).

    The graph comes from the dynamo exporter (already constant-folded by onnxscript's
    optimiser) and, when onnxslim is installed, is slimmed further (fused constants, removed
    identity/cast chains).
    """
    cannot = format_cannot("onnx", PRECISIONS, precision)
    if cannot is not None:
        raise ValueError(cannot)
    require("onnx", EXTRA, "ONNX export")
    require("onnxscript", EXTRA, "ONNX export")
    if opset < 17:
        raise ValueError(f"opset {opset} is too old: EdgeNeXt's LayerNormalization needs opset 17 or newer")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if precision == "int8":
        from .quantize import quantize_onnx

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


class OrtModel:
    """An ONNX file in an ONNX Runtime CPU session: ``model(x)`` takes and returns tensors."""

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        """``precision`` is the file's (an int8 graph carries its own quantisation): checked, not applied."""
        cannot = format_cannot("onnx", PRECISIONS, precision)
        if cannot is not None:
            raise ValueError(cannot)
        ort = require("onnxruntime", EXTRA, "ONNX Runtime inference")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
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
