#!/usr/bin/env bash
# The optimizer examples and guide: examples/adam_bias_correction and examples/weight_decay run,
# confirm their formulas (exit status and "ok:" verdict), print exactly the output shown in
# docs/optim.md and the same with 1 or 2 threads; every ```c program in docs/optim.md compiles
# warning-free against the built library, exits 0 and prints its ```output block.
# CTest sets DEEPC_BUILD and DEEPC_SRC.
set -u
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}" # no spinning threads on a busy machine
build="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}"
doc="${DEEPC_SRC:?set DEEPC_SRC to the source directory}/docs/optim.md"
source "$(dirname "$0")/../common.sh"

# split the guide: N.c (+ N.out when an ```output block follows it) for every ```c block, and
# ex_NAME.out for the ```output block after a ```sh block that runs build/examples/NAME
awk -v dir="$tmp" '
  /^```c$/ { n++; file = dir "/" n ".c"; inblock = 1; last = "c"; next }
  /^```sh$/ { file = ""; inblock = 1; last = "sh"; next }
  /^```output$/ {
    if (last == "c") file = dir "/" n ".out";
    else if (last == "sh" && ex != "") file = dir "/ex_" ex ".out";
    else file = "";
    inblock = 1; last = ""; ex = ""; next
  }
  /^```/ && inblock { inblock = 0; if (file != "") close(file); next }
  inblock && last == "sh" { if (match($0, /build\/examples\/[a-z_0-9]+/)) ex = substr($0, RSTART + 15, RLENGTH - 15); next }
  inblock { if (file != "") print > file; next }
' "$doc"

# --- the two example programs ----------------------------------------------------------------
for ex in adam_bias_correction weight_decay; do
  out=$(OMP_NUM_THREADS=2 "$build/examples/$ex" 2>&1) || fail "$ex exited non-zero:"$'\n'"$out"
  grep -q '^ok: ' <<<"$out" || fail "$ex did not confirm its formulas"
  ! grep -q MISMATCH <<<"$out" || fail "$ex reports a mismatch"
  if [ -f "$tmp/ex_$ex.out" ]; then
    diff <(cat "$tmp/ex_$ex.out") <(echo "$out") >"$tmp/$ex.diff" ||
      fail "$ex prints something else than docs/optim.md shows:"$'\n'"$(cat "$tmp/$ex.diff")"
  else
    fail "docs/optim.md has no output block for build/examples/$ex"
  fi
  one=$(OMP_NUM_THREADS=1 "$build/examples/$ex" 2>&1)
  [ "$one" = "$out" ] || fail "$ex prints different numbers with 1 and 2 threads"
done
out=$("$build/examples/adam_bias_correction")
# G = 2. t = 2: 1 - 0.9^2 = 0.19, E[m_2] about 0.38 = 0.19 * 2; corrected about 2
awk '$1 == 2 { exit !($2 == "0.1900" && $3 > 0.37 && $3 < 0.39 && $4 == "0.3800" && $5 > 1.98 && $5 < 2.02) }' \
  <<<"$out" || fail "adam_bias_correction: the t = 2 row is not (0.19, ~0.38, 0.38, ~2)"
awk '$1 == 10 { exit !($4 == "1.3026" && $5 > 1.98 && $5 < 2.02) }' <<<"$out" ||
  fail "adam_bias_correction: the t = 10 row is not (1.3026, ~2)"
for t in 2 10 100; do
  grep -Eq "^ +$t " <<<"$out" || fail "adam_bias_correction prints no row for t = $t"
done
grep -q 'shrink factor 1 - eta\*lambda = 0.995' <<<"$("$build/examples/weight_decay")" ||
  fail "weight_decay does not print the shrink factor"

# --- the guide's programs --------------------------------------------------------------------
count=$(ls "$tmp"/*.c 2>/dev/null | wc -l)
[ "$count" -ge 3 ] || fail "expected at least 3 C programs in docs/optim.md, found $count"
cd "$tmp" || exit 1
for src in $(ls "$tmp"/*.c 2>/dev/null | sort -V); do
  n=$(basename "$src" .c)
  if ! ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -I"$DEEPC_SRC/include" "$src" -o "$n.bin" \
    -L"$build" -ldeepc -Wl,-rpath,"$build" -lm 2>"$n.cc"; then
    fail "program $n of docs/optim.md does not compile:"$'\n'"$(cat "$n.cc")"
    continue
  fi
  if ! ./"$n.bin" >"$n.got" 2>"$n.err"; then
    fail "program $n of docs/optim.md exited non-zero:"$'\n'"$(cat "$n.err")"
    continue
  fi
  if [ -f "$n.out" ] && ! diff "$n.out" "$n.got" >"$n.diff"; then
    fail "program $n of docs/optim.md prints something else than its output block:"$'\n'"$(cat "$n.diff")"
  fi
done

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)"
  exit 1
fi
echo "optimizer examples and docs/optim.md: all checks passed"
