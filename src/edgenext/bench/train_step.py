"""Training-step throughput: images/s of a full step (forward, backward, AdamW update) of our model
with the recipe's default speed options, and of timm's same model trained as a timm user writes it.

Each (implementation, round) runs in a fresh process (``isolate.run_isolated``) and the
implementations alternate over rounds, so neither inherits the other's threads, caches or
allocator state, and drift in machine load touches both alike. A row reports the median over
rounds and the p10-p90 spread.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Optional, Sequence

from ..models.edgenext import InputSize, input_hw
from .isolate import run_isolated
from .timing import percentile

#: what each row's ``impl`` means
IMPLS = {
    "ours": "edgenext.create_model, the recipe's default speed options (compile, AdamW kernel, channels-last)",
    "timm": "timm.create_model, torch.optim.AdamW(model.parameters()), eager",
    "timm_compiled": "as timm, with torch.compile(model): shown when our defaults compile, for a like-for-like ratio",
}
PRECISIONS = ("fp32", "bf16", "fp16")

#: optimiser updates of the run our defaults are resolved for: the ImageNet recipe (300 epochs x ~1250
#: updates at a global batch of 1024), where ``compile: auto`` decides as a real run would
LONG_RUN_UPDATES = 300 * 1250

_TARGET = "edgenext.bench.train_step:time_train_step"


def our_default_options(device: str = "cpu", *, quick: bool = False) -> dict[str, Any]:
    """The speed options a long training run of ours gets on ``device`` from the recipe's defaults."""
    import torch

    from ..train.setup import compile_choice
    from ..train.config import TrainConfig

    cfg = TrainConfig()
    compiled, _ = compile_choice(cfg.compile, torch.device(device), LONG_RUN_UPDATES)
    # NOTE: quick runs (CI, smoke tests) never compile: that alone takes minutes on a small CPU.
    return {"compile": compiled and not quick, "adamw": cfg.adamw, "channels_last": cfg.channels_last}


def _autocast_dtype(precision: str, device: str) -> tuple[Optional[Any], str]:
    """The autocast dtype of ``precision`` on ``device``, or None and why it cannot run there."""
    import torch

    from ..hardware import native_bf16

    if precision == "fp32":
        return None, ""
    if precision == "fp16":
        if not device.startswith("cuda"):
            return None, "fp16 training runs on CUDA only (with a grad scaler)"
        return torch.float16, ""
    native, why = native_bf16()
    if device.startswith("cuda"):
        return torch.bfloat16, ""
    return (torch.bfloat16, "") if native else (None, why)


def time_train_step(model: str, impl: str, batch: int, input_size: list[int], steps: int, warmup: int,
                    precision: str = "fp32", device: str = "cpu", num_classes: int = 1000,
                    options: Optional[dict[str, Any]] = None, seed: int = 0) -> dict[str, Any]:
    """Worker: build ``impl``'s model and optimiser, run ``warmup`` steps, time ``steps``; JSON result."""
    import torch
    import torch.nn.functional as F

    from ..train.optim import adamw_kernel, build_optimizer

    options = dict(options or {})
    dev = torch.device(device)
    torch.manual_seed(seed)
    channels_last = False
    if impl == "ours":
        from ..models import create_model

        net = create_model(model, num_classes=num_classes).to(dev).train()
        channels_last = bool(options.get("channels_last", False))
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        opt = build_optimizer(net, lr=1e-4, weight_decay=0.05, impl=str(options.get("adamw", "auto")))
        compiled = bool(options.get("compile", False))
    elif impl in ("timm", "timm_compiled"):
        import timm

        net = timm.create_model(model, pretrained=False, num_classes=num_classes).to(dev).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05)
        compiled = impl == "timm_compiled"
    else:
        raise ValueError(f"impl {impl!r} is not one of {', '.join(IMPLS)}")
    forward = torch.compile(net) if compiled else net
    dtype, _ = _autocast_dtype(precision, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    g = torch.Generator().manual_seed(seed)
    h, w = input_size
    x = torch.randn(batch, 3, h, w, generator=g).to(dev)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, num_classes, (batch,), generator=g).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step() -> None:
        with torch.autocast(dev.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    start = time.perf_counter()
    for _ in range(max(warmup, 1)):
        step()
    sync()
    first = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    sync()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"throughput_img_s": steps * batch / elapsed, "cpu_img_s": steps * batch / max(cpu, 1e-9),
            "warmup_s": first, "threads": torch.get_num_threads(),
            "compiled": compiled, "channels_last": channels_last, "optimizer": adamw_kernel(opt)}


def bench_train(models: Sequence[str], *, batch: int, input_size: InputSize, threads: int, steps: int, rounds: int,
                precisions: Sequence[str] = ("fp32",), quick: bool = False, device: str = "cpu",
                num_classes: int = 1000, timeout: Optional[float] = None) -> list[dict[str, Any]]:
    """Images/s of a full training step of ours and timm's, per model and precision, from isolated processes.

    Rows: ``model``, ``impl`` (``IMPLS``), ``precision``, ``batch``, ``input_size``, ``throughput_img_s``
    (median over ``rounds``), ``ratio_vs_timm`` (over timm eager, same precision), ``p10_img_s`` /
    ``p90_img_s`` (spread across rounds), ``threads``, ``device``, ``options`` (what the step used) and
    ``warmup_s`` (the first steps, compile included). ``cpu_img_s`` / ``cpu_ratio_vs_timm``: images per
    CPU-second of the worker (all its threads), which other load on a shared machine distorts far less
    than wall time; at 1 thread on a quiet machine it equals the throughput. A precision this machine cannot train in gives rows
    with ``throughput_img_s`` None and the reason in ``absent``. ``quick``: one round of one step, no compile.
    """
    for p in precisions:
        if p not in PRECISIONS:
            raise ValueError(f"precision {p!r} is not one of {', '.join(PRECISIONS)}")
    if batch < 1 or steps < 1 or rounds < 1 or threads < 1:
        raise ValueError(f"batch, steps, rounds and threads must be >= 1, got {batch}, {steps}, {rounds}, {threads}")
    hw = list(input_hw(input_size))  # a list: it goes into the JSON rows
    if quick:
        steps, rounds = 1, 1
    ours = our_default_options(device, quick=quick)
    impls = ["ours", "timm"] + (["timm_compiled"] if ours["compile"] else [])
    warmup = 1 if quick else (3 if ours["compile"] else 2)
    limit = timeout if timeout is not None else (1800.0 if ours["compile"] else 600.0)
    rows: list[dict[str, Any]] = []
    for model in models:
        for precision in precisions:
            _, absent = _autocast_dtype(precision, device)
            base = {"model": model, "precision": precision, "batch": batch, "input_size": hw, "threads": threads,
                    "device": device}
            if absent:
                rows += [{**base, "impl": impl, "throughput_img_s": None, "ratio_vs_timm": None, "absent": absent}
                         for impl in impls]
                continue
            runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in impls}
            for r in range(rounds):
                # alternate the order too, so neither side always runs right after the other
                for impl in (impls if r % 2 == 0 else impls[::-1]):
                    kwargs = {"model": model, "impl": impl, "batch": batch, "input_size": hw, "steps": steps,
                              "warmup": warmup, "precision": precision, "device": device, "num_classes": num_classes,
                              "options": ours if impl == "ours" else {}}
                    preload = ("timm",) if impl.startswith("timm") else ()  # starts no thread: the fork server's
                    runs[impl].append(run_isolated(_TARGET, kwargs, threads=threads, timeout=limit, preload=preload))
            medians = {impl: statistics.median(r["throughput_img_s"] for r in results) for impl, results in runs.items()}
            cpu = {impl: statistics.median(r["cpu_img_s"] for r in results) for impl, results in runs.items()}
            for impl, results in runs.items():
                rates = [r["throughput_img_s"] for r in results]
                last = results[-1]
                rows.append({
                    **base, "impl": impl, "throughput_img_s": medians[impl],
                    "ratio_vs_timm": medians[impl] / medians["timm"],
                    "p10_img_s": percentile(rates, 10), "p90_img_s": percentile(rates, 90), "rounds": len(rates),
                    "warmup_s": statistics.median(r["warmup_s"] for r in results),
                    "cpu_img_s": cpu[impl], "cpu_ratio_vs_timm": cpu[impl] / cpu["timm"],
                    "options": {"compile": last["compiled"], "adamw": last["optimizer"],
                                "channels_last": last["channels_last"]},
                })
    return rows
