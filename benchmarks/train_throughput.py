"""Training throughput: images/s of a full training step (forward, backward, AdamW step) of our
EdgeNeXt-XXS and of timm's, same batch, resolution and settings, timed round-robin in one run.

    python benchmarks/train_throughput.py                       # CPU, fp32, batch 32 at 256x256
    python benchmarks/train_throughput.py --device cuda --amp   # GPU, fp16 autocast + grad scaler
    python benchmarks/train_throughput.py --json

Rounds alternate between the two models, so drift in machine load affects both alike; the
reported figure is the median over rounds of each model's images/s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import timm
import torch
import torch.nn.functional as F

import edgenext
from edgenext.train.optim import build_optimizer


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="edgenext_xx_small", help="variant, the same name in both libraries")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5, help="timed rounds per model (alternating)")
    p.add_argument("--steps", type=int, default=3, help="training steps per round")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per model first")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", action="store_true", help="mixed precision: fp16 + grad scaler on CUDA, bf16 on CPU")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format for both")
    p.add_argument("--json", action="store_true")
    return p.parse_args(argv)


class Stepper:
    """One model's training step with its own optimiser, scaler and fixed random batch."""

    def __init__(self, model: torch.nn.Module, args: argparse.Namespace, device: torch.device) -> None:
        self.model = model.to(device).train()
        fmt = torch.channels_last if args.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=fmt)
        # the same optimiser set-up for both: AdamW, the recipe's weight-decay groups
        self.opt = build_optimizer(self.model, lr=1e-4, weight_decay=0.05)
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(args.batch_size, 3, args.input_size, args.input_size, generator=g).to(device, memory_format=fmt)
        self.y = torch.randint(0, args.num_classes, (args.batch_size,), generator=g).to(device)
        self.device = device
        self.amp_dtype = (torch.float16 if device.type == "cuda" else torch.bfloat16) if args.amp else None
        self.scaler = torch.amp.GradScaler("cuda") if args.amp and device.type == "cuda" else None

    def step(self) -> None:
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            loss = F.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()

    def timed(self, steps: int) -> float:
        sync = torch.cuda.synchronize if self.device.type == "cuda" else (lambda: None)
        sync()
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        sync()
        return steps * self.x.shape[0] / (time.perf_counter() - start)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    runs = {
        "ours": Stepper(edgenext.create_model(args.model, num_classes=args.num_classes), args, device),
        "timm": Stepper(timm.create_model(args.model, pretrained=False, num_classes=args.num_classes), args, device),
    }
    for stepper in runs.values():
        for _ in range(args.warmup):
            stepper.step()
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, stepper in runs.items():
            rates[name].append(stepper.timed(args.steps))
    result = {
        "model": args.model, "device": str(device), "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "batch_size": args.batch_size, "input_size": args.input_size, "amp": args.amp, "channels_last": args.channels_last,
        "torch": torch.__version__, "timm": timm.__version__,
        "ours_img_s": statistics.median(rates["ours"]), "timm_img_s": statistics.median(rates["timm"]),
        "rounds": rates,
    }
    result["ratio"] = result["ours_img_s"] / result["timm_img_s"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        threads = f", {result['threads']} threads" if result["threads"] else ""
        print(f"{args.model} training step, batch {args.batch_size} at {args.input_size}px on {device}"
              f"{' (amp)' if args.amp else ''}{threads}:")
        print(f"  ours {result['ours_img_s']:.1f} img/s   timm {result['timm_img_s']:.1f} img/s   "
              f"ratio {result['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
