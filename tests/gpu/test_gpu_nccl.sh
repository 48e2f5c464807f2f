#!/usr/bin/env bash
# NCCL with 1 and 2 processes (ctest gpu.test_gpu_nccl): runs nccl_ddp (tests/gpu/nccl_ddp.c) on
# cuda under mpirun, once with 1 process and, on a machine with at least 2 GPUs, once with 2
# (one GPU each: NCCL refuses two ranks on one GPU, so with 1 GPU the 2-process run is skipped
# and says so). Exit 77 (skipped) without mpirun, without a GPU or without NCCL in the build.
# Usage: test_gpu_nccl.sh PATH/TO/nccl_ddp
set -u
prog=$1
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found (install openmpi-bin for the NCCL test)"
  exit 77
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
run() {
  echo "== mpirun -np $1 $(basename "$prog") cuda"
  mpirun --allow-run-as-root --oversubscribe -np "$1" "$prog" cuda
}
run 1
rc=$?
[ "$rc" -eq 77 ] && exit 77 # no GPU (it printed "SKIP: no CUDA device ...") or no NCCL
[ "$rc" -ne 0 ] && exit 1
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ "${ngpu:-0}" -lt 2 ]; then
  echo "SKIP (2 processes): ${ngpu:-0} GPU(s) here; NCCL needs one GPU per rank, so the" \
    "2-process case runs only on a machine with 2 or more GPUs (1 process passed)"
  exit 0
fi
run 2 || exit 1
