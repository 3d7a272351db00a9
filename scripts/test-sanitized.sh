#!/usr/bin/env bash
# Builds everything with AddressSanitizer and UndefinedBehaviorSanitizer in
# build-asan/ and runs the whole ctest suite there (assertions stay on).
#
#   bash scripts/test-sanitized.sh [ctest flags...]      e.g. -R 'fuzz-replay'
#
# The compiler is QFX_SANITIZE_CXX (default clang++-14; g++ works too) and
# the sanitizers QFX_SANITIZE (default address,undefined). Any report stops
# the test that made it, which then fails. The "package:" tests are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sanitize-env.sh
qfx_configure_asan
cmake --build build-asan -j "$qfx_jobs"
# The package tests build consumer projects against the installed static
# libraries without the sanitizer flags, which cannot link; they are left out.
ctest --test-dir build-asan --output-on-failure -j "$qfx_jobs" \
  -E '^package: ' "$@"
