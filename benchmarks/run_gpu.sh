#!/usr/bin/env bash
# GPU figures (to be added to results.md): torch runtimes only, fp16, batch 1 and 256.
set -euo pipefail
cd "$(dirname "$0")/.."
edgenext bench --device cuda --fp16 --models edgenext_xx_small,edgenext_small --batches 1,256 \
  --save-json benchmarks/results_gpu.json --plot benchmarks/bench_gpu.png "$@" \
  | tee benchmarks/results_gpu.txt
