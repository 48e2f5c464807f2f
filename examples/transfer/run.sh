#!/usr/bin/env bash
# Transfer learning on Fashion-MNIST in one command (results and curves: docs/zoo.md):
#   bash examples/transfer/run.sh [--quick] [--build DIR] [--out DIR]
# 1. `transfer_demo folders`: PNG image folders from Debian's Fashion-MNIST: eight classes to
#    pretrain on, the two held out (T-shirt/top, Shirt) to fine-tune on, with 20 images each.
# 2. `deepc train pretrain.ini`: a small ResNet-18 (width 16, 3x3 stem) on the eight classes.
# 3. `deepc train finetune.ini` twice on the two new classes: from the pretrained checkpoint
#    (model.pretrained: its 8-class head is replaced by a fresh 2-class one, the backbone learns
#    at optim.backbone_lr) and from random weights.
# 4. `deepc convert` the checkpoint to a PyTorch .pth, and `transfer_demo finetune`: the same
#    fine-tuning written with the C API, from that .pth.
# 5. `deepc plot`: both config runs on one figure; results.md: the accuracies.
# --quick: tiny folders and one or two epochs (the CI check that every step works).
# --build DIR: use this build (default: configure and build ./build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
quick=0
build=""
out="$root/runs/transfer"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --build) build=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$build" ]; then
  build="$root/build"
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" --target deepc_cli example_transfer >/dev/null
fi
deepc="$build/deepc"
demo="$build/examples/transfer_demo"
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

if [ $quick = 1 ]; then
  sizes=(--pretrain-per-class 40 --finetune-per-class 8 --test-per-class 40)
  pre_epochs=1 ft_epochs=2
else
  sizes=(--pretrain-per-class 1000 --finetune-per-class 20 --test-per-class 500)
  pre_epochs=4 ft_epochs=15
fi
rm -rf "$out"
mkdir -p "$out"
start=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - start )) s)"; }

step "1. image folders"
"$demo" folders "$out/data" --held-out 0,6 "${sizes[@]}"

step "2. pretraining on eight classes"
"$deepc" train "$here/pretrain.ini" --set "vars.data=$out/data" --epochs $pre_epochs \
  --out "$out/pretrain" > "$out/pretrain.log" 2>&1
grep "test accuracy" "$out/pretrain.log"

step "3. fine-tuning on the two held-out classes: pretrained, then from random weights"
"$deepc" train "$here/finetune.ini" --set "vars.data=$out/data" --epochs $ft_epochs \
  --set "model.pretrained=$out/pretrain/best.ckpt" --out "$out/pretrained" > "$out/pretrained.log" 2>&1
grep "test accuracy" "$out/pretrained.log"
"$deepc" train "$here/finetune.ini" --set "vars.data=$out/data" --epochs $ft_epochs \
  --set model.pretrained= --set optim.backbone_lr= --out "$out/scratch" > "$out/scratch.log" 2>&1
grep "test accuracy" "$out/scratch.log"

step "4. the same with the C API, from the checkpoint converted to PyTorch's format"
"$deepc" convert "$out/pretrain/best.ckpt" "$out/pretrained.pth"
"$deepc" inspect "$out/pretrained.pth" | tail -1
"$demo" finetune "$out/data/finetune" "$out/pretrained.pth" --epochs $ft_epochs \
  --curves "$out/c_pretrained.csv" | tee "$out/c_api.log"
"$demo" finetune "$out/data/finetune" none --epochs $ft_epochs --curves "$out/c_scratch.csv" |
  tee -a "$out/c_api.log"

step "5. curves and results"
"$deepc" plot "$out/pretrained" "$out/scratch" --labels "pretrained,from scratch" \
  --title "Fine-tuning on T-shirt/top vs Shirt" --out "$out/finetune_curves.svg"
"$deepc" plot "$out/pretrained" "$out/scratch" --labels "pretrained,from scratch" \
  --title "Fine-tuning on T-shirt/top vs Shirt" --out "$out/finetune_curves.png"
acc() { grep -o "test accuracy: [0-9.]*%" "$1" | grep -o "[0-9.]*%"; }
{
  echo "| run | test accuracy |"
  echo "|---|---|"
  echo "| pretraining, 8 classes | $(acc "$out/pretrain.log") |"
  echo "| fine-tuning, pretrained (deepc train) | $(acc "$out/pretrained.log") |"
  echo "| fine-tuning, from scratch (deepc train) | $(acc "$out/scratch.log") |"
  echo "| fine-tuning, pretrained (C API) | $(grep '^pretrained' "$out/c_api.log" | grep -o '[0-9.]*%' | head -1) |"
  echo "| fine-tuning, from scratch (C API) | $(grep '^from scratch' "$out/c_api.log" | grep -o '[0-9.]*%' | head -1) |"
} > "$out/results.md"
cat "$out/results.md"
echo "curves: $out/finetune_curves.svg (.png); runs: $out/{pretrain,pretrained,scratch}"
echo "total: $(( $(date +%s) - start )) s"
