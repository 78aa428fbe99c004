"""Training: config, optimiser and schedule, EMA, distillation, checkpoints, the loop, the supervisor."""

from .checkpoint import atomic_save, capture_rng_state, load_training_checkpoint, restore_rng_state
from .config import TrainConfig, apply_overrides, load_config, read_recipe, save_config
from .distill import DistillationLoss
from .engine import EpochProgress, NonFiniteLossError, TrainParts, evaluate, train_one_epoch
from .optim import build_optimizer, build_scheduler, param_groups, scaled_lr
from .runner import FitResult, fit
from .supervise import supervise

__all__ = [
    "DistillationLoss",
    "EpochProgress",
    "FitResult",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainParts",
    "apply_overrides",
    "atomic_save",
    "build_optimizer",
    "build_scheduler",
    "capture_rng_state",
    "evaluate",
    "fit",
    "load_config",
    "load_training_checkpoint",
    "param_groups",
    "read_recipe",
    "restore_rng_state",
    "save_config",
    "scaled_lr",
    "supervise",
    "train_one_epoch",
]
