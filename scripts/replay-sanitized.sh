#!/usr/bin/env bash
# Replays every committed fuzz corpus (test/fuzz/corpus/, regressions/) under
# AddressSanitizer and UndefinedBehaviorSanitizer: builds only the replay
# executables and the libraries they need in build-asan/, then runs the
# "fuzz-replay: " ctests there. CI runs it after scripts/test.sh;
# QFX_CI_SANITIZE=0 skips it. Same compiler settings as
# scripts/test-sanitized.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${QFX_CI_SANITIZE:-1}" = 0 ]; then
  echo "replay-sanitized: skipped (QFX_CI_SANITIZE=0)"
  exit 0
fi
source scripts/sanitize-env.sh
start=$(date +%s)
qfx_configure_asan >/dev/null
cmake --build build-asan -j "$qfx_jobs" --target fuzz-replays
built=$(date +%s)
echo "replay-sanitized: sanitized build took $((built - start)) s"
ctest --test-dir build-asan --output-on-failure -j "$qfx_jobs" -R '^fuzz-replay: '
echo "replay-sanitized: replays took $(($(date +%s) - built)) s"
