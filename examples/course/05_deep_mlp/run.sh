#!/usr/bin/env bash
# Exercise 5: deep MLPs with ELU, gradient norms per layer, SGD vs momentum vs Nesterov.
#   bash examples/course/05_deep_mlp/run.sh [--quick] [--build DIR] [--out DIR]
# --quick: 30 iterations instead of 200.
source "$(dirname "$0")/../common.sh" "$@"
iters=200
[ $quick = 1 ] && iters=30
step "deep_mlp: the L = 5 output, the L = 30 gradient norms, three optimizers"
"$bin/deep_mlp" --out "$out" --iters $iters | tee "$out/deep_mlp.txt"
echo "total: $(( $(date +%s) - course_start )) s"
