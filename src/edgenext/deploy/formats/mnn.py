"""MNN (Alibaba's engine): a ``.mnn`` file converted from our ONNX export by MNN's converter, and a
runner on MNN's Python runtime (the same C++ engine apps link); an optional extra.

fp32 keeps every weight in float32 and runs with MNN's ``precision: high`` (fp32 arithmetic).
int8 is MNN's weight quantisation (``--weightQuantBits 8``: per-channel int8 weights, 4x smaller
file, dequantised at load; activations stay float): the quantisation the pip package reaches
without MNN's calibration tool, which reads image files through its own preprocessing config.

NOTE: we call the converter's extension (``_tools.mnnconvert``) directly. Importing the pip
package's ``MNN.tools.mnnconvert`` wrapper imports its usage logger, which runs ``pip install``
of a logging SDK at import (and downgraded protobuf here): never import ``MNN.tools``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ...optional import require
from ..parity import HW
from .registry import ExportFormat, register, runner_threads

EXTRA = "mnn"
#: the runtime's precision mode, for both file precisions: fp32 arithmetic (int8 is weight-only)
PRECISION_MODE = "high"


def export_mnn(
    model: nn.Module,
    output: Union[str, Path],
    *,
    input_size: HW = (256, 256),
    batch: Optional[int] = None,
    output_names: Sequence[str] = ("logits",),
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
) -> Path:
    """Write ``model`` at ``input_size`` (height, width) as a ``.mnn`` file, ``batch`` fixed or
    dynamic (None): our ONNX export (opset 20, simplified) converted by MNN's converter.
    ``output_names`` name the outputs; ``precision="int8"`` stores int8 weights (``calibration``
    is not used: weight quantisation needs no images)."""
    from .onnx import export_onnx

    tools = _converter()
    output = Path(output)
    if output.suffix != ".mnn":
        raise ValueError(f"an MNN model is a .mnn file, got {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        export_onnx(model, onnx_path, input_size=input_size, batch=batch, output_names=tuple(output_names))
        args = ["mnnconvert", "-f", "ONNX", "--modelFile", str(onnx_path), "--MNNModel", str(output),
                "--bizCode", "edgenext"]
        if precision == "int8":
            args += ["--weightQuantBits", "8"]
        with _stdout_to_stderr():
            tools.mnnconvert(args)
    if not output.is_file() or output.stat().st_size == 0:
        raise RuntimeError(f"MNN's converter wrote no model to {output} (its log is above)")
    return output


def _converter():
    """MNN's converter extension (installed with the ``MNN`` package), or the extra to install."""
    require("MNN", EXTRA, "MNN export")
    return importlib.import_module("_tools")


@contextlib.contextmanager
def _stdout_to_stderr():
    """The converter's C++ log lines to stderr (file descriptor level), so that
    ``edgenext export --json`` stays JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


class MNNRunner:
    """A ``.mnn`` file in MNN's CPU runtime (its Module API), ``threads`` threads, fp32 arithmetic;
    a dynamic-batch file takes any batch (MNN resizes the session on a new shape)."""

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        require("MNN", EXTRA, "MNN inference")
        import MNN.expr as expr
        import MNN.nn as mnn_nn

        self._expr = expr
        config = {"backend": "CPU", "precision": PRECISION_MODE, "numThread": runner_threads(threads) or 1}
        self.runtime = mnn_nn.create_runtime_manager((config,))
        with _stdout_to_stderr():
            self.net = mnn_nn.load_module_from_file(str(path), [], [], runtime_manager=self.runtime)
        info = self.net.get_info()
        self.input_names, self.output_names = list(info["inputNames"]), list(info["outputNames"])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output, in the exported order (a detector's boxes and scores)."""
        data = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)
        outs = self.net.forward([self._expr.const(data, list(data.shape), self._expr.NCHW)])
        if not outs:  # MNN prints its shape error and returns nothing
            raise RuntimeError(f"MNN could not run a {tuple(x.shape)} input (its log is above)")
        return tuple(torch.from_numpy(np.array(self._expr.convert(o, self._expr.NCHW).read(), dtype=np.float32))
                     for o in outs)


class ErfGELU(nn.Module):
    """The exact GELU written as ``x/2 * (1 + erf(x/sqrt(2)))``: MNN's own GELU op (what the ONNX
    ``Gelu`` becomes) approximates it, 4.7e-4 off at |x| ~ 3 (measured), its ``Erf`` does not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x * (1.0 + torch.erf(x * 0.7071067811865476))


def mnn_graph(module: nn.Module) -> nn.Module:
    """``module`` in ops MNN computes exactly, same function, on a copy: its exact GELUs as
    ``ErfGELU``, and its XCAs' L2 norms as ``sqrt(sum(q * q))`` (ncnn's forms of the attention,
    ``_ncnn_graph``): MNN 3.6's converter drops the axes of ONNX's ``ReduceL2`` (opset 18+, axes
    as an input) and takes the norm of the whole tensor."""
    from ._ncnn_graph import ncnn_graph_form  # NOTE: lazy: it imports the fusion and dense modules

    module = ncnn_graph_form(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.GELU) and child.approximate == "none":
                setattr(parent, name, ErfGELU())
    return module


register(ExportFormat("mnn", ".mnn", EXTRA, "MNN", export_mnn, MNNRunner, multi_output=True,
                      precisions=("fp32", "int8"), order=35, graph_form=mnn_graph,
                      layout="channels_first"))
