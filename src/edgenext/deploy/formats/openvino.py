"""OpenVINO: IR ``.xml`` + ``.bin`` (fp32, the bf16 hint, or NNCF int8) and a CPU runner; an optional extra.

bf16 is not a different file: the fp32 IR compiled with ``INFERENCE_PRECISION_HINT=bf16``
(the IR records the hint in its runtime options, so ``compile_model`` applies it without our
runner too). int8 is the fp32 IR quantised by NNCF (``quantize_openvino``: its default preset,
symmetric int8 weights and activations, min/max statistics on the calibration images).

OpenVINO's converter and NNCF send usage telemetry by default (opt-out); edgenext's conversions
run with it off (``telemetry_off``), ``EDGENEXT_OPENVINO_TELEMETRY=1`` leaves their default.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ...optional import require
from ..parity import HW, example_input
from ._int8 import CALIBRATION_BATCH, require_calibration, static_batches
from .registry import ExportFormat, register, runner_threads

EXTRA = "openvino"
#: the CPU plugin's INFERENCE_PRECISION_HINT per precision; int8 keeps its non-quantised ops in f32
_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
#: "1": OpenVINO's converter and NNCF send their usage telemetry as they do by default
TELEMETRY_ENV = "EDGENEXT_OPENVINO_TELEMETRY"
#: the switches ovc and NNCF read themselves: ovc declines telemetry when CI is "true", NNCF when NNCF_CI is set
#: (read when nncf is first imported)
_TELEMETRY_OFF = {"CI": "true", "NNCF_CI": "1"}


@contextlib.contextmanager
def telemetry_off() -> Iterator[None]:
    """OpenVINO's converter (ovc) and NNCF telemetry off until the block ends, unless ``EDGENEXT_OPENVINO_TELEMETRY=1``.

    Both send usage events to Google Analytics unless told not to, each event from a forked copy of the
    calling process: an EdgeNeXt conversion forks it ~33 times, ~2.7 s of CPU and ~1.2 s of wall time
    offline (2-core AVX2 EPYC), and writes a client id under ``~/intel``. ovc decides once per process,
    when it first converts: a process that converted outside this block before keeps that decision.
    """
    if os.environ.get(TELEMETRY_ENV, "").strip() == "1":
        yield
        return
    saved = {name: os.environ.get(name) for name in _TELEMETRY_OFF}
    os.environ.update(_TELEMETRY_OFF)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _import(module: str, what: str) -> Any:
    """``require(module)`` with telemetry off: importing openvino sends an event, and NNCF reads its switch
    only when first imported."""
    with telemetry_off():
        return require(module, EXTRA, what)


def export_openvino(
    model: nn.Module,
    output: Union[str, Path],
    *,
    input_size: HW = (256, 256),
    batch: Optional[int] = None,
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
    output_names: Optional[Sequence[str]] = None,
) -> Path:
    """Convert ``model`` at ``input_size`` (height, width) to OpenVINO IR at ``output`` (``.xml``;
    the weights go to the ``.bin`` beside it). ``batch=None`` leaves the batch axis dynamic.
    ``output_names``: one per output of ``model`` (a detector's boxes and scores), set on the IR.
    ``precision="int8"`` quantises with NNCF on ``calibration`` (required); ``"bf16"`` records
    the bf16 inference hint in the IR."""
    if precision == "int8":
        calibration = require_calibration(calibration, "OpenVINO int8")
    ov = _import("openvino", "OpenVINO export")
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
        with telemetry_off():
            converted = ov.convert_model(program)
    if output_names is not None:
        if len(output_names) != len(converted.outputs):
            raise ValueError(f"output_names names {len(output_names)} outputs, the network has {len(converted.outputs)}")
        for port, name in zip(converted.outputs, output_names):
            port.get_tensor().set_names({name})
    if precision == "int8":
        converted = quantize_openvino(converted, calibration, batch=batch)
    converted.set_rt_info(_HINTS[precision], ["runtime_options", "INFERENCE_PRECISION_HINT"])
    ov.save_model(converted, str(output), compress_to_fp16=False)
    return output


def quantize_openvino(ov_model: Any, calibration: torch.Tensor, *, batch: Optional[int] = None,
                      batch_size: int = CALIBRATION_BATCH) -> Any:
    """NNCF post-training int8 quantisation of an ``openvino.Model`` (fp32, as converted),
    calibrated on ``calibration``; a static ``batch`` calibrates in batches of exactly that size."""
    nncf = _import("nncf", "OpenVINO int8 quantisation")
    calibration = require_calibration(calibration, "OpenVINO int8")
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


class OpenVinoRunner:
    """An OpenVINO IR compiled for the CPU. ``precision``: ``fp32`` forces f32 (the CPU plugin's
    default is bf16 where the CPU has it: parity stays fp32), ``bf16`` asks for bf16 (the plugin
    honours it only where it lists BF16 among its capabilities, AVX512-BF16 or AMX, and compiles
    f32 elsewhere: ``request.precision_unavailable`` offers bf16 only where the CPU computes it
    natively), ``int8`` runs an NNCF-quantised IR with its remaining ops in f32."""

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, device: str = "CPU",
                 precision: str = "fp32") -> None:
        ov = _import("openvino", "OpenVINO inference")
        config: dict = {"INFERENCE_PRECISION_HINT": _HINTS[precision]}
        threads = runner_threads(threads)
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(path), device, config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output of the IR, in its order (a detector's boxes and scores)."""
        result = self.request.infer({0: np.ascontiguousarray(x.detach().cpu().numpy())})
        return tuple(torch.from_numpy(np.array(result[port])) for port in self.compiled.outputs)


register(ExportFormat("openvino", ".xml", EXTRA, "openvino", export_openvino, OpenVinoRunner, multi_output=True,
                      precisions=("fp32", "bf16", "int8"), needs={"int8": ("nncf", EXTRA)}, order=40,
                      layout="channels_first"))
