#!/usr/bin/env bash
# Scaling of data-parallel training on this machine, cnn_fashion with a global batch of 64:
# 1 rank x 2 threads against 2 ranks x 1 thread (and 1 x 1 as the base), deepc (bench/dist_bench.c)
# and PyTorch's DDP with gloo (bench/torch_dist_bench.py, Debian's torch), alternating in rounds
# so both see the same machine load; then `deepc train configs/fashion_cnn.ini` on 6,400 real
# Fashion-MNIST images both ways (training samples/s from the progress lines).
# usage: bench/dist_scaling.sh [BUILD_DIR] [ROUNDS]   (default build, 3)
set -u
BUILD=${1:-build}
ROUNDS=${2:-3}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$BUILD/bench/dist_bench"
PY=/usr/bin/python3
[ -x "$BENCH" ] || { echo "build first: $BENCH missing"; exit 1; }
command -v mpirun >/dev/null || { echo "mpirun not found (apt-get install libopenmpi-dev)"; exit 1; }
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader
MPI="mpirun --allow-run-as-root --oversubscribe --bind-to none"
TORCH=0
$PY -c "import torch.distributed as d; assert d.is_gloo_available()" 2>/dev/null && TORCH=1

echo "== training steps on a fixed batch (cnn_fashion, batch 64, Adam), $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
  OMP_NUM_THREADS=1 "$BENCH" --steps 30
  OMP_NUM_THREADS=2 "$BENCH" --steps 30
  OMP_NUM_THREADS=1 $MPI -np 2 "$BENCH" --steps 30
  if [ $TORCH = 1 ]; then
    OMP_NUM_THREADS=1 $PY "$SRC/bench/torch_dist_bench.py" --steps 30
    OMP_NUM_THREADS=2 $PY "$SRC/bench/torch_dist_bench.py" --steps 30
    OMP_NUM_THREADS=1 $MPI -np 2 -x TORCH_DIST_PORT=$((29500 + round)) $PY \
      "$SRC/bench/torch_dist_bench.py" --steps 30
  fi
done

if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || [ -n "${DEEPC_DATA:-}" ]; then
  echo "== deepc train configs/fashion_cnn.ini, 1 epoch on 6,400 images (+ validation/test)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  set_opts=(--epochs 1 --set data.train_limit=7112 --set data.test_limit=1000 --progress lines)
  rate() { grep -o "[0-9.]* samples/s" "$1" | tail -1; }
  OMP_NUM_THREADS=2 "$BUILD/deepc" train "$SRC/configs/fashion_cnn.ini" --out "$tmp/a" \
    "${set_opts[@]}" >/dev/null 2>"$tmp/a.log"
  echo "1 rank x 2 threads: $(rate "$tmp/a.log"), epoch $(tail -1 "$tmp/a/metrics.csv" | cut -d, -f7) s"
  OMP_NUM_THREADS=1 $MPI -np 2 "$BUILD/deepc" train "$SRC/configs/fashion_cnn.ini" --out "$tmp/b" \
    "${set_opts[@]}" >/dev/null 2>"$tmp/b.log"
  echo "2 ranks x 1 thread: $(rate "$tmp/b.log"), epoch $(tail -1 "$tmp/b/metrics.csv" | cut -d, -f7) s"
fi
