"""Where the CPU time goes: PyTorch-profiler op tables of timm's EdgeNeXt, ours and ours fused.

    python benchmarks/profile_ops.py [--model edgenext_xx_small] [--batch 8] [--threads 1]

The measurements behind ``edgenext.deploy.fuse`` and ``cpu_fast_path``: GEMMs (addmm, with a
bias copy inside), GELU and layout copies (permute -> contiguous) dominate.
"""

from __future__ import annotations

import argparse

import timm
import torch
from torch.profiler import ProfilerActivity, profile

import edgenext
from edgenext.deploy import cpu_fast_path, fuse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="edgenext_xx_small")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--input-size", type=int, default=256)
    parser.add_argument("--rows", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours = edgenext.create_model(args.model).eval()
    peer = timm.create_model(args.model, pretrained=False).eval()
    fused = fuse(ours, args.input_size)
    candidates = {"timm eager": peer, "ours eager": ours, "ours fused": fused, "ours fused + oneDNN MLP": cpu_fast_path(fused)}
    x = torch.randn(args.batch, 3, args.input_size, args.input_size)
    for name, model in candidates.items():
        with torch.inference_mode():
            for _ in range(2):
                model(x)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                for _ in range(5):
                    model(x)
        print(f"\n== {name} ({args.model}, batch {args.batch}, {args.threads} thread(s))")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.rows))


if __name__ == "__main__":
    main()
