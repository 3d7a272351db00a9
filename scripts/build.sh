#!/usr/bin/env bash
# Configures and builds qfx in build/ (Release with assertions on).
#   bash scripts/build.sh [--configure-only]
# The ONNX Runtime tests are required (QFX_ORT_TESTS=ON: configuring fails
# until scripts/install-ort.sh has run); QFX_ORT_TESTS=AUTO or OFF in the
# environment relaxes that for builds that run no tests.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc 2>/dev/null || echo 2)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
  -DQFX_ORT_TESTS="${QFX_ORT_TESTS:-ON}"
if [ "${1:-}" = "--configure-only" ]; then
  exit 0
fi
cmake --build build -j "$jobs"
