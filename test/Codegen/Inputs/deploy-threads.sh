#!/bin/bash
# Runs a qsim-deploy program (optionally under a runner, e.g. qemu) with 1,
# 2 and 4 threads, dumping every layer, and checks that the dumps and the
# detections of 2 and 4 threads are byte-identical to 1 thread's.
#
#   deploy-threads.sh PROGRAM IMAGE OUT_DIR [runner...]
set -eu -o pipefail
program=$1 image=$2 out=$3
shift 3
mkdir -p "$out"
for t in 1 2 4; do
  "$@" "$program" "$image" --thresh 0.01 --threads "$t" --repeat 1 \
    --dump-layers "$out/t$t" > "$out/t$t.txt"
  grep '^forward:' "$out/t$t.txt"
done
for t in 2 4; do
  diff -r "$out/t1" "$out/t$t"
  # The detections (everything but the timing line).
  diff <(grep -v '^forward:' "$out/t1.txt") <(grep -v '^forward:' "$out/t$t.txt")
  echo "$t threads: $(ls "$out/t$t" | wc -l) layers and the detections identical to 1 thread"
done
