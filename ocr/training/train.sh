#!/usr/bin/env bash
# Reproducible training pipeline of the seven-segment reader, from nothing (see README.md):
#   1. render 100k training inputs (seed 1) and 4k validation inputs (seed 2) -> $OCR_DATA
#   2. train from scratch: STEPS steps of 64 (warm-up, cosine decay, on-the-fly augmentation;
#      train.py) -> $OCR_DATA/ckpt.pt and model/sevenseg.onnx
#   3. build the Rust reader (release) and render the calibration set from the validation
#      seed 2 (8,000 crops, 200 scenes; crops 0-3999 are the validation samples as images)
#   4. run the Rust reader over it (`metcon-ocr features`) and fit the confidence
#      calibration on exactly what the reader outputs -> model/calibration.json (crops,
#      then the scenes again with that score, which ranks a photo's candidate regions)
#   5. re-render the committed evaluation set (seed 3) -> testdata/ (TESTSET=0 skips it)
# Every step prints its wall time; the whole run takes about an hour on a 2-core CPU.
# Environment: PYTHON (default /work/venv-ocr/bin/python), OCR_DATA (default /work/ocr-data),
# THREADS (torch threads, default 2), WORKERS (generator processes, default 2),
# STEPS (optimiser steps, default that of the committed model), CARGO_TARGET_DIR (default
# the workspace's target/).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CRATE="$(cd "$HERE/.." && pwd)"
PY="${PYTHON:-/work/venv-ocr/bin/python}"
DATA="${OCR_DATA:-/work/ocr-data}"
THREADS="${THREADS:-2}"
WORKERS="${WORKERS:-2}"
STEPS="${STEPS:-9000}"
export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" PYTHONHASHSEED=0
mkdir -p "$DATA"
cd "$HERE"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*"; }
[ -f "$DATA/train.npz" ] || "$PY" gen_data.py --seed 1 --count 100000 --workers "$WORKERS" --out "$DATA/train.npz"
[ -f "$DATA/val.npz" ] || "$PY" gen_data.py --seed 2 --count 4000 --workers "$WORKERS" --out "$DATA/val.npz"
stamp "data ready"
"$PY" train.py --train "$DATA/train.npz" --val "$DATA/val.npz" --lr 3e-3 --steps "$STEPS" \
  --threads "$THREADS" --seed 1 --ckpt "$DATA/ckpt.pt" --onnx "$CRATE/model/sevenseg.onnx" \
  --max-minutes 1000
stamp "trained"
(cd "$CRATE" && cargo build --release --bin metcon-ocr)
BIN="$(cd "$CRATE" && cargo metadata --format-version 1 --no-deps \
  | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/metcon-ocr"
CAL="$DATA/cal-seed2"
[ -f "$CAL/scenes/labels.csv" ] || "$PY" make_testset.py --seed 2 --crops 8000 --scenes 200 \
  --workers "$WORKERS" --out "$CAL"
stamp "calibration set ready"
# Crops first: their readings do not depend on the calibration, and the crop part of the fit
# decides the score. Photos rank their candidate regions by that score, so the scenes are
# read again with it before the photo part is fitted (the crop part comes out the same).
"$BIN" features "$CAL/crops" --model "$CRATE/model/sevenseg.onnx" > "$DATA/cal_crops.csv"
"$BIN" features "$CAL/scenes" --model "$CRATE/model/sevenseg.onnx" > "$DATA/cal_scenes.csv"
"$PY" calibrate.py --crops "$DATA/cal_crops.csv" --scenes "$DATA/cal_scenes.csv" \
  --out "$CRATE/model/calibration.json"
"$BIN" features "$CAL/scenes" --model "$CRATE/model/sevenseg.onnx" \
  --calibration "$CRATE/model/calibration.json" > "$DATA/cal_scenes.csv"
"$PY" calibrate.py --crops "$DATA/cal_crops.csv" --scenes "$DATA/cal_scenes.csv" \
  --out "$CRATE/model/calibration.json"
stamp "calibrated"
if [ "${TESTSET:-1}" = 1 ]; then
  rm -rf "$CRATE/testdata"
  "$PY" make_testset.py --seed 3 --crops 300 --scenes 40 --workers "$WORKERS" --out "$CRATE/testdata"
  stamp "test set rendered"
fi
stamp "pipeline finished (rebuild the crate to embed the new model and calibration)"
