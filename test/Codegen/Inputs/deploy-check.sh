#!/bin/bash
# Compiles MODEL for the host or ARM64, builds examples/arm-deploy around it,
# runs it (ARM64 under qemu-user) on IMAGE, and checks every layer against
# `qsim-run --kernels reference --dump-layers` and the detections against
# qsim-run's table. Prints the device program's report.
#
#   deploy-check.sh host|aarch64 MODEL IMAGE OUT_DIR EXAMPLE_DIR QSIM_SRC [qsim-compile args]
set -eu -o pipefail
arch=$1 model=$2 image=$3 out=$4 example=$5 src=$6
shift 6
mkdir -p "$out"
if [ "$arch" = host ]; then
  target=(--target host) cross= run=()
else
  target=(--target aarch64-linux-gnu) cross=aarch64-linux-gnu-
  run=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
fi
qsim-compile "$model" "${target[@]}" "$@" -o "$out/model.o" --header "$out/model.h" 2>/dev/null
make -s -C "$example" MODEL_DIR="$out" RT_DIR="$(dirname "$out")/rt-$arch" \
  QSIM_SRC="$src" CROSS="$cross"
qsim-run "$model" --image "$image" --kernels reference --thresh 0.01 \
  --dump-layers "$out/ref" > "$out/qsim-run.txt"
"${run[@]}" "$out/qsim-deploy" "$image" --thresh 0.01 --compare-dumps "$out/ref" \
  > "$out/device.txt" || { cat "$out/device.txt"; exit 1; }
cat "$out/device.txt"
# Same detections, same order, same numbers (the table after the header).
tail -n +2 "$out/qsim-run.txt" > "$out/a.txt"
sed -n '/^[^ ].*: [0-9]*x[0-9]*$/,$p' "$out/device.txt" | tail -n +2 |
  grep -v '^compare:' > "$out/b.txt"
diff "$out/a.txt" "$out/b.txt"
echo "detections: identical to qsim-run ($(grep -c '%' "$out/a.txt") lines)"
