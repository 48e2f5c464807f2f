#!/usr/bin/env bash
# Exercise 3: weight decay and Adam's bias correction, shown numerically (the programs
# examples/weight_decay.c and examples/adam_bias_correction.c; docs/optim.md explains them).
#   bash examples/course/03_optimizers/run.sh [--quick] [--build DIR] [--out DIR]
source "$(dirname "$0")/../common.sh" "$@"
step "1. weight decay: one SGD step shrinks the weights by (1 - lr * lambda)"
"$build/examples/weight_decay" | tee "$out/weight_decay.txt"
step "2. Adam's bias correction: E[m_t] = (1 - beta1^t) mu without it"
"$build/examples/adam_bias_correction" | tee "$out/adam_bias_correction.txt"
echo "total: $(( $(date +%s) - course_start )) s"
