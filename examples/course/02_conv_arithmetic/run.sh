#!/usr/bin/env bash
# Exercise 2: convolution arithmetic: output shapes, parameters and multiply-adds of the
# exercise's layers (conv_arith, checked against deepc's conv2d, and deepc summary's torchinfo
# table), and the 5x5 toy image convolved with two 3x3 filters.
#   bash examples/course/02_conv_arithmetic/run.sh [--quick] [--build DIR] [--out DIR]
source "$(dirname "$0")/../common.sh" "$@"
step "1. the formulas, confirmed by deepc's conv2d, and the toy case"
"$bin/conv_arith" | tee "$out/conv_arith.md"
step "2. the same layers through deepc summary (input C x H x W)"
"$deepc" summary "conv2d(10, 20, 3)" --input 10x48x64 | grep -E "Conv2d|Total mult"
"$deepc" summary "conv2d(16, 64, 6, stride=4, padding=2)" --input 16x98x98 | grep -E "Conv2d|Total mult"
"$deepc" summary "conv2d(3, 6, 3, stride=2, padding=1)" --input 3x99x99 | grep -E "Conv2d|Total mult"
echo "total: $(( $(date +%s) - course_start )) s"
