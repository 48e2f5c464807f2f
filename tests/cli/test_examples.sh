#!/usr/bin/env bash
# Runs the worked examples: one_hidden_layer (autograd = hand-derived = finite differences, exit
# status says so) and bce_2_500_2 (runs, is seeded and deterministic, dumps its .npy files; the
# numbers are checked against PyTorch by tests/parity/test_examples.py). CTest sets DEEPC_BUILD.
set -u
EX="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/examples"
source "$(dirname "$0")/../common.sh"

# --- one_hidden_layer ---------------------------------------------------------------------------
out=$("$EX/one_hidden_layer" 2>&1) || fail "one_hidden_layer exited non-zero:"$'\n'"$out"
grep -q "all gradients agree" <<<"$out" || fail "one_hidden_layer did not confirm its gradients"
grep -q "dc_gradcheck: passed" <<<"$out" || fail "one_hidden_layer: gradcheck did not pass"
[ "$(grep -c ' ok$' <<<"$out")" -eq 23 ] || fail "one_hidden_layer: expected 23 checked elements (12 + 8 + 3)"
! grep -q MISMATCH <<<"$out" || fail "one_hidden_layer reports a mismatch"
for want in "z1 = W1 x" "h = sigmoid(z1)" "y = W2 h" "loss = 1/2 |y - t|^2" "dL/dW1" "dL/dW2" "dL/dx"; do
  grep -qF "$want" <<<"$out" || fail "one_hidden_layer output lacks '$want'"
done

# --- bce_2_500_2 --------------------------------------------------------------------------------
out=$("$EX/bce_2_500_2" 2>&1) || fail "bce_2_500_2 exited non-zero:"$'\n'"$out"
loss=$(awk '$1 == "loss" { print $2 }' <<<"$out")
# sigmoid outputs start near 1/2, so the loss starts near log 2 = 0.693
awk -v l="$loss" 'BEGIN { exit !(l > 0.4 && l < 1.0) }' || fail "bce_2_500_2: implausible loss '$loss'"
for p in W1 b1 W2 b2; do
  grep -Eq "^$p +\[" <<<"$out" || fail "bce_2_500_2 does not print the gradient of $p"
done
grep -Eq '^W1 +\[500, 2\]' <<<"$out" || fail "bce_2_500_2: W1 gradient shape"
grep -Eq '^b2 +\[2\]' <<<"$out" || fail "bce_2_500_2: b2 gradient shape"
again=$("$EX/bce_2_500_2" 2>&1)
[ "$out" = "$again" ] || fail "bce_2_500_2 is not deterministic for one seed"
other=$("$EX/bce_2_500_2" --seed 7 --batch 5 2>&1) || fail "bce_2_500_2 --seed 7 failed"
[ "$(awk '$1 == "loss" { print $2 }' <<<"$other")" != "$loss" ] || fail "the seed does not change the run"
"$EX/bce_2_500_2" --float32 >/dev/null || fail "bce_2_500_2 --float32 failed"
"$EX/bce_2_500_2" --dump "$tmp" >/dev/null || fail "bce_2_500_2 --dump failed"
for f in x t loss W1 b1 W2 b2 W1_grad b1_grad W2_grad b2_grad; do
  head -c 6 "$tmp/$f.npy" 2>/dev/null | grep -q NUMPY || fail "bce_2_500_2 --dump: no $f.npy"
done
"$EX/bce_2_500_2" --batch 0 >/dev/null 2>&1
[ $? -eq 2 ] || fail "bce_2_500_2 --batch 0 should be a usage error"
"$EX/bce_2_500_2" --bogus >/dev/null 2>&1
[ $? -eq 2 ] || fail "bce_2_500_2 --bogus should be a usage error"

if [ $failures -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all example checks passed"
