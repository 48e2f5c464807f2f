#!/usr/bin/env bash
# Exercise 1: backprop by hand, checked by machine.
#   bash examples/course/01_backprop/run.sh [--quick] [--build DIR] [--out DIR]
# one_hidden_layer (sigmoid network, squared error: autograd = by hand = finite differences),
# bce_2_500_2 (2-500-2 tanh/sigmoid network, binary cross-entropy), comp_graph (a graph of sums,
# products and a sigmoid: every value and partial derivative against finite differences, drawn
# with Graphviz), deepc graph (the same graph from an expression) and backward_cost (backward vs
# forward time). --quick: fewer timing repetitions.
source "$(dirname "$0")/../common.sh" "$@"
reps=15
[ $quick = 1 ] && reps=3

step "1. one hidden layer, sigmoid, squared error"
"$build/examples/one_hidden_layer" | tee "$out/one_hidden_layer.txt" | tail -4
step "2. 2-500-2, tanh hidden layer, sigmoid outputs, binary cross-entropy"
"$build/examples/bce_2_500_2" | tee "$out/bce_2_500_2.txt"
step "3. a computational graph: f = sigmoid(w0*x0 + w1*x1 + w2)"
"$bin/comp_graph" --dot "$out/comp_graph.dot" | tee "$out/comp_graph.txt"
"$deepc" graph "sigmoid(w0*x0 + w1*x1 + w2)" --set w0=2,w1=-3,w2=-3,x0=-1,x1=-2 \
  --dot "$out/graph.dot" >/dev/null
"$deepc" graph "sigmoid(w0*x0 + w1*x1 + w2)" --set w0=2,w1=-3,w2=-3,x0=-1,x1=-2 | tee "$out/graph.txt"
if command -v dot >/dev/null; then
  dot -Tpng "$out/graph.dot" -o "$out/graph.png"
  dot -Tpng "$out/comp_graph.dot" -o "$out/comp_graph.png"
  echo "drawn: $out/graph.png (deepc graph), $out/comp_graph.png (dc_graph_dot)"
fi
step "4. the cost of the backward pass against the forward pass"
"$bin/backward_cost" --reps $reps | tee "$out/backward_cost.txt"
echo "total: $(( $(date +%s) - course_start )) s"
