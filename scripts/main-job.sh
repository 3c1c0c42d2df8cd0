#!/bin/sh
# The main job: import a real Darknet model and show what qsim makes of it.
# Uses $QSIM_MODELS_DIR (default ../shared/models); without it, a model
# generated here with synthetic weights, and says so.
set -e
cd "$(dirname "$0")/.."
BIN=build/bin
OUT=${QSIM_OUT:-build/main-job}
mkdir -p "$OUT"
MODELS=${QSIM_MODELS_DIR:-../shared/models}
MODEL=yolov3-tiny-aix2022
if [ -f "$MODELS/darknet/$MODEL.cfg" ] && [ -f "$MODELS/weights/$MODEL.weights" ]; then
  CFG="$MODELS/darknet/$MODEL.cfg"
  echo "== importing the real model $CFG with its trained weights"
  $BIN/qsim-translate --import-darknet "$CFG" --weights "$MODELS/weights/$MODEL.weights" -o "$OUT/$MODEL.mlirbc"
else
  echo "== $MODELS has no $MODEL model (set QSIM_MODELS_DIR): falling back \\"
  MODEL=synthetic-yolov3-tiny
  CFG=examples/models/$MODEL.cfg
  echo "   to $CFG with synthetic weights (seed 1);"
  echo "   numbers below describe that generated model, not a trained one"
  $BIN/qsim-translate --import-darknet "$CFG" --random-weights=1 -o "$OUT/$MODEL.mlirbc"
fi
echo "== per-layer statistics"
$BIN/qsim-opt --qsim-print-stats "$OUT/$MODEL.mlirbc" -o /dev/null
echo "== export back to Darknet"
$BIN/qsim-translate --export-darknet "$OUT/$MODEL.mlirbc" -o "$OUT/$MODEL.cfg" --weights-out "$OUT/$MODEL.weights"
ls -l "$OUT/$MODEL.cfg" "$OUT/$MODEL.weights"
