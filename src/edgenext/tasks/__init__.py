"""The task registry: classification, detection and segmentation, one module each.

Every command asks the registry for the task it runs (``get_task(name)``) and calls it; a new
task is a new module here that defines a ``TaskSpec`` subclass decorated with
``@register_task`` (every module of this package is imported below), or a class registered the
same way from anywhere else before the command runs.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Mapping, Optional, Union
from pathlib import Path

from .base import TaskSpec, refuse_options
from .registry import DEFAULT_TASK, get_task, recorded_task, register_task, task_names, unregister_task
from .resolve import peek_checkpoint, resolve_task

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def build_task(cfg: Any) -> Any:
    """The ``TrainingTask`` the config's ``task`` names (``ValueError`` listing the tasks for an unknown one)."""
    return get_task(cfg.task).training(cfg)


def fit(cfg: Any) -> Any:
    """Train ``cfg`` with its task: ``edgenext.train.fit(cfg, build_task(cfg))``; returns its ``FitResult``."""
    from ..train.runner import fit as run

    return run(cfg, build_task(cfg))


#: the name this function had before the registry (README examples use it)
train = fit


def load_config(recipe: Optional[Union[str, Path]] = None, overrides: Optional[Mapping[str, Any]] = None) -> Any:
    """``edgenext.train.load_config``, with the task's default recipe when ``recipe`` is None (its demo
    on the built-in digits, else its recipe for real data: ``TaskSpec.default_recipe``); the config's
    task must be a registered one (``ValueError`` listing them)."""
    from ..train.config import DIGITS, TrainConfig
    from ..train.config import load_config as load

    overrides = dict(overrides or {})
    if recipe is None:
        task = get_task(str(overrides.get("task", TrainConfig.task)))
        demo = str(overrides.get("data", TrainConfig.data)) == DIGITS
        recipe = task.default_recipe(str(overrides.get("model", TrainConfig.model)), demo)
    cfg = load(recipe, overrides)
    get_task(cfg.task)  # a recipe's task too
    return cfg


__all__ = [
    "DEFAULT_TASK",
    "TaskSpec",
    "build_task",
    "fit",
    "get_task",
    "load_config",
    "peek_checkpoint",
    "recorded_task",
    "refuse_options",
    "register_task",
    "resolve_task",
    "task_names",
    "train",
    "unregister_task",
]
