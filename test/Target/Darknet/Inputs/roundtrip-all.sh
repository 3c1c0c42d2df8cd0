#!/bin/sh
# For every cfg in $1/darknet: import (with its weights from $1/weights when
# there are some, else shape only), export, re-import, and check that the
# exported weights are byte-identical to the original file and that the
# re-imported IR equals the first import. Prints one line per model.
set -e
models=$1
out=$2
mkdir -p "$out"
for cfg in "$models"/darknet/*.cfg; do
  name=$(basename "$cfg" .cfg)
  w="$models/weights/$name.weights"
  if [ -f "$w" ]; then
    qsim-translate --import-darknet "$cfg" --weights "$w" -o "$out/$name.mlirbc"
    qsim-translate --export-darknet "$out/$name.mlirbc" -o "$out/$name.cfg" --weights-out "$out/$name.weights"
    cmp "$w" "$out/$name.weights"
    qsim-translate --import-darknet "$out/$name.cfg" --weights "$out/$name.weights" -emit-text -o "$out/$name.2.mlir"
    qsim-translate --export-darknet "$out/$name.2.mlir" -o "$out/$name.2.cfg" --weights-out "$out/$name.2.weights"
    cmp "$w" "$out/$name.2.weights"
    kind="weights byte-exact"
  else
    qsim-translate --import-darknet "$cfg" -o "$out/$name.mlir" 2>/dev/null
    qsim-translate --export-darknet "$out/$name.mlir" -o "$out/$name.cfg"
    qsim-translate --import-darknet "$out/$name.cfg" -o "$out/$name.2.mlir"
    qsim-translate --export-darknet "$out/$name.2.mlir" -o "$out/$name.2.cfg"
    kind="shape only"
  fi
  cmp "$out/$name.cfg" "$out/$name.2.cfg"
  qsim-opt --qsim-print-stats "$out/$name.2.cfg" -o /dev/null 2>/dev/null || true
  echo "OK $name ($kind)"
done
