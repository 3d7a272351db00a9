#!/usr/bin/env bash
# Installs qfx's build and test dependencies from Debian 12 packages.
# Idempotent: when every package is present it changes nothing.
set -euo pipefail

PACKAGES=(
  cmake
  g++
  make
  llvm-14-dev
  libdnnl-dev
  # libdnnl-dev's CMake config calls find_package(OpenCL); the OpenCL
  # headers and library are only a Recommends of it.
  ocl-icd-opencl-dev
  nlohmann-json3-dev
  catch2
  zlib1g-dev
  libncurses-dev
  # The package tests build a consumer through pkg-config too.
  pkg-config
  dataset-fashion-mnist
  # The Onnx layer: ONNX's protobuf types, checker and parser, and protobuf.
  libonnx-dev
  libprotobuf-dev
  # ONNX Runtime, the client that checks exported files, is npm's
  # onnxruntime-node (scripts/install-ort.sh), run by Debian's Node.js.
  nodejs
  npm
  # The sanitized corpus replays of scripts/test.sh (replay-sanitized.sh),
  # scripts/test-sanitized.sh and the libFuzzer builds of scripts/fuzz.sh:
  # clang with its sanitizer and libFuzzer runtimes, and the OpenMP runtime
  # clang links.
  clang-14
  libclang-rt-14-dev
  libomp-14-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
