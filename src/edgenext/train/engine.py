"""One epoch of training (any ``TrainingTask``) and the classification evaluation pass (single process or DDP)."""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .distributed import DistInfo, all_reduce_sum
from .errors import NonFiniteLossError
from .training_task import TrainingTask


@dataclass
class TrainParts:
    """What a training step needs, built once by the runner."""

    model: nn.Module  # the DDP wrapper in distributed runs
    optimizer: torch.optim.Optimizer
    scheduler: Any  # timm scheduler, stepped with fractional epochs
    task: TrainingTask  # turns a batch into a loss
    dist: DistInfo
    amp_dtype: Optional[torch.dtype] = None
    scaler: Optional[torch.amp.GradScaler] = None
    ema: Optional[nn.Module] = None  # timm ModelEmaV3
    accum_steps: int = 1
    clip_grad: Optional[float] = None
    channels_last: bool = False  # the model is in channels-last memory format: give it its inputs so too


@dataclass
class EpochProgress:
    """How far this process is through an epoch: batches trained on and its running sums of the epoch's
    metrics (what a mid-epoch checkpoint keeps, so the resumed epoch logs the uninterrupted one's numbers)."""

    batches: int = 0
    loss_sum: float = 0.0
    seen: int = 0
    skipped: int = 0

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "EpochProgress":
        return cls(batches=int(state["batches"]), loss_sum=float(state["loss_sum"]), seen=int(state["seen"]),
                   skipped=int(state["skipped"]))


#: Called after an optimiser update that does not end the epoch, as ``on_update(global_step, progress)``.
UpdateHook = Callable[[int, EpochProgress], None]


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _check_finite(loss: torch.Tensor, parts: TrainParts, epoch: int, step: int) -> float:
    value = loss.detach().float()
    bad = (~torch.isfinite(value)).float().reshape(1)
    # every process must agree before anyone calls backward, or DDP would hang
    all_reduce_sum(bad, parts.dist)
    if bad.item() > 0:
        lr = parts.optimizer.param_groups[0]["lr"]
        raise NonFiniteLossError(
            f"the training loss became {value.item()} at epoch {epoch}, step {step} (lr {lr:.3g}); stopped before "
            f"updating the weights. Lower the lr, enable clip_grad, or disable amp, then resume from the last checkpoint."
        )
    return value.item()


def train_one_epoch(
    parts: TrainParts, loader: Iterable, epoch: int, *, global_step: int, progress: bool = True,
    resume: Optional[EpochProgress] = None, on_update: Optional[UpdateHook] = None,
) -> tuple[dict[str, float], int]:
    """Train for one epoch; returns the epoch's metrics and the new optimiser step count.

    ``resume``: the epoch was started before (a mid-epoch checkpoint): ``loader`` yields the batches
    after its first ``resume.batches`` and the epoch's sums go on from its. ``on_update`` is called
    after every optimiser update but the epoch's last (the runner checkpoints there).
    """
    model, opt, device = parts.model, parts.optimizer, parts.dist.device
    model.train()
    done = resume or EpochProgress()
    num_batches = done.batches + len(loader)
    updates = max(math.ceil(num_batches / parts.accum_steps), 1)
    loss_sum, seen, skipped_total = done.loss_sum, done.seen, done.skipped
    bar = tqdm(total=num_batches, initial=done.batches, desc=f"epoch {epoch}", disable=not (progress and parts.dist.is_main),
               leave=False)
    start = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    task = parts.task
    for i, (inputs, targets, skipped) in enumerate(loader, start=done.batches):
        skipped_total += int(skipped)
        inputs, targets = task.to_device(inputs, targets, device)
        if parts.channels_last:
            inputs = to_channels_last(inputs)
        n = task.batch_len(inputs)
        if n == 0 and not parts.dist.distributed:
            continue
        if n == 0:
            # NOTE: every image of this batch was unreadable. Alone we could skip it, but under DDP
            # the other processes are about to all-reduce gradients: run a zero-weighted dummy step.
            inputs, targets = task.placeholder_batch(_bare(model), device)
        last_micro = (i + 1) % parts.accum_steps == 0 or i + 1 == num_batches
        sync = contextlib.nullcontext() if last_micro or not parts.dist.distributed else model.no_sync()
        with sync:
            with autocast(device, parts.amp_dtype):
                loss = task.loss(model, inputs, targets)
                if n == 0:
                    loss = loss * 0.0
            value = _check_finite(loss, parts, epoch, i)
            scaled = loss / parts.accum_steps
            (parts.scaler.scale(scaled) if parts.scaler is not None else scaled).backward()
        loss_sum += value * n
        seen += n
        if last_micro:
            update = i // parts.accum_steps
            parts.scheduler.step(epoch + update / updates)
            _optimizer_step(parts)
            global_step += 1
            if parts.ema is not None:
                parts.ema.update(_bare(model), step=global_step)
            if on_update is not None and i + 1 < num_batches:
                on_update(global_step, EpochProgress(i + 1, loss_sum, seen, skipped_total))
        rate = (seen - done.seen) * parts.dist.world_size / max(time.perf_counter() - start, 1e-9)
        bar.set_postfix(loss=f"{value:.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}", img_s=f"{rate:.0f}", refresh=False)
        bar.update(1)
    bar.close()
    elapsed = time.perf_counter() - start
    images_per_s = (seen - done.seen) * parts.dist.world_size / max(elapsed, 1e-9)
    totals = all_reduce_sum(torch.tensor([loss_sum, seen, skipped_total], dtype=torch.float64, device=device), parts.dist)
    loss_sum, seen, skipped_total = totals.tolist()
    metrics = {
        "train_loss": loss_sum / max(seen, 1),
        "lr": opt.param_groups[0]["lr"],
        "train_images": int(seen),
        "train_skipped": int(skipped_total),
        "images_per_s": images_per_s,
        "epoch_time_s": elapsed,
    }
    return metrics, global_step


def to_channels_last(inputs: Any) -> Any:
    """A 4-d image batch in channels-last memory format (same shape and values); anything else as it is."""
    if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
        return inputs.contiguous(memory_format=torch.channels_last)
    return inputs


def _bare(model: nn.Module) -> nn.Module:
    """The model inside its torch.compile and DDP wrappers (or the model itself)."""
    model = getattr(model, "_orig_mod", model)  # torch.compile's wrapper keeps the module there
    return model.module if hasattr(model, "module") else model


def _optimizer_step(parts: TrainParts) -> None:
    model = parts.model
    if parts.scaler is not None:
        if parts.clip_grad is not None:
            parts.scaler.unscale_(parts.optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), parts.clip_grad)
        parts.scaler.step(parts.optimizer)
        parts.scaler.update()
    else:
        if parts.clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), parts.clip_grad)
        parts.optimizer.step()
    parts.optimizer.zero_grad(set_to_none=True)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    device: torch.device,
    dist: Optional[DistInfo] = None,
    amp_dtype: Optional[torch.dtype] = None,
    progress: bool = False,
    desc: str = "eval",
) -> dict[str, float]:
    """Top-1, top-5 (in %) and mean cross-entropy over ``loader``, summed across processes.

    Pass the bare model, not its DDP wrapper: evaluation runs no collectives until the end,
    so processes may see different numbers of batches.
    """
    dist = dist or DistInfo(device=device)
    model.eval()
    totals = torch.zeros(5, dtype=torch.float64, device=device)  # loss, top1, top5, count, skipped
    for images, targets, skipped in tqdm(loader, desc=desc, disable=not (progress and dist.is_main), leave=False):
        totals[4] += skipped
        if images.numel() == 0:
            continue
        images, targets = images.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            logits = model(images)
        logits = logits.float()
        k = min(5, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hits = top.eq(targets[:, None])
        totals[0] += F.cross_entropy(logits, targets, reduction="sum").double()
        totals[1] += hits[:, 0].sum()
        totals[2] += hits.any(dim=1).sum()
        totals[3] += targets.numel()
    all_reduce_sum(totals, dist)
    loss, top1, top5, count, skipped = totals.tolist()
    if count == 0:
        raise ValueError(f"no readable images to evaluate ({int(skipped)} skipped)")
    return {"top1": 100.0 * top1 / count, "top5": 100.0 * top5 / count, "loss": loss / count,
            "count": int(count), "skipped": int(skipped)}
