#!/usr/bin/env bash
# The checks that need a GPU, as one script: the serving benchmark (python -m benchmarks.serve) on the device.
#
#   bash benchmarks/gpu_check.sh                       # on a GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --quick  # a smoke run here
#
# Environment: PYTHON (default: the project's `uv run python` when uv is there, else python3), CKPT (the
# checkpoint to serve; default the quickstart's last.ckpt). Wheels in gpu_wheels/ (pip download of
# litserve and python-multipart for the device's Python) are installed first when that folder exists and
# the Python lacks them (a GPU machine whose Python has torch and Lightning but not the serving packages).
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda
quick=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --quick) quick=(--quick); shift ;;
    *) echo "error: unknown argument $1 (use --device cpu|cuda, --quick)" >&2; exit 2 ;;
  esac
done
if [ -z "${PYTHON:-}" ]; then
  if command -v uv >/dev/null 2>&1 && [ -f uv.lock ]; then PYTHON="uv run --locked python"; else PYTHON=python3; fi
fi
ckpt="${CKPT:-logs/quickstart/version_0/checkpoints/last.ckpt}"

if [ -d gpu_wheels ] && ! $PYTHON -c "import litserve, python_multipart" 2>/dev/null; then
  $PYTHON -m pip install --quiet --no-index --find-links gpu_wheels litserve python-multipart
fi
echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
$PYTHON -c "import sys, torch, lightning, litserve; print('python', sys.version.split()[0], '| torch', torch.__version__, '| lightning', lightning.__version__, '| litserve', litserve.__version__, '| cuda', torch.cuda.is_available())"

echo "== serving: python -m benchmarks.serve --device $device ${quick[*]}"
$PYTHON -m benchmarks.serve --checkpoint "$ckpt" --device "$device" "${quick[@]}"
