#!/usr/bin/env bash
# NaN and infinity in `deepc train`: train.detect_anomaly = true stops at the first op that
# produces one, naming the step, the op and its shapes, with no checkpoint written for the
# unfinished epoch; train.on_nan = skip skips such steps and reports how many per epoch.
set -u
source "$(dirname "$0")/lib.sh"
write_npz 200 50
mlp_config "$tmp/a.ini" 2
cat >>"$tmp/a.ini" <<INI
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
