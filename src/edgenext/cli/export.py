"""``edgenext export``: write a model in a deployment format and check it against eager PyTorch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from torch import nn

from ..deploy.export import export_model
from ..deploy.formats import FORMATS
from ..models import create_model
from ..train.inference import load_model
from .options import add_input_size, add_model_args

#: input side when neither --input-size nor a checkpoint of edgenext train gives one
DEFAULT_INPUT_SIZE = 256


def _batch(value: str) -> int | None:
    if value == "dynamic":
        return None
    try:
        batch = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch takes 'dynamic' or a positive integer, got {value!r}") from None
    if batch < 1:
        raise argparse.ArgumentTypeError(f"--batch must be positive, got {batch}")
    return batch


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model (ONNX, ExecuTorch, TorchScript, OpenVINO, Core ML) with a parity check",
        description="Fuse a model for inference, export it, run the export in its runtime on a fixed input and "
        "print the max difference against eager PyTorch (fails above 1e-4). A checkpoint of edgenext train "
        "names its model and input size, so --weights alone is enough.",
    )
    add_model_args(p)
    p.add_argument("--num-classes", type=int, default=None,
                   help="classifier size, building --model with that head (default: the checkpoint's, else 1000)")
    p.add_argument("--format", required=True, choices=tuple(FORMATS), help="target format")
    p.add_argument("--output", required=True, type=Path,
                   help="output file (" + ", ".join(f"{f.name}: {f.suffix}" for f in FORMATS.values()) + ")")
    add_input_size(p, help=f"input side N, or HEIGHT WIDTH (default: the checkpoint's input size, else "
                           f"{DEFAULT_INPUT_SIZE})")
    p.add_argument("--batch", type=_batch, default=None, metavar="dynamic|N",
                   help="batch axis: dynamic (default; ExecuTorch and Core ML then use 1) or a fixed N")
    p.add_argument("--no-fuse", action="store_true", help="export the training graph instead of the fused one")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _model(args: argparse.Namespace) -> tuple[nn.Module, Optional[int]]:
    """The model to export and the input side its checkpoint records (None: it records none)."""
    if args.num_classes is not None:
        # NOTE: load_model keeps the checkpoint's head; a new head size needs create_model.
        if args.model is None:
            raise ValueError("--num-classes builds --model NAME with a head of that size: give --model too "
                             "(a checkpoint of edgenext train records its classes: leave --num-classes out)")
        return create_model(args.model, pretrained=args.pretrained, weights=args.weights,
                            num_classes=args.num_classes), None
    loaded = load_model(args.model, args.weights, pretrained=args.pretrained)
    return loaded.model, loaded.input_size if loaded.extra.get("trained") else None


def run(args: argparse.Namespace) -> int:
    model, recorded = _model(args)
    size = args.input_size or recorded or DEFAULT_INPUT_SIZE
    result = export_model(model, args.format, args.output, input_size=size, batch=args.batch,
                          fused=not args.no_fuse)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.parity_line())
    return 0
