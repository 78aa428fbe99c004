#!/usr/bin/env bash
# The CPU figures of benchmarks/results.md: EdgeNeXt-XXS at 256x256, fp32, 2 threads, every
# installed runtime of ours, timm's EdgeNeXt-XXS (eager, ONNX Runtime, ExecuTorch) and the
# timm peers (eager, ONNX Runtime), all timed round-robin in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
edgenext bench --models edgenext_xx_small --threads "${THREADS:-2}" --input-size 256 \
  --save-json benchmarks/results_cpu.json --plot benchmarks/latency_vs_madds_cpu.png "$@" \
  | tee benchmarks/results_cpu.txt
