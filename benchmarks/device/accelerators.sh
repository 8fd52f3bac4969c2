#!/usr/bin/env bash
# Accelerator backends on a GPU host (<= 8 minutes): benchmarks/device/accelerators.suite.yaml,
# then a Markdown table of every cell (throughput, latency, power, parity, or why it skipped).
# Usage (repo root, on the GPU host): bash benchmarks/device/accelerators.sh [OUT_DIR]
# Wheels the host lacks (pydantic, onnxruntime-gpu, tensorrt, ...) may be put in .whl/.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-device-out}}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
if ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "accelerators.sh: no CUDA device visible to torch here; this check runs on a GPU host (nothing measured)."
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,power.draw,memory.used --format=csv | tee "$out/gpu.csv"
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tee "$out/jax.txt"
python3 -m harness.cli run benchmarks/device/accelerators.suite.yaml -o "$out/results" 2>&1 | tee "$out/accelerators.log"
run_dir=$(ls -dt "$out"/results/*/ | head -n 1)
cp "$run_dir/run.json" "$out/accelerators.run.json"
python3 benchmarks/device/cells_table.py "$run_dir" --out "$out/accelerators.md"
