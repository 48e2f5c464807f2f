#!/usr/bin/env bash
# `mpirun -np 2 deepc train` against one process on a slice of Fashion-MNIST: the same epochs
# (metrics within float32 rounding), the same weights, one set of outputs written by rank 0, a
# 2-rank checkpoint resumed by one process and the other way round, SyncBatchNorm (a CNN: 2
# ranks of batch 16 normalise like 1 process of batch 32), and a configuration error that ends
# the job cleanly. CTest sets DEEPC_BUILD, DEEPC_SRC and DC_PYTHON.
set -u
DEEPC="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/deepc"
SRC="${DEEPC_SRC:?set DEEPC_SRC}"
PY="${DC_PYTHON:-/usr/bin/python3}"
CMP="$SRC/tests/dist/compare_ckpt.py"
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found (install openmpi-bin / libopenmpi-dev for the data-parallel tests)"
  exit 77
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] &&
  [ ! -d "$SRC/data/fashion-mnist" ] && [ -z "${DEEPC_DATA:-}" ]; then
  echo "SKIP: Fashion-MNIST not installed (scripts/install-deps.sh installs dataset-fashion-mnist)"
  exit 77
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader OMP_NUM_THREADS=1
MPI="mpirun --allow-run-as-root --oversubscribe"
source "$(dirname "$0")/../common.sh"

# close_csv A B RTOL: the loss/accuracy columns of two metrics.csv agree within RTOL.
close_csv() {
  "$PY" -c '
import csv, sys
a, b = list(csv.DictReader(open(sys.argv[1]))), list(csv.DictReader(open(sys.argv[2])))
tol = float(sys.argv[3])
if len(a) != len(b) or not a:
    sys.exit("different epoch counts: %d vs %d" % (len(a), len(b)))
for ra, rb in zip(a, b):
    for k in ("train_loss", "train_acc", "val_loss", "val_acc"):
        x, y = float(ra[k]), float(rb[k])
        if abs(x - y) > tol * max(abs(y), 1e-3):
            sys.exit("epoch %s %s: %r vs %r" % (ra["epoch"], k, x, y))
print("metrics agree over %d epochs" % len(a))
' "$1" "$2" "$3"
}

printf '%s\n' "[model]" "arch = mlp" "hidden = 64" "batchnorm = false" "dropout = 0" \
  "[data]" "dataset = fashion-mnist" "train_limit = 1600" "test_limit = 600" "val_split = 0.1" \
  "workers = 1" "[train]" "epochs = 2" "batch_size = 32" "seed = 7" \
  "[optim]" "name = sgd" "lr = 0.05" "momentum = 0.9" >"$tmp/mlp.ini"

# 1. two ranks train what one process trains
"$DEEPC" train "$tmp/mlp.ini" --out "$tmp/one" --progress none >"$tmp/one.out" 2>&1 ||
  fail "1 process: $(tail -3 "$tmp/one.out")"
$MPI -np 2 "$DEEPC" train "$tmp/mlp.ini" --out "$tmp/two" --progress lines >"$tmp/two.out" 2>&1 ||
  fail "2 ranks: $(tail -5 "$tmp/two.out")"
close_csv "$tmp/two/metrics.csv" "$tmp/one/metrics.csv" 1e-5 || fail "2-rank metrics differ"
"$PY" "$CMP" "$tmp/two/last.ckpt" "$tmp/one/last.ckpt" 1e-5 || fail "2-rank weights differ"
for f in metrics.csv curves.png report.md config.ini best.ckpt last.ckpt; do
  [ -s "$tmp/two/$f" ] || fail "2 ranks: $f missing"
done
n=$(grep -c "^test accuracy" "$tmp/two.out")
[ "$n" = 1 ] || fail "2 ranks: the summary was printed $n times (rank 0 only expected)"
n=$(grep -c "^training " "$tmp/two.out")
[ "$n" = 1 ] || fail "2 ranks: the header was printed $n times"

# 2. a 2-rank checkpoint resumes in one process, and a 1-process one on 2 ranks
$MPI -np 2 "$DEEPC" train "$tmp/mlp.ini" --out "$tmp/res" --stop-after 1 --progress none \
  >"$tmp/res1.out" 2>&1 || fail "2 ranks, stop after 1: $(tail -3 "$tmp/res1.out")"
"$DEEPC" train "$tmp/mlp.ini" --out "$tmp/res" --resume --progress none >"$tmp/res2.out" 2>&1 ||
  fail "1-process resume of a 2-rank run: $(tail -3 "$tmp/res2.out")"
close_csv "$tmp/res/metrics.csv" "$tmp/one/metrics.csv" 1e-5 || fail "resumed metrics differ"
"$PY" "$CMP" "$tmp/res/last.ckpt" "$tmp/one/last.ckpt" 1e-5 || fail "resumed weights differ"
"$DEEPC" train "$tmp/mlp.ini" --out "$tmp/res3" --stop-after 1 --progress none >/dev/null 2>&1
$MPI -np 2 "$DEEPC" train "$tmp/mlp.ini" --out "$tmp/res3" --resume --progress none \
  >"$tmp/res3.out" 2>&1 || fail "2-rank resume of a 1-process run: $(tail -3 "$tmp/res3.out")"
"$PY" "$CMP" "$tmp/res3/last.ckpt" "$tmp/one/last.ckpt" 1e-5 || fail "2-rank resume differs"

# 3. SyncBatchNorm: a CNN with batch norm, 2 x 16 samples normalised as 1 x 32. tanh and no
# pooling: with ReLU/max pooling two float32 runs that round differently drift apart at the
# kinks (a float32 run against a float64 one does too), see docs/distributed.md.
printf '%s\n' "[model]" "arch = cnn" "channels = 4, 8" "pool = 1" "activation = tanh" \
  "batchnorm = true" "dropout = 0" "hidden = 16" \
  "[data]" "dataset = fashion-mnist" "train_limit = 640" "test_limit = 300" \
  "val_split = 0.1" "workers = 1" "[train]" "epochs = 1" "batch_size = 32" "seed = 3" \
  "sync_batchnorm = true" "[optim]" "name = sgd" "lr = 0.05" "momentum = 0.9" >"$tmp/cnn.ini"
"$DEEPC" train "$tmp/cnn.ini" --out "$tmp/cnn1" --progress none >"$tmp/cnn1.out" 2>&1 ||
  fail "cnn, 1 process: $(tail -3 "$tmp/cnn1.out")"
$MPI -np 2 "$DEEPC" train "$tmp/cnn.ini" --out "$tmp/cnn2" --progress none >"$tmp/cnn2.out" 2>&1 ||
  fail "cnn, 2 ranks: $(tail -3 "$tmp/cnn2.out")"
close_csv "$tmp/cnn2/metrics.csv" "$tmp/cnn1/metrics.csv" 1e-5 ||
  fail "SyncBatchNorm metrics differ"
"$PY" "$CMP" "$tmp/cnn2/last.ckpt" "$tmp/cnn1/last.ckpt" 1e-4 || fail "SyncBatchNorm weights differ"

# 4. an error ends the job on every rank with its message
out=$($MPI -np 2 "$DEEPC" train "$tmp/mlp.ini" --out "$tmp/bad" --set train.batch_size=33 2>&1)
[ $? -ne 0 ] || fail "batch 33 on 2 ranks succeeded"
grep -qF "train.batch_size = 33 is the batch of the whole job and must be a multiple of its 2" \
  <<<"$out" || fail "batch 33: message missing:"$'\n'"$out"
grep -qF "ending the job on every rank" <<<"$out" || fail "batch 33: no abort message"

if [ $failures -eq 0 ]; then
  echo "deepc train under mpirun: passed"
else
  echo "deepc train under mpirun: $failures failed"
fi
exit $((failures > 0))
