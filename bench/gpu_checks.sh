#!/usr/bin/env bash
# The GPU checks in one run on the lent device machine: the gpu-marked tests, a short training run on
# CuPy, and the inference and training benches against PyTorch on CUDA. Not yet run: no GPU was lent
# to the session that wrote it (see the README's Backends section for what has never run on a GPU).
#
# That machine has no network. Prepare the wheels here, in an ignored folder the device tool carries:
#   pip wheel --no-deps --no-build-isolation -w gpu-wheels .
#   pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 -d gpu-wheels nvidia-cudnn-frontend
# then run `bash bench/gpu_checks.sh` there with carry=["gpu-wheels"] and a timeout that leaves room
# for one rerun. Everything it prints and writes lands in $OUT (or ./gpu-out).
set -euo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
python3 -m pip install --quiet --no-index --no-deps --target ./site gpu-wheels/*.whl
export PYTHONPATH="$PWD/site:$PWD"
run() { echo "\$ $*" | tee -a "$out/log.txt"; "$@" 2>&1 | tee -a "$out/log.txt"; }
run nvidia-smi --query-gpu=name,memory.total,utilization.gpu --format=csv
run python3 -m cnngraph.cli backends
run python3 -m pytest -q -p no:cacheprovider -m gpu tests -x
run python3 -m cnngraph.cli train resnet18 --input-size 32 --num-classes 10 --data digits --backend cupy \
    --epochs 3 --out "$out/train-cupy"
run python3 bench/bench_inference.py --backend cupy --models resnet18 resnet50 --batches 1 64 --repeat 10
run python3 bench/bench_inference.py --backend cupy --dtype float16 --models resnet50 --batches 256 --repeat 10
run python3 bench/bench_training.py --backend cupy --dtype float16 --model resnet50 --batch 128 --steps 5
