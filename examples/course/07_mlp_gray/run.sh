#!/usr/bin/env bash
# Exercise 7: the 256-128-64 MLP on grayscale images with SGD, stopped when the loss flattens.
#   bash examples/course/07_mlp_gray/run.sh [--quick] [--build DIR] [--out DIR] [--cifar DIR]
# --cifar DIR: CIFAR-10's binary batches (DIR/data_batch_{1..5}.bin, DIR/test_batch.bin) turned
# grayscale (ITU-R 601 luma, as PIL's convert("L")) into .npz files, then trained on those.
# Without it: Fashion-MNIST (CIFAR-10 is not on this machine). --quick: 2,000 images, 2 epochs.
cifar=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in --cifar) cifar=$2; shift ;; *) args+=("$1") ;; esac
  shift
done
source "$(dirname "$0")/../common.sh" "${args[@]}"
set_data=()
if [ -n "$cifar" ]; then
  step "0. CIFAR-10 to grayscale .npz"
  /usr/bin/python3 - "$cifar" "$out" <<'PY'
import sys, numpy as np
src, dst = sys.argv[1], sys.argv[2]
def read(names):
    raw = np.concatenate([np.fromfile(f"{src}/{n}", np.uint8).reshape(-1, 3073) for n in names])
    rgb = raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float64)
    gray = (rgb[:, 0] * 299 + rgb[:, 1] * 587 + rgb[:, 2] * 114) / 1000
    return np.round(gray).astype(np.uint8), raw[:, 0].astype(np.int64)
for part, names in (("train", [f"data_batch_{i}.bin" for i in range(1, 6)]), ("test", ["test_batch.bin"])):
    x, y = read(names)
    np.savez(f"{dst}/cifar10_gray_{part}.npz", x=x, y=y)
    print(part, x.shape)
PY
  set_data=(--set "data.dataset=$out/cifar10_gray_train.npz" --set "data.test=$out/cifar10_gray_test.npz")
fi
lim=()
[ $quick = 1 ] && lim=(--set data.train_limit=2000 --set data.test_limit=1000 --epochs 2)

step "1. training until the training loss flattens (train and test loss per epoch)"
"$deepc" train "$here/mlp.ini" "${set_data[@]}" "${lim[@]}" --out "$out/mlp" --progress none \
  > "$out/mlp.log" 2>&1
grep "test accuracy" "$out/mlp.log"
awk -F, 'NR > 1 { n = $1; t += $7 } END { printf "epochs run: %d (%.0f s of training)\n", n, t }' "$out/mlp/metrics.csv"
echo "loss curves: $out/mlp/curves.png; per epoch: $out/mlp/metrics.csv"
echo "total: $(( $(date +%s) - course_start )) s"
