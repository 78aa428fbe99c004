"""Export of a network with several outputs (a detector's boxes and scores, a segmenter's
logits), with the same parity check and result as ``export_model``.

``export_network`` knows nothing of the model behind it: it takes an ``nn.Module`` from
``(N, 3, H, W)`` images in [0, 1] to one tensor or a tuple of tensors, and the names of those
outputs. Which module a detector or segmenter exports (``SSDLiteRaw``, the DeepLabv3 eval
graph) is decided above ``deploy/`` (``edgenext.dense.export``). Nothing is fused: the
inference fusion knows the classifier only.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn

from ..models.edgenext import InputSize, input_hw
from .common import FP32_TOLERANCE, HW, example_images, max_abs_diff
from .export import ExportResult, ParityError, size_bytes
from .formats import MULTI_OUTPUT_FORMATS, ExportFormat, export_format

#: the batch sizes a dynamic-batch export is checked at (one, and more than one, image)
DYNAMIC_CHECK_BATCHES = (1, 2)


def as_outputs(out: Union[torch.Tensor, Sequence[torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """A module's output as a tuple of tensors (a single tensor is a one-tuple)."""
    return (out,) if isinstance(out, torch.Tensor) else tuple(out)


def multi_output_format(fmt: str) -> ExportFormat:
    """The format called ``fmt`` if it exports multi-output networks, else a ``ValueError`` naming those that do."""
    spec = export_format(fmt)
    if not spec.multi_output:
        raise ValueError(f"{fmt} export is for classifiers only here; detectors and segmenters export to "
                         f"{' or '.join(MULTI_OUTPUT_FORMATS)}")
    return spec


def export_network(
    module: nn.Module,
    fmt: str,
    output: Union[str, Path],
    *,
    input_size: InputSize,
    output_names: Sequence[str],
    batch: Optional[int] = None,
    tolerance: float = FP32_TOLERANCE,
) -> ExportResult:
    """Export ``module`` to ``fmt`` at ``output``, run it in its runtime and compare every output.

    ``input_size``: a side or ``(height, width)``, fixed in the file. ``batch=None``: a dynamic
    batch axis, checked at batch 1 and 2 (ExecuTorch: a static batch-1 program, checked at 1);
    else that batch. ``output_names``: one per output of ``module``. The result's
    ``max_abs_diff`` is the largest over all outputs and batches; ``details`` holds each
    output's (``max_abs_diff``) and shape (``shapes``, at the first checked batch). Raises
    ``ParityError`` above ``tolerance``.
    """
    spec = multi_output_format(fmt)
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be a positive integer or None (dynamic), got {batch}")
    names = tuple(output_names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"output_names must name each output once, got {names}")
    size = input_hw(input_size)
    module = module.eval()
    with torch.no_grad():
        count = len(as_outputs(module(example_images(1, size))))
    if count != len(names):
        raise ValueError(f"the module returns {count} outputs but output_names names {len(names)}: {names}")
    if spec.static_batch and batch is None:
        batch = 1  # mobile runtimes: a static batch-1 program unless asked otherwise
    start = time.perf_counter()
    path = Path(spec.writer(module, Path(output), input_size=size, batch=batch, output_names=names))
    seconds = time.perf_counter() - start
    batches = DYNAMIC_CHECK_BATCHES if batch is None else (batch,)
    diffs, shapes = _compare(module, spec.runner(path), names, size, batches)
    check = (f"batch {' and '.join(map(str, batches))}, fixed seeded images, "
             + ", ".join(f"{n} {d:.1e}" for n, d in diffs.items()))
    result = ExportResult(spec.name, str(path), size_bytes(path), max(diffs.values()), tolerance, check, seconds,
                          {"outputs": list(names), "max_abs_diff": diffs, "shapes": shapes, "batches": list(batches)})
    if result.max_abs_diff > tolerance:
        raise ParityError(f"{spec.name} export differs from eager PyTorch: {result.parity_line()}")
    return result


def _compare(module: nn.Module, runner, names: tuple[str, ...], size: HW,
             batches: Sequence[int]) -> tuple[dict[str, float], dict[str, list[int]]]:
    """Each output's max-abs difference over ``batches`` and its shape at the first of them."""
    diffs = dict.fromkeys(names, 0.0)
    shapes: dict[str, list[int]] = {}
    for b in batches:
        x = example_images(b, size, seed=1)
        with torch.no_grad():
            reference = as_outputs(module(x))
        exported = runner.outputs(x)
        if len(exported) != len(names):
            raise ParityError(f"the export returns {len(exported)} outputs, eager PyTorch {len(names)} {names}")
        for name, got, want in zip(names, exported, reference):
            diffs[name] = max(diffs[name], max_abs_diff(got, want))
            shapes.setdefault(name, list(want.shape))
    return diffs, shapes
