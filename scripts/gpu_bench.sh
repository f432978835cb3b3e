#!/usr/bin/env bash
# make bench on a lent GPU machine (run through the device tool). The machine has torch/lightning/timm but not
# hydra/albumentations: those travel as wheels in .whl/ (see scripts/gpu_smoke.sh). Writes $OUT/bench/.
set -euo pipefail
OUT=${OUT:-/tmp/gpu_bench_out}
mkdir -p "$OUT"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/src:${PYTHONPATH:-} PYTHONUNBUFFERED=1 HYDRA_FULL_ERROR=1 WANDB_MODE=disabled
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -m umsi.bench.run --device cuda --parts ${PARTS:-training,inference,data} --out "$OUT/bench" 2>&1 | tee "$OUT/bench.log" | grep -v "it/s\]" | tail -n 80
