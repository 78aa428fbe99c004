"""What runs inside a bench worker process (``edgenext.bench.isolate.run_isolated``).

``prepare`` builds one model, counts its MAdds and writes every exported file its candidates
need into the run's scratch folder; ``time_candidate`` loads one candidate (an exported file,
or the PyTorch model) and times it. Each is called in a fresh process, so a runtime's
spinning threads, allocator and caches never touch another runtime's timing; a round of
the bench starts one ``time_candidate`` worker per candidate. Both take and return JSON
values only. A failure at one batch size comes back as that batch's error; it does not stop
the other batches.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch import nn

from ..deploy.fusion.channels_first import written_module
from ..deploy.parity import example_input
from ..models.profile import count_madds
from ..tasks.efficiency import bench_plan
from .candidates import CandidateSpec, runtime_format
from .timing import time_calls

log = logging.getLogger(__name__)

Call = Callable[[], object]

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
#: calibration images for int8 exports: few, the bench measures speed (accuracy is deploy's job)
CALIBRATION_IMAGES = 16


def build_module(spec: CandidateSpec) -> nn.Module:
    """The eager network ``spec`` times, as its task's bench plan builds it (random weights, made to
    look trained by ``like_trained``; nothing is downloaded)."""
    plan = bench_plan(spec.task)
    if spec.impl == "ours":
        return like_trained(plan.build_ours(spec.source, spec.input_size))
    if spec.impl == plan.peer_impl:
        return like_trained(plan.build_peer(spec.source, spec.input_size))
    raise ValueError(f"unknown implementation {spec.impl!r} of {spec.model}: --task {spec.task} benches ours "
                     f"and {plan.peer_impl}'s")


@torch.no_grad()
def like_trained(module: nn.Module, seed: int = 0) -> nn.Module:
    """``module`` with every constant-initialised parameter (zero biases, unit norm scales, layer
    scales) perturbed a little, as training leaves them, the same way for every model: an exporter
    or graph simplifier would otherwise drop the zero bias adds and unit scales, and time a graph
    lighter than any trained model's."""
    gen = torch.Generator().manual_seed(seed)
    for param in module.parameters():
        if param.is_floating_point() and param.numel() > 0:
            flat = param.detach().flatten()
            if bool((flat == flat[0]).all()):
                noise = torch.randn(param.shape, generator=gen).to(param.dtype)
                param.add_(noise * (0.02 * flat[0].abs().clamp_min(0.5)))
    return module


def _deployable(spec: CandidateSpec, module: nn.Module) -> nn.Module:
    """What gets exported or fused: ours folded by the task plan's ``fuse_ours``, any other model as it is."""
    fold = bench_plan(spec.task).fuse_ours
    return fold(module, spec.input_size) if spec.impl == "ours" and fold is not None else module


def _error(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300] if text else ''}"


def prepare(specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For each model among ``specs``: its MAdds, and each missing exported file written.

    One result per spec: ``{"madds": int or None, "errors": {batch: message}}`` (a batch whose
    export failed, which ``time_candidate`` then does not try). The models are built one after
    another; candidates of one model share its MAdds and its fused copy.
    """
    parsed = [CandidateSpec.from_json(s) for s in specs]
    results: list[dict[str, Any]] = [{} for _ in parsed]
    groups: dict[tuple[str, str, str], list[int]] = {}
    for i, spec in enumerate(parsed):
        groups.setdefault((spec.task, spec.impl, spec.source), []).append(i)
    calibration: dict[tuple[int, int], torch.Tensor] = {}
    for indices in groups.values():
        for i, result in zip(indices, _prepare_model([parsed[i] for i in indices], calibration)):
            results[i] = result
    return results


def _prepare_model(specs: list[CandidateSpec], calibration: dict) -> list[dict[str, Any]]:
    module = build_module(specs[0])
    try:
        madds: Optional[int] = count_madds(module, specs[0].input_size)
    except Exception as err:  # noqa: BLE001 - a model fvcore cannot trace still gets timed
        log.warning("MAdds of %s: %s", specs[0].model, err)
        madds = None
    deployable = None
    results = []
    for spec in specs:
        errors: dict[str, str] = {}
        if runtime_format(spec.runtime) is not None:
            for batch in spec.batches:
                path = spec.export_path(batch)
                if path is None or path.exists():
                    continue
                try:
                    deployable = deployable if deployable is not None else _deployable(spec, module)
                    if spec.precision == "int8" and spec.input_size not in calibration:
                        from ..deploy.calibration import calibration_tensor

                        calibration[spec.input_size] = calibration_tensor("digits", spec.input_size,
                                                                          limit=CALIBRATION_IMAGES)
                    _export(spec, deployable, path, batch, calibration.get(spec.input_size))
                except Exception as err:  # noqa: BLE001 - one failed export is one row's error
                    log.warning("export of %s at batch %d: %s", spec.label, batch, err)
                    errors[str(batch)] = _error(err)
        results.append({"madds": madds, "errors": errors})
    return results


def _output_names(spec: CandidateSpec) -> dict[str, Any]:
    names = bench_plan(spec.task).output_names
    return {} if names is None else {"output_names": names}


def _export(spec: CandidateSpec, module: nn.Module, path: Path, batch: int,
            calibration: Optional[torch.Tensor]) -> None:
    fmt = runtime_format(spec.runtime)
    if fmt is None:
        raise ValueError(f"{spec.runtime} runs in PyTorch: there is no file to export")
    static = batch if fmt.static_batch else None
    module = written_module(fmt, module, spec.precision)  # as edgenext export writes it
    fmt.write(module, path, input_size=spec.input_size, batch=static, precision=spec.precision,
              calibration=calibration, **_output_names(spec))


def time_candidate(spec: dict[str, Any]) -> dict[str, Any]:
    """Build ``spec`` in this process and time it at each of its batch sizes.

    Returns ``{"pid", "threads", "times_ms": {batch: [per-call ms]}, "errors": {batch: message}}``.
    """
    s = CandidateSpec.from_json(spec)
    times: dict[str, list[float]] = {}
    errors: dict[str, str] = {}
    module: dict[str, nn.Module] = {}
    for batch, warmup, runs in s.schedule:
        try:
            call = _build_call(s, batch, module)
            times[str(batch)] = time_calls(call, warmup=warmup, runs=runs, device=s.device)
        except Exception as err:  # noqa: BLE001 - the other batches still count
            log.warning("%s at batch %d: %s", s.label, batch, err)
            errors[str(batch)] = _error(err)
    return {"pid": os.getpid(), "threads": torch.get_num_threads(), "times_ms": times, "errors": errors}


def _build_call(s: CandidateSpec, batch: int, cache: dict[str, nn.Module]) -> Call:
    fmt = runtime_format(s.runtime)
    if fmt is not None:
        path = s.export_path(batch)
        if path is None or not path.exists():
            raise FileNotFoundError(f"{path} was not exported (its export failed or was not prepared)")
        runner = fmt.runner(path, threads=s.threads, precision=s.precision)
        x = example_input(batch, s.input_size)
        return lambda: runner(x)
    if "module" not in cache:
        cache["module"] = _torch_module(s)
    return _torch_call(cache["module"], s, batch)


def _torch_module(s: CandidateSpec) -> nn.Module:
    module = build_module(s)
    if s.runtime == "eager":
        return module
    module = _deployable(s, module)
    if s.runtime == "fused":
        if s.impl != "ours":
            raise ValueError(f"the fused runtime is ours only, not {s.impl}'s {s.model}")
        if s.device == "cpu" and s.dtype == "fp32":
            from ..deploy import cpu_fast_path

            module = cpu_fast_path(module)
        return module
    if s.runtime == "compiled":
        return _compile(module.to(s.device, _DTYPES[s.dtype]), Path(s.workdir))
    raise ValueError(f"unknown runtime {s.runtime!r}")


def _torch_call(module: nn.Module, s: CandidateSpec, batch: int) -> Call:
    dtype = _DTYPES[s.dtype]
    x = example_input(batch, s.input_size).to(s.device, dtype)
    module = module.to(s.device, dtype).eval()
    if s.precision == "bf16":
        def autocast_call() -> object:
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
                return module(x)

        return autocast_call
    if s.precision != "fp32":
        raise ValueError(f"PyTorch runtimes run fp32 or bf16, not {s.precision}")

    def call() -> object:
        with torch.inference_mode():
            return module(x)

    return call


def _compile(module: nn.Module, workdir: Path) -> nn.Module:
    """``torch.compile`` with inductor freezing: weights become constants, so the CPU backend
    can pre-pack them for oneDNN and fuse bias/activation into the GEMMs."""
    # NOTE: one inductor cache for the whole run, so the workers of later rounds reuse the
    # kernels the first one compiled instead of compiling for minutes again
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(workdir / "inductor-cache"))
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(module, dynamic=False)
