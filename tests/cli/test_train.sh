#!/usr/bin/env bash
# End-to-end tests of `deepc train/eval/plot/search` on a slice of the real Fashion-MNIST:
# accuracy, the files of a run (CSV, PNG, SVG, TensorBoard events by a format check, report,
# checkpoints), bit-identical resume, eval of a checkpoint, plots of two runs, the search table,
# NaN handling and configuration errors. CTest sets DEEPC_BUILD, DEEPC_SRC and DC_PYTHON.
set -u
DEEPC="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/deepc"
SRC="${DEEPC_SRC:?set DEEPC_SRC}"
PY="${DC_PYTHON:-/usr/bin/python3}"
CHECK="$SRC/tests/cli/check_run.py"
source "$(dirname "$0")/../common.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# expect_error TEXT CMD...: CMD exits non-zero and its stderr contains TEXT.
expect_error() {
  local text=$1
  shift
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  [ $rc -ne 0 ] || fail "'$*' succeeded; expected an error with '$text'"
  grep -qF -- "$text" <<<"$err" || fail "'$*': stderr lacks '$text':"$'\n'"$err"
}

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] &&
  [ ! -d "$SRC/data/fashion-mnist" ] && [ -z "${DEEPC_DATA:-}" ]; then
  echo "SKIP: Fashion-MNIST not installed (scripts/install-deps.sh installs dataset-fashion-mnist)"
  exit 0
fi

# A small, fast model on 3000 training images (2700 + 300 validation) and 1000 test images.
cat >"$tmp/small.ini" <<'EOF'
# small MLP for the tests
[model]
arch = mlp
hidden = 64
batchnorm = false
dropout = 0

[data]
dataset = fashion-mnist
train_limit = 3000
test_limit = 1000
val_split = 0.1
workers = 1

[train]
epochs = 3
batch_size = 32
seed = 7

[optim]
name = adam
lr = 0.002
EOF

# ---- configuration errors (before any data is read) ----
expect_error "cannot open the configuration file" "$DEEPC" train "$tmp/missing.ini"
printf '[optim]\nlerning_rate = 0.1\n' >"$tmp/e1.ini"
expect_error "e1.ini:2:1: unknown key 'lerning_rate' in [optim]" "$DEEPC" train "$tmp/e1.ini"
printf '[optim]\nlrr = 0.1\n' >"$tmp/e2.ini"
expect_error "did you mean 'lr'" "$DEEPC" train "$tmp/e2.ini"
printf '[train]\nepochs = many\n' >"$tmp/e3.ini"
expect_error "e3.ini:2:10: train.epochs: expected an integer, got 'many'" \
  "$DEEPC" train "$tmp/e3.ini"
printf '[optim]\nname = adma\n' >"$tmp/e4.ini"
expect_error "did you mean 'adam'" "$DEEPC" train "$tmp/e4.ini"
expect_error "did you mean 'batch_size'" "$DEEPC" train "$tmp/small.ini" --set train.batch_sise=8
expect_error "expected a number" "$DEEPC" train "$tmp/small.ini" --set optim.lr=fast
expect_error "data.dataset" "$DEEPC" train "$tmp/small.ini" --set data.dataset=/nonexistent/data.npz
# impossible shapes between layers, named by layer
expect_error "model: the layers do not fit" "$DEEPC" train "$tmp/small.ini" \
  --set "model.layers=flatten, linear(784, 100), relu, linear(90, classes)" --set model.arch=layers
expect_error "(Linear)" "$DEEPC" train "$tmp/small.ini" \
  --set "model.layers=flatten, linear(784, 100), relu, linear(90, classes)" --set model.arch=layers
expect_error "optim.lr is required for sgd" "$DEEPC" train "$tmp/small.ini" --set optim.name=sgd \
  --set optim.lr=
expect_error "did you mean 'resnet18'" "$DEEPC" train "$tmp/small.ini" --set model.arch=resnet19
fm_test=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
if [ -f "$fm_test" ]; then
  expect_error "data.test: /nonexistent/test" "$DEEPC" train "$tmp/small.ini" \
    --set data.dataset="$fm_test" --set data.test=/nonexistent/test
fi
"$DEEPC" train --help-config | grep -q "weight_decay" || fail "--help-config lacks weight_decay"
DEEPC_CONV_ALGO=fast expect_error "DEEPC_CONV_ALGO=fast: expected auto, direct or winograd" \
  "$DEEPC" train "$tmp/small.ini"
"$DEEPC" train --help | grep -q "DEEPC_CONV_ALGO" || fail "train --help does not name DEEPC_CONV_ALGO"

# ---- a full run: accuracy and files ----
out=$("$DEEPC" train "$tmp/small.ini" --out "$tmp/run_a" 2>"$tmp/a.log")
rc=$?
[ $rc -eq 0 ] || fail "train failed ($rc): $(tail -5 "$tmp/a.log")"
grep -q "^epoch 3/3 " "$tmp/a.log" || fail "no plain epoch lines when piped: $(cat "$tmp/a.log")"
grep -q $'\r' "$tmp/a.log" && fail "carriage returns (a progress bar) in piped output"
grep -q "^test accuracy: " <<<"$out" || fail "no test accuracy line: $out"
grep -q "Ankle boot" <<<"$out" || fail "no per-class table with class names: $out"
grep -q "curves.png" <<<"$out" || fail "does not say where the curves are"
"$PY" "$CHECK" files "$tmp/run_a" 75 || fail "run files"

# ---- --amp (bfloat16 autocast, float32 master weights): trains as well; the run says so ----
"$DEEPC" train "$tmp/small.ini" --out "$tmp/run_amp" --amp >/dev/null 2>"$tmp/amp.log" ||
  fail "train --amp failed: $(tail -5 "$tmp/amp.log")"
"$PY" "$CHECK" files "$tmp/run_amp" 75 || fail "run files (--amp)"
grep -q "^amp = bf16" "$tmp/run_amp/config.ini" || fail "config.ini lacks amp = bf16"
expect_error "train.amp" "$DEEPC" train "$tmp/small.ini" --set train.amp=fp16

# ---- resume: stop after one epoch, resume, compare with the uninterrupted run bit for bit ----
"$DEEPC" train "$tmp/small.ini" --out "$tmp/run_b" --stop-after 1 >/dev/null 2>"$tmp/b.log" ||
  fail "interrupted run failed: $(tail -3 "$tmp/b.log")"
"$DEEPC" train "$tmp/small.ini" --out "$tmp/run_b" --resume >/dev/null 2>"$tmp/b2.log" ||
  fail "resume failed: $(tail -3 "$tmp/b2.log")"
grep -q "resuming after epoch 1" "$tmp/b2.log" || fail "resume message: $(cat "$tmp/b2.log")"
"$PY" "$CHECK" same-ckpt "$tmp/run_a/last.ckpt" "$tmp/run_b/last.ckpt" || fail "resume differs"
cmp -s <(cut -d, -f1-6 "$tmp/run_a/metrics.csv") <(cut -d, -f1-6 "$tmp/run_b/metrics.csv") ||
  fail "metrics.csv differs after resume"
expect_error "does not exist" "$DEEPC" train "$tmp/small.ini" --out "$tmp/nothing" --resume

# ---- eval of the best checkpoint gives the run's test accuracy ----
ev=$("$DEEPC" eval "$tmp/run_a/best.ckpt" 2>&1) || fail "eval failed: $ev"
acc_eval=$(sed -n 's/^accuracy: \([0-9.]*\)%.*/\1/p' <<<"$ev")
acc_train=$(sed -n 's/^test accuracy: \([0-9.]*\)%.*/\1/p' <<<"$out")
[ -n "$acc_eval" ] && [ "$acc_eval" = "$acc_train" ] ||
  fail "eval accuracy '$acc_eval' vs train's test accuracy '$acc_train'"
grep -q "confusion matrix" <<<"$ev" || fail "eval prints no confusion matrix"
# PyTorch, given the checkpoint's weights, scores the same test images the same
if [ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] && [ -n "$acc_eval" ]; then
  "$PY" "$CHECK" torch-mlp "$tmp/run_a/best.ckpt" 1000 "$acc_eval" || fail "PyTorch disagrees"
fi
expect_error "cannot open the checkpoint" "$DEEPC" eval "$tmp/none.ckpt"

# ---- plot two runs on the same axes ----
"$DEEPC" train "$tmp/small.ini" --out "$tmp/run_c" --set optim.name=sgd --set optim.lr=0.05 \
  --epochs 2 >/dev/null 2>&1 || fail "sgd run failed"
"$DEEPC" plot "$tmp/run_a" "$tmp/run_c" --out "$tmp/both.png" >/dev/null || fail "plot failed"
"$PY" -c "from PIL import Image; im = Image.open('$tmp/both.png'); im.load(); assert im.size[0] > 600" ||
  fail "both.png is not a PNG"
expect_error "metrics.csv" "$DEEPC" plot "$tmp/nothing"

# ---- NaN loss: stops naming the step, or skips when asked ----
expect_error "the loss became" "$DEEPC" train "$tmp/small.ini" --out "$tmp/nan" --set optim.name=sgd \
  --set optim.lr=1e30 --epochs 1
expect_error "batch" "$DEEPC" train "$tmp/small.ini" --out "$tmp/nan" --set optim.name=sgd \
  --set optim.lr=1e30 --epochs 1
"$DEEPC" train "$tmp/small.ini" --out "$tmp/nan2" --set optim.name=sgd --set optim.lr=1e30 \
  --set train.on_nan=skip --epochs 1 >/dev/null 2>&1 || fail "on_nan = skip did not finish"

# ---- grid search: ranked table and the best run's test accuracy ----
s=$("$DEEPC" search "$tmp/small.ini" --grid optim.lr=0.002,0.0001 --set train.epochs=1 \
  --out "$tmp/search" 2>"$tmp/s.log")
[ $? -eq 0 ] || fail "search failed: $(tail -5 "$tmp/s.log")"
grep -q "^   1  optim.lr=" <<<"$s" || fail "no rank 1 row: $s"
grep -q "^   2  optim.lr=" <<<"$s" || fail "no rank 2 row: $s"
grep -q "test accuracy" <<<"$s" || fail "no test accuracy of the best run: $s"
[ -f "$tmp/search/search.md" ] && [ -f "$tmp/search/optim.lr=0.002/metrics.csv" ] ||
  fail "search files missing"
# the better learning rate (0.002) must win over 0.0001 after one epoch
grep -q "^   1  optim.lr=0.002 " <<<"$s" || fail "ranking: $s"
expect_error "did you mean 'lr'" "$DEEPC" search "$tmp/small.ini" --grid optim.lrr=1,2

# ---- the C example of docs/training.md compiles warning-free and runs ----
awk '/^```c$/ { f = 1; next } /^```/ { f = 0 } f' "$SRC/docs/training.md" >"$tmp/doc.c"
sanitize=()
grep -q '^DC_SANITIZE:BOOL=ON' "$DEEPC_BUILD/CMakeCache.txt" 2>/dev/null && sanitize=(-fsanitize=address,undefined)
if ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror "${sanitize[@]}" -I"$SRC/include" "$tmp/doc.c" \
  -o "$tmp/doc.bin" "$DEEPC_BUILD/libdeepc.so" -Wl,-rpath,"$DEEPC_BUILD" -lm 2>"$tmp/doc.cc"; then
  "$tmp/doc.bin" >"$tmp/doc.out" 2>&1 || fail "docs/training.md example failed: $(cat "$tmp/doc.out")"
  grep -q "last validation accuracy" "$tmp/doc.out" || fail "docs/training.md example output"
else
  fail "docs/training.md example does not compile: $(cat "$tmp/doc.cc")"
fi

if [ $failures -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "all train/eval/plot/search tests passed"
