#!/usr/bin/env bash
# Reproducible training pipeline of the seven-segment reader (see README.md).
#   1. render 100k training inputs (seed 1) and 6k validation inputs (seed 2) to $OCR_DATA
#   2. stage 1: train from scratch for 938 steps (0.6 epoch, one-cycle; train_stage1.py)
#      -> $OCR_DATA/ckpt.pt (skipped if that checkpoint exists)
#   3. stage 2: continue from it for a 3000-step cosine schedule with on-the-fly
#      augmentation (train.py --init); the committed run was stopped by its time limit
#      after STOP_AFTER steps -> $OCR_DATA/run2/ckpt.pt and model/sevenseg.onnx
#   4. build the Rust reader (release) and render the calibration set from the validation
#      seed 2 (8,000 crops, 200 scenes; crops 0-5999 are the validation samples as images)
#   5. run the Rust reader over it (`metcon-ocr features`) and fit the confidence
#      calibration on exactly what the reader outputs -> model/calibration.json
#   6. only with TESTSET=1: re-render the committed evaluation set (seed 3) -> testdata/
# Environment: PYTHON (default /work/venv-ocr/bin/python), OCR_DATA (default /work/ocr-data),
# THREADS (torch threads, default 1), WORKERS (generator processes, default 2),
# STOP_AFTER (stage-2 steps actually run, default that of the committed model),
# CARGO_TARGET_DIR (default /work/target-ocr).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CRATE="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-/work/venv-ocr/bin/python}"
DATA="${OCR_DATA:-/work/ocr-data}"
THREADS="${THREADS:-1}"
WORKERS="${WORKERS:-2}"
STOP_AFTER="${STOP_AFTER:-2498}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/work/target-ocr}"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" PYTHONHASHSEED=0
mkdir -p "$DATA/run2"
cd "$HERE"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }
run() { nice -n 19 "$@"; }
[ -f "$DATA/train.npz" ] || run "$PY" gen_data.py --seed 1 --count 100000 --workers "$WORKERS" --out "$DATA/train.npz"
[ -f "$DATA/val.npz" ] || run "$PY" gen_data.py --seed 2 --count 6000 --workers "$WORKERS" --out "$DATA/val.npz"
stamp "data ready"
[ -f "$DATA/ckpt.pt" ] || run "$PY" train_stage1.py --train "$DATA/train.npz" --val "$DATA/val.npz" --epochs 0.6 \
  --threads "$THREADS" --seed 1 --ckpt "$DATA/ckpt.pt" --onnx "$DATA/stage1.onnx" --max-minutes 1000
stamp "stage 1 ready"
run "$PY" train.py --train "$DATA/train.npz" --val "$DATA/val.npz" --init "$DATA/ckpt.pt" --lr 2e-3 \
  --steps 3000 --stop-after "$STOP_AFTER" --max-minutes 1000 --threads "$THREADS" --seed 1 \
  --ckpt "$DATA/run2/ckpt.pt" --onnx "$CRATE/model/sevenseg.onnx"
stamp "stage 2 trained"
(cd "$CRATE" && run cargo build --release -j 1 --bin metcon-ocr)
BIN="$CARGO_TARGET_DIR/release/metcon-ocr"
CAL="$DATA/cal-seed2"
[ -f "$CAL/scenes/labels.csv" ] || run "$PY" make_testset.py --seed 2 --crops 8000 --scenes 200 \
  --workers "$WORKERS" --out "$CAL"
stamp "calibration set ready"
run "$BIN" features "$CAL/crops" --model "$CRATE/model/sevenseg.onnx" > "$DATA/run2/cal_crops.csv"
run "$BIN" features "$CAL/scenes" --model "$CRATE/model/sevenseg.onnx" > "$DATA/run2/cal_scenes.csv"
run "$PY" calibrate.py --crops "$DATA/run2/cal_crops.csv" --scenes "$DATA/run2/cal_scenes.csv" \
  --out "$CRATE/model/calibration.json"
stamp "calibrated"
if [ "${TESTSET:-0}" = 1 ]; then
  rm -rf "$CRATE/testdata"
  run "$PY" make_testset.py --seed 3 --crops 300 --scenes 40 --workers "$WORKERS" --out "$CRATE/testdata"
  stamp "test set rendered"
fi
stamp "pipeline finished (rebuild the crate to embed the new model and calibration)"
