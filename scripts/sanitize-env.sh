# Shared by scripts/test-sanitized.sh and scripts/replay-sanitized.sh (sourced,
# not run): configures build-asan/ with the sanitizers and sets their options.

qfx_jobs="$(nproc 2>/dev/null || echo 2)"

# Configures build-asan/: QFX_SANITIZE_CXX (default clang++-14) with
# -DQFX_SANITIZE=${QFX_SANITIZE:-address,undefined}, Release with assertions.
qfx_configure_asan() {
  local cxx="${QFX_SANITIZE_CXX:-clang++-14}"
  local cc="${QFX_SANITIZE_CC:-}"
  if [ -z "$cc" ]; then
    case "$cxx" in
      *clang++*) cc="${cxx/clang++/clang}" ;;
      *g++*) cc="${cxx/g++/gcc}" ;;
      *) cc=cc ;;
    esac
  fi
  local launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_C_COMPILER="$cc" "${launcher[@]}" \
    -DQFX_SANITIZE="${QFX_SANITIZE:-address,undefined}"
}

# Every report is fatal and says where; leaks are reported too.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
