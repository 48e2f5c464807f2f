#!/usr/bin/env bash
# Keeps docs/distributed.md honest: its C program compiles warning-free against the built
# library, runs as one process and as 2 ranks under mpirun, and both print the same five epochs
# with a falling loss. CTest sets DEEPC_BUILD and DEEPC_SRC.
set -u
doc="${DEEPC_SRC:?}/docs/distributed.md"
build="${DEEPC_BUILD:?}"
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found (install openmpi-bin / libopenmpi-dev for the data-parallel tests)"
  exit 77
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader OMP_NUM_THREADS=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v out="$tmp/prog.c" '/^```c$/ { n++; inb = n == 1; next } /^```/ { inb = 0 } inb { print > out }' \
  "$doc"
[ -s "$tmp/prog.c" ] || { echo "FAIL: no C program in $doc"; exit 1; }
sanitize=()
if grep -q '^DC_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  sanitize=(-fsanitize=address,undefined)
fi
${CC:-cc} -std=gnu11 -Wall -Wextra -Werror "${sanitize[@]}" -I"$DEEPC_SRC/include" "$tmp/prog.c" \
  -o "$tmp/prog" "$build/libdeepc.so" -Wl,-rpath,"$build" -lm || { echo "FAIL: does not compile"; exit 1; }
"$tmp/prog" >"$tmp/one.txt" 2>&1 || { echo "FAIL: one process:"; cat "$tmp/one.txt"; exit 1; }
mpirun --allow-run-as-root --oversubscribe -np 2 "$tmp/prog" >"$tmp/two.txt" 2>&1 ||
  { echo "FAIL: 2 ranks:"; cat "$tmp/two.txt"; exit 1; }
cat "$tmp/two.txt"
failures=0
[ "$(grep -c '^epoch' "$tmp/two.txt")" = 5 ] || { echo "FAIL: expected 5 epoch lines from rank 0"; failures=1; }
cmp -s "$tmp/one.txt" "$tmp/two.txt" || { echo "FAIL: 1 process and 2 ranks differ:"; diff "$tmp/one.txt" "$tmp/two.txt"; failures=1; }
first=$(awk '/^epoch 1/ {print $4}' "$tmp/two.txt")
last=$(awk '/^epoch 5/ {print $4}' "$tmp/two.txt")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || { echo "FAIL: loss did not fall ($first -> $last)"; failures=1; }
[ $failures -eq 0 ] && echo "docs/distributed.md program: passed"
exit $failures
