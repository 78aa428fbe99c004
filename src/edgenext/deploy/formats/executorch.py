"""ExecuTorch: a ``.pte`` program lowered to the XNNPACK backend (what Android/iOS apps embed),
fp32 or int8 (the PT2E flow with XNNPACK's quantiser, per-channel symmetric int8, then lowered
like the fp32 program), and the Python runtime runner used to check it. Before writing, ``graph_form``
(``_executorch_graph.executorch_graph_form``) splits the depth-wise convs larger than 5x5 (EdgeNeXt's
7x7 and 9x9) into strips XNNPACK runs with its depth-wise kernels instead of a grouped IGEMM, and writes
LayerNorm and the XCA in ops XNNPACK's delegate takes, so that the whole network is two delegate calls
instead of thirty (fp32 only: XNNPACK rejects the strips' zero pad in the int8 program)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ...models.edgenext import InputSize, input_hw
from ...optional import require
from ..parity import HW, example_input
from ._executorch_graph import executorch_graph_form
from ._int8 import CALIBRATION_BATCH, require_calibration
from .registry import ExportFormat, register, runner_threads

log = logging.getLogger(__name__)

EXTRA = "executorch"
MAX_DYNAMIC_BATCH = 64


def export_program(model: nn.Module, x: torch.Tensor, dynamic_batch: bool) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` at ``x``'s shape; the batch axis symbolic when asked."""
    dynamic = ({0: torch.export.Dim("batch", min=1, max=MAX_DYNAMIC_BATCH)},) if dynamic_batch else None
    if not isinstance(model, torch.fx.GraphModule):  # a PT2E-quantised graph refuses .eval()
        model = model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.export.export(model, (x,), dynamic_shapes=dynamic, strict=False)


def lower_to_xnnpack(program: torch.export.ExportedProgram) -> bytes:
    """Partition everything XNNPACK supports to it and serialise the program."""
    require("executorch", EXTRA, "ExecuTorch export")
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        return edge.to_executorch().buffer


def export_executorch(
    model: nn.Module,
    output: Union[str, Path],
    *,
    input_size: HW = (256, 256),
    batch: Optional[int] = 1,
    output_names: Sequence[str] = (),
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
) -> Path:
    """Write ``model`` at ``input_size`` (height, width) as an XNNPACK-delegated ``.pte``.
    ``batch=None``: dynamic batch up to ``MAX_DYNAMIC_BATCH`` (mobile apps usually run batch 1,
    the default). ``output_names`` is not stored: a program's outputs are positional (taken so
    that every multi-output writer has one signature). ``precision="int8"``: PT2E quantisation
    calibrated on ``calibration`` (required), a static batch (``None`` means 1)."""
    require("executorch", EXTRA, "ExecuTorch export")
    if precision == "int8":
        calibration = require_calibration(calibration, "ExecuTorch int8")
        return quantize_executorch(model, output, calibration, input_size=input_size, batch=batch or 1)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    x = example_input(batch or 2, input_size, getattr(model, "in_chans", 3))
    output.write_bytes(lower_to_xnnpack(export_program(model, x, dynamic_batch=batch is None)))
    return output


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
    require("executorch", EXTRA, "ExecuTorch int8 quantisation")
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    calibration = require_calibration(calibration, "ExecuTorch int8")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    size = input_hw(input_size)
    in_chans = getattr(model, "in_chans", 3)
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # NOTE: calibrated on a dynamic-batch graph in batches (the histogram observers cost per
        # call: 128 single images took 9x as long), then exported again at the static batch.
        graph = export_program(model, example_input(2, size, in_chans), dynamic_batch=True).module()
        prepared = prepare_pt2e(graph, quantizer)
        for xb in calibration.split(CALIBRATION_BATCH):
            prepared(xb)
        quantized = convert_pt2e(prepared)
        program = export_program(quantized, example_input(batch, size, in_chans), dynamic_batch=False)
    output.write_bytes(lower_to_xnnpack(program))
    return output


class ExecuTorchRunner:
    """A ``.pte`` file in ExecuTorch's Python runtime (the same C++ runtime apps link).

    ``threads`` resizes the runtime's thread pool, which every loaded program shares;
    ``precision`` is the program's (an int8 program carries its quantisation): nothing to apply.
    """

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        require("executorch", EXTRA, "the ExecuTorch runtime")
        from executorch.runtime import Runtime

        threads = runner_threads(threads)
        if threads:
            _set_threads(threads)
        self.program = Runtime.get().load_program(str(path))
        self.method = self.program.load_method("forward")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output of the program, in its order (a detector's boxes and scores)."""
        return tuple(self.method.execute([x.detach().contiguous()]))


def _set_threads(threads: int) -> None:
    try:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(threads)
    except (ImportError, AttributeError):  # older/newer runtimes: keep their default pool
        log.debug("could not set ExecuTorch's thread count")


register(ExportFormat("executorch", ".pte", EXTRA, "executorch", export_executorch, ExecuTorchRunner,
                      static_batch=True, multi_output=True, precisions=("fp32", "int8"),
                      needs={"int8": ("torchao", EXTRA)}, order=20, graph_form=executorch_graph_form,
                      # NOTE: fp32 only: in the int8 program XNNPACK refuses the strips' zero pad
                      # (StaticConstantPad: xnn_status_invalid_parameter at load), and each strip's
                      # partial sum would be quantised before the adds (3-10x the conv's int8 error)
                      graph_form_precisions=("fp32",)))
