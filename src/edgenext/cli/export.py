"""``edgenext export``: write a model in a deployment format and check it against eager PyTorch.

What is exported is the task's graph (``TaskSpec.export``): the fused classifier (``--precision
fp16|bf16|int8``: a reduced-precision file, reported with its top-1 change on the digits model and its
top-1 agreement with fp32), the detector's network with box decoding and softmax (no NMS), or the
segmenter's logits, every output checked. The request (format x precision x task x batch) is
validated before anything is loaded (``edgenext.deploy.request.validate_export``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..deploy.formats import FORMATS, MULTI_OUTPUT_FORMATS, PRECISIONS, format_names
# NOTE: not from deploy.export, which imports the calibration data's torchvision and timm (seconds before --help)
from ..deploy.formats._int8 import DEFAULT_CALIBRATION_IMAGES
from ..deploy.request import validate_export
from ..tasks import resolve_task
from .options import FROM_WEIGHTS, add_input_size, add_model_args, add_task

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


def _writers(precision: str) -> str:
    return ", ".join(format_names(precision=precision))


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model (ONNX, ExecuTorch, TorchScript, OpenVINO, Core ML, LiteRT, ncnn, MNN) with a parity check",
        description="Fuse a model for inference, export it, run the export in its runtime on a fixed input and "
        "print the max difference against eager PyTorch (fails above 1e-4); OUTPUT's <stem>.json beside it holds what an "
        "app needs (input, preprocessing, outputs, labels). A checkpoint of edgenext train "
        "names its model, task and input size, so --weights alone is enough. --task detect exports the SSDLite "
        "network with box decoding and softmax (outputs boxes, scores; the score threshold and NMS run outside "
        "the graph: edgenext.dense.export.detect_onnx), --task segment the DeepLabv3 logits at the input size; "
        f"both to {' or '.join(MULTI_OUTPUT_FORMATS)}, every output checked at batch 1 and 2.",
    )
    add_task(p, default=None, default_text=FROM_WEIGHTS)
    add_model_args(p, model_help="variant (detect / segment: the backbone, random weights; optional for "
                   "checkpoints of edgenext train and hf-hub:timm/... repositories, which name theirs)")
    p.add_argument("--num-classes", type=int, default=None,
                   help="classifier size, building --model with that head (default: the checkpoint's, else 1000; "
                   "detect / segment: classes with the background, default 81 / 21)")
    p.add_argument("--format", required=True, choices=tuple(FORMATS), help="target format")
    p.add_argument("--output", required=True, type=Path,
                   help="output file (" + ", ".join(f"{f.name}: {f.suffix}" for f in FORMATS.values()) + ")")
    add_input_size(p, help="input side N, or HEIGHT WIDTH (default: the checkpoint's input size, else the task's: "
                           "256; detect / segment: the paper's 320 / 512)")
    p.add_argument("--batch", type=_batch, default=None, metavar="dynamic|N",
                   help="batch axis: dynamic (default; ExecuTorch and Core ML then use 1) or a fixed N")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="numeric precision (classify): fp32 (default, checked to 1e-4), "
                   f"fp16 ({_writers('fp16')}: half-precision weights), bf16 ({_writers('bf16')}, on CPUs with "
                   f"native bf16) or int8 ({_writers('int8')}; calibrated on --calibration). A reduced "
                   "precision reports its top-1 change on a digits model of edgenext train and its top-1 "
                   "agreement with fp32 on --agreement-images")
    p.add_argument("--calibration", default="digits", metavar="digits|DIR",
                   help=f"int8 calibration images: the digits training split (default) or an image folder "
                   f"(up to {DEFAULT_CALIBRATION_IMAGES} images)")
    p.add_argument("--agreement-images", default=None, metavar="DIR",
                   help="image folder on which a reduced precision's top-1 agreement with fp32 is measured "
                   "(default: the digits validation images)")
    p.add_argument("--no-fuse", action="store_true",
                   help="export the training graph instead of the fused one (fusion folds layer scales, norms "
                   "and BatchNorms into the convs and linears; every task)")
    p.add_argument("--layout", choices=("channels_first", "channels_last"), default=None,
                   help="layout of the fused model in the file (default: the format's: channels_first for onnx and "
                   "openvino fp32 / openvino int8, channels_last otherwise; in ONNX Runtime channels_first is "
                   "faster at batch 32, channels_last at batch 1 on the larger variants)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    task, checkpoint = resolve_task(args.task, args.weights)
    # before anything is loaded: a request no format can serve fails at once, saying which would
    validate_export(args.format, args.precision, batch=args.batch, multi_output=task.multi_output,
                    precisions=task.export_precisions, task=task.name, layout=args.layout)
    result = task.export(args, checkpoint)
    print(json.dumps(result.to_dict(), indent=2) if args.json else "\n".join(result.report_lines()))
    return 0
