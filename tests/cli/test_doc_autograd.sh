#!/usr/bin/env bash
# Keeps docs/autograd.md honest: every ```c block is a complete program that must compile
# warning-free against the built library and exit 0; when an ```output block follows it, the
# program's stdout must equal that block. CTest sets DEEPC_BUILD and DEEPC_SRC.
set -u
doc="${DEEPC_SRC:?}/docs/autograd.md"
build="${DEEPC_BUILD:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

# split the guide into 1.c, 1.out, 2.c, ... (an output block belongs to the program before it)
awk -v dir="$tmp" '
  /^```c$/ { n++; file = dir "/" n ".c"; inblock = 1; next }
  /^```output$/ && n > 0 && last_was_c { file = dir "/" n ".out"; inblock = 1; next }
  /^```/ && inblock { inblock = 0; close(file); last_was_c = (file ~ /\.c$/); next }
  inblock { print > file; next }
  { if ($0 != "") last_was_c = 0 }
' "$doc"

# a sanitizer build's library needs the sanitizer runtimes in the programs too
sanitize=()
if grep -q '^DC_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  sanitize=(-fsanitize=address,undefined)
fi

count=$(ls "$tmp"/*.c 2>/dev/null | wc -l)
[ "$count" -gt 0 ] || { echo "FAIL: no C programs found in $doc"; exit 1; }
cd "$tmp" || exit 1
for src in $(ls "$tmp"/*.c | sort -V); do
  n=$(basename "$src" .c)
  line=$(grep -n '^```c$' "$doc" | sed -n "${n}p" | cut -d: -f1)
  if ! ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror "${sanitize[@]}" -I"$DEEPC_SRC/include" "$src" \
    -o "$n.bin" "$build/libdeepc.so" -Wl,-rpath,"$build" -lm 2>"$n.cc"; then
    echo "FAIL: program $n (docs/autograd.md line $line) does not compile:"
    cat "$n.cc"
    failures=$((failures + 1))
    continue
  fi
  if ! ./"$n.bin" >"$n.got" 2>"$n.err"; then
    echo "FAIL: program $n (docs/autograd.md line $line) exits non-zero:"
    cat "$n.got" "$n.err"
    failures=$((failures + 1))
    continue
  fi
  if [ -f "$n.out" ] && ! diff -u "$n.out" "$n.got" >"$n.diff"; then
    echo "FAIL: program $n (docs/autograd.md line $line) prints something else than the guide says:"
    cat "$n.diff"
    failures=$((failures + 1))
  fi
done
if [ $failures -ne 0 ]; then
  echo "$failures of $count programs in docs/autograd.md failed"
  exit 1
fi
echo "all $count programs in docs/autograd.md compile, run and print what the guide says"
