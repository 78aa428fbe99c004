"""Training configuration: one flat dataclass, filled from YAML recipes and overrides.

A recipe (``configs/*.yaml``) may name another with ``base: other.yaml``; its keys override
the base's. Unknown keys are errors (with a suggestion), so a typo never goes unnoticed.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

from ..constants import IMAGENET_MEAN, IMAGENET_STD

#: The built-in demo data set's name (scikit-learn's handwritten digits).
DIGITS = "digits"


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are the paper's ImageNet recipe (paper.md)."""

    # model
    model: str = "edgenext_xx_small"
    model_kwargs: dict = field(default_factory=dict)  # EdgeNeXt constructor overrides (depths=..., ...)
    drop_path: float = 0.0
    finetune: Optional[str] = None  # weights to start from (any model-zoo format); head re-initialised
    # data
    data: str = DIGITS  # "digits" or a folder holding train/ and val/
    train_dir: Optional[str] = None  # explicit folders override data/train, data/val
    val_dir: Optional[str] = None
    digits_size: int = 64
    digits_val_fraction: float = 0.2
    train_limit: Optional[int] = None  # use only this many training / validation samples
    val_limit: Optional[int] = None
    workers: int = 4
    threads: Optional[int] = None  # CPU compute threads; None: the free cores (cores - workers)
    # input and augmentation
    input_size: int = 256
    multi_scale: bool = True
    scales: tuple = (160, 192, 256, 288, 320)
    eval_crop_pct: float = 0.875
    interpolation: str = "bicubic"
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    augment: bool = True
    crop_scale: tuple = (0.08, 1.0)
    hflip: float = 0.5
    color_jitter: float = 0.4
    rand_augment: Optional[str] = None
    reprob: float = 0.0
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    label_smoothing: float = 0.1
    # optimisation
    epochs: int = 300
    batch_size: int = 256  # per process, at input_size
    accum_steps: int = 1
    lr: Optional[float] = None  # absolute; when unset, base_lr * global batch / base_batch
    base_lr: float = 6e-3
    base_batch: int = 4096
    min_lr: float = 1e-6
    warmup_epochs: float = 20
    warmup_lr: float = 0.0
    weight_decay: float = 0.05
    opt_eps: float = 1e-8
    betas: tuple = (0.9, 0.999)
    clip_grad: Optional[float] = None
    # weight averaging, precision, distillation
    ema: bool = True
    ema_decay: float = 0.9995
    ema_warmup: bool = False
    amp: bool = True  # bf16 autocast on CPU, fp16 + grad scaler on CUDA
    teacher: Optional[str] = None  # a model name the package can create ("edgenext_base.usi", ...)
    teacher_weights: Optional[str] = None
    distill_alpha: float = 0.5
    distill_tau: float = 1.0
    # run
    seed: int = 0
    device: str = "auto"
    output: Optional[str] = None
    resume: Union[str, bool] = "auto"  # "auto", True, False or a checkpoint path
    progress: bool = True
    tensorboard: bool = True
    plot: bool = True

    def validate(self) -> "TrainConfig":
        positive = ("epochs", "batch_size", "accum_steps", "input_size", "base_batch", "digits_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 (or null for automatic), got {self.threads}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if not 0.0 <= self.distill_alpha <= 1.0 or self.distill_tau <= 0:
            raise ValueError(f"distill_alpha must be in [0, 1] and distill_tau > 0, got {self.distill_alpha}, {self.distill_tau}")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be between 0 and epochs={self.epochs}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError(f"clip_grad must be positive (or null to disable), got {self.clip_grad}")
        if self.multi_scale and not self.scales:
            raise ValueError("multi_scale is on but scales is empty")
        if not isinstance(self.model_kwargs, dict):
            raise ValueError(f"model_kwargs must be a mapping, got {self.model_kwargs!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists for tuples): fits YAML, JSON and ``weights_only`` checkpoints."""
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}


def _plain(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def _coerce(name: str, value: Any) -> Any:
    default = _FIELDS[name].default
    if isinstance(default, tuple) and isinstance(value, list):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any]) -> TrainConfig:
    """A copy of ``config`` with ``overrides`` applied (unknown keys raise ``ValueError``)."""
    unknown = [k for k in overrides if k not in _FIELDS]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, list(_FIELDS), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"unknown config key(s): {', '.join(hints)}")
    return dataclasses.replace(config, **{k: _coerce(k, v) for k, v in overrides.items()})


def read_recipe(path: Union[str, Path]) -> dict[str, Any]:
    """The keys of a YAML recipe, with those of its ``base:`` chain underneath."""
    path = Path(path)
    seen: list[Path] = []
    layers: list[dict[str, Any]] = []
    while True:
        if path in seen:
            raise ValueError(f"{path}: recipes include each other in a loop ({' -> '.join(map(str, seen))})")
        seen.append(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such recipe file")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a recipe must be a mapping of config keys, got {type(data).__name__}")
        base = data.pop("base", None)
        layers.append(data)
        if base is None:
            break
        path = (path.parent / base).resolve()
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged.update(layer)
    return merged


def configs_dir() -> Path:
    """The repository's ``configs/`` folder (the package is installed from the clone)."""
    return Path(__file__).resolve().parents[3] / "configs"


def find_recipe(name: str) -> Path:
    """A recipe path from a file path or a bare name in ``configs/`` (``digits``, ``edgenext_small``)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = configs_dir() / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    if candidate.is_file():
        return candidate
    available = sorted(p.stem for p in configs_dir().glob("*.yaml")) if configs_dir().is_dir() else []
    raise ValueError(f"no recipe {name!r}: not a file, and not in {configs_dir()} (available: {', '.join(available) or 'none'})")


def default_recipe(model: str, data: str) -> Optional[Path]:
    """The recipe used without ``--config``: the digits demo, else the variant's ImageNet recipe."""
    name = "digits" if data == DIGITS else model.partition(".")[0]
    candidate = configs_dir() / f"{name}.yaml"
    return candidate if candidate.is_file() else None


def load_config(recipe: Optional[Union[str, Path]] = None, overrides: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """Defaults, then the recipe (a path or a name in configs/), then ``overrides``; validated."""
    overrides = dict(overrides or {})
    if recipe is None:
        model = overrides.get("model", TrainConfig.model)
        data = overrides.get("data", TrainConfig.data)
        path = default_recipe(str(model), str(data))
    else:
        path = find_recipe(str(recipe))
    config = TrainConfig()
    if path is not None:
        config = apply_overrides(config, read_recipe(path))
    return apply_overrides(config, overrides).validate()


def save_config(config: TrainConfig, path: Union[str, Path]) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
