"""ncnn: ``.param`` + ``.bin`` written by pnnx from a TorchScript trace, and an ncnn CPU runner; an optional extra.

The writer traces the module at batch 1 (ncnn's blobs have no batch axis: one image per
extraction), converts it with the pnnx executable in a temporary folder and keeps only the ncnn ``.param`` and its ``.bin``; a graph with a layer ncnn does
not implement (pnnx leaves ``aten::``/``torch.``/``pnnx.`` ops it could not lower) is refused.
Before writing, ``graph_form`` (``_ncnn_graph.ncnn_graph_form``) rewrites the XCAs into ops pnnx
lowers. The runner loops over the batch and stacks the outputs, restoring the batch axis.

Precisions:
  * ``fp32``: fp32 weights (pnnx ``fp16=0``); the runner turns ncnn's fp16 storage/arithmetic
    and bf16 storage off, so the numbers are ncnn's fp32 kernels'.
  * ``fp16``: the weights stored in half precision (pnnx ``fp16=1``: a ``.bin`` about half the
    size, what an app ships) and the runner's fp16 storage on. What that computes depends on
    the CPU: on ARMv8.2+ (phones) ncnn also computes in fp16 (``use_fp16_arithmetic``); on x86
    without AVX512-FP16 (this project's machines) ncnn keeps fp16 as storage only, weights and
    some blobs rounded to half, arithmetic in fp32 - so the accuracy change measured here is
    the rounding's, and x86 gains no speed from it.
int8 needs ncnn's calibration tools (``ncnn2table``, ``ncnn2int8``), which neither the ``ncnn``
nor the ``pnnx`` wheel ships.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ...optional import require
from ..parity import HW, example_input
from .registry import ExportFormat, register, runner_threads

EXTRA = "ncnn"
#: what the writer and the runner offer (see the module docstring for what fp16 computes where)
PRECISIONS = ("fp32", "fp16")
#: prefixes of the layer types pnnx leaves in an ncnn param when it cannot lower an op
UNSUPPORTED_PREFIXES = ("aten::", "torch.", "pnnx.", "F.", "Tensor.", "nn.", "prim::")
#: seconds the pnnx converter may take
PNNX_TIMEOUT = 600


def ncnn_graph_form(module: nn.Module) -> nn.Module:
    """The module with its XCAs in ops pnnx lowers to native ncnn layers (same weights, same function)."""
    from ._ncnn_graph import ncnn_graph_form as rewrite  # NOTE: lazy: it imports the fusion modules

    return rewrite(module)


def param_layers(path: Union[str, Path]) -> list[tuple[str, str, list[str], list[str]]]:
    """The layers of an ncnn ``.param``: ``(type, name, bottoms, tops)`` each, in order."""
    lines = Path(path).read_text().split("\n")
    if not lines or lines[0].strip() != "7767517":
        raise ValueError(f"{path} is not an ncnn param file (no 7767517 magic)")
    layers = []
    for line in lines[2:]:
        fields = line.split()
        if len(fields) < 4:
            continue
        kind, name, n_bottom, n_top = fields[0], fields[1], int(fields[2]), int(fields[3])
        blobs = fields[4 : 4 + n_bottom + n_top]
        layers.append((kind, name, blobs[:n_bottom], blobs[n_bottom:]))
    return layers


def unsupported_layers(path: Union[str, Path]) -> dict[str, int]:
    """The layer types of an ncnn ``.param`` that are not ncnn layers (pnnx's leftovers), with their counts."""
    found: dict[str, int] = {}
    for kind, *_ in param_layers(path):
        if kind.startswith(UNSUPPORTED_PREFIXES):
            found[kind] = found.get(kind, 0) + 1
    return found


def param_io(path: Union[str, Path]) -> tuple[list[str], list[str]]:
    """The input blobs (tops of ``Input`` layers) and output blobs (produced, never consumed) of an
    ncnn ``.param``; outputs in pnnx's ``out0, out1, ...`` order."""
    layers = param_layers(path)
    inputs = [top for kind, _, _, tops in layers if kind == "Input" for top in tops]
    consumed = {b for _, _, bottoms, _ in layers for b in bottoms}
    outputs = [top for kind, _, _, tops in layers if kind != "Input" for top in tops if top not in consumed]

    def order(name: str) -> tuple[int, int]:
        match = re.fullmatch(r"out(\d+)", name)
        return (0, int(match.group(1))) if match else (1, outputs.index(name))

    return inputs, sorted(outputs, key=order)


class _TupleOutputs(nn.Module):
    """The module with a list of outputs returning a tuple: pnnx writes a traced list as one
    ``pnnx.Expression`` building it (no ncnn layer), a tuple as separate outputs."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor):
        out = self.module(x)
        return tuple(out) if isinstance(out, (list, tuple)) else out


def export_ncnn(
    model: nn.Module,
    output: Union[str, Path],
    *,
    input_size: HW = (256, 256),
    batch: Optional[int] = None,
    precision: str = "fp32",
    calibration: Optional[torch.Tensor] = None,
    output_names: Optional[Sequence[str]] = None,
) -> Path:
    """Convert ``model`` at ``input_size`` (height, width) to ncnn at ``output`` (``.param``; the
    weights go to the ``.bin`` beside it). ncnn runs one image at a time, whatever ``batch``: the
    graph is traced at batch 1. ``output_names``: one per output of ``model`` (checked against the
    graph's outputs; ncnn's blobs keep pnnx's names ``out0, out1, ...``). ``model`` is written as it
    is: ``export_model`` and the bench hand it over in ``ncnn_graph_form`` (``ExportFormat.written_module``);
    a graph left with layers ncnn does not implement raises a ``RuntimeError`` naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"ncnn export writes {' or '.join(PRECISIONS)}, got {precision!r}")
    pnnx = require("pnnx", EXTRA, "ncnn export")
    output = Path(output)
    if output.suffix != ".param":
        raise ValueError(f"an ncnn model is a .param file (weights go to a .bin beside it), got {output}")
    output.parent.mkdir(parents=True, exist_ok=True)
    height, width = input_size
    in_chans = getattr(model, "in_chans", 3)
    x = example_input(1, (height, width), in_chans)
    module = _TupleOutputs(model.eval()).eval()
    with tempfile.TemporaryDirectory(prefix="edgenext-ncnn-") as tmp:
        work = Path(tmp)
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, (x,), check_trace=False, strict=False)
        traced.save(str(work / "model.pt"))
        files = {key: str(work / name) for key, name in (
            ("pnnxparam", "model.pnnx.param"), ("pnnxbin", "model.pnnx.bin"), ("pnnxpy", "model_pnnx.py"),
            ("pnnxonnx", "model.pnnx.onnx"), ("ncnnparam", "model.ncnn.param"), ("ncnnbin", "model.ncnn.bin"),
            ("ncnnpy", "model_ncnn.py"))}
        command = [pnnx.EXEC_PATH, str(work / "model.pt"), f"inputshape=[1,{in_chans},{height},{width}]f32",
                   f"fp16={int(precision == 'fp16')}", "device=cpu", *(f"{key}={path}" for key, path in files.items())]
        # NOTE: the pnnx executable, not pnnx.export: that imports the Python module pnnx
        # generates, which fails on some graphs (and is not needed) after the ncnn files are written
        done = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=PNNX_TIMEOUT)
        param, weights = Path(files["ncnnparam"]), Path(files["ncnnbin"])
        if not (param.is_file() and weights.is_file()):
            raise RuntimeError(f"pnnx did not write an ncnn model (exit status {done.returncode}): "
                               f"{(done.stderr or done.stdout)[-2000:]}")
        unsupported = unsupported_layers(param)
        if unsupported:
            listed = ", ".join(f"{count}x {kind}" for kind, count in sorted(unsupported.items()))
            raise RuntimeError(f"pnnx left ops ncnn does not implement in the graph: {listed}; add their "
                               f"ncnn-native form to edgenext.deploy.formats._ncnn_graph")
        outputs = param_io(param)[1]
        if output_names is not None and len(output_names) != len(outputs):
            raise ValueError(f"output_names names {len(output_names)} outputs, the ncnn graph has {len(outputs)}")
        shutil.move(str(param), str(output))
        shutil.move(str(weights), str(output.with_suffix(".bin")))
    return output


class NcnnRunner:
    """An ncnn model on the CPU: ``runner(x)`` takes ``(N, C, H, W)`` and returns the first output
    with its batch axis; each image is one extraction (ncnn blobs have no batch axis), the results
    stacked. fp32: fp16/bf16 storage and arithmetic off, so the numbers are ncnn's fp32 kernels';
    fp16: fp16 storage and arithmetic on (where the CPU has them: see the module's docstring)."""

    def __init__(self, path: Union[str, Path], *, threads: Optional[int] = None, precision: str = "fp32") -> None:
        ncnn = require("ncnn", EXTRA, "ncnn inference")
        if precision not in PRECISIONS:
            raise ValueError(f"ncnn runs {' or '.join(PRECISIONS)}, got {precision!r}")
        path = Path(path)
        self._ncnn = ncnn
        self.net = ncnn.Net()
        opt = self.net.opt
        threads = runner_threads(threads)
        if threads:
            opt.num_threads = threads
        opt.use_vulkan_compute = False
        half = precision == "fp16"
        opt.use_fp16_storage = opt.use_fp16_arithmetic = opt.use_fp16_packed = half
        opt.use_bf16_storage = opt.use_bf16_packed = False
        if self.net.load_param(str(path)) != 0:
            raise RuntimeError(f"ncnn could not load the param file {path}")
        if self.net.load_model(str(path.with_suffix(".bin"))) != 0:
            raise RuntimeError(f"ncnn could not load the weights {path.with_suffix('.bin')}")
        inputs, self.output_names = param_io(path)
        self.input_name = inputs[0]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.outputs(x)[0]

    def _one(self, image: np.ndarray) -> list[np.ndarray]:
        ex = self.net.create_extractor()
        ex.input(self.input_name, self._ncnn.Mat(image))
        outs = []
        for name in self.output_names:
            ret, mat = ex.extract(name)
            if ret != 0:
                raise RuntimeError(f"ncnn failed extracting {name!r} (status {ret})")
            outs.append(np.array(mat, dtype=np.float32, copy=True))
        return outs

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Every output of the graph, in its order (a detector's boxes and scores), ``(N, ...)``."""
        images = x.detach().cpu().float().numpy()
        per_image = [self._one(np.ascontiguousarray(image)) for image in images]
        return tuple(torch.from_numpy(np.stack([outs[i] for outs in per_image]))
                     for i in range(len(self.output_names)))


# NOTE: channels-first: ncnn's fast kernels are NCHW convolutions; the channels-last graph's Gemms and
# Permutes around every depth-wise conv made EdgeNeXt-XXS at 256x256, batch 1, 2 threads ~290 ms
# against ~30 ms channels-first (best of 30, ncnn 1.0.20261020, x86 AVX2)
register(ExportFormat("ncnn", ".param", EXTRA, "ncnn", export_ncnn, NcnnRunner, precisions=PRECISIONS,
                      static_batch=True, multi_output=True, order=60, layout="channels_first", graph_form=ncnn_graph_form))
