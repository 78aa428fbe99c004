"""Image classification as a ``TrainingTask``: image folders or the digits, the model (from scratch or
fine-tuned), cross-entropy with label smoothing, mixup / cutmix and distillation, top-1."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
from timm.data import Mixup
from timm.loss import SoftTargetCrossEntropy
from torch import nn
from torch.utils.data import Dataset

from ..data import (
    DigitsDataset,
    ImageFolderDataset,
    SkipCounter,
    SubsetDataset,
    eval_transform_factory,
    train_transform_factory,
)
from ..data.shard_datasets import ShardImageDataset
from ..data.shards import looks_like_shards, resolve_shards
from ..models import Checkpoint, create_model, get_variant, read_weights
from ..models.registry import is_remote_weights
from ..models.weights import CheckpointError, WeightsDownloadError
from .config import DIGITS, TrainConfig
from .distill import DistillationLoss
from .distributed import DistInfo
from .engine import evaluate
from .training_task import TrainingTask, TaskData, check_weight_files, move_to_device, refuse_keys


class ClassificationTask(TrainingTask):
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
        self._finetune: Optional[Checkpoint] = None  # what fetch_weights read, until the model is built

    def check(self) -> None:
        cfg = self.cfg
        get_variant(cfg.model)  # an unknown name raises, with suggestions
        if not (cfg.data == DIGITS and not cfg.train_dir) and not uses_shards(cfg):
            data_folders(cfg)
        check_weight_files(cfg, ("finetune", "teacher_weights"))
        refuse_keys(cfg, ("coco_supplement",), "COCO images added to a VOC segmentation training set: a setting "
                    "of --task segment, which classification does not read")
        if cfg.teacher:
            get_variant(cfg.teacher)

    def build_data(self) -> TaskData:
        train, val, class_names = build_datasets(self.cfg)
        return TaskData(train=train, val=val, class_names=class_names, collate=SkipCounter())

    def fetch_weights(self) -> None:
        """Download (or find in the cache) the remote weights the run starts from: ``finetune`` and the
        teacher's (``teacher_weights``, else the ``teacher`` release), before the run folder exists."""
        cfg = self.cfg
        sources = [("finetune", cfg.finetune), ("teacher_weights", cfg.teacher_weights)]
        if cfg.teacher and not cfg.teacher_weights:
            variant, release = get_variant(cfg.teacher)
            release = release or variant.default_release
            sources.append(("teacher", release.url if release is not None else None))
        for key, source in sources:
            if not source or not is_remote_weights(source):
                continue  # a local file: check() found it, and it is read when used
            try:
                fetched = read_weights(source)
            except (WeightsDownloadError, CheckpointError) as err:
                way = ("--finetune FILE" if key == "finetune"
                       else "--set teacher_weights=FILE (beside --teacher NAME), or train without a teacher")
                raise type(err)(f"{key}={source}: {err}. For edgenext train: download it and give its path: {way}") from None
            if key == "finetune":
                self._finetune = fetched  # URL / hub files are cached; the checkpoint is handed over once

    def build_model(self, num_classes: int, *, load_finetune: bool = True) -> nn.Module:
        fetched, self._finetune = self._finetune, None
        return build_model(self.cfg, num_classes, load_finetune=load_finetune, weights=fetched)

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


log = logging.getLogger(__name__)


def _train_factory(cfg: TrainConfig):
    return train_transform_factory(
        augment=cfg.augment, crop_scale=cfg.crop_scale, hflip=cfg.hflip, color_jitter=cfg.color_jitter,
        rand_augment=cfg.rand_augment, reprob=cfg.reprob, interpolation=cfg.interpolation, mean=cfg.mean, std=cfg.std,
    )


def _eval_factory(cfg: TrainConfig):
    return eval_transform_factory(crop_pct=cfg.eval_crop_pct, interpolation=cfg.interpolation, mean=cfg.mean, std=cfg.std)


def uses_shards(cfg: TrainConfig) -> bool:
    """Whether the training data are tar shards (``edgenext shards``' folder or manifest, a pattern, a URL)."""
    return looks_like_shards(cfg.train_dir or (cfg.data if cfg.data != DIGITS else None))


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
    elif uses_shards(cfg):
        train = ShardImageDataset(resolve_shards(cfg.train_dir or cfg.data, "train"), _train_factory(cfg),
                                  default_size=cfg.input_size)
        val = ShardImageDataset(resolve_shards(cfg.val_dir or cfg.data, "val"), _eval_factory(cfg),
                                default_size=cfg.input_size, class_names=train.class_names)
    else:
        train_dir, val_dir = data_folders(cfg)
        train = ImageFolderDataset(train_dir, _train_factory(cfg), default_size=cfg.input_size)
        val = ImageFolderDataset(val_dir, _eval_factory(cfg), default_size=cfg.input_size, class_names=train.class_names)
    if cfg.train_limit:
        train = SubsetDataset(train, cfg.train_limit, seed=cfg.seed)
    if cfg.val_limit:
        val = SubsetDataset(val, cfg.val_limit, seed=cfg.seed)
    return train, val, list(train.class_names)


def build_model(cfg: TrainConfig, num_classes: int, *, load_finetune: bool = True,
                weights: Optional[Checkpoint] = None) -> nn.Module:
    """The student, from scratch or from ``cfg.finetune`` weights (head re-initialised if its size differs);
    ``weights``: ``cfg.finetune`` already read (``read_weights``), so that it is not read again."""
    from ..models.run_config import model_overrides

    overrides = model_overrides(cfg.to_dict(), training=True)
    source = cfg.finetune if load_finetune else None
    if source is not None:
        log.info("fine-tuning from %s", source)
    chosen = (weights if weights is not None else source) if load_finetune else None
    return create_model(cfg.model, weights=chosen, num_classes=num_classes, **overrides)



def build_teacher(cfg: TrainConfig, num_classes: int, device: torch.device) -> Optional[nn.Module]:
    """The frozen distillation teacher, or None, loaded by ``models.loading.load_model`` (one read of its file).

    Any model the package can create (``teacher: edgenext_base.usi`` downloads its release)
    or load (``teacher_weights``: an official / timm file or ``hf-hub:`` repository with
    ``teacher``, or a checkpoint of ``edgenext train``, which names its own model).
    """
    if not (cfg.teacher or cfg.teacher_weights):
        return None
    from ..models.loading import load_model

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
