#!/usr/bin/env bash
# Reproducible training pipeline of the seven-segment reader (see README.md).
#   1. render 100k training inputs (seed 1) and 6k validation inputs (seed 2) to $OCR_DATA
#   2. train the CNN + CTC model (0.6 epoch = 60k samples, fixed torch seed), export model/sevenseg.onnx
#   3. fit the confidence calibration on the validation set -> model/calibration.json
#   4. render the committed evaluation set from seed 3 -> testdata/
# Environment: PYTHON (default /work/venv-ocr/bin/python), OCR_DATA (default /work/ocr-data),
# THREADS (torch threads, default 1), WORKERS (generator processes, default 2).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-/work/venv-ocr/bin/python}"
DATA="${OCR_DATA:-/work/ocr-data}"
THREADS="${THREADS:-1}"
WORKERS="${WORKERS:-2}"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" PYTHONHASHSEED=0
mkdir -p "$DATA"
cd "$HERE"
start=$(date +%s)
[ -f "$DATA/train.npz" ] || nice -n 10 "$PY" gen_data.py --seed 1 --count 100000 --workers "$WORKERS" --out "$DATA/train.npz"
[ -f "$DATA/val.npz" ] || nice -n 10 "$PY" gen_data.py --seed 2 --count 6000 --workers "$WORKERS" --out "$DATA/val.npz"
echo "data ready after $(( $(date +%s) - start )) s"
nice -n 10 "$PY" train.py --train "$DATA/train.npz" --val "$DATA/val.npz" --epochs 0.6 --threads "$THREADS" \
  --seed 1 --ckpt "$DATA/ckpt.pt" --onnx "$HERE/../model/sevenseg.onnx" --max-minutes 75
nice -n 10 "$PY" calibrate.py --val "$DATA/val.npz" --onnx "$HERE/../model/sevenseg.onnx" --out "$HERE/../model/calibration.json"
nice -n 10 "$PY" make_testset.py --seed 3 --crops 300 --scenes 40 --out "$HERE/../testdata"
echo "pipeline finished in $(( $(date +%s) - start )) s"
