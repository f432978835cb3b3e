#!/usr/bin/env bash
# GPU smoke check of the training pipeline (run on a lent GPU machine through the device tool).
# The machine has torch/lightning/timm but not hydra/albumentations: those travel as wheels in .whl/.
# Usage there: bash scripts/gpu_smoke.sh   (writes logs to $OUT when set)
set -euo pipefail
OUT=${OUT:-/tmp/gpu_smoke_out}
source "$(dirname "$0")/gpu_env.sh"   # wheels, PYTHONPATH, GPU name
python3 -c "import torch, pytorch_lightning, timm; print('torch', torch.__version__, 'lightning', pytorch_lightning.__version__, 'timm', timm.__version__)" | tee -a "$OUT/gpu.txt"
python3 -m umsi.cli.make_synthetic --out /tmp/syn --no-progress
common="experiment=reproduce trainer=gpu paths.datasets_dir=/tmp/syn logger=csv ~callbacks.progress_bar data.num_workers=8"
# 1. the whole pipeline at the paper's size (240x320, batch 4), 2 epochs per stage
start=$(date +%s.%N)
python3 -m umsi.cli.train $common trainer.max_epochs=2 hydra.run.dir=/tmp/runs/pipeline > "$OUT/pipeline.log" 2>&1
end=$(date +%s.%N)
echo "pipeline (2+2 epochs, 240x320, batch 4): $(python3 -c "print(round($end - $start, 1))") s" | tee -a "$OUT/gpu.txt"
cp /tmp/runs/pipeline/summary.json "$OUT/summary.json"
tail -n 12 "$OUT/pipeline.log"
# 2. pretraining throughput at batch 32, bf16-mixed: 3 epochs of 400 images; epoch 0 includes warm-up
python3 -m umsi.cli.train $common stage=pretrain data.batch_size=32 trainer.max_epochs=3 \
  trainer.num_sanity_val_steps=0 hydra.run.dir=/tmp/runs/bs32 > "$OUT/bs32.log" 2>&1
for run in pipeline/pretrain pipeline/finetune bs32; do
  cp /tmp/runs/$run/csv/metrics.csv "$OUT/metrics_${run//\//_}.csv"
  python3 - /tmp/runs/$run/csv/metrics.csv "$run" <<'PY'
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r.get("perf/train_images_per_second")]
print(sys.argv[2], "images/s per epoch:", [round(float(r["perf/train_images_per_second"]), 1) for r in rows])
PY
done | tee -a "$OUT/gpu.txt"
