#!/usr/bin/env bash
# `make demo`: the main job. Trains the default CNN (configs/fashion_cnn.ini: three 5x5 conv
# blocks with batch norm and max-pool, dropout, a 64-unit layer, 10 classes) on Fashion-MNIST
# for a few epochs, showing progress, the final test accuracy, the per-class table and where
# the curves are. The Makefile has installed the packages and built deepc before this runs.
# usage: scripts/demo.sh [BUILD_DIR]   (DEMO_EPOCHS=N to change the number of epochs,
#        DEMO_DEVICE=cuda to train on the GPU: `deepc train --device`, docs/cuda.md)
set -euo pipefail
build=${1:-build}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
epochs=${DEMO_EPOCHS:-6}
device=${DEMO_DEVICE:-cpu}
out=runs/demo
deepc="$build/deepc"
# OpenMP threads that spin while waiting steal the cores from the loader thread on small
# machines; let them sleep instead (an explicit setting wins).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

if [ ! -x "$deepc" ]; then
  echo "demo: $deepc not found; run 'make demo' (it builds first)" >&2
  exit 1
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] &&
  [ ! -d data/fashion-mnist ] && [ -z "${DEEPC_DATA:-}" ]; then
  echo "demo: Fashion-MNIST not found: install Debian's dataset-fashion-mnist" \
    "(scripts/install-deps.sh does) or run '$deepc data fetch fashion-mnist'" >&2
  exit 1
fi

dev_args=() # the cpu run stays the config's own
where="$(nproc) cores"
if [ "$device" != cpu ]; then
  dev_args=(--device "$device")
  where="$device"
fi
echo "== deepc demo: the default CNN on Fashion-MNIST, $epochs epochs on $where =="
echo "   config: configs/fashion_cnn.ini (the full run: $deepc train configs/fashion_cnn.ini)"
echo
rm -rf "$out"
start=$(date +%s)
"$deepc" train configs/fashion_cnn.ini --epochs "$epochs" --out "$out" "${dev_args[@]}"
end=$(date +%s)
echo
echo "== done in $((end - start)) s =="
echo "   curves:       $out/curves.png and $out/curves.svg (loss and accuracy, train and validation)"
echo "   report:       $out/report.md (accuracies, per-class table, confusion matrix)"
echo "   TensorBoard:  tensorboard --logdir $out/tb"
echo "   next:         $deepc eval $out/best.ckpt"
echo "                 $deepc train configs/fashion_cnn.ini          (10 epochs: 92.8%)"
echo "                 $deepc plot $out runs/fashion_cnn --out compare.png"
