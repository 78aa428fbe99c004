"""``fit``: a whole training run from a ``TrainConfig``: what ``edgenext train`` calls."""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel

from ..models.weights import CheckpointError
from .builders import (
    amp_settings,
    build_criterion,
    build_datasets,
    build_eval_loader,
    build_mixup,
    build_model,
    build_teacher,
    build_train_loader,
)
from .checkpoint import (
    BEST,
    LAST,
    atomic_save,
    capture_rng_state,
    find_checkpoint,
    find_unfinished_run,
    load_training_checkpoint,
    restore_rng_state,
)
from .config import DIGITS, TrainConfig, save_config
from .distributed import DistInfo, barrier, broadcast_object, cleanup_distributed, gather_objects, init_distributed
from .engine import TrainParts, evaluate, train_one_epoch
from .logger import CURVES_FILE, LOG_FILE, RunLogger
from .optim import build_optimizer, build_scheduler, scaled_lr

_logger = logging.getLogger("edgenext")

RUNS_ROOT = Path("runs")


@dataclass
class FitResult:
    output_dir: Path
    best_checkpoint: Optional[Path]
    best_top1: float
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_name(cfg: TrainConfig) -> str:
    data = DIGITS if cfg.data == DIGITS and not cfg.train_dir else Path(cfg.train_dir or cfg.data).resolve().name
    return f"{cfg.model}-{data}"


def resolve_output(cfg: TrainConfig) -> tuple[Path, Optional[Path]]:
    """The run folder and the checkpoint to resume from (None: a fresh run)."""
    if cfg.resume not in ("auto", True, False, None) and isinstance(cfg.resume, str):
        ckpt = Path(cfg.resume)
        if not ckpt.is_file():
            raise ValueError(f"resume={cfg.resume}: no such checkpoint file")
        return (Path(cfg.output) if cfg.output else ckpt.parent), ckpt
    auto = cfg.resume in ("auto", True)
    if cfg.output:
        out = Path(cfg.output)
        ckpt = find_checkpoint(out) if auto else None
        if cfg.resume is True and ckpt is None:
            raise ValueError(f"--resume: {out} holds no {LAST} to resume from")
        return out, ckpt
    if auto:
        found = find_unfinished_run(RUNS_ROOT, run_name(cfg), cfg.to_dict())
        if found is not None:
            return found, find_checkpoint(found)
    if cfg.resume is True:
        raise ValueError("--resume without --output: found no unfinished run of this command under runs/")
    return RUNS_ROOT / f"{run_name(cfg)}-{time.strftime('%Y%m%d-%H%M%S')}", None


def fit(cfg: TrainConfig) -> FitResult:
    """Train (and evaluate every epoch) as ``cfg`` says; in a ``torchrun`` launch, as one of its processes."""
    cfg.validate()
    info = init_distributed(cfg.device)
    threads = torch.get_num_threads()
    try:
        if info.device.type == "cpu":
            torch.set_num_threads(cpu_threads(cfg.threads, cfg.workers))
        return _fit(cfg, info)
    finally:
        torch.set_num_threads(threads)
        cleanup_distributed()


def cpu_threads(requested: Optional[int], workers: int) -> int:
    """Compute threads for CPU training: as asked, else as OMP_NUM_THREADS says, else the free cores.

    NOTE: more compute threads than free cores (data-loading workers take theirs) makes
    OpenMP threads wait on each other at every op: on 2 cores, 2 threads plus one busy
    loader process run ~10x slower than 1 thread.
    """
    if requested is not None:
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - workers)


def _fit(cfg: TrainConfig, info: DistInfo) -> FitResult:
    out, ckpt_path = broadcast_object(resolve_output(cfg) if info.is_main else None, info)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        _logger.info("run folder: %s%s", out, f" (resuming from {ckpt_path})" if ckpt_path else "")
    state = load_training_checkpoint(ckpt_path) if ckpt_path else None

    seed_all(cfg.seed)  # same initial weights on every process
    train_set, val_set, class_names = build_datasets(cfg)
    if state is not None and list(state.get("class_names", class_names)) != class_names:
        raise CheckpointError(f"{ckpt_path}: trained on other classes than the data now given; use --finetune to start from it")
    model = build_model(cfg, len(class_names), load_finetune=state is None).to(info.device)
    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=cfg.ema_warmup) if cfg.ema else None
    global_batch = cfg.batch_size * cfg.accum_steps * info.world_size
    lr = cfg.lr if cfg.lr is not None else scaled_lr(cfg.base_lr, global_batch, cfg.base_batch)
    optimizer = build_optimizer(model, lr=lr, weight_decay=cfg.weight_decay, eps=cfg.opt_eps, betas=cfg.betas)
    scheduler = build_scheduler(optimizer, epochs=cfg.epochs, warmup_epochs=cfg.warmup_epochs, min_lr=cfg.min_lr,
                                warmup_lr=cfg.warmup_lr)
    amp_dtype, scaler = amp_settings(cfg, info.device)
    train_loader, sampler = build_train_loader(cfg, train_set, info)
    val_loader = build_eval_loader(cfg, val_set, info)
    ddp = DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda" else None) if info.distributed else model
    parts = TrainParts(
        model=ddp, optimizer=optimizer, scheduler=scheduler, criterion=build_criterion(cfg), dist=info,
        amp_dtype=amp_dtype, scaler=scaler, ema=ema, mixup=build_mixup(cfg, len(class_names)),
        teacher=build_teacher(cfg, len(class_names), info.device), accum_steps=cfg.accum_steps, clip_grad=cfg.clip_grad,
    )
    start_epoch, global_step, best = 0, 0, {"top1": -1.0, "epoch": -1, "source": "model"}
    if state is not None:
        start_epoch, global_step, best = _restore(state, parts, model, sampler, info)
    else:
        seed_all(cfg.seed + info.rank)  # distinct augmentation / drop-path streams per process
    logger = RunLogger(out, enabled=info.is_main, tensorboard=cfg.tensorboard, plot=cfg.plot)
    logger.truncate(start_epoch)
    if info.is_main:
        _logger.info("%s: %d classes, %d train / %d val images, global batch %d, lr %.3g, %d epochs, device %s x%d",
                     cfg.model, len(class_names), len(train_set), len(val_set), global_batch, lr, cfg.epochs,
                     info.device, info.world_size)
    history: list[dict[str, Any]] = []
    try:
        for epoch in range(start_epoch, cfg.epochs):
            sampler.set_epoch(epoch)
            train_metrics, global_step = train_one_epoch(parts, train_loader, epoch, global_step=global_step, progress=cfg.progress)
            record = {"epoch": epoch, **train_metrics, **_validate(cfg, parts, model, val_loader)}
            history.append(record)
            best = _save_epoch(out, cfg, parts, model, sampler, record, best, global_step, class_names, logger)
    finally:
        logger.close()
    best_path = out / BEST if (out / BEST).is_file() else None
    if info.is_main:
        _logger.info("done: best val top-1 %.2f%% (epoch %d, %s weights) in %s; last checkpoint %s; curves %s; log %s",
                     best["top1"], best["epoch"] + 1, best["source"], best_path, out / LAST, out / CURVES_FILE, out / LOG_FILE)
    return FitResult(output_dir=out, best_checkpoint=best_path, best_top1=best["top1"], best_epoch=best["epoch"], history=history)


def _validate(cfg: TrainConfig, parts: TrainParts, model: torch.nn.Module, loader) -> dict[str, float]:
    val = evaluate(model, loader, device=parts.dist.device, dist=parts.dist, amp_dtype=parts.amp_dtype)
    out = {"val_top1": val["top1"], "val_top5": val["top5"], "val_loss": val["loss"], "val_skipped": val["skipped"]}
    if parts.ema is not None:
        ema = evaluate(parts.ema.module, loader, device=parts.dist.device, dist=parts.dist, amp_dtype=parts.amp_dtype)
        out.update(ema_val_top1=ema["top1"], ema_val_top5=ema["top5"], ema_val_loss=ema["loss"])
    return out


def _restore(state: dict, parts: TrainParts, model, sampler, info: DistInfo) -> tuple[int, int, dict]:
    model.load_state_dict(state["model"])
    if parts.ema is not None:
        parts.ema.module.load_state_dict(state.get("model_ema") or state["model"])
    parts.optimizer.load_state_dict(state["optimizer"])
    if parts.scaler is not None and state.get("scaler"):
        parts.scaler.load_state_dict(state["scaler"])
    sampler.load_state_dict(state["sampler"])
    rng = state.get("rng", [])
    if len(rng) == info.world_size:
        restore_rng_state(rng[info.rank])
    else:
        _logger.warning("checkpoint was written by %d process(es), this run has %d: random streams are re-seeded, "
                        "so the continuation is not bit-exact", len(rng), info.world_size)
        seed_all(int(state["epoch"]) * 1000 + info.rank)
    return int(state["epoch"]) + 1, int(state["global_step"]), dict(state["best"])


def _save_epoch(out: Path, cfg: TrainConfig, parts: TrainParts, model, sampler, record: dict, best: dict,
                global_step: int, class_names: list[str], logger: RunLogger) -> dict:
    """Log the epoch, then write best.pth (if improved) and last.pth, atomically, on rank 0."""
    info = parts.dist
    epoch = record["epoch"]
    score, source = record["val_top1"], "model"
    if parts.ema is not None and record["ema_val_top1"] > score:
        score, source = record["ema_val_top1"], "ema"
    improved = score > best["top1"]
    if improved:
        best = {"top1": score, "epoch": epoch, "source": source}
    rng = gather_objects(capture_rng_state(), info)  # every process's streams, for an exact resume
    if info.is_main:
        logger.log_epoch(record)
        weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        ema_weights = {k: v.detach().cpu() for k, v in parts.ema.module.state_dict().items()} if parts.ema is not None else None
        meta = {"epoch": epoch, "config": cfg.to_dict(), "class_names": class_names, "model_name": cfg.model,
                "metrics": {k: v for k, v in record.items() if isinstance(v, (int, float))}}
        if improved:
            # the best-scoring weights alone, under "model": what eval / predict / --finetune load
            atomic_save({**meta, "model": ema_weights if source == "ema" else weights, "source": source}, out / BEST)
        atomic_save(
            {**meta, "model": weights, "model_ema": ema_weights, "optimizer": parts.optimizer.state_dict(),
             "scaler": parts.scaler.state_dict() if parts.scaler is not None else None, "global_step": global_step,
             "sampler": sampler.state_dict(), "rng": rng, "best": best},
            out / LAST,
        )
        ema_part = f", EMA {record['ema_val_top1']:.2f}%" if "ema_val_top1" in record else ""
        skipped = record["train_skipped"] + record["val_skipped"]
        _logger.info("epoch %d/%d: train loss %.4f, val loss %.4f, val top-1 %.2f%%%s, top-5 %.2f%%, lr %.2e, %.0f img/s%s",
                     epoch + 1, cfg.epochs, record["train_loss"], record["val_loss"], record["val_top1"], ema_part,
                     record["val_top5"], record["lr"], record["images_per_s"],
                     f", {skipped} unreadable image(s) skipped" if skipped else "")
    barrier(info)
    return best
