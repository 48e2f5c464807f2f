#!/usr/bin/env bash
# Exercise 4: the layer library (forward and backward of every layer checked), a solver with a
# chosen update rule on a binary (features, targets) pickle, then softmax regression, a
# two-layer network and a CNN on MNIST with hyper-parameters chosen on a 1/10 validation split.
#   bash examples/course/04_solver/run.sh [--quick] [--build DIR] [--out DIR] [--data FILE.pkl]
#                                         [--update sgd|momentum|nesterov|adam]
# --data: the course's data.pkl (split 500/250/250); without it a 1000-sample pickle is written
# from scikit-learn's digits (0-4 against 5-9), split the same. --quick: few images and epochs.
data=""
update=momentum
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift ;;
    --update) update=$2; shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
source "$(dirname "$0")/../common.sh" "${args[@]}"
if [ $quick = 1 ]; then
  epochs=5 lim=(--set data.train_limit=2000 --set data.test_limit=1000 --set train.epochs=1)
  hidden="50,200" kernel="3,5" chidden="100"
else
  epochs=50 lim=() hidden="50,100,200,400" kernel="3,5,7" chidden="100,200"
fi

step "1. the layer library: forward, and backward against finite differences"
"$bin/layers_check" | tee "$out/layers_check.txt"

step "2. the solver on a binary pickle (update rule: $update)"
if [ -z "$data" ]; then
  data=$out/digits.pkl
  /usr/bin/python3 "$here/make_pickle.py" "$data"
fi
"$bin/solver" "$data" --update "$update" --epochs $epochs | tee "$out/binary.md"

step "3. softmax regression on MNIST"
"$deepc" train "$here/softmax.ini" "${lim[@]}" --out "$out/softmax" --progress none > "$out/softmax.log" 2>&1
grep "test accuracy" "$out/softmax.log"

step "4. two-layer network on MNIST, hidden size chosen on validation"
"$deepc" search "$here/twolayer.ini" --grid "vars.hidden=$hidden" "${lim[@]}" --out "$out/twolayer" \
  > "$out/twolayer.log" 2>&1
sed -n '/^grid search:/,$p' "$out/twolayer.log"

step "5. CNN on MNIST, filter size and hidden units chosen on validation"
"$deepc" search "$here/cnn.ini" --grid "model.kernel=$kernel" --grid "model.hidden=$chidden" "${lim[@]}" \
  --out "$out/cnn" > "$out/cnn.log" 2>&1
sed -n '/^grid search:/,$p' "$out/cnn.log"
best=$(awk -F'"' 'NR == 2 { print $2 }' "$out/cnn/search.csv")

step "6. the chosen CNN ($best) again with dropout and batch norm"
"$deepc" train "$out/cnn/$best/config.ini" --set model.batchnorm=true --set model.dropout=0.5 \
  --out "$out/cnn_bn_dropout" --progress none > "$out/cnn_bn_dropout.log" 2>&1
grep "test accuracy" "$out/cnn_bn_dropout.log"

step "7. test accuracies"
acc() { grep -o 'test accuracy[: ]*[0-9.]*%' "$1" | tail -1 | grep -o '[0-9.]*%'; }
{
  echo "| model (MNIST) | chosen on validation | test accuracy |"
  echo "|---|---|---:|"
  echo "| softmax regression | - | $(acc "$out/softmax.log") |"
  echo "| two-layer network | $(awk -F'"' 'NR == 2 { print $2 }' "$out/twolayer/search.csv") | $(acc "$out/twolayer.log") |"
  echo "| CNN | $best | $(acc "$out/cnn.log") |"
  echo "| CNN + dropout + batch norm | $best | $(acc "$out/cnn_bn_dropout.log") |"
} | tee "$out/mnist.md"
echo "total: $(( $(date +%s) - course_start )) s"
