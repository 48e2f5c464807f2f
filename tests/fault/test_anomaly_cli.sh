#!/usr/bin/env bash
# NaN and infinity in `deepc train`: train.detect_anomaly = true stops at the first op that
# produces one, naming the step, the op and its shapes, with no checkpoint written for the
# unfinished epoch; train.on_nan = skip skips such steps and reports how many per epoch.
set -u
DEEPC="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/deepc"
PY=${DC_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}
export OMP_NUM_THREADS=1
"$PY" - "$tmp" <<'PYEOF'
import sys, numpy as np
r = np.random.default_rng(1)
for name, n in (("train", 200), ("test", 50)):
    y = r.integers(0, 3, n).astype(np.int64)
    x = (r.standard_normal((n, 16)) + y[:, None]).astype(np.float32)
    np.savez(f"{sys.argv[1]}/{name}.npz", x=x, y=y)
PYEOF
cat >"$tmp/a.ini" <<INI
[model]
arch = mlp
hidden = 16
batchnorm = false
[data]
dataset = $tmp/train.npz
test = $tmp/test.npz
val_split = 0.1
workers = 0
[train]
epochs = 2
batch_size = 20
[optim]
name = sgd
lr = 1e30
INI

# an absurd learning rate: the second step's first Linear overflows
err=$("$DEEPC" train "$tmp/a.ini" --out "$tmp/a" --set train.detect_anomaly=true \
  --progress none 2>&1 >/dev/null)
[ $? -ne 0 ] || fail "detect_anomaly: the run succeeded"
for text in "training stopped at epoch 1, batch 2 (step 2)" "anomaly: forward of 'linear' produced" \
  "(inputs: [20, 16] float32" "train.detect_anomaly is on"; do
  grep -qF -- "$text" <<<"$err" || fail "detect_anomaly: the message lacks '$text': $err"
done
[ -e "$tmp/a/last.ckpt" ] && fail "detect_anomaly: a checkpoint was written for the failed epoch"

# the same without anomaly mode: the loss names the step
err=$("$DEEPC" train "$tmp/a.ini" --out "$tmp/b" --progress none 2>&1 >/dev/null)
grep -qF "the loss became NaN at epoch 1, batch 2 (step 2)" <<<"$err" || fail "on_nan = stop: $err"

# skip: every step after the first is skipped, and the log says how many
log=$("$DEEPC" train "$tmp/a.ini" --out "$tmp/c" --set train.on_nan=skip --progress lines \
  2>&1 >/dev/null)
[ $? -eq 0 ] || fail "on_nan = skip: the run failed: $log"
grep -qE "epoch 1: [0-9]+ steps skipped \(non-finite loss or gradients; [0-9]+ in all\)" <<<"$log" ||
  fail "on_nan = skip: no skipped-steps line: $log"
grep -qE "epoch 2: [0-9]+ steps skipped" <<<"$log" || fail "on_nan = skip: no second line: $log"

[ $failures -eq 0 ] && echo "PASS" || echo "$failures failure(s)"
exit $((failures > 0))
