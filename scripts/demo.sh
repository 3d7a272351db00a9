#!/usr/bin/env bash
# Installs dependencies, builds qfx and runs the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/bin/qfx-demo "$@"
