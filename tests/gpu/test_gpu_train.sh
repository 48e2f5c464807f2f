#!/usr/bin/env bash
# Each model's training on the GPU against the CPU's: the four workloads of `deepc bench`
# (an MLP, the Fashion-MNIST CNN, VGG11 with batch norm, ResNet34) for 55 steps (5 warm-up + 50)
# from one seed (the same initial weights and synthetic batch on both devices: Philox draws
# are the CPU's on cuda), every step's loss within a relative tolerance of the CPU's (TRAIN_RTOL,
# default 1e-2: float32 sums in another order, cuDNN's algorithms; an estimate until it has run
# on a GPU). GPU_TRAIN_DEVICE=testdev runs the same comparison on the test device, where the
# losses must be equal: that run (label testdev) checks this script where no GPU is.
set -u
DEEPC="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/deepc"
DEV=${GPU_TRAIN_DEVICE:-cuda}
RTOL=${TRAIN_RTOL:-1e-2}
[ "$DEV" = testdev ] && RTOL=0
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$DEEPC" bench mlp_cifar_gray --device "$DEV" --steps 1 --batch 2 >"$tmp/probe" 2>&1; then
  if grep -qE "not available|no CUDA device|not in this build" "$tmp/probe"; then
    echo "SKIP: no CUDA device: $(cat "$tmp/probe")"
    exit 0
  fi
  echo "FAIL: deepc bench --device $DEV: $(cat "$tmp/probe")"
  exit 1
fi
fails=0
for spec in "mlp_cifar_gray 64" "cnn_fashion 32" "vgg11_cifar 8" "resnet34_finetune 4"; do
  read -r w batch <<<"$spec"
  for d in cpu "$DEV"; do
    if ! "$DEEPC" bench "$w" --device "$d" --steps 50 --batch "$batch" --losses \
      >"$tmp/$w-$d.json" 2>"$tmp/$w-$d.err"; then
      echo "FAIL: $w on $d: $(tail -3 "$tmp/$w-$d.err")"
      fails=$((fails + 1))
      continue 2
    fi
  done
  if ! "$PY" - "$tmp/$w-cpu.json" "$tmp/$w-$DEV.json" "$RTOL" "$w" "$DEV" <<'PYEOF'; then
import json, math, sys
last = lambda p: json.loads([l for l in open(p) if l.startswith("{")][-1])
a, b = last(sys.argv[1])["losses"], last(sys.argv[2])["losses"]
rtol, w, dev = float(sys.argv[3]), sys.argv[4], sys.argv[5]
if len(a) != len(b):
    sys.exit(f"FAIL: {w}: {len(a)} cpu losses, {len(b)} on {dev}")
worst = max(abs(x - y) / max(1.0, abs(x)) for x, y in zip(a, b))
bad = [i for i, (x, y) in enumerate(zip(a, b))
       if not (math.isfinite(x) and math.isfinite(y)) or abs(x - y) > rtol * max(1.0, abs(x))]
print(f"{w}: {len(a)} steps, cpu {a[0]:.6g} -> {a[-1]:.6g}, {dev} {b[0]:.6g} -> {b[-1]:.6g}, "
      f"largest relative difference {worst:.3g} (tolerance {rtol:g})")
if bad:
    i = bad[0]
    sys.exit(f"FAIL: {w}: step {i}: cpu {a[i]!r}, {dev} {b[i]!r} ({len(bad)} steps outside)")
PYEOF
    fails=$((fails + 1))
  fi
done
[ "$fails" -eq 0 ] && echo "ok: every workload's losses on $DEV match the cpu's"
exit $((fails > 0))
