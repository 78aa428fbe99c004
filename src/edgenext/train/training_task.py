"""The seam between the training machinery and what is being learnt.

The runner and the engine (checkpoints, resume, DDP, EMA, AMP, logging, curves) know what they
train only through ``TrainingTask``; classification (``train/classify.py``), detection and
segmentation (``edgenext.dense.training``) implement it. The task registry
(``edgenext.tasks``) gives the one a config's ``task`` names.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Optional

import torch
from torch import nn
from torch.utils.data import Dataset

from .config import TrainConfig
from .distributed import DistInfo


@dataclass
class TaskData:
    """What a task's data gives the runner."""

    train: Dataset
    val: Dataset
    class_names: list[str]  # one name per output class the checkpoint records (background excluded or not: the task's call)
    collate: Callable  # batches of samples -> (inputs, targets, skipped count)
    info: dict[str, Any] = field(default_factory=dict)  # logged once at the start (e.g. how num_classes was found)


class TrainingTask(abc.ABC):
    """One kind of learning problem. Subclasses set ``name`` and ``metric`` and implement the methods.

    Every evaluation returns a flat dict of floats; the runner logs each entry of
    ``log_keys`` as ``val_<key>`` (and ``ema_val_<key>`` for the EMA weights), and keeps as
    ``best.pth`` the weights with the highest ``metric``.
    """

    name: ClassVar[str]
    metric: ClassVar[str]  # the key of evaluate()'s dict that selects best.pth (higher is better)
    log_keys: ClassVar[tuple[str, ...]]  # evaluate()'s keys written to log.jsonl / TensorBoard / curves
    plot_keys: ClassVar[Optional[tuple[str, ...]]] = None  # the ones curves.png draws (None: log_keys but loss)
    percent: ClassVar[bool] = False  # whether the metrics are percentages (for the log line)
    drop_last: ClassVar[bool] = False  # drop the last, incomplete training batch (BatchNorm heads fail on one image)
    #: what a run folder's default name says of the task after the model (runs/<model><run_tag>-<data>-<time>)
    run_tag: ClassVar[str] = ""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def check(self) -> None:
        """Everything that can be checked before the run writes anything (model name, data paths...)."""

    def fetch_weights(self) -> None:
        """Download (or find in the cache) the pretrained weights a fresh run starts from; the runner calls it
        before the run writes anything, so a machine without network fails with nothing left behind."""

    @abc.abstractmethod
    def build_data(self) -> TaskData:
        """The training and validation sets, the class names and the collate function."""

    @abc.abstractmethod
    def build_model(self, num_classes: int, *, load_finetune: bool = True) -> nn.Module:
        """The network, from scratch or from ``cfg.finetune`` / the task's pretrained backbone."""

    def prepare(self, num_classes: int, device: torch.device) -> None:
        """Build what the loss needs besides the model (teacher, mixup...); called once before training."""

    def batch_multiple(self) -> int:
        """Per-process batch sizes are rounded to a multiple of this (mixup pairs images up)."""
        return 1

    def param_groups(self, model: nn.Module) -> Optional[list[tuple[list[str], float]]]:
        """Parameter-name prefixes and their lr factor (e.g. the head at 10x), or None for one lr."""
        return None

    def to_device(self, inputs: Any, targets: Any, device: torch.device) -> tuple[Any, Any]:
        """Move a training batch to ``device`` (and apply batch-level augmentation)."""
        return move_to_device(inputs, device), move_to_device(targets, device)

    def batch_len(self, inputs: Any) -> int:
        return int(inputs.shape[0]) if isinstance(inputs, torch.Tensor) else len(inputs)

    @abc.abstractmethod
    def placeholder_batch(self, model: nn.Module, device: torch.device) -> tuple[Any, Any]:
        """A one-sample batch whose loss is multiplied by zero: what a DDP process trains on when
        every image of its batch was unreadable, so the gradient all-reduce still happens."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, inputs: Any, targets: Any) -> torch.Tensor:
        """The scalar training loss of a batch (called under autocast by the engine)."""

    @abc.abstractmethod
    def evaluate(self, model: nn.Module, loader: Iterable, *, device: torch.device, dist: DistInfo,
                 amp_dtype: Optional[torch.dtype] = None, progress: bool = False) -> dict[str, float]:
        """Metrics of the bare (not DDP-wrapped) ``model`` over ``loader``, summed across processes;
        must hold ``metric``, every ``log_keys`` entry and ``skipped`` (unreadable images)."""

    def describe(self, record: dict[str, Any]) -> str:
        """The epoch's validation figures for the console: the log keys, with the EMA's beside."""
        unit = "%" if self.percent else ""
        parts = []
        for key in self.log_keys:
            if f"val_{key}" not in record:
                continue
            text = f"val {key} {record[f'val_{key}']:.4g}{unit}"
            if f"ema_val_{key}" in record:
                text += f" (EMA {record[f'ema_val_{key}']:.4g}{unit})"
            parts.append(text)
        return ", ".join(parts)


def check_weight_files(cfg: TrainConfig, keys: Iterable[str]) -> None:
    """Each config key in ``keys`` that names a local weights file must exist (URLs, ``hf-hub:`` names and
    ``pretrained`` are resolved later, when the model is built)."""
    for key in keys:
        value = getattr(cfg, key)
        remote = "://" in str(value) or str(value).startswith("hf-hub:") or value == "pretrained"
        if value and not remote and not Path(value).is_file():
            raise ValueError(f"{key}={value}: no such file")


def refuse_keys(cfg: TrainConfig, keys: Iterable[str], why: str) -> None:
    """ValueError naming the config keys among ``keys`` that ``cfg`` sets (not None), with ``why``: what a task
    that does not read a key says instead of ignoring it."""
    given = [f"{key}={getattr(cfg, key)}" for key in keys if getattr(cfg, key) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: {why}")


def move_to_device(obj: Any, device: torch.device) -> Any:
    """Tensors, and lists / tuples / dicts of them, on ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: move_to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(move_to_device(v, device) for v in obj)
    return obj

