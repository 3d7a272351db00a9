#!/usr/bin/env bash
# Installs dependencies, builds qfx and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The demo runs no tests, so it needs no ONNX Runtime (scripts/install-ort.sh).
QFX_ORT_TESTS=AUTO bash scripts/build.sh
./build/bin/qfx-demo "$@"
