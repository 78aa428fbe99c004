"""Options shared by several subcommands, defined once so every command spells them the same."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..models.edgenext import input_hw
from ..tasks import DEFAULT_TASK, get_task, task_names


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


def add_task(p: argparse.ArgumentParser, default: Optional[str] = DEFAULT_TASK, default_text: str = "") -> None:
    """``--task NAME``, one of the registered tasks (``edgenext.tasks``), read when the parser is built (a
    task registered before ``main()`` runs is a choice); ``default_text`` says where a None default comes from."""
    listed = ", ".join(get_task(n).summary for n in task_names())
    p.add_argument("--task", choices=task_names(), default=default,
                   help=f"{listed}; default: {default_text or default}")


#: where ``--task`` comes from in the commands that take ``--weights``
FROM_WEIGHTS = f"the task a checkpoint of edgenext train given as --weights was trained for, else {DEFAULT_TASK}"
