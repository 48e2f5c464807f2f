#!/usr/bin/env bash
# The course exercises in their quick form (examples/course/run_all.sh --quick), then each one's
# key output: the convolution arithmetic numbers exactly, gradients against finite differences,
# fixed-seed network outputs, accuracies above a floor, the curves and tables they write.
# CTest sets DEEPC_BUILD and DEEPC_SRC.
set -u
build="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}"
src="${DEEPC_SRC:?set DEEPC_SRC to the source directory}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=PASSIVE
source "$(dirname "$0")/../common.sh"
has() { grep -qF -- "$2" "$1" 2>/dev/null || fail "$(basename "$(dirname "$1")")/$(basename "$1") lacks '$2'"; }
exists() { for f in "$@"; do [ -s "$f" ] || fail "not written: ${f#$tmp/}"; done; }
# floor FILE REGEX MIN: the first percentage on the line matching REGEX is at least MIN
floor() {
  local v
  v=$(grep -E -- "$2" "$1" 2>/dev/null | head -1 | grep -oE '[0-9]+(\.[0-9]+)? ?%' | head -1 | tr -d ' %')
  awk -v v="${v:-x}" -v m="$3" 'BEGIN { exit !(v + 0 == v && v >= m) }' ||
    fail "$(basename "$1"): '$2' gives '${v:-nothing}', expected >= $3 %"
}

bash "$src/examples/course/run_all.sh" --quick --build "$build" --out "$tmp" > "$tmp/all.log" 2>&1 ||
  fail "run_all.sh --quick exited non-zero:"$'\n'"$(tail -30 "$tmp/all.log")"
for n in 01 02 03 04 05 06 07 08 09; do
  grep -q "^######## ${n}_.* done in" "$tmp/all.log" || fail "exercise $n did not finish"
done

# 1. backprop
e=$tmp/01_backprop
has "$e/one_hidden_layer.txt" "all gradients agree: autograd = by hand = finite differences"
has "$e/comp_graph.txt" "all 10 partial derivatives agree with central finite differences"
has "$e/comp_graph.txt" "f = sigmoid(z)       0.731059     1.00000000"
has "$e/comp_graph.txt" "x1                  -2.000000    -0.58983580    -0.58983580         ok"
has "$e/graph.txt" "sigmoid(w0*x0 + w1*x1 + w2)  sigmoid     0.7310585786"
[ "$(grep -c 'backward/forward' "$e/backward_cost.txt" 2>/dev/null)" = 2 ] || fail "backward_cost: two timing lines"
# text 001 P1 (f = sigmoid(h1 - h2) at the given point) and text 004 Q1, their numbers
has "$e/p1_graph.txt" "sigmoid     0.01798620996       1"
has "$e/p1_graph.txt" "x1                                       leaf        1                   0.03532541243"
has "$e/p1_graph.txt" "x3*w4                                    mul         4                   -0.01766270621"
has "$e/two_layer_xent.txt" "l(y_hat, y) = -log y_hat[1] = 0.07888973"
has "$e/two_layer_xent.txt" "ok: autograd = by hand = finite differences"
has "$e/two_layer_xent.txt" "hidden unit 1 is off"
exists "$e/comp_graph.dot" "$e/graph.dot" "$e/p1_graph.dot"
command -v dot >/dev/null && exists "$e/graph.png" "$e/comp_graph.png"

# 2. convolution arithmetic, exactly
e=$tmp/02_conv_arithmetic/conv_arith.md
has "$e" "| 48 x 64 x 10 | 46 x 62 x 20 | 1820 | 5133600 | yes |"
has "$e" "| 98 x 98 x 16 | 25 x 25 x 64 | 36928 | 23040000 | yes |"
has "$e" "| 99 x 99 x 3 | 50 x 50 x 6 | 441060000 | 441045000 |"
has "$e" "| 99 x 99 x 3 | 50 x 50 x 6 | 168 | 405000 | yes |"
toy=$(sed -n '/^filter 1:/,/^$/p' "$e" | tr -s ' \n' ' ')
[ "$toy" = "filter 1: 9 -10 45 -10 11 -38 -5 4 13 filter 2: 21 78 45 44 40 31 82 28 97 " ] ||
  fail "toy convolution: got '$toy'"
has "$e" "ok: deepc's conv2d agrees"

# 3. optimizers
for f in weight_decay adam_bias_correction; do has "$tmp/03_optimizers/$f.txt" "ok: "; done
# text 004 Q2: beta1 = 0.9, G = 2: E[m_t] = (1 - 0.9^t) G without correction, G with it
for row in "2 0.1900 0.3800" "10 0.6513 1.3026" "100 1.0000 1.9999"; do
  set -- $row
  awk -v t=$1 -v b=$2 -v m=$3 '$1 == t { f = 1; exit !($2 == b && $4 == m && $3 > m - 0.02 &&
    $3 < m + 0.02 && $5 > 1.98 && $5 < 2.02) } END { exit !f }' \
    "$tmp/03_optimizers/adam_bias_correction.txt" || fail "adam: the t = $1 row is not ($2, ~$3, $3, ~2)"
done

# 4. layer library, solver, MNIST
e=$tmp/04_solver
has "$e/binary.md" "train 500, validation 250, test 250 samples"
[ "$(grep -c '^| .* %.*|$' "$e/binary.md")" = 12 ] || fail "solver: 12 model rows (5 hidden sizes)"
[ "$(grep -c 'hidden units chosen on validation' "$e/binary.md")" = 2 ] || fail "solver: two chosen sizes"
floor "$e/binary.md" "^\| logistic regression" 85
floor "$e/binary.md" "^\| linear SVM" 85
e=$tmp/04_solver/mnist.md
floor "$e" "softmax regression" 70
floor "$e" "two-layer network" 70
floor "$e" "^\| CNN \|" 50
floor "$e" "CNN \+ dropout" 50
has "$tmp/04_solver/layers_check.txt" "ok: every layer's backward pass agrees"

# 5. deep MLP: the fixed-seed output, 31 gradient norms, the optimizer curves
e=$tmp/05_deep_mlp
has "$e/deep_mlp.txt" "logits   -0.107551 +0.051573 +0.145771"
[ "$(grep -cE '^ +[0-9]+  [0-9.]+e[-+][0-9]+' "$e/deep_mlp.txt")" = 31 ] || fail "deep_mlp: 31 gradient norms"
[ "$(wc -l < "$e/optim.csv")" = $((3 * 31 + 1)) ] || fail "deep_mlp: optim.csv rows"
exists "$e/gradnorm.png" "$e/weight_norm.png" "$e/curves_all.png" "$e/curves_nesterov.png"

# 6. search: 12 runs, pooling 4,3,1 among them, the winner retrained, weakest classes named
e=$tmp/06_fashion_search
[ "$(grep -c ',ok$' "$e/search/search.csv" 2>/dev/null)" = 12 ] || fail "search: 12 finished runs"
grep -q 'model.pool=4,3,1' "$e/search/search.csv" || fail "search: no MaxPool2d(4,3,1) run"
floor "$e/best.log" "test accuracy" 40
[ "$(wc -l < "$e/weakest.txt")" = 3 ] || fail "search: three weakest classes"
exists "$e/best/curves.png" "$e/best_eval.md"
ls "$e"/best/tb/events.out.tfevents.* >/dev/null 2>&1 || fail "search: no TensorBoard events"

# 7-9: accuracies, tables and curves
floor "$tmp/07_mlp_gray/mlp.log" "test accuracy" 15
exists "$tmp/07_mlp_gray/mlp/curves.png"
[ "$(grep -c '^| [a-z_]* | .*%' "$tmp/08_vgg11/results.md")" = 4 ] || fail "vgg11: four rows"
exists "$tmp/08_vgg11/compare.png"
[ "$(grep -c '^| [a-z0-9_]* | .*%' "$tmp/09_transfer/results.md")" = 4 ] || fail "transfer: four rows"
exists "$tmp/09_transfer/compare.png"

if [ $failures -ne 0 ]; then
  echo "$failures check(s) failed; the run's log:"
  tail -40 "$tmp/all.log"
  exit 1
fi
echo "all exercise checks passed"
