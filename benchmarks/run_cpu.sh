#!/usr/bin/env bash
# The CPU figures of benchmarks/results.md: EdgeNeXt-XXS at 256x256, 2 threads, ours in every
# installed runtime and precision, timm's EdgeNeXt-XXS and the timm peers in every runtime, each
# candidate in its own worker process over rotating rounds; then the training step against timm's.
set -euo pipefail
cd "$(dirname "$0")/.."
edgenext bench --models edgenext_xx_small --threads "${THREADS:-2}" --input-size 256 \
  --peer-runtimes all --precisions fp32,int8 --rounds "${ROUNDS:-3}" \
  --save-json benchmarks/results_cpu.json --plot benchmarks/bench_cpu.png "$@" \
  | tee benchmarks/results_cpu.txt
edgenext bench --train --models edgenext_xx_small --threads "${THREADS:-2}" --input-size 256 \
  --batches 32 --rounds "${ROUNDS:-3}" --save-json benchmarks/results_train_cpu.json \
  | tee benchmarks/results_train_cpu.txt
