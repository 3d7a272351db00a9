#!/usr/bin/env bash
# Installs dependencies (Debian packages, then ONNX Runtime for the [ort]
# tests into .deps/ort), builds qfx and runs the whole test suite with ctest,
# then replays the fuzz corpora under ASan+UBSan (scripts/replay-sanitized.sh;
# QFX_CI_SANITIZE=0 skips that).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/install-ort.sh
# build.sh configures with QFX_ORT_TESTS=ON: the [ort] tests cannot be
# skipped silently.
bash scripts/build.sh
jobs="$(nproc 2>/dev/null || echo 2)"
ctest --test-dir build --output-on-failure -j "$jobs"
bash scripts/replay-sanitized.sh
