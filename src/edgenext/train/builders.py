"""Builders turning a ``TrainConfig`` into data loaders, the model, teacher, loss and precision."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Optional, Union

import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ..data import (
    DigitsDataset,
    ImageFolderDataset,
    MultiScaleBatchSampler,
    ShardedBatchSampler,
    SkipCounter,
    SubsetDataset,
    eval_transform_factory,
    train_transform_factory,
)
from ..hardware import native_bf16
from ..models import create_model
from .config import DIGITS, TrainConfig
from .distill import DistillationLoss
from .distributed import DistInfo

log = logging.getLogger(__name__)


def _train_factory(cfg: TrainConfig):
    return train_transform_factory(
        augment=cfg.augment, crop_scale=cfg.crop_scale, hflip=cfg.hflip, color_jitter=cfg.color_jitter,
        rand_augment=cfg.rand_augment, reprob=cfg.reprob, interpolation=cfg.interpolation, mean=cfg.mean, std=cfg.std,
    )


def _eval_factory(cfg: TrainConfig):
    return eval_transform_factory(crop_pct=cfg.eval_crop_pct, interpolation=cfg.interpolation, mean=cfg.mean, std=cfg.std)


def data_folders(cfg: TrainConfig) -> tuple[Path, Path]:
    """``train_dir``/``val_dir`` when given, else ``data/train`` and ``data/val``."""
    root = Path(cfg.data)
    train = Path(cfg.train_dir) if cfg.train_dir else root / "train"
    val = Path(cfg.val_dir) if cfg.val_dir else root / "val"
    for name, path in (("training", train), ("validation", val)):
        if not path.is_dir():
            raise ValueError(
                f"{name} folder {path} does not exist: give --data DIR holding train/<class>/* and val/<class>/*, "
                f"or train_dir / val_dir, or --data {DIGITS} for the built-in demo set"
            )
    return train, val


def build_datasets(cfg: TrainConfig) -> tuple[Dataset, Dataset, list[str]]:
    """Training and validation sets, and the class names (the training set's order)."""
    if cfg.data == DIGITS and not cfg.train_dir:
        train = DigitsDataset("train", _train_factory(cfg), image_size=cfg.digits_size, val_fraction=cfg.digits_val_fraction)
        val = DigitsDataset("val", _eval_factory(cfg), image_size=cfg.digits_size, val_fraction=cfg.digits_val_fraction)
    else:
        train_dir, val_dir = data_folders(cfg)
        train = ImageFolderDataset(train_dir, _train_factory(cfg), default_size=cfg.input_size)
        val = ImageFolderDataset(val_dir, _eval_factory(cfg), default_size=cfg.input_size, class_names=train.class_names)
    if cfg.train_limit:
        train = SubsetDataset(train, cfg.train_limit, seed=cfg.seed)
    if cfg.val_limit:
        val = SubsetDataset(val, cfg.val_limit, seed=cfg.seed)
    return train, val, list(train.class_names)


def build_train_loader(cfg: TrainConfig, dataset: Dataset, info: DistInfo, *, collate: Optional[Callable] = None,
                       multiple_of: int = 1, drop_last: bool = False) -> tuple[DataLoader, MultiScaleBatchSampler]:
    sampler = MultiScaleBatchSampler(
        len(dataset),
        cfg.batch_size,
        base_size=cfg.input_size,
        sizes=cfg.scales if cfg.multi_scale else None,
        seed=cfg.seed,
        rank=info.rank,
        world_size=info.world_size,
        multiple_of=multiple_of,
        drop_last=drop_last,
    )
    # NOTE: no persistent workers: each epoch's workers take their seeds from the (checkpointed)
    # torch RNG, which is what makes a resumed run repeat the augmentations exactly.
    loader = DataLoader(
        dataset, batch_sampler=sampler, num_workers=cfg.workers, collate_fn=collate or SkipCounter(),
        pin_memory=info.device.type == "cuda",
    )
    return loader, sampler


def build_eval_loader(cfg: TrainConfig, dataset: Dataset, info: DistInfo, *, collate: Optional[Callable] = None) -> DataLoader:
    sampler = ShardedBatchSampler(len(dataset), cfg.batch_size, rank=info.rank, world_size=info.world_size)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.workers, collate_fn=collate or SkipCounter(),
                      pin_memory=info.device.type == "cuda")


def build_model(cfg: TrainConfig, num_classes: int, *, load_finetune: bool = True) -> nn.Module:
    """The student, from scratch or from ``cfg.finetune`` weights (head re-initialised if its size differs)."""
    from .modelspec import model_overrides

    overrides = model_overrides(cfg.to_dict(), training=True)
    weights = cfg.finetune if load_finetune else None
    if weights is not None:
        log.info("fine-tuning from %s", weights)
    return create_model(cfg.model, weights=weights, num_classes=num_classes, **overrides)


def build_teacher(cfg: TrainConfig, num_classes: int, device: torch.device) -> Optional[nn.Module]:
    """The frozen distillation teacher, or None, loaded by ``inference.load_model`` (one read of its file).

    Any model the package can create (``teacher: edgenext_base.usi`` downloads its release)
    or load (``teacher_weights``: an official / timm file or ``hf-hub:`` repository with
    ``teacher``, or a checkpoint of ``edgenext train``, which names its own model).
    """
    if not (cfg.teacher or cfg.teacher_weights):
        return None
    from .inference import load_model

    loaded = load_model(cfg.teacher, cfg.teacher_weights, pretrained=cfg.teacher_weights is None, device=device)
    teacher = loaded.model
    if teacher.num_classes != num_classes:
        raise ValueError(
            f"teacher {cfg.teacher or cfg.teacher_weights} predicts {teacher.num_classes} classes, the data has "
            f"{num_classes}: fine-tune a teacher on this data first and pass it with teacher_weights"
        )
    teacher.requires_grad_(False)
    return teacher.eval()


def build_criterion(cfg: TrainConfig) -> DistillationLoss:
    mixing = cfg.mixup > 0 or cfg.cutmix > 0
    # with mixup the targets arrive as smoothed soft labels (Mixup applies the smoothing)
    base = SoftTargetCrossEntropy() if mixing else nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    alpha = cfg.distill_alpha if (cfg.teacher or cfg.teacher_weights) else 0.0
    return DistillationLoss(base, alpha=alpha, tau=cfg.distill_tau)


def build_mixup(cfg: TrainConfig, num_classes: int) -> Optional[Mixup]:
    if cfg.mixup <= 0 and cfg.cutmix <= 0:
        return None
    return Mixup(
        mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob, switch_prob=cfg.mixup_switch_prob,
        label_smoothing=cfg.label_smoothing, num_classes=num_classes,
    )


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


#: ``compile: auto`` compiles CUDA runs of at least this many optimiser updates (the digits demo has 230):
#: a GPU compile takes about a minute, which a few hundred steps do not earn back.
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
