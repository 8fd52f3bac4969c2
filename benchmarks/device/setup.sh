# Shared set-up of the device checks, sourced by serving.sh and accelerators.sh with $1 = the
# check's name and $2 = its output folder: repo root as working directory, wheels from .whl/
# installed into /tmp/site, $out created, and an exit 0 saying so where no CUDA device is visible.
# shellcheck shell=bash
check_name="$1"
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out="${2:-${OUT:-device-out}}"
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
if ! python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "$check_name: no CUDA device visible to torch here; this check runs on a GPU host (nothing measured)."
  exit 0
fi
nvidia-smi --query-gpu=name,driver_version,power.draw,memory.used --format=csv | tee "$out/gpu.csv"
