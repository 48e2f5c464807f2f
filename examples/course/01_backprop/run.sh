#!/usr/bin/env bash
# Exercise 1: backprop by hand, checked by machine.
#   bash examples/course/01_backprop/run.sh [--quick] [--build DIR] [--out DIR]
# one_hidden_layer (sigmoid network, squared error: autograd = by hand = finite differences),
# bce_2_500_2 (2-500-2 tanh/sigmoid network, binary cross-entropy), comp_graph (a graph of sums,
# products and a sigmoid: every value and partial derivative against finite differences, drawn
# with Graphviz), deepc graph (the same graph from an expression) and backward_cost (backward vs
# forward time); text 001 Problem 1's graph (deepc graph) and text 004 Q1's network
# (two_layer_xent). --quick: fewer timing repetitions.
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
step "4. text 001, Problem 1: the graph at x = (1, 3, 2), w = (2, 1, 5, 2) (reading in README)"
p1=(--set x1=1,x2=3,x3=2,w1=2,w2=1,w3=5,w4=2)
"$deepc" graph "sigmoid((x1*w1 + x2*w2) - (w3 + x3*w4))" "${p1[@]}" | tee "$out/p1_graph.txt"
"$deepc" graph "sigmoid((x1*w1 + x2*w2) - (w3 + x3*w4))" "${p1[@]}" --dot "$out/p1_graph.dot" >/dev/null
command -v dot >/dev/null && dot -Tpng "$out/p1_graph.dot" -o "$out/p1_graph.png"
step "5. text 004, Q1: two-layer ReLU network, softmax cross-entropy (reading in README)"
"$bin/two_layer_xent" | tee "$out/two_layer_xent.txt"
step "6. the cost of the backward pass against the forward pass"
"$bin/backward_cost" --reps $reps | tee "$out/backward_cost.txt"
echo "total: $(( $(date +%s) - course_start )) s"
