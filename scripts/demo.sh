#!/usr/bin/env bash
# `make demo`: the main job. Until the trainer lands this runs the worked autograd examples and
# draws a computational graph; it then becomes "train the default CNN on Fashion-MNIST".
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "== deepc demo =="
if [ -x "$build/examples/one_hidden_layer" ]; then
  echo; echo "-- y = W2 sigmoid(W1 x), squared error: forward values and gradients --"
  "$build/examples/one_hidden_layer"
fi
if [ -x "$build/examples/bce_2_500_2" ]; then
  echo; echo "-- 2-500-2 network, tanh hidden, sigmoid output, binary cross-entropy --"
  "$build/examples/bce_2_500_2"
fi
if [ -x "$build/deepc" ]; then
  echo; echo "-- computational graph of sigmoid(w1*x1 + w2*x2) * w3 --"
  mkdir -p runs/demo
  "$build/deepc" graph "sigmoid(w1*x1 + w2*x2) * w3" --set x1=1 --set x2=-2 --set w1=0.5 \
    --set w2=0.25 --set w3=2 --dot runs/demo/graph.dot
  echo "graph written to runs/demo/graph.dot"
fi
