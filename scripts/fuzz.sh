#!/usr/bin/env bash
# Runs one libFuzzer harness of test/fuzz/ for a while, with ASan and UBSan.
#
#   bash scripts/fuzz.sh HARNESS SECONDS [libFuzzer flags...]
#   bash scripts/fuzz.sh --list
#
# Configures build-fuzz/ with clang (QFX_FUZZ_CXX, default clang++-14),
# -DQFX_FUZZ=ON -DQFX_SANITIZE=address,undefined, builds fuzz-HARNESS only,
# and runs it over the committed seeds test/fuzz/corpus/HARNESS/ (read only)
# with its dictionary. Everything it writes stays under build-fuzz/fuzz/HARNESS/:
# corpus/ (new inputs), artifacts/ (crash-*, leak-*, timeout-* inputs) and
# tmp/ (scratch files). Exits non-zero when the run found a crash. To go on
# after crashes: -fork=1 -ignore_crashes=1. See docs/robustness.md for
# turning a crash into a regression input.
set -euo pipefail
cd "$(dirname "$0")/.."

harnesses() { ls test/fuzz/corpus; }

if [ "${1:-}" = "--list" ]; then
  harnesses
  exit 0
fi
if [ $# -lt 2 ]; then
  echo "usage: bash scripts/fuzz.sh HARNESS SECONDS [libFuzzer flags...]" >&2
  echo "harnesses: $(harnesses | tr '\n' ' ')" >&2
  exit 2
fi
harness="$1"
seconds="$2"
shift 2
if [ ! -d "test/fuzz/corpus/$harness" ]; then
  echo "fuzz: error: no harness '$harness' (have: $(harnesses | tr '\n' ' '))" >&2
  exit 2
fi
case "$seconds" in
  '' | *[!0-9]*)
    echo "fuzz: error: SECONDS must be a whole number, got '$seconds'" >&2
    exit 2
    ;;
esac

cxx="${QFX_FUZZ_CXX:-clang++-14}"
cc="${QFX_FUZZ_CC:-${cxx/clang++/clang}}"
launcher=()
if command -v ccache >/dev/null 2>&1; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" "${launcher[@]}" \
  -DQFX_FUZZ=ON -DQFX_SANITIZE=address,undefined >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)" --target "fuzz-$harness"

out="build-fuzz/fuzz/$harness"
mkdir -p "$out/corpus" "$out/artifacts" "$out/tmp"
dict="test/fuzz/dict/$harness.dict"
# The graph harness reads text IR: it shares that dictionary.
[ "$harness" != graph ] || dict=test/fuzz/dict/text-ir.dict
flags=(-max_total_time="$seconds" -artifact_prefix="$out/artifacts/"
  -timeout=10 -rss_limit_mb=4096 -print_final_stats=1)
[ ! -f "$dict" ] || flags+=(-dict="$dict")

# New inputs go to the first corpus folder (build-fuzz's); the committed
# seeds are only read.
echo "fuzz: running fuzz-$harness for $seconds s; output in $out/"
TMPDIR="$PWD/$out/tmp" ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1}" \
  UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
  "build-fuzz/bin/fuzz-$harness" "${flags[@]}" "$@" \
  "$out/corpus" "test/fuzz/corpus/$harness"
