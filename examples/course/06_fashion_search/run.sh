#!/usr/bin/env bash
# Exercise 6: a hyper-parameter search of the Fashion-MNIST CNN, then the best model's overall
# and per-class accuracy, its weakest classes, and loss/accuracy curves (PNG and TensorBoard).
#   bash examples/course/06_fashion_search/run.sh [--quick] [--build DIR] [--out DIR]
# Grid: pooling MaxPool2d(2,2,0) vs MaxPool2d(4,3,1), dropout 0.1/0.3/0.5, batch norm on/off
# (12 runs on 12,000 training images, 3 epochs each); the winner is retrained on the whole
# training set (5 epochs). --quick: 600 images, 1 epoch, a 1-epoch retraining on 1,500.
source "$(dirname "$0")/../common.sh" "$@"
if [ $quick = 1 ]; then
  small=(--set data.train_limit=600 --set data.test_limit=500 --set train.epochs=1)
  final=(--set data.train_limit=1500 --set data.test_limit=500 --set train.epochs=1)
else
  small=()
  final=(--set data.train_limit=0 --set train.epochs=5)
fi

step "1. grid search: pooling x dropout x batch norm"
"$deepc" search "$here/search.ini" --grid "model.pool=2,2,0;4,3,1" \
  --grid model.dropout=0.1,0.3,0.5 --grid model.batchnorm=true,false "${small[@]}" \
  --out "$out/search" > "$out/search.log" 2>&1
sed -n '/^grid search:/,$p' "$out/search.log"
best=$(awk -F'"' 'NR == 2 { print $2 }' "$out/search/search.csv")

step "2. the best configuration ($best) retrained on the whole training set"
"$deepc" train "$out/search/$best/config.ini" "${final[@]}" --out "$out/best" --progress lines \
  > "$out/best.log" 2>&1
grep "test accuracy" "$out/best.log"
"$deepc" eval "$out/best/best.ckpt" --markdown > "$out/best_eval.md"
# the per-class rows of the eval table, sorted by accuracy (recall), weakest first
sed -n '/^## Per-class/,/^## Confusion/p' "$out/best_eval.md" |
  awk -F'|' 'NF > 6 && $2 !~ /class|macro|---/ { gsub(/^ +| +$/, "", $2); print $4 + 0, $2 }' |
  sort -n | head -3 > "$out/weakest.txt"
echo "weakest classes (per-class test accuracy %):"
sed 's/^/  /' "$out/weakest.txt"
echo "curves: $out/best/curves.png, TensorBoard: tensorboard --logdir $out/best/tb"
echo "total: $(( $(date +%s) - course_start )) s"
