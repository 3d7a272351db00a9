#!/usr/bin/env bash
# Configures and builds qfx in build/ (Release with assertions on).
#   bash scripts/build.sh [--configure-only]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs="$(nproc 2>/dev/null || echo 2)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
if [ "${1:-}" = "--configure-only" ]; then
  exit 0
fi
cmake --build build -j "$jobs"
