#!/usr/bin/env bash
# NCCL with 1 and 2 processes (ctest gpu.test_gpu_nccl): runs nccl_ddp (tests/gpu/nccl_ddp.c) on
# cuda under mpirun, once with 1 process and, on a machine with at least 2 GPUs, once with 2
# (one GPU each: NCCL refuses two ranks on one GPU, so with 1 GPU the 2-process run is skipped
# and says so). Exit 77 (skipped) without mpirun, without a GPU or without NCCL in the build.
# Usage: test_gpu_nccl.sh PATH/TO/nccl_ddp
set -u
prog=$1
here=$(dirname "$0")
DIST_RANKS=1 bash "$here/../dist/run.sh" "$prog" cuda
rc=$?
[ "$rc" -eq 77 ] && exit 77 # no mpirun, no GPU (it printed "SKIP: no CUDA device ...") or no NCCL
[ "$rc" -ne 0 ] && exit 1
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${ngpu:-0}" -lt 2 ]; then
  echo "SKIP (2 processes): ${ngpu:-0} GPU(s) here; NCCL needs one GPU per rank, so the" \
    "2-process case runs only on a machine with 2 or more GPUs (1 process passed)"
  exit 0
fi
DIST_RANKS=2 bash "$here/../dist/run.sh" "$prog" cuda || exit 1
