"""What the runner sets up for any task: data loaders (multi-scale, sharded), mixed precision,
and the training step's speed options (torch.compile, channels-last)."""

from __future__ import annotations

import logging
from typing import Callable, Optional, Union

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data import MultiScaleBatchSampler, SeededSamples, ShardedBatchSampler, SkipCounter
from ..data.sampler import ShardBatchSampler
from ..hardware import cores, native_bf16
from .config import TrainConfig
from .distributed import DistInfo

log = logging.getLogger(__name__)


def build_train_loader(cfg: TrainConfig, dataset: Dataset, info: DistInfo, *, collate: Optional[Callable] = None,
                       multiple_of: int = 1, drop_last: bool = False) -> tuple[DataLoader, MultiScaleBatchSampler]:
    options = dict(base_size=cfg.input_size, sizes=cfg.scales if cfg.multi_scale else None, seed=cfg.seed,
                   rank=info.rank, world_size=info.world_size, multiple_of=multiple_of, drop_last=drop_last,
                   sample_seeds=True)
    shard_sizes = getattr(dataset, "shard_sizes", None)
    if shard_sizes is not None:  # tar shards: each process reads its own (ShardBatchSampler)
        sampler = ShardBatchSampler(shard_sizes, cfg.batch_size, window=int(cfg.data_kwargs.get("shuffle_shards", 4)),
                                    **options)
    else:
        sampler = MultiScaleBatchSampler(len(dataset), cfg.batch_size, **options)
    # NOTE: each sample is augmented under the seed the sampler gives it (a function of seed, epoch and
    # position), not from its worker's stream: a run resumed mid-epoch repeats the augmentations exactly.
    # The loader's own generator (it draws the workers' base seeds at every epoch's start) is not the
    # global torch RNG, so iterating the loader leaves the training step's streams untouched.
    loader = DataLoader(
        SeededSamples(dataset), batch_sampler=sampler, num_workers=loader_workers(cfg.workers),
        collate_fn=collate or SkipCounter(), pin_memory=info.device.type == "cuda",
        generator=torch.Generator().manual_seed(cfg.seed + info.rank),
    )
    return loader, sampler


def build_eval_loader(cfg: TrainConfig, dataset: Dataset, info: DistInfo, *, collate: Optional[Callable] = None) -> DataLoader:
    sampler = ShardedBatchSampler(len(dataset), cfg.batch_size, rank=info.rank, world_size=info.world_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=loader_workers(cfg.workers), collate_fn=collate or SkipCounter(),
                      pin_memory=info.device.type == "cuda")


def loader_workers(requested: int) -> int:
    """Data-loading processes for ``requested``: at most the CPUs this process may run on (torch warns above
    that, and workers beyond the cores only take turns on them)."""
    return min(requested, cores())


def amp_settings(cfg: TrainConfig, device: torch.device) -> tuple[Optional[torch.dtype], Optional[torch.amp.GradScaler]]:
    """fp16 + a grad scaler on CUDA, bf16 autocast (no scaler needed) on a CPU with native bf16, else fp32."""
    dtype, reason = amp_dtype(cfg.amp, device)
    if cfg.amp and dtype is None:
        log.info("amp: %s; training in fp32", reason)
    return dtype, (torch.amp.GradScaler("cuda") if dtype == torch.float16 else None)


def amp_dtype(amp: bool, device: torch.device) -> tuple[Optional[torch.dtype], str]:
    """The autocast dtype ``amp`` gives on ``device`` (None: fp32) and a sentence saying why."""
    if not amp:
        return None, "amp is off"
    if device.type == "cuda":
        return torch.float16, "fp16 autocast with a grad scaler (CUDA)"
    if device.type != "cpu":
        return None, f"no mixed precision on {device.type}"
    native, why = native_bf16()
    return (torch.bfloat16, f"bf16 autocast: {why}") if native else (None, why)


COMPILE_MIN_UPDATES = 2000


def compile_choice(setting: Union[bool, str], device: torch.device, updates: int) -> tuple[bool, str]:
    """Whether to torch.compile the training model, and why (``setting``: true, false or "auto").

    NOTE: "auto" never compiles on CPU: measured on EdgeNeXt-XXS (batch 32 at 256 px, 1 thread), the
    compiled step was no faster than eager (0.98x) and compiling it took 3-4 minutes on 2 busy cores,
    longer than the whole digits demo.
    """
    if setting is True or setting is False:
        return setting, f"compile {'on' if setting else 'off'} (set in the recipe)"
    if device.type != "cuda":
        return False, f"compile auto: off on {device.type} (no faster than eager there, and minutes to compile)"
    if updates < COMPILE_MIN_UPDATES:
        return False, f"compile auto: off, {updates} updates (< {COMPILE_MIN_UPDATES}) do not repay the compile time"
    return True, f"compile auto: on ({device.type}, {updates} updates)"


def prepare_for_speed(model: nn.Module, cfg: TrainConfig) -> nn.Module:
    """The model in the memory format ``cfg`` asks for (in place)."""
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model
