#!/usr/bin/env bash
# End-to-end tests of `deepc graph` and the `deepc` command skeleton: values and gradients of
# known expressions against hand-derived numbers, DOT/SVG output, and the bad-input messages.
# CTest sets DEEPC_BUILD (the build dir with the deepc binary) and DEEPC_SRC.
set -u
DEEPC="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/deepc"
source "$(dirname "$0")/../common.sh"

# expect_row OUT NODE VALUE GRAD: the TSV row of NODE has this value and gradient (|diff| <= 1e-9
# relative); GRAD may be '-' (no gradient).
expect_row() {
  local out=$1 node=$2 value=$3 grad=$4
  local row
  row=$(awk -F'\t' -v n="$node" '$1 == n { print; exit }' <<<"$out")
  if [ -z "$row" ]; then
    fail "no row '$node' in:"$'\n'"$out"
    return
  fi
  awk -F'\t' -v v="$value" -v g="$grad" '
    function near(a, b) { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b; return d <= 1e-9 + 1e-9 * m }
    { ok = near($3 + 0, v + 0) && (g == "-" ? $4 == "-" : ($4 != "-" && near($4 + 0, g + 0))); exit !ok }' \
    <<<"$row" || fail "row '$node': got '$row', want value $value grad $grad"
}

# expect_error TEXT CMD...: CMD exits non-zero and its stderr contains TEXT.
expect_error() {
  local text=$1
  shift
  local err rc
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  [ $rc -ne 0 ] || fail "'$*' succeeded; expected an error with '$text'"
  grep -qF -- "$text" <<<"$err" || fail "'$*': stderr lacks '$text':"$'\n'"$err"
}

# --- the issue's example: sigmoid(w1*x1 + w2*x2) * w3 -----------------------------------------
# z = w1 x1 + w2 x2 = 0.5 - 0.5 = 0, s = sigmoid(0) = 1/2, out = s w3 = 1.
# d out/d s = w3 = 2; d out/d z = w3 s (1 - s) = 1/2; d out/d w1 = x1/2, d out/d x1 = w1/2,
# d out/d w2 = x2/2, d out/d x2 = w2/2, d out/d w3 = s.
expr="sigmoid(w1*x1 + w2*x2) * w3"
out=$("$DEEPC" graph "$expr" --set x1=1,x2=2 --set w1=0.5 --set w2=-0.25 --set=w3=2 --format tsv) ||
  fail "deepc graph '$expr' failed"
expect_row "$out" w1 0.5 0.5
expect_row "$out" x1 1 0.25
expect_row "$out" w2 -0.25 1
expect_row "$out" x2 2 -0.125
expect_row "$out" w3 2 0.5
expect_row "$out" "w1*x1" 0.5 0.5
expect_row "$out" "w2*x2" -0.5 0.5
expect_row "$out" "w1*x1 + w2*x2" 0 0.5
expect_row "$out" "sigmoid(w1*x1 + w2*x2)" 0.5 2
expect_row "$out" "$expr" 1 1
[ "$(wc -l <<<"$out")" -eq 11 ] || fail "expected a header and 10 rows, got:"$'\n'"$out"
[ "$(sed -n 2p <<<"$out" | cut -f1)" = w1 ] || fail "rows are not in forward order:"$'\n'"$out"

# the human-readable table has the same numbers
table=$("$DEEPC" graph "$expr" --set x1=1,x2=2,w1=0.5,w2=-0.25,w3=2) || fail "table output failed"
grep -q "grad (d out / d node)" <<<"$table" || fail "table header missing:"$'\n'"$table"
grep -Eq '^sigmoid\(w1\*x1 \+ w2\*x2\) +sigmoid +0\.5 +2$' <<<"$table" || fail "table row:"$'\n'"$table"

# --- a second expression, derived by hand in awk --------------------------------------------------
# f = (x^2 + 1) * log(y) - sqrt(x*y) / 2
# df/dx = 2x log y - y / (4 sqrt(xy)),  df/dy = (x^2 + 1)/y - x / (4 sqrt(xy))
out=$("$DEEPC" graph "(x^2 + 1) * log(y) - sqrt(x*y) / 2" --set x=3 --set y=2.5 --format tsv) ||
  fail "second expression failed"
read -r f dfdx dfdy < <(awk 'BEGIN { x = 3; y = 2.5; r = sqrt(x * y);
  printf "%.17g %.17g %.17g\n", (x^2 + 1) * log(y) - r / 2, 2 * x * log(y) - y / (4 * r),
         (x^2 + 1) / y - x / (4 * r) }')
expect_row "$out" x 3 "$dfdx"
expect_row "$out" y 2.5 "$dfdy"
expect_row "$out" "(x^2 + 1) * log(y) - sqrt(x*y) / 2" "$f" 1
expect_row "$out" "x^2" 9 "$(awk 'BEGIN { printf "%.17g", log(2.5) }')"

# a variable used several times accumulates its gradient: d(x*x*x)/dx = 3x^2
out=$("$DEEPC" graph "x*x*x" --set x=2 --format tsv)
expect_row "$out" x 2 12
# unary minus, right-associative power and ** : -2^2 = -4, 2^3^2 = 512
out=$("$DEEPC" graph "-a^2 + b^c**2" --set a=2,b=2,c=3 --format tsv)
expect_row "$out" "-a^2 + b^c**2" 508 1
expect_row "$out" a 2 -4
# after '--' an expression may start with '--' (a double negation)
out=$("$DEEPC" graph --set x=3 --format tsv -- "--x")
expect_row "$out" "--x" 3 1
expect_row "$out" x 3 1
# two-argument functions and constants on the left: max(a, 3 - a) at a = 1 picks 3 - a
out=$("$DEEPC" graph "max(a, 3 - a) + relu(-a)" --set a=1 --format tsv)
expect_row "$out" a 1 -1
# --wrt: only the listed variables require grad
out=$("$DEEPC" graph "$expr" --set x1=1,x2=2,w1=0.5,w2=-0.25,w3=2 --wrt w1,w3 --format tsv)
expect_row "$out" w1 0.5 0.5
expect_row "$out" w3 2 0.5
expect_row "$out" x1 1 -
expect_row "$out" "w2*x2" -0.5 -

# --- DOT and SVG ----------------------------------------------------------------------------------
"$DEEPC" graph "$expr" --set x1=1,x2=2,w1=0.5,w2=-0.25,w3=2 --dot "$tmp/g.dot" >/dev/null ||
  fail "--dot failed"
for want in 'digraph deepc' 'label="sigmoid"' 'label="mul"' 'label="add"' 'w1\n[] float64\nvalue 0.5\ngrad 0.5' \
  'peripheries=2' ' -> op'; do
  grep -qF -- "$want" "$tmp/g.dot" || fail "DOT lacks '$want':"$'\n'"$(cat "$tmp/g.dot")"
done
[ "$(grep -c 'shape=box' "$tmp/g.dot")" -eq 5 ] || fail "expected 5 op nodes in the DOT"
"$DEEPC" graph "$expr" --set x1=1,x2=2,w1=0.5,w2=-0.25,w3=2 --dot - >"$tmp/g2.dot" ||
  fail "--dot - failed"
cmp -s "$tmp/g.dot" "$tmp/g2.dot" || fail "DOT output is not deterministic (or --dot - differs)"
if command -v dot >/dev/null; then
  dot -Tsvg "$tmp/g.dot" -o /dev/null || fail "Graphviz rejects the DOT"
  "$DEEPC" graph "$expr" --set x1=1,x2=2,w1=0.5,w2=-0.25,w3=2 --svg "$tmp/g.svg" >/dev/null ||
    fail "--svg failed"
  grep -q '<svg' "$tmp/g.svg" || fail "--svg did not write an SVG"
else
  echo "note: Graphviz's dot is not installed; SVG rendering not tested"
fi
expect_error "needs Graphviz's \`dot\` program" env PATH=/nonexistent "$DEEPC" graph "x" --set x=1 --svg "$tmp/n.svg"

# --- bad input ------------------------------------------------------------------------------------
expect_error "no value for w2, w3; give them with --set" "$DEEPC" graph "$expr" --set x1=1,x2=2,w1=1
expect_error "column 16: expected a number" "$DEEPC" graph "sigmoid(w1*x1 +" --set w1=1,x1=1
expect_error "               ^" "$DEEPC" graph "sigmoid(w1*x1 +" --set w1=1,x1=1
expect_error "column 8: expected ')' to close the '(' at column 1" "$DEEPC" graph "(a + b c" --set a=1,b=1,c=1
expect_error "column 1: unknown function 'sin'" "$DEEPC" graph "sin(x)" --set x=1
expect_error "write 2*x for a product" "$DEEPC" graph "2x" --set x=1
expect_error "'exp' is a function" "$DEEPC" graph "exp + 1"
expect_error "unmatched ')'" "$DEEPC" graph "a)" --set a=1
expect_error "unexpected character '#'" "$DEEPC" graph "a # b" --set a=1,b=1
expect_error "max takes 2 arguments, got 1" "$DEEPC" graph "max(a)" --set a=1
expect_error "the expression is empty" "$DEEPC" graph "  "
expect_error "nested too deeply" "$DEEPC" graph "$(printf '(%.0s' {1..500})x$(printf ')%.0s' {1..500})" --set x=1
expect_error "'abc' is not a number" "$DEEPC" graph "x" --set x=abc
expect_error "expected NAME=VALUE" "$DEEPC" graph "x" --set x
expect_error "x is given twice" "$DEEPC" graph "x" --set x=1 --set x=2
expect_error "--wrt: 'z' is not a variable" "$DEEPC" graph "x" --set x=1 --wrt z
expect_error "unknown option '--bogus'" "$DEEPC" graph "x" --set x=1 --bogus
expect_error "no expression given" "$DEEPC" graph --set x=1
expect_error "one expression expected" "$DEEPC" graph x y --set x=1
expect_error "cannot write" "$DEEPC" graph "x" --set x=1 --dot "$tmp/no/such/dir/g.dot"
warn=$("$DEEPC" graph "x" --set x=1,y=2 2>&1 >/dev/null)
grep -qF "warning: --set y: no variable y" <<<"$warn" || fail "unused --set not warned: $warn"

# --- the command skeleton -------------------------------------------------------------------------
"$DEEPC" --version | grep -Eq '^deepc [0-9]+\.[0-9]+\.[0-9]+' || fail "--version"
"$DEEPC" --help | grep -q "graph" || fail "--help does not list graph"
"$DEEPC" help graph | grep -q "usage: deepc graph" || fail "help graph"
"$DEEPC" graph --help | grep -q -- "--wrt" || fail "graph --help"
expect_error "Did you mean 'graph'?" "$DEEPC" grpah
expect_error "'frobnicate' is not a deepc command" "$DEEPC" frobnicate
expect_error "Did you mean 'graph'?" "$DEEPC" help grap
"$DEEPC" >/dev/null 2>&1
[ $? -eq 2 ] || fail "deepc with no command should exit 2"

if [ $failures -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all deepc graph checks passed"
