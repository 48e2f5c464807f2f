#!/usr/bin/env bash
# The configuration keys of `deepc train` come from one table (src/train/spec.h): docs/training.md's
# key tables equal `deepc train --help-keys --markdown`, `--help` ends with every key, and a wrong
# value is refused at load naming file, line and column, or the --set override. No data needed.
# CTest sets DEEPC_BUILD and DEEPC_SRC.
set -u
DEEPC="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/deepc"
SRC="${DEEPC_SRC:?set DEEPC_SRC}"
source "$(dirname "$0")/../common.sh"

# docs/training.md cannot drift from the table
"$SRC/scripts/train-keys-doc.sh" "$DEEPC" --check >"$tmp/diff" 2>&1 ||
  fail "docs/training.md's key tables are stale:"$'\n'"$(head -40 "$tmp/diff")"

# every key of the markdown tables is in --help and in --help-keys
"$DEEPC" train --help >"$tmp/help" || fail "train --help failed"
"$DEEPC" train --help-keys >"$tmp/keys" || fail "train --help-keys failed"
"$DEEPC" train --help-keys --markdown | sed -n 's/^| \([a-z_]*\) | .*/\1/p' | grep -v '^key$' \
  >"$tmp/names"
[ "$(wc -l <"$tmp/names")" -ge 60 ] || fail "too few keys in the markdown: $(wc -l <"$tmp/names")"
while read -r k; do
  grep -qw -- "$k" "$tmp/help" || fail "train --help does not list '$k'"
  grep -q "^  $k " "$tmp/keys" || fail "train --help-keys does not explain '$k'"
done <"$tmp/names"
"$DEEPC" train --help-config | grep -q "weight_decay" || fail "--help-config (old name) broke"

# expect_error TEXT CMD...: CMD exits non-zero and its stderr contains TEXT.
expect_error() {
  local text=$1
  shift
  local err
  err=$("$@" 2>&1 >/dev/null) && fail "'$*' succeeded; expected an error with '$text'"
  grep -qF -- "$text" <<<"$err" || fail "'$*': stderr lacks '$text':"$'\n'"$err"
}
printf '[data]\nval_split = 0.5\n[optim]\nbetas = 0.9\n' >"$tmp/b1.ini"
expect_error "b1.ini:4:9: optim.betas: expected exactly 2 values, got '0.9'" \
  "$DEEPC" train "$tmp/b1.ini"
printf '[train]\nbatch_size = 0\n' >"$tmp/b2.ini"
expect_error "b2.ini:2:14: train.batch_size: must be >= 1, got 0" "$DEEPC" train "$tmp/b2.ini"
printf '[data]\nval_split = 0.2\n' >"$tmp/ok.ini"
expect_error "--set data.val_split=1: data.val_split: must be in [0, 1), got 1" \
  "$DEEPC" train "$tmp/ok.ini" --set data.val_split=1
expect_error "--set train.epochs=ten: train.epochs: expected an integer" \
  "$DEEPC" train "$tmp/ok.ini" --epochs ten
expect_error "--set model.pool=4,3,1,0: model.pool: expected at most 3 values" \
  "$DEEPC" train "$tmp/ok.ini" --set model.pool=4,3,1,0

[ "$failures" -eq 0 ] || exit 1
echo "ok: key tables, --help lists and load-time value checks"
