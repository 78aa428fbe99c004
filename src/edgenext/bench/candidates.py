"""What ``edgenext bench`` measures: (model, implementation, runtime) candidates.

A candidate knows how to build a zero-argument call for a batch size: the model is created,
exported where the runtime needs a file (into a scratch folder) and given a fixed input,
so that timing measures inference only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch import nn

from ..deploy.common import example_input, is_installed

log = logging.getLogger(__name__)

#: runtimes of our model, in table order; peers run in PEER_RUNTIMES
OUR_RUNTIMES = ("eager", "fused", "compiled", "onnxruntime", "executorch", "executorch-int8", "openvino")
PEER_RUNTIMES = ("eager", "onnxruntime", "executorch")
#: what a user would pick instead of EdgeNeXt (timm implementations, random weights)
DEFAULT_PEERS = ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilenetv3_large_100")
CUDA_RUNTIMES = ("eager", "fused", "compiled")

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
    input_size: int
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


def _ort(module: nn.Module, name: str, ctx: BenchContext) -> Callable[[int], Call]:
    from ..deploy.onnx import OrtModel, export_onnx

    path = export_onnx(module, ctx.workdir / f"{name}.onnx", input_size=ctx.input_size)
    runner = OrtModel(path, threads=ctx.threads)
    return lambda batch: _runtime_call(runner, ctx, batch)


def _set_executorch_threads(threads: int) -> None:
    try:
        from executorch.extension.pybindings import portable_lib

        portable_lib._unsafe_reset_threadpool(threads)
    except (ImportError, AttributeError):  # older/newer runtimes: keep their default pool
        log.debug("could not set ExecuTorch's thread count")


def _executorch(module: nn.Module, name: str, ctx: BenchContext, int8: bool) -> Callable[[int], Call]:
    from ..deploy.executorch import ExecuTorchModel, export_executorch
    from ..deploy.quantize import quantize_executorch

    _set_executorch_threads(ctx.threads)

    def build(batch: int) -> Call:
        path = ctx.workdir / f"{name}{'-int8' if int8 else ''}-b{batch}.pte"
        if int8:
            if batch != 1:
                return None  # the PT2E-quantised program is exported at batch 1
            quantize_executorch(module, path, ctx.calibration, input_size=ctx.input_size)
        else:
            export_executorch(module, path, input_size=ctx.input_size, batch=batch)
        return _runtime_call(ExecuTorchModel(path), ctx, batch)

    return build


def _openvino(module: nn.Module, name: str, ctx: BenchContext) -> Callable[[int], Call]:
    from ..deploy.openvino import OpenVinoModel, export_openvino

    path = export_openvino(module, ctx.workdir / f"{name}.xml", input_size=ctx.input_size)
    runner = OpenVinoModel(path, threads=ctx.threads)
    return lambda batch: _runtime_call(runner, ctx, batch)


def runtime_available(runtime: str) -> bool:
    needs = {"onnxruntime": "onnxruntime", "executorch": "executorch", "executorch-int8": "executorch",
             "openvino": "openvino"}
    return runtime not in needs or is_installed(needs[runtime])


def _lazy(factory: Callable[[], Callable[[int], Call]]) -> Callable[[int], Call]:
    """Export on first use only (a skipped batch costs nothing), then reuse."""
    cache: dict[str, Callable[[int], Call]] = {}

    def build(batch: int) -> Call:
        if "build" not in cache:
            cache["build"] = factory()
        return cache["build"](batch)

    return build


def our_candidate(model_name: str, runtime: str, ctx: BenchContext) -> Candidate:
    from ..deploy import fuse
    from ..deploy.cpu import cpu_fast_path
    from ..models import create_model

    model = create_model(model_name).eval()
    if runtime == "eager":
        build = lambda b: _torch_call(model, ctx, b)  # noqa: E731
    elif runtime == "fused":
        fast = fuse(model, ctx.input_size)
        fast = cpu_fast_path(fast) if ctx.device == "cpu" and ctx.dtype == torch.float32 else fast
        build = lambda b: _torch_call(fast, ctx, b)  # noqa: E731
    elif runtime == "compiled":
        compiled = _compile(fuse(model, ctx.input_size).to(ctx.device, ctx.dtype))
        build = lambda b: _torch_call(compiled, ctx, b)  # noqa: E731
    elif runtime == "onnxruntime":
        build = _lazy(lambda: _ort(fuse(model, ctx.input_size), f"ours-{model_name}", ctx))
    elif runtime in ("executorch", "executorch-int8"):
        fused = fuse(model, ctx.input_size)
        build = _executorch(fused, f"ours-{model_name}", ctx, int8=runtime == "executorch-int8")
    elif runtime == "openvino":
        build = _lazy(lambda: _openvino(fuse(model, ctx.input_size), f"ours-{model_name}", ctx))
    else:
        raise ValueError(f"unknown runtime {runtime!r}: choose from {', '.join(OUR_RUNTIMES)}")
    return Candidate(model_name, "ours", runtime, model, build)


def peer_candidate(timm_name: str, runtime: str, ctx: BenchContext) -> Candidate:
    import timm

    model = timm.create_model(timm_name, pretrained=False).eval()  # random weights: never downloads
    if runtime == "eager":
        build = lambda b: _torch_call(model, ctx, b)  # noqa: E731
    elif runtime == "onnxruntime":
        build = _lazy(lambda: _ort(model, f"timm-{timm_name}", ctx))
    elif runtime == "executorch":
        build = _executorch(model, f"timm-{timm_name}", ctx, int8=False)
    else:
        raise ValueError(f"peers run in {', '.join(PEER_RUNTIMES)}, not {runtime!r}")
    return Candidate(timm_name, "timm", runtime, model, build)


def _compile(module: nn.Module) -> nn.Module:
    """``torch.compile`` with inductor freezing: weights become constants, so the CPU backend
    can pre-pack them for oneDNN and fuse bias/activation into the GEMMs."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(module, dynamic=False)
