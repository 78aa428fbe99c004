#!/usr/bin/env bash
# The CPU figures of benchmarks/results.md (EdgeNeXt-XXS, 256x256, 2 threads), each candidate in
# its own worker process over rotating rounds. Three runs, each with its own timm-eager reference:
#   1. every peer in every runtime, fp32 (ours, timm's EdgeNeXt-XXS, MobileViT XXS/XS/S, MobileNetV3);
#   2. ours and timm's EdgeNeXt-XXS in every exported runtime at fp32 and int8 (bf16 where native);
#   3. the training step of ours against timm's.
# WORK keeps the exported files between the runs (and between invocations).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${WORK:-/tmp/edgenext-bench-work}"
common=(--models edgenext_xx_small --threads "${THREADS:-2}" --input-size 256 --workdir "$WORK")
edgenext bench "${common[@]}" --peer-runtimes all --precisions fp32 --rounds "${ROUNDS:-2}" \
  --save-json benchmarks/results_cpu.json --plot benchmarks/bench_cpu.png | tee benchmarks/results_cpu.txt
edgenext bench "${common[@]}" --peers none --runtimes eager,fused,onnxruntime,openvino,executorch \
  --precisions "${PRECISIONS:-fp32,int8}" --rounds "${ROUNDS:-2}" \
  --save-json benchmarks/results_cpu_precision.json --plot benchmarks/bench_cpu_precision.png \
  | tee benchmarks/results_cpu_precision.txt
edgenext bench --train --models edgenext_xx_small --threads "${THREADS:-2}" --input-size 256 --batches 32 \
  --rounds "${ROUNDS:-2}" --save-json benchmarks/results_train_cpu.json | tee benchmarks/results_train_cpu.txt
