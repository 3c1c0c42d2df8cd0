#!/bin/sh
# Runs every test (lit + GoogleTest) through ctest and prints both
# summaries, after running each fuzz target for QSIM_FUZZ_SECONDS (default
# 60). Real models/data/golden outputs are used when QSIM_MODELS_DIR /
# QSIM_DATA_DIR are set (default: ../shared next to this checkout, if any).
set -e
cd "$(dirname "$0")/.."
if [ -z "$QSIM_MODELS_DIR" ] && [ -d ../shared/models ]; then
  export QSIM_MODELS_DIR="$(cd ../shared/models && pwd)"
fi
if [ -z "$QSIM_DATA_DIR" ] && [ -d ../shared/data ]; then
  export QSIM_DATA_DIR="$(cd ../shared/data && pwd)"
fi
echo "QSIM_MODELS_DIR=${QSIM_MODELS_DIR:-<unset: real-model tests are skipped>}"
echo "QSIM_DATA_DIR=${QSIM_DATA_DIR:-<unset: real-data tests are skipped>}"
status=0
# Each libFuzzer target for a bounded time first (fuzz/README.md; skipped
# with a message when clang's fuzzer runtime is not installed), so that the
# output ends with ctest's and lit's summaries.
fuzz/run-fuzzers.sh "${QSIM_FUZZ_SECONDS:-60}" || status=$?
ctest --test-dir build --output-on-failure -j "$(nproc)" || status=$?
echo "--- lit summary (full log: build/test/lit.log) ---"
sed -n '/^Testing Time/,$p' build/test/lit.log 2>/dev/null || true
exit $status
