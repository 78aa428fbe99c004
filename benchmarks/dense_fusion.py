"""Dense fusion: batch-1 latency of SSDLite- and DeepLabv3-EdgeNeXt unfused, ``fuse_dense``d
(channels-last backbone) and fused with the channels-first backbone the ONNX / OpenVINO exports
write, in eager PyTorch, ONNX Runtime and OpenVINO (``--runtimes``: ExecuTorch too, each form in its graph
form as the export writes it); the forms timed in this one process, in turn per round.

    python benchmarks/dense_fusion.py                  # EdgeNeXt-S: SSDLite at 320, DeepLabv3 at 512, 2 threads
    python benchmarks/dense_fusion.py --backbone edgenext_xx_small --rounds 3

The timed graphs are the exported ones: ``SSDLiteRaw`` (backbone, head, box decoding, softmax) and
``DeepLabV3`` (normalisation, backbone, head, upsampling), random weights made to look trained
(``like_trained``: no zero biases for a simplifier to drop), fixed inputs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from edgenext.dense.deeplabv3 import deeplabv3
from edgenext.dense.ssdlite import SSDLiteRaw, ssdlite
from edgenext.deploy import fuse_dense
from edgenext.bench.worker import like_trained
from edgenext.deploy.formats import FORMATS
from edgenext.deploy.fusion.channels_first import in_layout
from edgenext.hardware import cpu_name


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="edgenext_small")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; each times both forms")
    p.add_argument("--calls", type=int, default=8, help="timed calls per form and round, after warm-up")
    p.add_argument("--runtimes", default="onnx,openvino",
                   help="comma-separated export formats to time besides eager (default onnx,openvino; executorch "
                        "takes minutes per lowering)")
    return p.parse_args(argv)


def _median_ms(fn: Callable, x: torch.Tensor, calls: int) -> list[float]:
    fn(x)  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _compare(label: str, calls_by_form: list[Callable], x: torch.Tensor, rounds: int, calls: int) -> str:
    times: list[list[float]] = [[] for _ in calls_by_form]
    with torch.no_grad():
        for _ in range(rounds):
            for fn, into in zip(calls_by_form, times):
                into += _median_ms(fn, x, calls)
    medians = [statistics.median(t) for t in times]
    cells = " | ".join(f"{m:.1f}" for m in medians)
    ratios = " | ".join(f"{medians[0] / m:.2f}x" for m in medians[1:])
    return f"| {label} | {cells} | {ratios} |"


def _runners(fmt: str, forms: dict[str, torch.nn.Module], size: int, names: tuple[str, ...], tmp: str,
             threads: int) -> list[Callable]:
    spec = FORMATS[fmt]
    form = spec.graph_form_for("fp32")  # the engine's graph form, as an export writes every module
    out = []
    for key, module in forms.items():
        module = module if form is None else form(module)
        path = spec.writer(module, Path(tmp) / f"{key}{spec.suffix}", input_size=(size, size),
                           batch=1 if spec.static_batch else None, precision="fp32", calibration=None,
                           output_names=names)
        out.append(spec.runner(path, threads=threads, precision="fp32").outputs)
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    models = (
        (f"SSDLite-{args.backbone} (320)", SSDLiteRaw(like_trained(ssdlite(args.backbone, 81, image_size=320))).eval(),
         320, ("boxes", "scores")),
        (f"DeepLabv3-{args.backbone} (512, OS 16)", like_trained(deeplabv3(args.backbone, 21)).eval(), 512, ("logits",)),
    )
    print(f"CPU: {cpu_name()}, {args.threads} threads, batch 1, torch {torch.__version__}")
    print("| model, runtime | unfused ms | fused ms | fused, channels-first ms | fused speed-up | channels-first "
          "speed-up |\n|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, size, names in models:
            fused = fuse_dense(model, size)
            forms = {"unfused": model, "fused": fused, "first": in_layout(fused, "channels_first")}
            x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            print(_compare(f"{label}, eager", list(forms.values()), x, args.rounds, args.calls), flush=True)
            for fmt in args.runtimes.split(","):
                if FORMATS[fmt].installed:
                    runners = _runners(fmt, forms, size, names, tmp, args.threads)
                    print(_compare(f"{label}, {fmt}", runners, x, args.rounds, args.calls), flush=True)
                    del runners


if __name__ == "__main__":
    main()
