"""The export formats, described once: ``export_model``, ``edgenext export``, the bench and the
tests all read this table.

The format modules import their optional packages only when a function is called, so the
table itself imports with none of them installed; a missing package fails for its own format
only, with the pip command of its extra.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Protocol

import torch
from torch import nn

from ..optional import is_installed
from . import coreml, executorch, onnx, openvino, torchscript
from .common import HW


class Writer(Protocol):
    """Writes ``model`` to ``output`` in ``precision`` (one of the format's ``precisions``; int8
    calibrates on ``calibration``, ``(N, C, H, W)`` images normalised like the model's input);
    the writers of ``multi_output`` formats also take ``output_names``."""

    def __call__(self, model: nn.Module, output: Path, *, input_size: HW, batch: Optional[int],
                 precision: str = "fp32", calibration: Optional[torch.Tensor] = None) -> Path: ...


class Runner(Protocol):
    """A file loaded in its runtime: ``runner(path, threads=..., precision=...)(x)`` returns the
    logits tensor (the first output); for ``multi_output`` formats ``.outputs(x)`` returns all of
    them. ``precision`` is the file's (OpenVINO: the inference precision hint it compiles with)."""

    def __call__(self, path: Path, *, threads: Optional[int] = None,
                 precision: str = "fp32") -> Callable[[torch.Tensor], torch.Tensor]: ...


def _anywhere() -> bool:
    return True


@dataclass(frozen=True)
class ExportFormat:
    name: str
    suffix: str  # of what the writer writes (OpenVINO: the .xml, its weights in a .bin beside it)
    extra: Optional[str]  # pip install "edgenext[extra]" installs what it needs; None: torch alone
    module: str  # the package whose presence makes the format available here
    writer: Writer
    runner: Runner
    #: a mobile runtime: a static batch-1 program unless a batch is asked for
    static_batch: bool = False
    #: whether the runtime can run on this machine (Core ML predicts on macOS only)
    can_run: Callable[[], bool] = _anywhere
    #: the saved file's input/output shapes, for a structural check where it cannot run
    describe: Optional[Callable[[Path], dict[str, list[int]]]] = None
    #: networks with several outputs (a detector's boxes and scores) export and run: the writer
    #: takes ``output_names`` and the loaded runner's ``outputs(x)`` returns every output
    multi_output: bool = False
    #: the precisions the writer can write (``precision.precision_unavailable``: whether this machine runs one)
    precisions: tuple[str, ...] = ("fp32",)

    @property
    def installed(self) -> bool:
        return is_installed(self.module)


_TABLE = (
    ExportFormat("onnx", ".onnx", onnx.EXTRA, "onnxruntime", onnx.export_onnx, onnx.OrtModel, multi_output=True,
                 precisions=onnx.PRECISIONS),
    ExportFormat("executorch", ".pte", executorch.EXTRA, "executorch", executorch.export_executorch,
                 executorch.ExecuTorchModel, static_batch=True, multi_output=True, precisions=executorch.PRECISIONS),
    ExportFormat("torchscript", ".pt", None, "torch", torchscript.export_torchscript, torchscript.TorchScriptModel,
                 precisions=torchscript.PRECISIONS),
    ExportFormat("openvino", ".xml", openvino.EXTRA, "openvino", openvino.export_openvino, openvino.OpenVinoModel,
                 precisions=openvino.PRECISIONS),
    ExportFormat("coreml", ".mlpackage", coreml.EXTRA, "coremltools", coreml.export_coreml, coreml.CoreMLModel,
                 static_batch=True, can_run=coreml.can_predict, describe=coreml.describe_coreml,
                 precisions=coreml.PRECISIONS),
)

#: name -> format, in the order the CLI lists them
FORMATS: dict[str, ExportFormat] = {f.name: f for f in _TABLE}
#: the formats a multi-output network (detector, segmenter) exports to
MULTI_OUTPUT_FORMATS: tuple[str, ...] = tuple(f.name for f in _TABLE if f.multi_output)


def export_format(name: str) -> ExportFormat:
    """The format called ``name``, or a ``ValueError`` listing the known ones."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown export format {name!r}: choose one of {', '.join(FORMATS)}") from None
