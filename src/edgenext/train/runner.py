"""``fit``: a whole training run from a ``TrainConfig`` and a ``TrainingTask``: what ``edgenext train`` calls.

Nothing here knows which task it trains: the task builds the data, the model and the loss
and evaluates; this module owns run folders, checkpoints, resume, DDP, EMA and logging.
"""

from __future__ import annotations

import logging
import math
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

from ..hardware import cores
from ..models.weights import CheckpointError
from .setup import amp_settings, build_eval_loader, build_train_loader, compile_choice, loader_workers, prepare_for_speed
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
from .engine import EpochProgress, TrainParts, train_one_epoch
from .logger import CURVES_FILE, LOG_FILE, RunLogger
from .optim import adamw_kernel, build_optimizer, build_scheduler, scaled_lr
from .training_task import TaskData, TrainingTask

log = logging.getLogger(__name__)

RUNS_ROOT = Path("runs")


@dataclass
class FitResult:
    output_dir: Path
    best_checkpoint: Optional[Path]
    best_score: float  # the task's metric (val top-1 %, box mAP, mIoU) of best.pth
    best_epoch: int
    metric: str = "top1"
    history: list[dict[str, Any]] = field(default_factory=list)
    is_main: bool = True  # False on the other processes of a torchrun launch

    @property
    def best_top1(self) -> float:
        """The classification name of ``best_score``."""
        return self.best_score

    @property
    def log_file(self) -> Path:
        return self.output_dir / LOG_FILE

    @property
    def curves_file(self) -> Path:
        return self.output_dir / CURVES_FILE

    @property
    def last_checkpoint(self) -> Path:
        return self.output_dir / LAST

    def summary(self) -> str:
        """Where everything went and the best score: the one line a run ends with."""
        best = f"best val {self.metric} {self.best_score:.4g} (epoch {self.best_epoch + 1}) in {self.best_checkpoint}" \
            if self.best_checkpoint is not None else "no best checkpoint"
        return f"done: {best}; last checkpoint {self.last_checkpoint}; curves {self.curves_file}; log {self.log_file}"


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def run_name(cfg: TrainConfig, task: TrainingTask) -> str:
    data = DIGITS if cfg.data == DIGITS and not cfg.train_dir else Path(cfg.train_dir or cfg.data).resolve().name
    return f"{cfg.model}{task.run_tag}-{data}"


def resolve_output(cfg: TrainConfig, task: TrainingTask) -> tuple[Path, Optional[Path]]:
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
        found = find_unfinished_run(RUNS_ROOT, run_name(cfg, task), cfg.to_dict())
        if found is not None:
            return found, find_checkpoint(found)
    if cfg.resume is True:
        raise ValueError("--resume without --output: found no unfinished run of this command under runs/")
    return _fresh_folder(RUNS_ROOT / f"{run_name(cfg, task)}-{time.strftime('%Y%m%d-%H%M%S')}"), None


def _fresh_folder(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3``...: two runs started in the same second never share a folder."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate


def fit(cfg: TrainConfig, task: TrainingTask) -> FitResult:
    """Train (and evaluate every epoch) as ``cfg`` says; in a ``torchrun`` launch, as one of its processes.

    ``task`` is what is learnt: ``edgenext.tasks.build_task(cfg)`` gives the one ``cfg.task`` names
    (``edgenext.tasks.fit(cfg)`` does both).
    Everything that can be checked (config values, model name, data paths) is checked before anything
    is written.
    """
    cfg.validate()
    if task.name != cfg.task:
        raise ValueError(f"config task {cfg.task!r} but a {task.name!r} task was given")
    task.check()
    info = init_distributed(cfg.device)
    threads = torch.get_num_threads()
    try:
        if info.device.type == "cpu":
            torch.set_num_threads(cpu_threads(cfg.threads, loader_workers(cfg.workers)))
        return _fit(cfg, task, info)
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
    return max(1, cores() - workers)


def _fit(cfg: TrainConfig, task: TrainingTask, info: DistInfo) -> FitResult:
    seed_all(cfg.seed)  # same initial weights on every process
    data = task.build_data()  # before the run folder exists: bad data leaves nothing behind
    class_names = data.class_names
    out, ckpt_path = broadcast_object(resolve_output(cfg, task) if info.is_main else None, info)
    if ckpt_path is None:
        task.fetch_weights()  # downloads, so offline it fails here, while the run folder does not exist yet
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        log.info("run folder: %s%s", out, f" (resuming from {ckpt_path})" if ckpt_path else "")
        for key, value in data.info.items():
            log.info("%s: %s", key, value)
        if loader_workers(cfg.workers) < cfg.workers:
            log.info("workers: %d (the config's %d, capped at the CPUs this process may use: %d)",
                     loader_workers(cfg.workers), cfg.workers, cores())
    state = load_training_checkpoint(ckpt_path) if ckpt_path else None
    if state is not None and list(state.get("class_names", class_names)) != class_names:
        raise CheckpointError(f"{ckpt_path}: trained on other classes than the data now given; use --finetune to start from it")
    run = _build_run(cfg, task, info, data, fresh=state is None)
    model, parts, sampler = run.model, run.parts, run.sampler
    start_epoch, global_step, best = 0, 0, {"score": float("-inf"), "epoch": -1, "source": "model"}
    in_epoch: Optional[EpochProgress] = None  # how far into start_epoch a mid-epoch checkpoint was written
    if state is not None:
        start_epoch, global_step, best, in_epoch = _restore(state, parts, model, sampler, info)
    else:
        seed_all(cfg.seed + info.rank)  # distinct augmentation / drop-path streams per process
    logger = RunLogger(out, enabled=info.is_main, tensorboard=cfg.tensorboard, plot=cfg.plot,
                       metric_keys=task.plot_keys or tuple(k for k in task.log_keys if k != "loss"))
    logger.truncate(start_epoch)
    if info.is_main:
        log.info("%s %s: %d classes, %d train / %d val images, global batch %d, lr %.3g, %d epochs, device %s x%d",
                 task.name, cfg.model, len(class_names), len(data.train), len(data.val), run.global_batch, run.lr, cfg.epochs,
                 info.device, info.world_size)
    history: list[dict[str, Any]] = []
    try:
        for epoch in range(start_epoch, cfg.epochs):
            resume = in_epoch if epoch == start_epoch else None
            sampler.set_epoch(epoch, start_batch=resume.batches if resume is not None else 0)
            if resume is not None and info.is_main:
                log.info("resuming epoch %d at batch %d of %d", epoch + 1, resume.batches + 1,
                         resume.batches + len(run.train_loader))
            saver = _MidEpochSaver(out, cfg, run, epoch, best, class_names)
            train_metrics, global_step = train_one_epoch(parts, run.train_loader, epoch, global_step=global_step,
                                                         progress=cfg.progress, resume=resume,
                                                         on_update=saver if cfg.checkpoint_every else None)
            record = {"epoch": epoch, **train_metrics, **_validate(task, parts, model, run.val_loader)}
            history.append(record)
            best = _save_epoch(out, cfg, parts, model, sampler, record, best, global_step, class_names, logger)
    finally:
        logger.close()
    best_path = out / BEST if (out / BEST).is_file() else None
    result = FitResult(output_dir=out, best_checkpoint=best_path, best_score=best["score"], best_epoch=best["epoch"],
                       metric=task.metric, history=history, is_main=info.is_main)
    if info.is_main:
        log.info("%s", result.summary())
    return result


@dataclass
class _Run:
    """What a run trains with, built once before its first epoch."""

    model: torch.nn.Module  # the bare model (evaluation, EMA and checkpoints use it)
    parts: TrainParts  # the training step's pieces (its model may be DDP-wrapped and compiled)
    train_loader: Any
    sampler: Any
    val_loader: Any
    lr: float
    global_batch: int


def _build_run(cfg: TrainConfig, task: TrainingTask, info: DistInfo, data: TaskData, *, fresh: bool) -> _Run:
    """The model (from ``cfg.finetune`` only when ``fresh``: a resumed run loads its own weights next),
    EMA, optimiser, schedule, loaders, DDP / compile wrapping and the task's loss, in the order the
    random streams of a resumed run expect."""
    seed_all(cfg.seed)
    model = prepare_for_speed(task.build_model(len(data.class_names), load_finetune=fresh).to(info.device), cfg)
    if info.distributed and _has_batchnorm(model):
        # NOTE: per-process BatchNorm statistics over small dense-task batches are noisy; sync them.
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=cfg.ema_warmup) if cfg.ema else None
    global_batch = cfg.batch_size * cfg.accum_steps * info.world_size
    lr = cfg.lr if cfg.lr is not None else scaled_lr(cfg.base_lr, global_batch, cfg.base_batch)
    optimizer = build_optimizer(model, lr=lr, weight_decay=cfg.weight_decay, eps=cfg.opt_eps, betas=cfg.betas,
                                lr_scales=task.param_groups(model), impl=cfg.adamw)
    amp_dtype, scaler = amp_settings(cfg, info.device)
    train_loader, sampler = build_train_loader(cfg, data.train, info, collate=data.collate, multiple_of=task.batch_multiple(),
                                              drop_last=task.drop_last)
    scheduler = build_scheduler(optimizer, epochs=cfg.epochs, warmup_epochs=warmup_epochs(cfg, len(train_loader)),
                                min_lr=cfg.min_lr, warmup_lr=cfg.warmup_lr)
    val_loader = build_eval_loader(cfg, data.val, info, collate=data.collate)
    ddp = DistributedDataParallel(model, device_ids=[info.device] if info.device.type == "cuda" else None) if info.distributed else model
    compiled, why = compile_choice(cfg.compile, info.device, cfg.epochs * math.ceil(len(train_loader) / cfg.accum_steps))
    if info.is_main:
        log.info("training step: %s; AdamW %s kernel; %s memory format", why, adamw_kernel(optimizer),
                 "channels-last" if cfg.channels_last else "contiguous")
    # NOTE: only the training forward is compiled; evaluation, EMA and checkpoints use the module itself
    # (same parameters), so state-dict keys stay free of torch.compile's "_orig_mod." prefix.
    train_model = torch.compile(ddp) if compiled else ddp
    task.prepare(len(data.class_names), info.device)
    parts = TrainParts(model=train_model, optimizer=optimizer, scheduler=scheduler, task=task, dist=info,
                       amp_dtype=amp_dtype, scaler=scaler, ema=ema, accum_steps=cfg.accum_steps, clip_grad=cfg.clip_grad,
                       channels_last=cfg.channels_last)
    return _Run(model=model, parts=parts, train_loader=train_loader, sampler=sampler, val_loader=val_loader, lr=lr,
                global_batch=global_batch)


def warmup_epochs(cfg: TrainConfig, batches_per_epoch: int) -> float:
    """``warmup_epochs``, or ``warmup_steps`` optimiser updates as a fraction of epochs (at most all of them)."""
    if cfg.warmup_steps is None:
        return cfg.warmup_epochs
    updates = max(math.ceil(batches_per_epoch / cfg.accum_steps), 1)
    return min(cfg.warmup_steps / updates, float(cfg.epochs))


def _has_batchnorm(model: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _validate(task: TrainingTask, parts: TrainParts, model: torch.nn.Module, loader) -> dict[str, float]:
    """The task's metrics of the weights and of their EMA, as ``val_<key>`` / ``ema_val_<key>``."""
    info = parts.dist
    val = task.evaluate(model, loader, device=info.device, dist=info, amp_dtype=parts.amp_dtype)
    out = {f"val_{k}": float(val[k]) for k in task.log_keys}
    out["val_skipped"] = int(val.get("skipped", 0))
    if parts.ema is not None:
        ema = task.evaluate(parts.ema.module, loader, device=info.device, dist=info, amp_dtype=parts.amp_dtype)
        out.update({f"ema_val_{k}": float(ema[k]) for k in task.log_keys})
    return out


def _restore(state: dict, parts: TrainParts, model, sampler, info: DistInfo) -> tuple[int, int, dict, Optional[EpochProgress]]:
    """Load a checkpoint into the run; returns the epoch to start, the update count, the best score so far
    and, for a mid-epoch checkpoint, this process's progress through that epoch."""
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
        log.warning("checkpoint was written by %d process(es), this run has %d: random streams are re-seeded, "
                        "so the continuation is not bit-exact", len(rng), info.world_size)
        seed_all(int(state["epoch"]) * 1000 + info.rank)
    best = dict(state["best"])
    if "score" not in best:  # checkpoints written before the task seam named it top1
        best["score"] = best.pop("top1")
    return int(state["epoch"]) + 1, int(state["global_step"]), best, _in_epoch_progress(state, info)


def _in_epoch_progress(state: dict, info: DistInfo) -> Optional[EpochProgress]:
    """This process's part of a mid-epoch checkpoint's position (None: it was written at an epoch's end)."""
    in_epoch = state.get("in_epoch")
    if not in_epoch:
        return None
    sums = in_epoch["progress"]
    if len(sums) != info.world_size:
        # NOTE: the epoch's plan (which samples each global batch holds) depends on the number of processes
        log.warning("mid-epoch checkpoint written by %d process(es), this run has %d: epoch %d starts again from "
                    "its first batch (its first %d batches are trained on twice)", len(sums), info.world_size,
                    int(state["epoch"]) + 2, int(in_epoch["batches"]))
        return None
    return EpochProgress.from_state_dict(sums[info.rank])


def _save_epoch(out: Path, cfg: TrainConfig, parts: TrainParts, model, sampler, record: dict, best: dict,
                global_step: int, class_names: list[str], logger: RunLogger) -> dict:
    """Log the epoch, then write best.pth (if improved) and last.pth, atomically, on rank 0."""
    info = parts.dist
    epoch = record["epoch"]
    metric = parts.task.metric
    score, source = record[f"val_{metric}"], "model"
    if parts.ema is not None and record[f"ema_val_{metric}"] > score:
        score, source = record[f"ema_val_{metric}"], "ema"
    improved = score > best["score"]
    if improved:
        best = {"score": score, "epoch": epoch, "source": source, "metric": metric}
    rng = gather_objects(capture_rng_state(), info)  # every process's streams, for an exact resume
    if info.is_main:
        logger.log_epoch(record)
        meta = _meta(cfg, epoch, class_names, metrics={k: v for k, v in record.items() if isinstance(v, (int, float))})
        weights, ema_weights = _weights(model), _weights(parts.ema.module) if parts.ema is not None else None
        if improved:
            # the best-scoring weights alone, under "model": what eval / predict / --finetune load
            atomic_save({**meta, "model": ema_weights if source == "ema" else weights, "source": source}, out / BEST)
        atomic_save({**meta, **_training_state(parts, sampler, weights, ema_weights, global_step, rng, best)}, out / LAST)
        skipped = record["train_skipped"] + record["val_skipped"]
        log.info("epoch %d/%d: train loss %.4f, %s, lr %.2e, %.0f img/s%s", epoch + 1, cfg.epochs, record["train_loss"],
                 parts.task.describe(record), record["lr"], record["images_per_s"],
                 f", {skipped} unreadable image(s) skipped" if skipped else "")
    barrier(info)
    return best


class _MidEpochSaver:
    """The engine's ``on_update`` hook: last.pth every ``checkpoint_every`` updates, inside the epoch.

    Every process calls it after the same update (the update count is the same everywhere), gives its
    random streams and running sums, and rank 0 alone writes. The checkpoint's ``epoch`` stays the last
    finished one; ``in_epoch`` says how many batches of the next one are done.
    """

    def __init__(self, out: Path, cfg: TrainConfig, run: _Run, epoch: int, best: dict, class_names: list[str]) -> None:
        self.out, self.cfg, self.run, self.epoch, self.best, self.class_names = out, cfg, run, epoch, best, class_names

    def __call__(self, global_step: int, progress: EpochProgress) -> None:
        if global_step % self.cfg.checkpoint_every:
            return
        parts, info = self.run.parts, self.run.parts.dist
        rng = gather_objects(capture_rng_state(), info)
        sums = gather_objects(progress.state_dict(), info)
        if info.is_main:
            ema_weights = _weights(parts.ema.module) if parts.ema is not None else None
            state = _training_state(parts, self.run.sampler, _weights(self.run.model), ema_weights, global_step, rng,
                                    self.best)
            in_epoch = {"epoch": self.epoch, "batches": progress.batches, "progress": sums}
            atomic_save({**_meta(self.cfg, self.epoch - 1, self.class_names, metrics={}), **state, "in_epoch": in_epoch},
                        self.out / LAST)
            log.info("checkpoint: epoch %d, batch %d of %d (update %d)", self.epoch + 1, progress.batches,
                     self.run.sampler.start_batch + len(self.run.train_loader), global_step)
        barrier(info)


def _meta(cfg: TrainConfig, epoch: int, class_names: list[str], *, metrics: dict) -> dict[str, Any]:
    """What both checkpoints say of the run: ``epoch`` is the last finished one."""
    return {"epoch": epoch, "config": cfg.to_dict(), "class_names": class_names, "model_name": cfg.model,
            "task": cfg.task, "metrics": metrics}


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    # contiguous: a channels-last model's conv weights would otherwise keep their strides in the file
    # (safetensors and some exporters refuse such tensors)
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _training_state(parts: TrainParts, sampler, weights: dict, ema_weights: Optional[dict], global_step: int,
                    rng: list, best: dict) -> dict[str, Any]:
    """Everything last.pth holds to continue the run exactly (besides the metadata)."""
    return {"model": weights, "model_ema": ema_weights, "optimizer": parts.optimizer.state_dict(),
            "scaler": parts.scaler.state_dict() if parts.scaler is not None else None, "global_step": global_step,
            "sampler": sampler.state_dict(), "rng": rng, "best": best}
