"""What ``edgenext bench`` measures: (model, implementation, runtime) candidates.

A candidate knows how to build a zero-argument call for a batch size: the model is created,
exported where the runtime needs a file (into a scratch folder) and given a fixed input,
so that timing measures inference only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from ..deploy.common import HW, example_input
from ..deploy.formats import FORMATS, ExportFormat

log = logging.getLogger(__name__)

#: runtimes of our model, in table order; peers run in PEER_RUNTIMES
OUR_RUNTIMES = ("eager", "fused", "compiled", "onnxruntime", "executorch", "executorch-int8", "openvino")
PEER_RUNTIMES = ("eager", "onnxruntime", "executorch")
#: what a user would pick instead of EdgeNeXt (timm implementations, random weights)
DEFAULT_PEERS = ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilenetv3_large_100")
CUDA_RUNTIMES = ("eager", "fused", "compiled")
#: the export format (deploy/formats.py) each runtime outside PyTorch runs
RUNTIME_FORMATS = {"onnxruntime": "onnx", "executorch": "executorch", "executorch-int8": "executorch",
                   "openvino": "openvino"}

Call = Callable[[], object]


@dataclass
class Candidate:
    model: str
    impl: str  # "ours" or the library the peer comes from ("timm")
    runtime: str
    module: nn.Module  # the eager model (for MAdds and as the export source)
    build: Callable[[int], Optional[Call]]  # batch -> call, None when the runtime cannot run that batch


@dataclass
class BenchContext:
    input_size: HW  # (height, width)
    threads: int
    device: str
    dtype: torch.dtype
    workdir: Path
    calibration: Optional[torch.Tensor] = None  # images for int8 calibration


def _torch_call(module: nn.Module, ctx: BenchContext, batch: int) -> Call:
    x = example_input(batch, ctx.input_size).to(ctx.device, ctx.dtype)
    module = module.to(ctx.device, ctx.dtype).eval()

    def call() -> object:
        with torch.inference_mode():
            return module(x)

    return call


def _runtime_call(runner: Callable[[torch.Tensor], torch.Tensor], ctx: BenchContext, batch: int) -> Call:
    x = example_input(batch, ctx.input_size)
    return lambda: runner(x)


def _exported(module: nn.Module, fmt: ExportFormat, name: str, ctx: BenchContext,
              output_names: Optional[Sequence[str]] = None) -> Callable[[int], Call]:
    """Export ``module`` in ``fmt`` and run the file in its runtime: once with a dynamic batch,
    or once per batch size for the formats that build static (mobile) programs.
    ``output_names``: a multi-output network's (for the formats that take them)."""
    names = {} if output_names is None else {"output_names": tuple(output_names)}
    if fmt.static_batch:
        def build(batch: int) -> Call:
            output = ctx.workdir / f"{name}-b{batch}{fmt.suffix}"
            path = fmt.writer(module, output, input_size=ctx.input_size, batch=batch, **names)
            return _runtime_call(fmt.runner(path, threads=ctx.threads), ctx, batch)

        return build

    def export() -> Callable[[int], Call]:
        path = fmt.writer(module, ctx.workdir / f"{name}{fmt.suffix}", input_size=ctx.input_size, batch=None, **names)
        runner = fmt.runner(path, threads=ctx.threads)
        return lambda batch: _runtime_call(runner, ctx, batch)

    return _lazy(export)


def _executorch_int8(module: nn.Module, name: str, ctx: BenchContext) -> Callable[[int], Optional[Call]]:
    from ..deploy.quantize import quantize_executorch

    fmt = FORMATS["executorch"]

    def build(batch: int) -> Optional[Call]:
        if batch != 1:
            return None  # the PT2E-quantised program is exported at batch 1
        path = quantize_executorch(module, ctx.workdir / f"{name}-int8{fmt.suffix}", ctx.calibration,
                                   input_size=ctx.input_size)
        return _runtime_call(fmt.runner(path, threads=ctx.threads), ctx, batch)

    return build


def runtime_available(runtime: str) -> bool:
    """Torch runtimes always; the others when their export format's package is installed."""
    return runtime not in RUNTIME_FORMATS or FORMATS[RUNTIME_FORMATS[runtime]].installed


def _lazy(factory: Callable[[], Callable[[int], Call]]) -> Callable[[int], Call]:
    """Export on first use only (a skipped batch costs nothing), then reuse."""
    cache: dict[str, Callable[[int], Call]] = {}

    def build(batch: int) -> Call:
        if "build" not in cache:
            cache["build"] = factory()
        return cache["build"](batch)

    return build


def our_candidate(model_name: str, runtime: str, ctx: BenchContext) -> Candidate:
    from ..deploy import cpu_fast_path, fuse
    from ..models import create_model

    model = create_model(model_name).eval()
    name = f"ours-{model_name}"
    if runtime == "eager":
        build = lambda b: _torch_call(model, ctx, b)  # noqa: E731
    elif runtime == "fused":
        fast = fuse(model, ctx.input_size)
        fast = cpu_fast_path(fast) if ctx.device == "cpu" and ctx.dtype == torch.float32 else fast
        build = lambda b: _torch_call(fast, ctx, b)  # noqa: E731
    elif runtime == "compiled":
        compiled = _compile(fuse(model, ctx.input_size).to(ctx.device, ctx.dtype))
        build = lambda b: _torch_call(compiled, ctx, b)  # noqa: E731
    elif runtime == "executorch-int8":
        build = _executorch_int8(fuse(model, ctx.input_size), name, ctx)
    elif runtime in RUNTIME_FORMATS:
        build = _exported(fuse(model, ctx.input_size), FORMATS[RUNTIME_FORMATS[runtime]], name, ctx)
    else:
        raise ValueError(f"unknown runtime {runtime!r}: choose from {', '.join(OUR_RUNTIMES)}")
    return Candidate(model_name, "ours", runtime, model, build)


def peer_candidate(timm_name: str, runtime: str, ctx: BenchContext) -> Candidate:
    import timm

    if runtime not in PEER_RUNTIMES:
        raise ValueError(f"peers run in {', '.join(PEER_RUNTIMES)}, not {runtime!r}")
    model = timm.create_model(timm_name, pretrained=False).eval()  # random weights: never downloads
    if runtime == "eager":
        build = lambda b: _torch_call(model, ctx, b)  # noqa: E731
    else:
        build = _exported(model, FORMATS[RUNTIME_FORMATS[runtime]], f"timm-{timm_name}", ctx)
    return Candidate(timm_name, "timm", runtime, model, build)


def _compile(module: nn.Module) -> nn.Module:
    """``torch.compile`` with inductor freezing: weights become constants, so the CPU backend
    can pre-pack them for oneDNN and fuse bias/activation into the GEMMs."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(module, dynamic=False)
