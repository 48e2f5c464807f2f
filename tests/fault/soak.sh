#!/usr/bin/env bash
# Soak test (not in CTest; run by hand, see docs/reliability.md "Long runs"): trains the CNN on
# Fashion-MNIST for SOAK_SECONDS (default 1800) with validation and checkpoints every epoch,
# samples the process's RSS, open file descriptors and threads every SOAK_EVERY seconds, then
# stops it with SIGINT (after the current batch), evaluates best.ckpt on the whole test set and
# reports: RSS after the first epochs vs the last ones, fd and thread counts, final accuracy.
#   tests/fault/soak.sh [BUILD_DIR] [OUT_DIR]     (env: SOAK_SECONDS, SOAK_EVERY, SOAK_SET)
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-${DEEPC_BUILD:-$SRC/build}}
OUT=${2:-$(mktemp -d /tmp/deepc-soak.XXXXXX)}
SECONDS_TOTAL=${SOAK_SECONDS:-1800}
EVERY=${SOAK_EVERY:-5}
PY=/usr/bin/python3
mkdir -p "$OUT"
# a private copy of the binary, so rebuilding the tree meanwhile does not touch the run
cp "$BUILD/deepc" "$OUT/deepc" || exit 1
DEEPC="$OUT/deepc"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

cat >"$OUT/soak.ini" <<'EOF'
# soak: the default CNN (configs/fashion_cnn.ini) with augmentation and two loader threads,
# on 20,000 training images (18,000 + 2,000 validation) so that many epochs fit in the time
[model]
arch = cnn
channels = 32, 32, 64
kernel = 5
pool = 2
batchnorm = true
dropout = 0.3
hidden = 64

[data]
dataset = fashion-mnist
val_split = 0.1
train_limit = 20000
random_crop = 2
hflip = true
workers = 2

[train]
epochs = 100000
batch_size = 64
seed = 0

[optim]
name = adam
lr = 0.001
EOF

# shellcheck disable=SC2086
"$DEEPC" train "$OUT/soak.ini" --out "$OUT/run" --progress lines ${SOAK_SET:-} \
  >"$OUT/train.out" 2>"$OUT/train.log" &
pid=$!
echo "soak: pid $pid, $SECONDS_TOTAL s, samples every $EVERY s, output in $OUT"
echo "t,epochs_done,rss_kb,fds,threads" >"$OUT/samples.csv"
start=$(date +%s)
while kill -0 "$pid" 2>/dev/null; do
  now=$(date +%s)
  t=$((now - start))
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  thr=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
  fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
  ep=0
  [ -f "$OUT/run/metrics.csv" ] && ep=$(($(wc -l <"$OUT/run/metrics.csv") - 1))
  [ -n "$rss" ] && echo "$t,$ep,$rss,$fds,$thr" >>"$OUT/samples.csv"
  if [ "$t" -ge "$SECONDS_TOTAL" ]; then
    kill -INT "$pid" 2>/dev/null
    break
  fi
  sleep "$EVERY"
done
wait "$pid"
echo "soak: training stopped (exit $?)"
"$DEEPC" eval "$OUT/run/best.ckpt" >"$OUT/eval.out" 2>&1
erc=$?
grep -m1 -i "accuracy" "$OUT/eval.out"
"$PY" - "$OUT" "$erc" <<'EOF'
import csv, sys
out, erc = sys.argv[1], int(sys.argv[2])
rows = [dict((k, int(v)) for k, v in r.items()) for r in csv.DictReader(open(out + "/samples.csv"))]
metrics = list(csv.DictReader(open(out + "/run/metrics.csv")))
E = len(metrics)
def rss_at_end_of(e):  # the last sample taken while e epochs were done
    v = [r["rss_kb"] for r in rows if r["epochs_done"] == e]
    return v[-1] if v else None
steady = [r for r in rows if r["epochs_done"] >= 1]
print(f"soak: {E} epochs in {rows[-1]['t']} s, {len(rows)} samples")
for e in sorted(set([1, 2, 3, E // 2, E - 2, E - 1, E])):
    if e >= 1 and rss_at_end_of(e) is not None:
        print(f"  RSS after epoch {e:4d}: {rss_at_end_of(e) / 1024:8.1f} MiB")
first = [r["rss_kb"] for r in rows if 1 <= r["epochs_done"] <= 3]
last = [r["rss_kb"] for r in rows if r["epochs_done"] >= max(E - 3, 4)]
if first and last:
    print(f"  RSS max, epochs 1-3: {max(first) / 1024:.1f} MiB; max, last epochs: "
          f"{max(last) / 1024:.1f} MiB; growth {(max(last) - max(first)) / 1024:+.1f} MiB")
fds = [r["fds"] for r in steady]
thr = [r["threads"] for r in steady]
fds_first = [r["fds"] for r in rows if 1 <= r["epochs_done"] <= 3]
fds_last = [r["fds"] for r in rows if r["epochs_done"] >= max(E - 3, 4)]
if fds:
    # a sample can land while a checkpoint or metrics.csv is open: count the resting number
    print(f"  open fds after epoch 1: min {min(fds)}, max {max(fds)} (resting: epochs 1-3 "
          f"{min(fds_first) if fds_first else '-'}, last epochs {min(fds_last) if fds_last else '-'}); "
          f"threads: min {min(thr)}, max {max(thr)}")
if metrics:
    m = metrics[-1]
    best = max(float(r["val_acc"]) for r in metrics if r["val_acc"])
    print(f"  last epoch: train acc {float(m['train_acc']):.4f}, val acc {float(m['val_acc']):.4f}; best val acc {best:.4f}")
ok = erc == 0 and fds_first and fds_last and min(fds_first) == min(fds_last) and \
    max(fds) - min(fds) <= 2 and first and last and max(last) - max(first) < 64 * 1024
print("soak:", "PASS" if ok else "CHECK (see numbers above)")
sys.exit(0 if ok else 1)
EOF
