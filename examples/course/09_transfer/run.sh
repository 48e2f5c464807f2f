#!/usr/bin/env bash
# Exercise 9: two-class transfer learning, four models compared in one plot and one table.
#   bash examples/course/09_transfer/run.sh [--quick] [--build DIR] [--out DIR] [--data DIR]
# --data DIR: a real two-class image folder (DIR/train/<class>/, DIR/val/<class>/, e.g. ants and
# bees), run at 224x224 like the exercise; ResNet-34 then starts from $RESNET34_PTH (torchvision's
# resnet34-b627a593.pth) when that is set. Without it, the folders are written from Fashion-MNIST
# (T-shirt/top vs Shirt, 200 training images per class) and the pretrained ResNet-34 is pretrained
# here on the eight other classes.
data=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in --data) data=$2; shift ;; *) args+=("$1") ;; esac
  shift
done
source "$(dirname "$0")/../common.sh" "${args[@]}"

if [ $quick = 1 ]; then
  sizes=(--pretrain-per-class 30 --finetune-per-class 16 --test-per-class 20)
  pre=(--epochs 1) ft=(--epochs 2)
else
  sizes=(--pretrain-per-class 1000 --finetune-per-class 200 --test-per-class 500)
  pre=() ft=()
fi
real=()
if [ -n "$data" ]; then
  ftdata=$data
  real=(--set data.test="$data/val" --set data.resize=256 --set data.crop=224)
  big=(--set model.width=64 --set model.small_input=false)
else
  step "1. image folders from Fashion-MNIST"
  "$build/examples/transfer_demo" folders "$out/data" --held-out 0,6 "${sizes[@]}" | tail -2
  ftdata=$out/data/finetune
  step "2. pretraining ResNet-34 (width 16) on the eight other classes"
  "$deepc" train "$here/pretrain34.ini" --set "vars.data=$out/data/pretrain" "${pre[@]}" \
    --out "$out/pretrain" --progress none > "$out/pretrain.log" 2>&1
  grep "test accuracy" "$out/pretrain.log"
  weights=$out/pretrain/best.ckpt
  big=()
fi
[ -n "$data" ] && weights=${RESNET34_PTH:-}

step "3. the four models on the two-class task"
train() { # name config extra-args...
  local name=$1 cfg=$2
  shift 2
  "$deepc" train "$here/$cfg" --set "vars.data=$ftdata" "${real[@]}" "${ft[@]}" "$@" \
    --out "$out/$name" --progress none > "$out/$name.log" 2>&1
  echo "$name: $(grep -o 'test accuracy: [0-9.]*%' "$out/$name.log")"
}
train cnn4 cnn4.ini
train cnn4_bn_dropout cnn4_bn.ini
train resnet34_scratch resnet34.ini "${big[@]}"
if [ -n "$weights" ]; then
  train resnet34_pretrained resnet34.ini "${big[@]}" --set "model.pretrained=$weights"
fi

step "4. one plot, one table"
runs=(cnn4 cnn4_bn_dropout resnet34_scratch)
labels="CNN,CNN + BN + dropout,ResNet-34 scratch"
if [ -n "$weights" ]; then runs+=(resnet34_pretrained); labels+=",ResNet-34 pretrained"; fi
dirs=()
for r in "${runs[@]}"; do dirs+=("$out/$r"); done
"$deepc" plot "${dirs[@]}" --labels "$labels" --title "Two-class transfer learning" \
  --out "$out/compare.png" >/dev/null
{
  echo "| model | parameters | final train loss | final val loss | final train acc | final val (test) acc | seconds |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for r in "${runs[@]}"; do
    params=$(grep -o '[0-9,]* parameters' "$out/$r/report.md" | head -1 | cut -d' ' -f1)
    tail -1 "$out/$r/metrics.csv" | awk -F, -v r="$r" -v p="$params" -v s="$(awk -F, 'NR > 1 { t += $7 } END { printf "%.0f", t }' "$out/$r/metrics.csv")" \
      '{ printf "| %s | %s | %.4f | %.4f | %.2f %% | %.2f %% | %s |\n", r, p, $2, $4, 100 * $3, 100 * $5, s }'
  done
} > "$out/results.md"
cat "$out/results.md"
echo "plot: $out/compare.png; runs: $out/{$(IFS=,; echo "${runs[*]}")}"
echo "total: $(( $(date +%s) - course_start )) s"
