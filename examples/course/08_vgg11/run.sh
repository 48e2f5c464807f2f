#!/usr/bin/env bash
# Exercise 8: VGG11 on 32x32 images, then one improvement at a time: another optimizer (Adam),
# augmentation (random crop with 4 pixels of padding, horizontal flips), a learning-rate
# schedule (cosine); a table of what each change gave and all curves on one plot.
#   bash examples/course/08_vgg11/run.sh [--quick] [--build DIR] [--out DIR] [--cifar DIR]
# --cifar DIR: train on CIFAR-10 (its binary batches in DIR) instead of Fashion-MNIST at 32x32.
# --quick: 128 training images, 1 epoch per variant.
cifar=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in --cifar) cifar=$2; shift ;; *) args+=("$1") ;; esac
  shift
done
source "$(dirname "$0")/../common.sh" "${args[@]}"
common=()
[ -n "$cifar" ] && common+=(--set data.dataset=cifar10 --set "data.dir=$cifar" --set data.resize=0)
[ $quick = 1 ] && common+=(--set data.train_limit=128 --set data.test_limit=64 --set train.eval_batch_size=64 --epochs 1)

names=(baseline adam adam_augment adam_augment_cosine)
labels=("SGD + momentum (baseline)" "Adam" "Adam + augmentation" "Adam + augmentation + cosine")
adam=(--set optim.name=adam --set optim.lr=0.001 --set optim.momentum=0)
aug=(--set data.crop=32 --set data.random_crop=4 --set data.hflip=true)
variant() {
  case $1 in
    baseline) ;;
    adam) echo "${adam[@]}" ;;
    adam_augment) echo "${adam[@]} ${aug[@]}" ;;
    adam_augment_cosine) echo "${adam[@]} ${aug[@]} --set schedule.name=cosine" ;;
  esac
}
step "1. four runs, one change at a time"
for n in "${names[@]}"; do
  # shellcheck disable=SC2046
  "$deepc" train "$here/vgg11.ini" "${common[@]}" $(variant $n) --out "$out/$n" --progress none \
    > "$out/$n.log" 2>&1
  echo "$n: $(grep -o 'test accuracy: [0-9.]*%' "$out/$n.log")"
done

step "2. table and curves"
{
  echo "| run | change | best val acc | test acc | seconds |"
  echo "|---|---|---:|---:|---:|"
  for i in "${!names[@]}"; do
    n=${names[$i]}
    t=$(grep -o 'test accuracy: [0-9.]*%' "$out/$n.log" | grep -o '[0-9.]*%')
    awk -F, -v n="$n" -v l="${labels[$i]}" -v t="$t" 'NR > 1 { if ($5 > b) b = $5; s += $7 }
      END { printf "| %s | %s | %.2f %% | %s | %.0f |\n", n, l, 100 * b, t, s }' "$out/$n/metrics.csv"
  done
} > "$out/results.md"
cat "$out/results.md"
dirs=()
for n in "${names[@]}"; do dirs+=("$out/$n"); done
"$deepc" plot "${dirs[@]}" --labels "$(IFS=,; echo "${labels[*]}")" --title "VGG11, one change at a time" \
  --out "$out/compare.png" >/dev/null
echo "curves: $out/compare.png"
echo "total: $(( $(date +%s) - course_start )) s"
