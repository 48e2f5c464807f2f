#!/usr/bin/env bash
# A rank that fails, hangs or dies ends the whole 2-rank job quickly, with a message that names
# the cause, and a non-zero exit status: no rank is left waiting. CTest sets DEEPC_BUILD.
set -u
HELPER="${DEEPC_BUILD:?set DEEPC_BUILD to the build directory}/tests/dist/fail_helper"
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found (install openmpi-bin / libopenmpi-dev for the data-parallel tests)"
  exit 77
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader
failures=0
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# run MODE LIMIT TEXT...: the job exits non-zero within LIMIT seconds and prints every TEXT.
run() {
  local mode=$1 limit=$2
  shift 2
  local start end out rc
  start=$(date +%s)
  out=$(timeout 100 mpirun --allow-run-as-root --oversubscribe -np 2 "$HELPER" "$mode" 2>&1)
  rc=$?
  end=$(date +%s)
  echo "== $mode: exit $rc after $((end - start)) s"
  [ $rc -ne 0 ] || fail "$mode: the job exited 0"
  [ $rc -ne 124 ] || fail "$mode: the job hung (killed by timeout)"
  [ $((end - start)) -le "$limit" ] || fail "$mode: took $((end - start)) s (limit $limit)"
  for text in "$@"; do
    grep -qF -- "$text" <<<"$out" || fail "$mode: output lacks '$text':"$'\n'"$out"
  done
}

run error 30 "deepc [rank 1/2]: epoch 1, batch 5: the loss became nan (simulated failure); ending the job on every rank" \
  "deepc [rank 0/2]: stopped: the job was ended (another rank failed"
run hang 40 "deepc [rank 0/2]: dist: all-reduce timed out after 3 s on rank 0 of 2: another rank did not join it" \
  "deepc [rank 1/2]: stopped: the job was ended"
run crash 40 "rank 1: exiting without a word to the others" "deepc [rank 0/2]: stopped"
[ $failures -eq 0 ] && echo "failure handling: passed" || echo "failure handling: $failures failed"
exit $((failures > 0))
