"""``edgenext export``: write a model in a deployment format and check it against eager PyTorch."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..deploy.export import FORMATS, SUFFIXES, export_model
from ..models import create_model


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
        "print the max difference against eager PyTorch (fails above 1e-4).",
    )
    p.add_argument("--model", required=True, help="variant name (edgenext models lists them)")
    p.add_argument("--weights", default=None, help="checkpoint to load (official, timm or ours; auto-detected)")
    p.add_argument("--num-classes", type=int, default=None, help="classifier size (default: the checkpoint's, else 1000)")
    p.add_argument("--format", required=True, choices=FORMATS, help="target format")
    p.add_argument("--output", required=True, type=Path,
                   help="output file (" + ", ".join(f"{k}: {v}" for k, v in SUFFIXES.items()) + ")")
    p.add_argument("--input-size", type=int, default=256, help="input side in pixels (default 256)")
    p.add_argument("--batch", type=_batch, default=None, metavar="dynamic|N",
                   help="batch axis: dynamic (default; ExecuTorch and Core ML then use 1) or a fixed N")
    p.add_argument("--no-fuse", action="store_true", help="export the training graph instead of the fused one")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = create_model(args.model, weights=args.weights, num_classes=args.num_classes)
    result = export_model(model, args.format, args.output, input_size=args.input_size, batch=args.batch,
                          fused=not args.no_fuse)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.parity_line())
    return 0
