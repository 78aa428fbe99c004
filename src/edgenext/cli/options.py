"""Options shared by several subcommands, defined once so every command spells them the same."""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from ..models.edgenext import input_hw

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


def add_task(p: argparse.ArgumentParser, default: Optional[str] = "classify") -> None:
    """``--task classify|detect|segment``."""
    p.add_argument("--task", choices=TASKS, default=default,
                   help="classify (default), detect (SSDLite) or segment (DeepLabv3)" if default else
                   "classify, detect or segment (default: the recipe's, else classify)")
