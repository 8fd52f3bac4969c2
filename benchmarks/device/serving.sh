#!/usr/bin/env bash
# Serving check on a GPU host (<= 8 minutes): BERT-base fp16 online at 1,000 and 3,000 QPS and
# GPT-2-small token streams at 1 and 8 concurrent requests; judged by serving_check.py.
# Usage (repo root, on the GPU host): bash benchmarks/device/serving.sh [OUT_DIR]
# Wheels the host lacks may be put in .whl/ (installed into /tmp/site first).
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
  echo "serving.sh: no CUDA device visible to torch here; this check runs on a GPU host (nothing measured)."
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,power.draw,memory.used --format=csv | tee "$out/gpu.csv"
python3 -m harness.cli run benchmarks/device/serving.suite.yaml -o "$out/results" 2>&1 | tee "$out/run.log"
run_dir=$(ls -dt "$out"/results/*/ | head -n 1)
cp "$run_dir/run.json" "$out/serving.run.json"
python3 benchmarks/device/serving_check.py "$run_dir" --out "$out/serving.md"
