"""Which task a command runs: ``--task`` if given, else the one a checkpoint of ``edgenext train`` records."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

from ..models import Checkpoint
from ..models.hub import is_hub_name
from ..models.weights import CheckpointError, PathLike, read_checkpoint
from ..models.run_config import run_config
from .registry import DEFAULT_TASK, get_task, recorded_task

if TYPE_CHECKING:
    from .base import TaskSpec

_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6: the only one torch.load can memory-map


def peek_checkpoint(weights: Optional[PathLike]) -> Optional[Checkpoint]:
    """A local checkpoint of ``edgenext train`` with its tensors memory-mapped, else None.

    Only the pickled structure (config, class names) is parsed; the weights are not read unless
    a loader copies them out of the mapping. Anything else (URLs, hub names, safetensors,
    pre-1.6 pickles, other or missing files) gives None, and its loader judges it as before.
    """
    if weights is None or is_hub_name(str(weights)) or "://" in str(weights):
        return None
    path = Path(weights)
    try:
        with open(path, "rb") as f:
            if f.read(len(_ZIP_MAGIC)) != _ZIP_MAGIC:
                return None
        content = read_checkpoint(path, mmap=True)
    except (OSError, CheckpointError):
        return None
    return Checkpoint(source=str(weights), path=path, content=content) if run_config(content) is not None else None


def resolve_task(name: Optional[str], weights: Optional[PathLike]) -> tuple["TaskSpec", Optional[Checkpoint]]:
    """The task of a command taking ``--task`` and ``--weights`` (``name`` if given, else the one a
    checkpoint of ``edgenext train`` records, else ``DEFAULT_TASK``), and that checkpoint peeked
    (None for any other weights), for the task's loader to use without reading the file again."""
    checkpoint = peek_checkpoint(weights)
    if name is None:
        name = recorded_task(run_config(checkpoint.content) if checkpoint is not None else None) or DEFAULT_TASK
    return get_task(name), checkpoint
