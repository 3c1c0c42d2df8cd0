#!/bin/sh
# The main job: import a real Darknet model, lighten and quantize it with the
# guideline pipeline, run it, print the comparison with the original, and
# compile it for ARM64 (run under qemu-user, checked layer by layer).
# With --studio it then serves qsim-studio on 127.0.0.1 (port
# $QSIM_STUDIO_PORT, default 8080) with the demo account (demo / qsim-demo)
# and the real model imported; Ctrl-C stops it. --studio-only skips the job.
# Uses $QSIM_MODELS_DIR / $QSIM_DATA_DIR (default ../shared/models and
# ../shared/data); without them, a model and images generated here, and says
# so.
set -e
cd "$(dirname "$0")/.."
STUDIO=""
case "$1" in
  --studio) STUDIO=after ;;
  --studio-only) STUDIO=only ;;
  "") ;;
  *) echo "usage: scripts/main-job.sh [--studio|--studio-only]" >&2; exit 2 ;;
esac
BIN=build/bin
start_studio() {
  echo "== qsim-studio: http://127.0.0.1:${QSIM_STUDIO_PORT:-8080}/ (log in as demo / qsim-demo; Ctrl-C stops it)"
  exec $BIN/qsim-studio --demo --data "${OUT:-build/main-job}/studio-data" \
    --listen "127.0.0.1:${QSIM_STUDIO_PORT:-8080}" -q
}
if [ "$STUDIO" = only ]; then
  export QSIM_MODELS_DIR="${QSIM_MODELS_DIR:-../shared/models}" QSIM_DATA_DIR="${QSIM_DATA_DIR:-../shared/data}"
  OUT=${QSIM_OUT:-build/main-job}; mkdir -p "$OUT"; start_studio
fi
OUT=${QSIM_OUT:-build/main-job}
mkdir -p "$OUT"
MODELS=${QSIM_MODELS_DIR:-../shared/models}
DATA=${QSIM_DATA_DIR:-../shared/data}
MODEL=yolov3-tiny-aix2022
if [ -f "$MODELS/darknet/$MODEL.cfg" ] && [ -f "$MODELS/weights/$MODEL.weights" ]; then
  CFG="$MODELS/darknet/$MODEL.cfg"
  echo "== 1. importing the real model $CFG with its trained weights"
  $BIN/qsim-translate --import-darknet "$CFG" --weights "$MODELS/weights/$MODEL.weights" -o "$OUT/$MODEL.mlirbc"
else
  echo "== 1. $MODELS has no $MODEL model (set QSIM_MODELS_DIR): falling back \\"
  MODEL=synthetic-yolov3-tiny
  CFG=examples/models/$MODEL.cfg
  echo "   to $CFG with synthetic weights (seed 1);"
  echo "   numbers below describe that generated model, not a trained one"
  $BIN/qsim-translate --import-darknet "$CFG" --random-weights=1 -o "$OUT/$MODEL.mlirbc"
fi
CALIB="$DATA/coco128/images/train2017"
EVAL="$DATA/capp-aix-subset"
if [ -d "$CALIB" ] && [ -d "$EVAL" ] && [ "$MODEL" = yolov3-tiny-aix2022 ]; then
  EVALOPT="eval=$EVAL max-map-drop=5"
  IMAGES="$EVAL"
  EVALRUN="--eval $EVAL"
else
  echo "   no images in $DATA (set QSIM_DATA_DIR): generating synthetic ones;"
  echo "   without labels there is no mAP, the fidelity bound is an SQNR"
  CALIB="$OUT/images"
  mkdir -p "$CALIB"
  for i in 1 2 3 4 5 6 7 8; do
    python3 test/Inputs/make-image.py "$CALIB/img$i.ppm" $((200 + 13 * i)) $((160 + 7 * i))
  done
  EVALOPT="min-sqnr=10"
  IMAGES="$CALIB"
  EVALRUN=""
fi

echo "== 2. per-layer statistics"
$BIN/qsim-opt --qsim-print-stats "$OUT/$MODEL.mlirbc" -o /dev/null

echo "== 3. lightening and quantization (--qsim-lighten: factorization, int8, fp16; each step measured)"
# Entropy calibration: on yolov3-tiny-aix2022 the int8 step after the
# Tucker-2 factorization keeps 80.65 mAP with it and 79.01 with min/max
# ranges, which the 5-point budget rejects (the job then ends in fp16).
$BIN/qsim-opt "$OUT/$MODEL.mlirbc" \
  --qsim-lighten="calib=$CALIB calib-images=50 calib-method=entropy $EVALOPT latency-runs=10" \
  -o "$OUT/$MODEL-light.mlirbc"

echo "== 4. running the lightened model against the original, layer by layer"
$BIN/qsim-run "$OUT/$MODEL-light.mlirbc" --image "$IMAGES" $EVALRUN --max-images 20 -q \
  --compare "$OUT/$MODEL.mlirbc"

echo "== 5. ARM64 code for the lightened model (qsim-compile), run under qemu-user,"
echo "      every layer checked against the interpreter's reference kernels"
IMAGE=$(ls "$IMAGES"/*.jpg "$IMAGES"/*.ppm 2>/dev/null | head -1)
mkdir -p "$OUT/arm64"
ARM=$(cd "$OUT/arm64" && pwd)
$BIN/qsim-compile "$OUT/$MODEL-light.mlirbc" --target aarch64-linux-gnu --cpu cortex-a72 \
  --features +neon -o "$ARM/model.o" --header "$ARM/model.h"
make -s -C examples/arm-deploy MODEL_DIR="$ARM" QSIM_SRC="$PWD" CROSS=aarch64-linux-gnu-
$BIN/qsim-run "$OUT/$MODEL-light.mlirbc" --image "$IMAGE" --kernels reference \
  --dump-layers "$ARM/reference" > /dev/null
qemu-aarch64 -L /usr/aarch64-linux-gnu "$ARM/qsim-deploy" "$IMAGE" --compare-dumps "$ARM/reference"
if [ "$STUDIO" = after ]; then
  export QSIM_MODELS_DIR="$MODELS" QSIM_DATA_DIR="$DATA"
  start_studio
fi
