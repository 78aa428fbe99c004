"""One export path for every graph: validate the request, build the graph, write it, check it.

``export_model`` exports a classifier (an ``EdgeNeXt``), fused first by default so every runtime
gets the folded, channels-last graph. ``export_network`` exports any module from ``(N, 3, H, W)``
images in [0, 1] to one tensor or a tuple of them (a detector's boxes and scores, a segmenter's
logits), unfused (the inference fusion knows the classifier only); which module a detector or
segmenter exports is decided above ``deploy/``. Both load the written file in its runtime and
report the max-abs difference of every output against the eager (unfused) module on fixed
seeded inputs. Above the tolerance (1e-4 in fp32) they raise: a silently wrong export is worse
than none. A reduced precision (bf16, int8) reports the difference without bounding it, and
its price in top-1 (``precision_accuracy.measure_precision``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch import nn

from ..constants import DEFAULT_PRETRAINED_CFG
from ..models.edgenext import InputSize, input_hw
from .calibration import calibration_tensor
from .formats._int8 import DEFAULT_CALIBRATION_IMAGES
from .fusion import fuse
from .fusion.channels_first import written_module
from .parity import FP32_TOLERANCE, HW, as_outputs, example_images, example_input, max_abs_diff
from .precision_accuracy import PrecisionCheck, eval_settings, measure_precision
from .request import ExportRequest, validate_export
from .result import ExportResult, ParityError, size_bytes

__all__ = ["DEFAULT_CALIBRATION_IMAGES", "ExportResult", "ParityError", "export_model", "export_network",
           "size_bytes"]

#: the batch sizes a dynamic-batch network export is checked at (one, and more than one, image)
DYNAMIC_CHECK_BATCHES = (1, 2)
#: a dynamic-batch classifier is checked at a batch it was not traced at
CLASSIFIER_CHECK_BATCH = 3


@dataclass(frozen=True)
class ExportGraph:
    """What is written (``module``), what it must reproduce (``reference``: eager), the names of
    its outputs and how a fixed seeded input of a batch is made (``example``, described by
    ``example_kind`` in the parity line)."""

    module: nn.Module
    reference: nn.Module
    output_names: tuple[str, ...]
    example: Callable[[int], torch.Tensor]
    example_kind: str


@dataclass(frozen=True)
class Parity:
    """The checked batches, each output's max-abs difference over them and its eager shape at
    the first of them; ``runner``: the loaded file (None where it cannot run: ``described`` then
    holds the saved file's shapes)."""

    batches: tuple[int, ...]
    diffs: dict[str, float]
    shapes: dict[str, list[int]]
    runner: Optional[Callable[[torch.Tensor], torch.Tensor]]
    described: Optional[dict[str, list[int]]] = None


def export_model(
    model: nn.Module,
    fmt: str,
    output: Union[str, Path],
    *,
    input_size: InputSize = 256,
    batch: Optional[int] = None,
    fused: bool = True,
    tolerance: float = FP32_TOLERANCE,
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
    check: Optional[PrecisionCheck] = None,
    layout: Optional[str] = None,
) -> ExportResult:
    """Export ``model`` (an ``EdgeNeXt``) to ``fmt`` at ``output`` and check it in its runtime.

    ``input_size``: a side or ``(height, width)``. ``batch=None`` exports a dynamic batch axis
    where the format supports it (ExecuTorch and Core ML default to batch 1). Raises
    ``ParityError`` above ``tolerance`` (fp32 only).

    ``precision``: ``fp32``, ``bf16`` or ``int8`` (``request.precision_unavailable`` says where
    each runs); int8 calibrates on ``calibration`` (default: ``DEFAULT_CALIBRATION_IMAGES`` of
    the digits training split, preprocessed with the model's evaluation settings). A reduced
    precision measured on ``check`` (``precision_accuracy.precision_check``) reports its top-1
    in ``accuracy``. ``layout``: "channels_first" or "channels_last" for the fused model (default:
    the format's, ``ExportFormat.layout_for``; in ONNX Runtime channels-first is faster at batch 32,
    channels-last at batch 1 on EdgeNeXt-S: benchmarks/results.md).
    """
    request = validate_export(fmt, precision, batch=batch, layout=layout)
    size = input_hw(input_size)
    model = model.eval()
    in_chans = getattr(model, "in_chans", 3)
    graph = ExportGraph(fuse(model, size) if fused else model, model, ("logits",),
                        lambda b: example_input(b, size, in_chans, seed=1), "input")
    if precision == "int8" and calibration is None:
        calibration = default_calibration(model, size)
    path, seconds = _write(request, graph, Path(output), size, calibration)
    parity = _check(request, graph, path, (request.batch or CLASSIFIER_CHECK_BATCH,))
    result = _result(request, graph, path, seconds, parity, tolerance)
    if parity.runner is not None and precision != "fp32" and check is not None:
        result.accuracy = measure_precision(model, parity.runner, precision, check, batch=request.batch).to_dict()
    return result


def export_network(
    module: nn.Module,
    fmt: str,
    output: Union[str, Path],
    *,
    input_size: InputSize,
    output_names: Sequence[str],
    batch: Optional[int] = None,
    tolerance: float = FP32_TOLERANCE,
    reference: Optional[nn.Module] = None,
    layout: Optional[str] = None,
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
    precisions: Sequence[str] = ("fp32",),
    measure: Optional[Callable[[Any, Optional[int]], dict]] = None,
) -> ExportResult:
    """Export ``module`` to ``fmt`` at ``output``, run it in its runtime and compare every output
    with ``reference`` in eager PyTorch (default: ``module`` itself; a fused module is compared
    with the model it was fused from).

    ``input_size``: a side or ``(height, width)``, fixed in the file. ``batch=None``: a dynamic
    batch axis, checked at batch 1 and 2 (ExecuTorch: a static batch-1 program, checked at 1);
    else that batch. ``output_names``: one per output of ``module``. The result's
    ``max_abs_diff`` is the largest over all outputs and batches; ``details`` holds each
    output's (``max_abs_diff``) and shape (``shapes``, at the first checked batch). Raises
    ``ParityError`` above ``tolerance`` (fp32 only). ``layout``: as ``export_model``'s.
    ``precision``: one of ``precisions`` (the caller's graph's: a detector's or segmenter's task
    lists them); int8 calibrates on ``calibration``, ``(N, C, H, W)`` inputs of ``module``.
    ``measure(runner, batch)``: a reduced precision's price, given the loaded file (its
    ``outputs``) and its static batch (None: dynamic), kept as the result's ``accuracy``.
    """
    request = validate_export(fmt, precision, batch=batch, multi_output=True, layout=layout, precisions=precisions)
    if precision == "int8" and calibration is None:
        raise ValueError("an int8 export of a network needs calibration inputs")
    size = input_hw(input_size)
    graph = network_graph(module.eval(), size, output_names, reference=reference)
    path, seconds = _write(request, graph, Path(output), size, calibration)
    parity = _check(request, graph, path, DYNAMIC_CHECK_BATCHES if request.batch is None else (request.batch,))
    result = _result(request, graph, path, seconds, parity, tolerance)
    if measure is not None and precision != "fp32" and parity.runner is not None:
        result.accuracy = measure(parity.runner, request.batch)
    return result


def network_graph(module: nn.Module, size: HW, output_names: Sequence[str], *,
                  reference: Optional[nn.Module] = None) -> ExportGraph:
    """``module`` as an export graph, once ``output_names`` names each of its outputs once;
    ``reference``: what eager computes for the parity check (default: ``module``)."""
    names = tuple(output_names)
    if not names or len(set(names)) != len(names):
        raise ValueError(f"output_names must name each output once, got {names}")
    with torch.no_grad():
        count = len(as_outputs(module(example_images(1, size))))
    if count != len(names):
        raise ValueError(f"the module returns {count} outputs but output_names names {len(names)}: {names}")
    reference = module if reference is None else reference.eval()
    return ExportGraph(module, reference, names, lambda b: example_images(b, size, seed=1), "images")


def default_calibration(model: nn.Module, size: HW) -> torch.Tensor:
    """``DEFAULT_CALIBRATION_IMAGES`` of the digits training split, preprocessed as ``model`` evaluates."""
    settings = eval_settings(getattr(model, "pretrained_cfg", DEFAULT_PRETRAINED_CFG))
    return calibration_tensor("digits", size, DEFAULT_CALIBRATION_IMAGES, crop_pct=settings.crop_pct,
                              interpolation=settings.interpolation, mean=settings.mean, std=settings.std)


def _write(request: ExportRequest, graph: ExportGraph, output: Path, size: HW,
           calibration: Optional[torch.Tensor]) -> tuple[Path, float]:
    """The written file and the seconds it took; multi-output writers get the output names."""
    names = {"output_names": graph.output_names} if request.multi_output else {}
    start = time.perf_counter()
    module = written_module(request.format, graph.module, request.precision, request.written_layout)
    path = request.format.write(module, output, input_size=size, batch=request.batch,
                                precision=request.precision, calibration=calibration, **names)
    return Path(path), time.perf_counter() - start


def _check(request: ExportRequest, graph: ExportGraph, path: Path, batches: Sequence[int]) -> Parity:
    """Run the file on each batch of fixed inputs and compare every output with eager."""
    spec = request.format
    references = []
    for b in batches:
        x = graph.example(b)
        with torch.no_grad():
            references.append((x, as_outputs(graph.reference(x))))
    shapes = {name: list(out.shape) for name, out in zip(graph.output_names, references[0][1])}
    if not spec.can_run():
        return Parity(tuple(batches), {}, shapes, None, _structural(spec.name, spec.describe(path), shapes))
    runner = spec.runner(path, precision=request.precision)
    diffs = dict.fromkeys(graph.output_names, 0.0)
    for x, reference in references:
        exported = runner.outputs(x) if request.multi_output else (runner(x),)
        if len(exported) != len(reference):
            raise ParityError(f"the export returns {len(exported)} outputs, eager PyTorch {len(reference)} "
                              f"{graph.output_names}")
        for name, got, want in zip(graph.output_names, exported, reference):
            diffs[name] = max(diffs[name], max_abs_diff(got, want))
    return Parity(tuple(batches), diffs, shapes, runner)


def _structural(fmt: str, described: dict[str, list[int]], shapes: dict[str, list[int]]) -> dict[str, list[int]]:
    """Where the runtime cannot run (Core ML off macOS): the saved outputs (listed after the
    inputs) must have eager's shapes (or an unknown, empty one)."""
    saved = list(described.values())[-len(shapes):]
    if any(got not in (want, []) for got, want in zip(saved, shapes.values())):
        raise ParityError(f"{fmt} file outputs {described}, expected {', '.join(shapes)} of shape "
                          f"{', '.join(map(str, shapes.values()))}")
    return described


def _result(request: ExportRequest, graph: ExportGraph, path: Path, seconds: float, parity: Parity,
            tolerance: float) -> ExportResult:
    """The result of a checked export; a ``ParityError`` above ``tolerance`` in fp32."""
    name, precision = request.format.name, request.precision
    if parity.described is not None:
        check = f"structural only (its runtime cannot run on this machine): {parity.described}"
        return ExportResult(name, str(path), size_bytes(path), None, tolerance, check, seconds,
                            {"shapes": parity.described}, precision=precision)
    batches = " and ".join(map(str, parity.batches))
    check = f"batch {batches}, fixed seeded {graph.example_kind}"
    details: dict = {}
    if request.multi_output:  # each output's difference, named
        check += ", " + ", ".join(f"{n} {d:.1e}" for n, d in parity.diffs.items())
        details = {"outputs": list(graph.output_names), "max_abs_diff": parity.diffs, "shapes": parity.shapes,
                   "batches": list(parity.batches)}
    result = ExportResult(name, str(path), size_bytes(path), max(parity.diffs.values()), tolerance, check, seconds,
                          details, precision=precision)
    if precision == "fp32" and result.max_abs_diff > tolerance:
        raise ParityError(f"{name} export differs from eager PyTorch: {result.parity_line()}")
    return result
