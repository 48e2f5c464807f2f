#!/usr/bin/env bash
# `make bench`: runs deepc's benchmarks (each prints deepc and PyTorch side by side where it can).
# Quote medians; on a shared machine set OMP_WAIT_POLICY=passive (done here unless set).
set -euo pipefail
build=${1:-build}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
for b in peak_bench gemm_bench ew_bench nn_bench; do
  if [ -x "$build/bench/$b" ]; then
    echo "== $b =="
    "$build/bench/$b"
  fi
done
