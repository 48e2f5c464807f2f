#!/usr/bin/env bash
# `deepc summary`: the course questions (output shape, parameters and multiply-adds of a conv,
# numbers worked out by hand below), a CNN's totals, --classes, --repr, and the errors of a bad
# spec, a bad shape and a layer that does not fit its input.
set -euo pipefail
deepc=${DEEPC_BUILD:?}/deepc
fail() { echo "FAIL: $*"; exit 1; }
has() { grep -qF -- "$2" <<<"$1" || fail "expected '$2' in:"$'\n'"$1"; }

# 48x64 image with 10 channels, 3x3 kernel, 10 -> 20 channels, stride 1, no padding:
# out 46x62x20; params 20*(3*3*10) + 20 = 1,820; MACs 20*46*62 * 3*3*10 = 5,133,600.
out=$("$deepc" summary "conv2d(10, 20, 3)" --input 10x48x64)
has "$out" "[1, 20, 46, 62]"
has "$out" "Total params: 1,820"
has "$out" "5,133,600"
has "$out" "Total mult-adds (M): 5.13"

# Same layer with padding 1 ('same'): out 48x64x20, MACs 20*48*64*90 = 5,529,600.
out=$("$deepc" summary "conv2d(10, 20, 3, padding='same')" --input "10×48×64")
has "$out" "[1, 20, 48, 64]"
has "$out" "5,529,600"

# 98x98x16 input, 64 filters 6x6, stride 4, padding 2: out floor((98+4-6)/4)+1 = 25;
# params 64*(6*6*16) + 64 = 36,928; MACs 64*25*25 * 6*6*16 = 23,040,000.
out=$("$deepc" summary "conv2d(16, 64, 6, stride=4, padding=2)" --input 16,98,98)
has "$out" "[1, 64, 25, 25]"
has "$out" "Total params: 36,928"
has "$out" "23,040,000"

# A CNN: conv 832 + bn 64 + linear 6272*10+10 = 63,626 parameters.
spec="conv2d(1,32,5,padding=2), batchnorm2d(32), relu, maxpool2d(2), flatten, linear(6272,classes)"
out=$("$deepc" summary "$spec" --input 1x28x28 --classes 10 --repr)
has "$out" "(0): Conv2d(1, 32, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2))"
has "$out" "├─3 (MaxPool2d)                          [1, 32, 14, 14]"
has "$out" "├─5 (Linear)                             [1, 10]                   62,730                    62,720"
has "$out" "Total params: 63,626"
has "$out" "Trainable params: 63,626"
has "$out" "Non-trainable params: 0"
has "$out" "Estimated Total Size (MB): 0.96"

# help, and errors with their exit statuses (1: the model is wrong, 2: the command line is)
"$deepc" summary --help | grep -q "usage: deepc summary" || fail "no usage"
set +e
err=$("$deepc" summary "conv2d(1,32,5), relu, maxpol2d(2)" --input 1x28x28 2>&1); rc=$?
[ $rc -eq 1 ] || fail "unknown layer: exit $rc"
has "$err" "did you mean 'MaxPool2d'?"
has "$err" "                        ^"
err=$("$deepc" summary "conv2d(3,8,3), flatten, linear(100,10)" --input 3x32x32 2>&1); rc=$?
[ $rc -eq 1 ] || fail "wrong in_features: exit $rc"
has "$err" "2 (Linear): expected input [*, 100]"
has "$err" "gives 7200 features"
err=$("$deepc" summary "conv2d(1,8,7)" --input 1x4x4 2>&1); rc=$?
[ $rc -eq 1 ] || fail "kernel too large: exit $rc"
has "$err" "kernel size 7x7"
err=$("$deepc" summary "linear(4, 3)" --input 4 --classes 10 2>&1); rc=$?
[ $rc -eq 1 ] || fail "classes mismatch: exit $rc"
has "$err" "--classes is 10"
err=$("$deepc" summary "linear(4, 3)" --input 4xq 2>&1); rc=$?
[ $rc -eq 2 ] || fail "bad shape: exit $rc"
err=$("$deepc" summary "linear(4, 3)" 2>&1); rc=$?
[ $rc -eq 2 ] || fail "missing --input: exit $rc"
has "$err" "missing --input"
set -e
echo "ok"
