#!/usr/bin/env bash
# Every configuration in configs/ loads and trains: one short epoch on a few hundred images of
# its data set (the full runs and their accuracies are in docs/results.md). CTest sets
# DEEPC_BUILD and DEEPC_SRC.
set -u
DEEPC="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/deepc"
SRC="${DEEPC_SRC:?set DEEPC_SRC}"
source "$(dirname "$0")/../common.sh"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

for cfg in "$SRC"/configs/*.ini; do
  name=$(basename "$cfg" .ini)
  out=$("$DEEPC" train "$cfg" --set data.train_limit=400 --set data.test_limit=200 --epochs 1 \
    --out "$tmp/$name" --progress none 2>&1) || {
    fail "$name: deepc train failed:"$'\n'"$(tail -5 <<<"$out")"
    continue
  }
  grep -q "test accuracy: " <<<"$out" || fail "$name: no test accuracy line"
  [ -s "$tmp/$name/best.ckpt" ] || fail "$name: no best.ckpt"
done
[ $failures -eq 0 ] || exit 1
echo "every configuration in configs/ trains"
