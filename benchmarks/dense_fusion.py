"""Dense fusion: batch-1 latency of SSDLite- and DeepLabv3-EdgeNeXt unfused vs ``fuse_dense``d, in
eager PyTorch and ONNX Runtime, both forms timed in this one process, alternately per round.

    python benchmarks/dense_fusion.py                  # EdgeNeXt-S: SSDLite at 320, DeepLabv3 at 512, 2 threads
    python benchmarks/dense_fusion.py --backbone edgenext_xx_small --rounds 3

The timed graphs are the exported ones: ``SSDLiteRaw`` (backbone, head, box decoding, softmax) and
``DeepLabV3`` (normalisation, backbone, head, upsampling), random weights, fixed inputs.
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
from edgenext.deploy.formats.onnx import OnnxRunner, export_onnx
from edgenext.hardware import cpu_name


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="edgenext_small")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="alternating rounds; each times both forms")
    p.add_argument("--calls", type=int, default=8, help="timed calls per form and round, after warm-up")
    return p.parse_args(argv)


def _median_ms(fn: Callable, x: torch.Tensor, calls: int) -> list[float]:
    fn(x)  # warm-up
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _compare(label: str, unfused: Callable, fused: Callable, x: torch.Tensor, rounds: int, calls: int) -> str:
    a, b = [], []
    with torch.no_grad():
        for _ in range(rounds):
            a += _median_ms(unfused, x, calls)
            b += _median_ms(fused, x, calls)
    ma, mb = statistics.median(a), statistics.median(b)
    return f"| {label} | {ma:.1f} | {mb:.1f} | {ma / mb:.2f}x |"


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    models = (
        (f"SSDLite-{args.backbone} (320)", SSDLiteRaw(ssdlite(args.backbone, 81, image_size=320)).eval(), 320,
         ("boxes", "scores")),
        (f"DeepLabv3-{args.backbone} (512, OS 16)", deeplabv3(args.backbone, 21).eval(), 512, ("logits",)),
    )
    print(f"CPU: {cpu_name()}, {args.threads} threads, batch 1, torch {torch.__version__}")
    print("| model, runtime | unfused ms | fused ms | speed-up |\n|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, model, size, names in models:
            fused = fuse_dense(model, size)
            x = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
            print(_compare(f"{label}, eager", model, fused, x, args.rounds, args.calls), flush=True)
            runners = [OnnxRunner(export_onnx(m, Path(tmp) / f"{k}.onnx", input_size=(size, size), output_names=names),
                                  threads=args.threads).outputs for k, m in (("unfused", model), ("fused", fused))]
            print(_compare(f"{label}, onnxruntime", *runners, x, args.rounds, args.calls), flush=True)


if __name__ == "__main__":
    main()
