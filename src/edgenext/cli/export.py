"""``edgenext export``: write a model in a deployment format and check it against eager PyTorch.

``--precision bf16|int8`` (classify): a reduced-precision file, reported with its top-1 change on
the digits model and its top-1 agreement with fp32 (``edgenext.deploy.accuracy``).
``--task detect|segment``: the detector's network with box decoding and softmax (no NMS) or the
segmenter's logits graph, to ONNX or ExecuTorch, every output checked (``edgenext.dense.export``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Optional

from torch import nn

from ..deploy.accuracy import EvalSettings, digits_storage, eval_settings, is_digits_run, precision_check
from ..deploy.export import DEFAULT_CALIBRATION_IMAGES, ExportResult, export_model
from ..deploy.formats import FORMATS, MULTI_OUTPUT_FORMATS
from ..deploy.precision import PRECISIONS, require_precision
from ..models import Checkpoint, create_model
from ..models.edgenext import InputSize, input_hw
from ..train.inference import load_model
from ..train.modelspec import run_config
from .options import WEIGHTS_TASK_HELP, add_input_size, add_model_args, add_task, peek_checkpoint, resolve_task

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
        "names its model, task and input size, so --weights alone is enough. --task detect exports the SSDLite "
        "network with box decoding and softmax (outputs boxes, scores; the score threshold and NMS run outside "
        "the graph: edgenext.dense.export.detect_onnx), --task segment the DeepLabv3 logits at the input size; "
        f"both to {' or '.join(MULTI_OUTPUT_FORMATS)}, every output checked at batch 1 and 2.",
    )
    add_task(p, default=None, help=WEIGHTS_TASK_HELP)
    add_model_args(p, model_help="variant (detect / segment: the backbone, random weights; optional for "
                   "checkpoints of edgenext train and hf-hub:timm/... repositories, which name theirs)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classifier size, building --model with that head (default: the checkpoint's, else 1000; "
                   "detect / segment: classes with the background, default 81 / 21)")
    p.add_argument("--format", required=True, choices=tuple(FORMATS), help="target format")
    p.add_argument("--output", required=True, type=Path,
                   help="output file (" + ", ".join(f"{f.name}: {f.suffix}" for f in FORMATS.values()) + ")")
    add_input_size(p, help=f"input side N, or HEIGHT WIDTH (default: the checkpoint's input size, else "
                           f"{DEFAULT_INPUT_SIZE}; detect / segment: the paper's 320 / 512)")
    p.add_argument("--batch", type=_batch, default=None, metavar="dynamic|N",
                   help="batch axis: dynamic (default; ExecuTorch and Core ML then use 1) or a fixed N")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="numeric precision (classify): fp32 (default, checked to 1e-4), bf16 (openvino, on CPUs with "
                   "native bf16) or int8 (onnx, executorch, openvino; calibrated on --calibration). A reduced "
                   "precision reports its top-1 change on a digits model of edgenext train and its top-1 "
                   "agreement with fp32 on --agreement-images")
    p.add_argument("--calibration", default="digits", metavar="digits|DIR",
                   help=f"int8 calibration images: the digits training split (default) or an image folder "
                   f"(up to {DEFAULT_CALIBRATION_IMAGES} images)")
    p.add_argument("--agreement-images", default=None, metavar="DIR",
                   help="image folder on which a reduced precision's top-1 agreement with fp32 is measured "
                   "(default: the digits validation images)")
    p.add_argument("--no-fuse", action="store_true",
                   help="export the training graph instead of the fused one (classify; detect / segment are "
                   "exported unfused)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _model(args: argparse.Namespace) -> tuple[nn.Module, Optional[int], EvalSettings]:
    """The model to export, the input side its checkpoint records (None: it records none) and
    its evaluation preprocessing."""
    if args.num_classes is not None:
        # NOTE: load_model keeps the checkpoint's head; a new head size needs create_model.
        if args.model is None:
            raise ValueError("--num-classes builds --model NAME with a head of that size: give --model too "
                             "(a checkpoint of edgenext train records its classes: leave --num-classes out)")
        model = create_model(args.model, pretrained=args.pretrained, weights=args.weights,
                             num_classes=args.num_classes)
        return model, None, eval_settings(model.pretrained_cfg)
    loaded = load_model(args.model, args.weights, pretrained=args.pretrained)
    settings = EvalSettings(loaded.crop_pct, loaded.interpolation, tuple(loaded.mean), tuple(loaded.std))
    return loaded.model, loaded.input_size if loaded.extra.get("trained") else None, settings


def _export_classifier(args: argparse.Namespace) -> ExportResult:
    if args.precision != "fp32":
        require_precision(args.format, args.precision)  # before loading anything
    model, recorded, settings = _model(args)
    size = args.input_size or recorded or DEFAULT_INPUT_SIZE
    if args.precision == "fp32":
        return export_model(model, args.format, args.output, input_size=size, batch=args.batch, fused=not args.no_fuse)
    from ..deploy.calibration import calibration_tensor, digits_tensors

    hw = input_hw(size)
    checkpoint = peek_checkpoint(args.weights) if args.weights is not None else None
    cfg = run_config(checkpoint.content) if checkpoint is not None else None
    digits_run = cfg if is_digits_run(cfg, model.num_classes) else None
    check = precision_check(hw, settings, agreement_images=args.agreement_images, digits_run=digits_run)
    calibration = None
    if args.precision == "int8":
        kwargs = dict(crop_pct=settings.crop_pct, interpolation=settings.interpolation, mean=settings.mean,
                      std=settings.std)
        if digits_run is not None and args.calibration == "digits":  # the run's own training split
            calibration = digits_tensors("train", hw, limit=DEFAULT_CALIBRATION_IMAGES, **kwargs,
                                         **digits_storage(digits_run))[0]
        else:
            calibration = calibration_tensor(args.calibration, hw, DEFAULT_CALIBRATION_IMAGES, **kwargs)
    return export_model(model, args.format, args.output, input_size=size, batch=args.batch, fused=not args.no_fuse,
                        precision=args.precision, calibration=calibration, check=check)


def _dense_model(args: argparse.Namespace, task: str,
                 checkpoint: Optional[Checkpoint]) -> tuple[nn.Module, Optional[InputSize]]:
    """The detector / segmenter to export and the input size to export it at (None: the model's own)."""
    if args.pretrained:
        raise ValueError(f"--pretrained is for classification; --task {task} exports --model BACKBONE (random "
                         f"weights) or --weights, a checkpoint of edgenext train --task {task}")
    if args.weights is not None:
        from .eval import load_dense

        if args.num_classes is not None:
            raise ValueError(f"--num-classes: {args.weights} records its classes; leave --num-classes out")
        loaded = load_dense(args, task, checkpoint, "cpu")
        return loaded.model, args.input_size or (None if task == "detect" else loaded.input_size or None)
    if args.model is None:
        raise ValueError(f"--task {task} needs --model BACKBONE (e.g. edgenext_small, random weights) or --weights, "
                         f"a checkpoint of edgenext train --task {task}")
    from ..dense.constants import DETECTION_INPUT_SIZE
    from ..dense.build import build_dense

    kwargs: dict[str, Any] = {} if args.num_classes is None else {"num_classes": args.num_classes}
    if task == "detect":
        kwargs["image_size"] = args.input_size or DETECTION_INPUT_SIZE
    return build_dense(task, args.model, **kwargs).eval(), args.input_size


def _export_dense(args: argparse.Namespace, task: str, checkpoint: Optional[Checkpoint]) -> ExportResult:
    if args.format not in MULTI_OUTPUT_FORMATS:
        raise ValueError(f"--format {args.format}: --task {task} exports to {' or '.join(MULTI_OUTPUT_FORMATS)}")
    from ..dense.export import export_dense

    model, size = _dense_model(args, task, checkpoint)
    return export_dense(model, args.format, args.output, input_size=size, batch=args.batch)


def run(args: argparse.Namespace) -> int:
    task, checkpoint = resolve_task(args.task, args.weights)
    if task == "classify":
        result = _export_classifier(args)
    else:
        if args.precision != "fp32":
            raise ValueError(f"--precision {args.precision}: --task {task} exports fp32 only (reduced precisions "
                             f"are for classifiers)")
        result = _export_dense(args, task, checkpoint)
    print(json.dumps(result.to_dict(), indent=2) if args.json else "\n".join(result.report_lines()))
    return 0
