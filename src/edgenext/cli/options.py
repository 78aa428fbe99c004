"""Options shared by several subcommands, defined once so every command spells them the same."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

from ..models import Checkpoint
from ..models.edgenext import input_hw
from ..models.hub import is_hub_name
from ..models.weights import CheckpointError, PathLike, read_checkpoint
from ..train.modelspec import run_config

TASKS = ("classify", "detect", "segment")


class _InputSizeAction(argparse.Action):
    """``--input-size N`` or ``--input-size H W`` -> ``(height, width)``, checked once, here."""

    def __call__(self, parser, namespace, values: Sequence[int], option_string: Optional[str] = None) -> None:
        if len(values) not in (1, 2):
            parser.error(f"{option_string} takes one side or HEIGHT WIDTH, got {len(values)} values")
        try:
            hw = input_hw(values[0] if len(values) == 1 else (values[0], values[1]))
        except ValueError as err:
            parser.error(f"{option_string} {' '.join(map(str, values))}: {err}")
        setattr(namespace, self.dest, hw)


def add_input_size(p: argparse.ArgumentParser, default: Optional[int] = None, help: str = "") -> None:
    """``--input-size N [W]``; the parsed value is ``(height, width)`` (or None when not given and no default)."""
    text = help or "input side N, or HEIGHT WIDTH"
    if default is not None:
        text += f" (default {default})"
    p.add_argument("--input-size", type=int, nargs="+", action=_InputSizeAction, metavar="N",
                   default=(default, default) if default is not None else None, help=text)


def add_model_args(p: argparse.ArgumentParser, *, model_help: str = "") -> None:
    """``--model`` / ``--weights`` / ``--pretrained``: which network and which weights."""
    p.add_argument("--model", help=model_help or "variant (optional for checkpoints of edgenext train and "
                   "hf-hub:timm/... repositories, which name theirs)")
    p.add_argument("--weights", help="checkpoint: ours (runs/.../best.pth), official, timm, .safetensors, a URL, "
                   "or hf-hub:ORG/REPO (Hugging Face cache first)")
    p.add_argument("--pretrained", action="store_true", help="the variant's released ImageNet weights (download)")


def add_device(p: argparse.ArgumentParser, default: str = "auto") -> None:
    """``--device auto|cpu|cuda|cuda:N``."""
    p.add_argument("--device", default=default, help=f"auto, cpu, cuda, cuda:1 (default {default})")


def add_task(p: argparse.ArgumentParser, default: Optional[str] = "classify", help: str = "") -> None:
    """``--task classify|detect|segment``; ``help`` replaces the text that says where the default comes from."""
    p.add_argument("--task", choices=TASKS, default=default,
                   help=help or ("classify (default), detect (SSDLite) or segment (DeepLabv3)" if default else
                                 "classify, detect or segment (default: the recipe's, else classify)"))


#: ``--task`` of the commands that take ``--weights``: a checkpoint of edgenext train names its task.
WEIGHTS_TASK_HELP = ("classify, detect (SSDLite) or segment (DeepLabv3); default: the task a checkpoint of "
                     "edgenext train given as --weights was trained for, else classify")


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


def resolve_task(task: Optional[str], weights: Optional[PathLike]) -> tuple[str, Optional[Checkpoint]]:
    """The task of a command taking ``--task`` and ``--weights``: ``task`` if given, else the one a
    checkpoint of ``edgenext train`` records, else classify; plus the peeked checkpoint for a
    detect / segment one, for ``edgenext.dense.inference.load_dense_model`` to load without a
    second read.

    NOTE: a classification checkpoint is not handed on: ``load_model`` reads it as it always
    has (the peek parsed only its small pickled structure), and nothing of ``edgenext.dense``
    is imported on the classification path.
    """
    if task is not None:
        return task, None
    checkpoint = peek_checkpoint(weights)
    config = run_config(checkpoint.content) if checkpoint is not None else None
    found = str(config.get("task") or "classify") if config is not None else "classify"
    if found in ("detect", "segment"):
        return found, checkpoint
    return "classify", None
