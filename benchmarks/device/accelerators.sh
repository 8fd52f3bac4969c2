#!/usr/bin/env bash
# Accelerator backends on a GPU host (<= 8 minutes): benchmarks/device/accelerators.suite.yaml,
# then a Markdown table of every cell (throughput, latency, power, parity, or why it skipped).
# Usage (repo root, on the GPU host): bash benchmarks/device/accelerators.sh [OUT_DIR]
# Wheels the host lacks (pydantic, onnxruntime-gpu, tensorrt, ...) may be put in .whl/.
set -uo pipefail
source "$(dirname "$0")/setup.sh" accelerators.sh "${1:-}"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tee "$out/jax.txt"
python3 -m harness.cli run benchmarks/device/accelerators.suite.yaml -o "$out/results" 2>&1 | tee "$out/accelerators.log"
run_dir=$(ls -dt "$out"/results/*/ | head -n 1)
cp "$run_dir/run.json" "$out/accelerators.run.json"
python3 benchmarks/device/cells_table.py "$run_dir" --out "$out/accelerators.md"
