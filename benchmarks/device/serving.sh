#!/usr/bin/env bash
# Serving check on a GPU host (<= 8 minutes): BERT-base fp16 online at 1,000 and 3,000 QPS and
# GPT-2-small token streams at 1 and 8 concurrent requests; judged by serving_check.py.
# Usage (repo root, on the GPU host): bash benchmarks/device/serving.sh [OUT_DIR]
# Wheels the host lacks may be put in .whl/ (installed into /tmp/site first).
set -uo pipefail
source "$(dirname "$0")/setup.sh" serving.sh "${1:-}"
python3 -m harness.cli run benchmarks/device/serving.suite.yaml -o "$out/results" 2>&1 | tee "$out/run.log"
run_dir=$(ls -dt "$out"/results/*/ | head -n 1)
cp "$run_dir/run.json" "$out/serving.run.json"
python3 benchmarks/device/serving_check.py "$run_dir" --out "$out/serving.md"
