#!/usr/bin/env bash
# The checks that need a GPU, as one script (under 8 minutes on one GPU):
#   1. FashionMNIST time to 93 % test accuracy (python -m benchmarks.speed --parts c, fashion_mnist_fast.yaml);
#   2. a CIFAR-shaped ResNet-18 step (bf16, channels-last, torch.compile on the GPU) through `src.cli fit`
#      against a plain PyTorch loop on the same synthetic data: images/s, ratio, peak GPU memory;
#   3. the serving benchmark (python -m benchmarks.serve).
#
#   bash benchmarks/gpu_check.sh                       # on a GPU machine
#   bash benchmarks/gpu_check.sh --device cpu --quick  # a smoke run here
#
# Environment: PYTHON (default: the project's `uv run python` when uv is there, else python3), DATA_DIR
# (a folder with FashionMNIST/raw/; default data), CKPT (the checkpoint to serve; default the
# quickstart's last.ckpt). Wheels in gpu_wheels/ (pip download of jsonargparse[signatures], litserve and
# python-multipart for the device's Python) are installed first when that folder exists and the Python
# lacks them (a GPU machine whose Python has torch and Lightning but not the CLI's or serving packages).
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
data="${DATA_DIR:-data}"
compile=false
if [ "$device" = cuda ]; then compile=true; fi  # inductor's C++ build on a CPU takes minutes

if [ -d gpu_wheels ] && ! $PYTHON -c "import jsonargparse, litserve, python_multipart" 2>/dev/null; then
  $PYTHON -m pip install --quiet --no-index --find-links gpu_wheels "jsonargparse[signatures]" litserve python-multipart
fi
echo "== machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
$PYTHON -c "import sys, torch, lightning, litserve; print('python', sys.version.split()[0], '| torch', torch.__version__, '| lightning', lightning.__version__, '| litserve', litserve.__version__, '| cuda', torch.cuda.is_available())"

echo "== FashionMNIST: time to 93 % (configs/fashion_mnist_fast.yaml)"
$PYTHON -m benchmarks.speed --data-dir "$data" --parts c --target 0.93 --device "$device" "${quick[@]}"

echo "== CIFAR-shaped ResNet-18, bf16, channels-last, compile=$compile: src.cli fit against a plain loop"
$PYTHON -m benchmarks.speed --parts a --device "$device" --data-dir "$data" --steps 50 "${quick[@]}" \
  --config configs/cifar10_resnet18.yaml --config configs/trainer/bf16.yaml \
  --set=--data=benchmarks.synthetic.SyntheticCIFAR10 --set=--data.drop_last=true \
  --set=--model.channels_last=true --set=--model.compile=$compile

echo "== serving: python -m benchmarks.serve --device $device ${quick[*]}"
$PYTHON -m benchmarks.serve --checkpoint "$ckpt" --device "$device" "${quick[@]}"
