#!/usr/bin/env bash
# make bench on a lent GPU machine (run through the device tool; set-up in scripts/gpu_env.sh). Writes $OUT/bench/.
set -euo pipefail
OUT=${OUT:-/tmp/gpu_bench_out}
source "$(dirname "$0")/gpu_env.sh"   # wheels, PYTHONPATH, GPU name
python3 -m umsi.cli.bench --device cuda --parts ${PARTS:-training,inference,data} --out "$OUT/bench" 2>&1 | tee "$OUT/bench.log" | grep -v "it/s\]" | tail -n 80
