#!/usr/bin/env bash
# The GPU checks in one call, for a session lent a GPU (the device tool's `run`):
#   bash benchmarks/gpu_check.sh [bench_gpu.py flags]
# Runs the tests that need CUDA (skipped on CPU-only machines), then benchmarks/bench_gpu.py
# (300k-step projection per compile/precision setting, pack of 32 vs one at a time). Uses the
# machine's python3 and its PyTorch with the repo's src/ on PYTHONPATH (no install, no network).
# Logs go to $OUT (the device tool brings them back) or /tmp/gpu_check. About 5-8 minutes on an H100.
set -o pipefail
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${OUT:-/tmp/gpu_check}"
mkdir -p "$out"
{ nvidia-smi -L; python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$out/device.txt"
python3 -m pytest -q -rs -p no:cacheprovider tests/test_train.py tests/test_packed.py tests/test_protocol.py -k cuda 2>&1 | tee "$out/tests.log"
python3 benchmarks/bench_gpu.py "$@" 2>&1 | tee "$out/bench_gpu.log"
