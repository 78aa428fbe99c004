"""The task registry: name -> ``TaskSpec``. A leaf: it imports no task.

Each module of ``edgenext.tasks`` registers its task when imported (``edgenext.tasks`` imports
them all); a task defined elsewhere, a test's toy task for one, registers itself with
``register_task`` and is then a ``--task`` choice of every command.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional, TypeVar

if TYPE_CHECKING:
    from .base import TaskSpec

#: the task of a command given none, and of a checkpoint of edgenext train that records none
#: (runs from before the dense tasks existed were all classifiers)
DEFAULT_TASK = "classify"

_TASKS: dict[str, "TaskSpec"] = {}

T = TypeVar("T")


def register_task(cls: T) -> T:
    """Class decorator: register one instance of a ``TaskSpec`` subclass under its ``name``.

    Registering a name again replaces the earlier task (a test can override one)."""
    spec = cls()  # type: ignore[operator]
    if not spec.name or not spec.name.isidentifier():
        raise ValueError(f"a task's name must be an identifier (it is a --task value), got {spec.name!r}")
    _TASKS[spec.name] = spec
    return cls


def unregister_task(name: str) -> None:
    """Forget the task called ``name`` (a test's toy task); unknown names are ignored."""
    _TASKS.pop(name, None)


def task_names() -> tuple[str, ...]:
    """The registered task names, in the order the CLI lists them (the default first)."""
    return tuple(sorted(_TASKS, key=lambda n: (_TASKS[n].order, n)))


def get_task(name: str) -> "TaskSpec":
    """The task called ``name``, or a ``ValueError`` listing the registered ones."""
    try:
        return _TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}: choose one of {', '.join(task_names())}") from None


def recorded_task(config: Optional[Mapping[str, Any]]) -> Optional[str]:
    """The task a run config (``TrainConfig.to_dict()``, as a checkpoint records it) names:
    its ``task``, else ``DEFAULT_TASK``; None when there is no run config."""
    if config is None:
        return None
    return str(config.get("task") or DEFAULT_TASK)
