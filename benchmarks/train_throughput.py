"""Training throughput: images/s of a full training step (forward, backward, AdamW update) of our
EdgeNeXt with the recipe's default speed options and of timm's same model, each (model, round) in
its own process, alternating over rounds (``edgenext.bench.train_step.bench_train``).

    python benchmarks/train_throughput.py                        # CPU, fp32, batch 32 at 256x256, 2 threads
    python benchmarks/train_throughput.py --device cuda --precisions fp32,fp16
    python benchmarks/train_throughput.py --quick --json         # a smoke run: one step, no compile
"""

from __future__ import annotations

import argparse
import json
import sys

from edgenext.bench.train_step import IMPLS, bench_train


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="edgenext_xx_small", help="comma-separated variants (same names in both libraries)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--input-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=2, help="CPU threads of each worker process")
    p.add_argument("--steps", type=int, default=3, help="timed training steps per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds; each runs every implementation once, in turn")
    p.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16 (native-bf16 CPUs, CUDA), fp16 (CUDA)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--quick", action="store_true", help="one round of one step, no compile")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = bench_train(args.models.split(","), batch=args.batch_size, input_size=args.input_size, threads=args.threads,
                       steps=args.steps, rounds=args.rounds, precisions=tuple(args.precisions.split(",")),
                       quick=args.quick, device=args.device, num_classes=args.num_classes)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"training step, batch {args.batch_size} at {args.input_size}px on {args.device}, {args.threads} thread(s):")
    for row in rows:
        name = f"{row['model']} {row['impl']} {row['precision']}"
        if row["throughput_img_s"] is None:
            print(f"  {name:40s} absent: {row['absent']}")
            continue
        print(f"  {name:40s} {row['throughput_img_s']:8.1f} img/s (p10-p90 {row['p10_img_s']:.1f}-{row['p90_img_s']:.1f})"
              f"  {row['ratio_vs_timm']:.2f}x timm (per CPU-second {row['cpu_ratio_vs_timm']:.2f}x)  {row['options']}")
    print("impls: " + "; ".join(f"{k}: {v}" for k, v in IMPLS.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
