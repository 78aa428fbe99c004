"""Training: config, optimiser and schedule, EMA, distillation, checkpoints, the loop, the supervisor.

The names below are imported on first use: the supervisor (``edgenext supervise``) needs none of
PyTorch, timm or torchvision.
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_attributes

# NOTE: imported now (it needs only the standard library): the function must shadow the submodule
# of the same name, which importing the submodule later would otherwise bind here
from .supervise import supervise

#: each public name and the module it comes from
_SOURCES = {
    "DistillationLoss": ".distill",
    "EpochProgress": ".engine",
    "FitResult": ".runner",
    "NonFiniteLossError": ".errors",
    "TrainConfig": ".config",
    "TrainParts": ".engine",
    "apply_overrides": ".config",
    "atomic_save": ".checkpoint",
    "build_optimizer": ".optim",
    "build_scheduler": ".optim",
    "capture_rng_state": ".checkpoint",
    "evaluate": ".engine",
    "fit": ".runner",
    "load_config": ".config",
    "load_training_checkpoint": ".checkpoint",
    "param_groups": ".optim",
    "read_recipe": ".config",
    "restore_rng_state": ".checkpoint",
    "save_config": ".config",
    "scaled_lr": ".optim",
    "train_one_epoch": ".engine",
}

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

if TYPE_CHECKING:
    from .checkpoint import atomic_save, capture_rng_state, load_training_checkpoint, restore_rng_state
    from .config import TrainConfig, apply_overrides, load_config, read_recipe, save_config
    from .distill import DistillationLoss
    from .engine import EpochProgress, TrainParts, evaluate, train_one_epoch
    from .errors import NonFiniteLossError
    from .optim import build_optimizer, build_scheduler, param_groups, scaled_lr
    from .runner import FitResult, fit


__getattr__, __dir__ = lazy_attributes(__name__, _SOURCES)
