"""Training configuration: one flat dataclass, filled from YAML recipes and overrides.

A recipe may name another with ``base: other.yaml``; its keys override the base's. Unknown
keys are errors (with a suggestion), and so are values of the wrong type, so a typo never goes
unnoticed. The built-in recipes are package data (``edgenext/configs/*.yaml``), read through
``importlib.resources`` so a wheel install has them too; ``edgenext train --print-config``
prints one resolved, to copy and edit.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import yaml

from ..constants import IMAGENET_MEAN, IMAGENET_STD

#: The built-in demo data set's name (scikit-learn's handwritten digits; digit scenes for detect / segment).
DIGITS = "digits"


#: Values of ``adamw``.
ADAMW_CHOICES = ("auto", "fused", "foreach", "loop")


@dataclass
class TrainConfig:
    """Every setting of a training run; the defaults are the paper's ImageNet recipe (paper.md).

    This class is the one definition of that recipe: ``configs/imagenet.yaml`` restates none of it.
    """

    # task: classify (this package's models/ and data/), detect or segment (edgenext.dense)
    task: str = "classify"
    task_kwargs: dict = field(default_factory=dict)  # model options of the task's network (aspp_channels, ...)
    num_classes: Optional[int] = None  # detect / segment: classes; None: from the data
    # model
    model: str = "edgenext_xx_small"
    model_kwargs: dict = field(default_factory=dict)  # EdgeNeXt constructor overrides (depths=..., ...)
    drop_path: float = 0.0
    finetune: Optional[str] = None  # weights to start from (any model-zoo format); head re-initialised
    backbone_weights: Optional[str] = None  # detect / segment: the backbone's ImageNet weights (a file, or "pretrained")
    # data
    data: str = DIGITS  # "digits" or a folder holding train/ and val/ (COCO / VOC layout for detect / segment)
    train_dir: Optional[str] = None  # explicit folders override data/train, data/val
    val_dir: Optional[str] = None
    train_ann: Optional[str] = None  # detect: COCO JSON files (with train_dir / val_dir as their image folders)
    val_ann: Optional[str] = None
    train_masks: Optional[str] = None  # segment: class-index PNG folders paired with train_dir / val_dir
    val_masks: Optional[str] = None
    # segment: a COCO 2017 folder whose train images of VOC's 20 classes join the training set (ml-cvnets' VOC recipe)
    coco_supplement: Optional[str] = None
    data_kwargs: dict = field(default_factory=dict)  # options of the task's data (digit scenes' canvas, ...)
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
    warmup_epochs: float = 20.0
    warmup_steps: Optional[int] = None  # warm-up in optimiser updates instead (ml-cvnets' dense recipes: 500)
    warmup_lr: float = 0.0
    weight_decay: float = 0.05
    head_lr_mult: float = 1.0  # lr factor of the task's head (not the backbone); 10 in the VOC recipe
    opt_eps: float = 1e-8
    betas: tuple = (0.9, 0.999)
    clip_grad: Optional[float] = None
    # weight averaging, precision, distillation
    ema: bool = True
    ema_decay: float = 0.9995
    ema_warmup: bool = False
    # mixed precision where the hardware makes it faster: fp16 autocast + grad scaler on CUDA, bf16 autocast
    # on CPUs with native bf16 (AVX512-BF16 / AMX); on other CPUs bf16 is emulated and slower than fp32,
    # so the run stays in fp32 and logs why
    amp: bool = True
    # training-step speed (benchmarks/train_throughput.py measures a step with these defaults against timm's):
    # torch.compile of the training forward/backward: "auto" compiles CUDA runs of >= 2000 updates; never on
    # CPU, where the compiled step measured no faster than eager and takes minutes to compile; true / false force it
    compile: Union[bool, str] = "auto"
    # AdamW kernel: "auto" (the fused one where torch has it, else "foreach"), "fused", "foreach" or "loop"
    # (torch's per-tensor default on CPU); the fused step measured 1.01-1.03x the per-tensor one on CPU
    adamw: str = "auto"
    # channels-last model and inputs (the blocks' permutes become free); off: on CPU it measured 0.95-1.02x
    # at 256 px and 1.02x at 64 px, within the noise
    channels_last: bool = False
    teacher: Optional[str] = None  # a model name the package can create ("edgenext_base.usi", ...)
    teacher_weights: Optional[str] = None
    distill_alpha: float = 0.5
    distill_tau: float = 1.0
    # run
    seed: int = 0
    device: str = "auto"
    output: Optional[str] = None
    resume: Union[str, bool] = "auto"  # "auto", True, False or a checkpoint path
    # also write last.pth every this many optimiser updates, mid-epoch (0: at the end of each epoch only);
    # a run resumed from such a checkpoint ends exactly as an uninterrupted one
    checkpoint_every: int = 0
    progress: bool = True
    tensorboard: bool = True
    plot: bool = True

    def validate(self) -> "TrainConfig":
        # NOTE: which tasks exist is the task registry's (edgenext.tasks), above this module:
        # it names the registered ones when a run looks its task up
        if not isinstance(self.task, str) or not self.task.isidentifier():
            raise ValueError(f"task must be a task name (classify, detect, segment, ...), got {self.task!r}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1 (or null: from the data), got {self.num_classes}")
        if self.head_lr_mult <= 0:
            raise ValueError(f"head_lr_mult must be positive, got {self.head_lr_mult}")
        positive = ("epochs", "batch_size", "accum_steps", "input_size", "base_batch", "digits_size")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1 (or null for automatic), got {self.threads}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0 optimiser updates (0: once per epoch), got {self.checkpoint_every}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if not 0.0 <= self.distill_alpha <= 1.0 or self.distill_tau <= 0:
            raise ValueError(f"distill_alpha must be in [0, 1] and distill_tau > 0, got {self.distill_alpha}, {self.distill_tau}")
        if self.warmup_steps is None and (self.warmup_epochs < 0 or self.warmup_epochs > self.epochs):
            raise ValueError(f"warmup_epochs={self.warmup_epochs} must be between 0 and epochs={self.epochs}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0 (or null: use warmup_epochs), got {self.warmup_steps}")
        if self.clip_grad is not None and self.clip_grad <= 0:
            raise ValueError(f"clip_grad must be positive (or null to disable), got {self.clip_grad}")
        if self.multi_scale and not self.scales:
            raise ValueError("multi_scale is on but scales is empty")
        if not (isinstance(self.compile, bool) or self.compile == "auto"):
            raise ValueError(f"compile must be true, false or \"auto\", got {self.compile!r}")
        if self.adamw not in ADAMW_CHOICES:
            raise ValueError(f"adamw must be one of {', '.join(ADAMW_CHOICES)}, got {self.adamw!r}")
        for name in ("model_kwargs", "task_kwargs", "data_kwargs"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping, got {getattr(self, name)!r}")
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


_OPTIONAL_TYPES = {  # fields whose default is None, and what they hold when set
    "finetune": str, "train_dir": str, "val_dir": str, "train_ann": str, "val_ann": str, "train_masks": str,
    "val_masks": str, "train_limit": int, "val_limit": int, "threads": int, "rand_augment": str, "lr": float,
    "clip_grad": float, "teacher": str, "backbone_weights": str, "teacher_weights": str, "output": str, "num_classes": int, "warmup_steps": int,
    "coco_supplement": str,
}


def _expected_type(name: str) -> Optional[type]:
    f = _FIELDS[name]
    if f.default is dataclasses.MISSING:
        return dict if f.default_factory is dict else None
    if f.default is None:
        return _OPTIONAL_TYPES.get(name)
    return type(f.default)


def _coerce(name: str, value: Any) -> Any:
    """``value`` as the type of field ``name``; a value of another type is a ``ValueError`` naming the key."""
    expected = _expected_type(name)
    if value is None or expected is None or name == "resume":
        return value
    if name == "compile":
        if isinstance(value, bool) or value == "auto":
            return value
        raise ValueError(f"config key 'compile': expected true, false or \"auto\", got {value!r}")
    if expected is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is str and isinstance(value, (int, float)) and not isinstance(value, bool) and name == "data":
        return str(value)
    if isinstance(value, expected) and not (expected in (int, float) and isinstance(value, bool)):
        return value
    raise ValueError(f"config key {name!r}: expected {expected.__name__}, got {value!r} ({type(value).__name__})")


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


Recipe = Union[Path, Traversable]


def _base_of(recipe: Recipe, base: str) -> Recipe:
    """A recipe's ``base:``: a built-in name, else a path relative to the recipe's folder."""
    if not isinstance(recipe, Path):  # a built-in recipe names another built-in one
        return builtin_recipe(base) or configs_dir() / base
    path = Path(base)
    return path if path.is_absolute() else (recipe.parent / path).resolve()


def read_recipe(path: Union[str, Recipe]) -> dict[str, Any]:
    """The keys of a YAML recipe, with those of its ``base:`` chain underneath."""
    recipe: Recipe = Path(path) if isinstance(path, str) else path
    seen: list[str] = []
    layers: list[dict[str, Any]] = []
    while True:
        if str(recipe) in seen:
            raise ValueError(f"{recipe}: recipes include each other in a loop ({' -> '.join(seen)})")
        seen.append(str(recipe))
        if not recipe.is_file():
            raise ValueError(f"{recipe}: no such recipe file")
        data = yaml.safe_load(recipe.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{recipe}: a recipe must be a mapping of config keys, got {type(data).__name__}")
        base = data.pop("base", None)
        layers.append(data)
        if base is None:
            break
        recipe = _base_of(recipe, str(base))
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged.update(layer)
    return merged


def configs_dir() -> Traversable:
    """The built-in recipes: package data of ``edgenext`` (present in wheels and editable installs alike)."""
    return resources.files("edgenext") / "configs"


def builtin_recipes() -> list[str]:
    """Names of the built-in recipes (``digits``, ``edgenext_small``, ...)."""
    return sorted(p.name[: -len(".yaml")] for p in configs_dir().iterdir() if p.name.endswith(".yaml"))


def builtin_recipe(name: str) -> Optional[Traversable]:
    """The built-in recipe called ``name`` (with or without ``.yaml``), or None."""
    candidate = configs_dir() / (name if name.endswith((".yaml", ".yml")) else f"{name}.yaml")
    return candidate if candidate.is_file() else None


def find_recipe(name: str) -> Recipe:
    """A recipe from a file path or a built-in name (``digits``, ``edgenext_small``)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    found = builtin_recipe(name)
    if found is not None:
        return found
    raise ValueError(f"no recipe {name!r}: not a file, and not a built-in recipe "
                     f"(built-in: {', '.join(builtin_recipes())}; see one with --config NAME --print-config)")


def load_config(recipe: Optional[Union[str, Path]] = None, overrides: Optional[Mapping[str, Any]] = None) -> TrainConfig:
    """Defaults, then the recipe (a path or a built-in name; None: none), then ``overrides``; validated.

    ``edgenext.tasks.load_config`` picks the task's default recipe when none is named (what
    ``edgenext train`` without ``--config`` runs)."""
    config = TrainConfig()
    if recipe is not None:
        config = apply_overrides(config, read_recipe(find_recipe(str(recipe))))
    return apply_overrides(config, dict(overrides or {})).validate()


def save_config(config: TrainConfig, path: Union[str, Path]) -> None:
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
