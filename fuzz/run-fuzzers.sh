#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan + LeakSanitizer) in
# build-fuzz/ and runs each for SECONDS (default 60): qsim-fuzz-cfg on the
# zoo's cfgs ($QSIM_MODELS_DIR/zoo, when set), fuzz/seeds/cfg and the kept
# inputs of test/fuzz/cfg; qsim-fuzz-weights on the seeds it writes itself
# and test/fuzz/weights. Exits non-zero on any crash, hang (-timeout),
# leak or broken contract, leaving the input in build-fuzz/artifacts/.
# Skips (exit 0, with a message) when clang or its libFuzzer runtime is
# missing. See fuzz/README.md.
#
#   fuzz/run-fuzzers.sh [SECONDS] [cfg|weights]
set -e
cd "$(dirname "$0")/.."
seconds="${1:-60}"
only="${2:-}"
out=build-fuzz

probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf 'extern "C" int LLVMFuzzerTestOneInput(const char *, unsigned long) { return 0; }\n' \
  > "$probe/probe.cpp"
if ! command -v clang++ >/dev/null 2>&1 ||
   ! clang++ -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" \
       -o "$probe/probe" >/dev/null 2>&1; then
  echo "fuzz: skipped: clang++ with libFuzzer (Debian packages clang," \
       "libclang-rt-dev, libomp-dev) is not installed"
  exit 0
fi

if [ ! -f "$out/build.ninja" ]; then
  cmake -G Ninja -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DQSIM_ENABLE_FUZZERS=ON -DQSIM_ENABLE_TESTS=OFF -DQSIM_ENABLE_TRAIN=OFF
fi
cmake --build "$out" -j "$(nproc)" --target qsim-fuzz-cfg qsim-fuzz-weights

mkdir -p "$out/corpus/cfg" "$out/corpus/weights" "$out/artifacts"
# The zoo is read, never written: libFuzzer adds new inputs to the first
# directory only.
zoo=""
if [ -n "$QSIM_MODELS_DIR" ] && [ -d "$QSIM_MODELS_DIR/zoo" ]; then
  zoo="$QSIM_MODELS_DIR/zoo"
else
  echo "fuzz: QSIM_MODELS_DIR unset: the cfg fuzzer starts from fuzz/seeds only"
fi
QSIM_FUZZ_WRITE_SEEDS="$out/corpus/weights" "$out/bin/qsim-fuzz-weights" \
  -runs=0 "$out/corpus/weights" >/dev/null 2>&1

export ASAN_OPTIONS="allow_user_poisoning=0:detect_leaks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
run() {
  kind="$1"
  shift
  echo "fuzz: qsim-fuzz-$kind for $seconds s"
  "$out/bin/qsim-fuzz-$kind" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$kind-" "$@" 2>"$out/fuzz-$kind.log" ||
    { tail -n 60 "$out/fuzz-$kind.log"; echo "fuzz: qsim-fuzz-$kind FAILED" \
      "(input in $out/artifacts/, log $out/fuzz-$kind.log)"; return 1; }
  grep -E '^stat::number_of_executed_units|^Done' "$out/fuzz-$kind.log" || true
}
status=0
if [ -z "$only" ] || [ "$only" = cfg ]; then
  run cfg -dict=fuzz/cfg.dict "$out/corpus/cfg" fuzz/seeds/cfg test/fuzz/cfg \
    $zoo || status=1
fi
if [ -z "$only" ] || [ "$only" = weights ]; then
  run weights "$out/corpus/weights" test/fuzz/weights || status=1
fi
exit $status
