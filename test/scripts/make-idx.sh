#!/bin/sh
# Writes tiny Fashion-MNIST-named IDX files for the qfx-demo error tests:
#   make-idx.sh DIR N LABEL...
# DIR gets N blank 28x28 training and test images and one test label per
# LABEL. The files are plain IDX under the .gz names (gzread reads both).
set -e
dir=$1
n=$2
shift 2
mkdir -p "$dir"

byte() { printf "\\$(printf '%03o' "$1")"; }
be32() {
  byte $((($1 >> 24) & 255))
  byte $((($1 >> 16) & 255))
  byte $((($1 >> 8) & 255))
  byte $(($1 & 255))
}
images() {
  {
    be32 2051 # 0x803
    be32 "$n"
    be32 28
    be32 28
    printf "%$((n * 784))s" '' | tr ' ' '\000'
  } >"$1"
}

images "$dir/train-images-idx3-ubyte.gz"
images "$dir/t10k-images-idx3-ubyte.gz"
{
  be32 2049 # 0x801
  be32 $#
  for l in "$@"; do byte "$l"; done
} >"$dir/t10k-labels-idx1-ubyte.gz"
