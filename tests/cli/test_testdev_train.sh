#!/usr/bin/env bash
# `deepc train --device testdev` against --device cpu on a slice of Fashion-MNIST (an MLP, and
# the default CNN of configs/fashion_cnn.ini for a few steps): the same
# logged losses (metrics.csv without its seconds column) and checkpoints with the same header and
# the same bytes in every tensor (the seconds column of trainer.history aside: wall time); an
# absent device (cuda in this build) fails before any work, naming the devices the build has.
set -u
DEEPC="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/deepc"
source "$(dirname "$0")/../common.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

err=$("$DEEPC" train /nonexistent.ini --device cuda 2>&1) && fail "--device cuda succeeded"
grep -qF "which has: cpu" <<<"$err" || fail "--device cuda: no list of devices in: $err"
if ! "$DEEPC" train --help | grep -qF -- "--device"; then fail "train --help lacks --device"; fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  echo "SKIP: Fashion-MNIST not installed"
  exit $((failures > 0))
fi
if ! grep -qF testdev <<<"$err"; then
  echo "SKIP: this build has no test device (-DDC_TESTDEV=ON)"
  exit $((failures > 0))
fi
cat >"$tmp/s.ini" <<'INI'
[model]
arch = mlp
hidden = 32
batchnorm = false
dropout = 0
[data]
dataset = fashion-mnist
train_limit = 256
test_limit = 128
val_split = 0.25
workers = 1
[train]
epochs = 2
batch_size = 32
seed = 3
[optim]
name = adam
lr = 0.002
INI
# The same run on both devices: logged losses and checkpoints equal.
compare_runs() { # name ini
  for d in cpu testdev; do
    "$DEEPC" train "$2" --device "$d" --out "$tmp/$1-$d" --progress none >"$tmp/$1-$d.out" \
      2>"$tmp/$1-$d.err" || fail "$1: train --device $d: $(cat "$tmp/$1-$d.err")"
  done
  cut -d, -f1-6 "$tmp/$1-cpu/metrics.csv" >"$tmp/$1-cpu.csv" 2>/dev/null
  cut -d, -f1-6 "$tmp/$1-testdev/metrics.csv" >"$tmp/$1-testdev.csv" 2>/dev/null
  [ -s "$tmp/$1-cpu.csv" ] || fail "$1: no metrics.csv"
  cmp -s "$tmp/$1-cpu.csv" "$tmp/$1-testdev.csv" ||
    fail "$1: losses differ: $(diff "$tmp/$1-cpu.csv" "$tmp/$1-testdev.csv")"
  for f in last.ckpt best.ckpt; do
    msg=$("${DC_PYTHON:-/usr/bin/python3}" "$DEEPC_SRC/tests/dist/compare_ckpt.py" \
      "$tmp/$1-cpu/$f" "$tmp/$1-testdev/$f" --exact) ||
      fail "$1: $f differs between cpu and testdev: $msg"
  done
}
compare_runs mlp "$tmp/s.ini"
# The default CNN of `make demo` (configs/fashion_cnn.ini: conv blocks with batch norm, dropout),
# Adam and the cosine schedule, a few steps on a slice.
sed -e 's/^epochs = .*/epochs = 2/' -e 's/^\[data\]$/[data]\ntrain_limit = 160\ntest_limit = 64\nworkers = 1/' \
  "$DEEPC_SRC/configs/fashion_cnn.ini" >"$tmp/c.ini"
compare_runs cnn "$tmp/c.ini"
[ $failures -eq 0 ] && echo "test_testdev_train: ok"
exit $((failures > 0))
