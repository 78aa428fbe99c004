"""Image classification: the first implementation of the training ``Task``."""

from __future__ import annotations

from typing import Any, Iterable, Optional

import torch
from torch import nn

from ..data import SkipCounter
from ..models import get_variant
from .builders import build_criterion, build_datasets, build_mixup, build_model, build_teacher, data_folders
from .config import DIGITS
from .distributed import DistInfo
from .engine import evaluate
from .task import Task, TaskData, check_weight_files, move_to_device


class ClassificationTask(Task):
    """Cross-entropy (with label smoothing, mixup / cutmix and distillation as the recipe says); top-1 picks best.pth."""

    name = "classify"
    metric = "top1"
    log_keys = ("top1", "top5", "loss")
    percent = True

    def __init__(self, cfg) -> None:
        super().__init__(cfg)
        self.criterion = None
        self.mixup = None
        self.teacher: Optional[nn.Module] = None

    def check(self) -> None:
        cfg = self.cfg
        get_variant(cfg.model)  # an unknown name raises, with suggestions
        if not (cfg.data == DIGITS and not cfg.train_dir):
            data_folders(cfg)
        check_weight_files(cfg, ("finetune", "teacher_weights"))
        if cfg.teacher:
            get_variant(cfg.teacher)

    def build_data(self) -> TaskData:
        train, val, class_names = build_datasets(self.cfg)
        return TaskData(train=train, val=val, class_names=class_names, collate=SkipCounter())

    def build_model(self, num_classes: int, *, load_finetune: bool = True) -> nn.Module:
        return build_model(self.cfg, num_classes, load_finetune=load_finetune)

    def prepare(self, num_classes: int, device: torch.device) -> None:
        self.criterion = build_criterion(self.cfg)
        self.mixup = build_mixup(self.cfg, num_classes)
        self.teacher = build_teacher(self.cfg, num_classes, device)

    def batch_multiple(self) -> int:
        return 2 if (self.cfg.mixup > 0 or self.cfg.cutmix > 0) else 1

    def to_device(self, inputs: torch.Tensor, targets: torch.Tensor, device: torch.device) -> tuple[Any, Any]:
        if self.mixup is not None and inputs.shape[0] % 2:
            # timm's Mixup pairs images up; a skipped unreadable image can leave the batch odd
            inputs, targets = inputs[:-1], targets[:-1]
        inputs, targets = move_to_device(inputs, device), move_to_device(targets, device)
        if self.mixup is not None and inputs.shape[0] > 0:
            inputs, targets = self.mixup(inputs, targets)
        return inputs, targets

    def placeholder_batch(self, model: nn.Module, device: torch.device) -> tuple[Any, Any]:
        in_chans = getattr(model, "in_chans", 3)
        targets = torch.zeros(1, dtype=torch.long, device=device)
        if self.mixup is not None:  # the criterion then takes soft targets
            targets = torch.zeros(1, getattr(model, "num_classes", 1), device=device)
        return torch.zeros(1, in_chans, 32, 32, device=device), targets

    def loss(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = model(inputs)
        teacher_logits = None
        if self.teacher is not None:
            with torch.no_grad():
                teacher_logits = self.teacher(inputs)
        return self.criterion(logits, targets, teacher_logits)

    def evaluate(self, model: nn.Module, loader: Iterable, *, device: torch.device, dist: DistInfo,
                 amp_dtype: Optional[torch.dtype] = None, progress: bool = False) -> dict[str, float]:
        return evaluate(model, loader, device=device, dist=dist, amp_dtype=amp_dtype, progress=progress)

    def describe(self, record: dict[str, Any]) -> str:
        ema = f", EMA {record['ema_val_top1']:.2f}%" if "ema_val_top1" in record else ""
        return f"val loss {record['val_loss']:.4f}, val top-1 {record['val_top1']:.2f}%{ema}, top-5 {record['val_top5']:.2f}%"
