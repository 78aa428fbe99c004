"""ExecuTorch export: a ``.pte`` program lowered to the XNNPACK backend (what Android/iOS apps
embed), fp32 or int8 (see ``quantize.py``), and the Python runtime wrapper used to check it."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..optional import require
from .common import HW, example_input
from .precision import format_cannot

log = logging.getLogger(__name__)

EXTRA = "executorch"
PRECISIONS = ("fp32", "int8")
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
    cannot = format_cannot("executorch", PRECISIONS, precision)
    if cannot is not None:
        raise ValueError(cannot)
    require("executorch", EXTRA, "ExecuTorch export")
    if precision == "int8":
        from .quantize import quantize_executorch

        if calibration is None:
            raise ValueError("ExecuTorch int8 needs calibration images (calibration_tensor('digits' | DIR, ...))")
        return quantize_executorch(model, output, calibration, input_size=input_size, batch=batch or 1)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    x = example_input(batch or 2, input_size, getattr(model, "in_chans", 3))
    output.write_bytes(lower_to_xnnpack(export_program(model, x, dynamic_batch=batch is None)))
    return output


class ExecuTorchModel:
    """A ``.pte`` file in ExecuTorch's Python runtime (the same C++ runtime apps link).

    ``threads`` resizes the runtime's thread pool, which every loaded program shares;
    ``precision`` is the program's (an int8 program carries its quantisation): checked, not applied.
    """

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        cannot = format_cannot("executorch", PRECISIONS, precision)
        if cannot is not None:
            raise ValueError(cannot)
        require("executorch", EXTRA, "the ExecuTorch runtime")
        from executorch.runtime import Runtime

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
