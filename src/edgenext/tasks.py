"""The training tasks by name: what ``edgenext train --task`` and a config's ``task`` key select.

This module sits above ``train/`` and ``dense/``, so neither has to import the other: the runner
gets a ``Task`` object and never asks which one it is.
"""

from __future__ import annotations

from .train.config import TASKS, TrainConfig
from .train.task import Task


def build_task(cfg: TrainConfig) -> Task:
    """The ``Task`` implementation ``cfg.task`` names (classify, detect, segment)."""
    if cfg.task == "classify":
        from .train.classify import ClassificationTask

        return ClassificationTask(cfg)
    if cfg.task == "detect":
        from .dense.tasks import DetectionTask

        return DetectionTask(cfg)
    if cfg.task == "segment":
        from .dense.tasks import SegmentationTask

        return SegmentationTask(cfg)
    raise ValueError(f"unknown task {cfg.task!r}: expected one of {', '.join(TASKS)}")


def train(cfg: TrainConfig):
    """Run ``cfg`` with its task: ``edgenext.train.fit(cfg, build_task(cfg))``."""
    from .train.runner import fit

    return fit(cfg, build_task(cfg))
