#!/usr/bin/env bash
# Runs a data-parallel test program under mpirun: run.sh PROGRAM [ARGS...], once per rank count
# in $DIST_RANKS (default "1 2": every program must pass alone and with a partner). Skips
# (exit 77) with a message when mpirun is missing, and when the program skips (exits 77: its
# message says why). Settings for running as root in a container.
set -u
prog=$1
shift
if ! command -v mpirun >/dev/null 2>&1; then
  echo "SKIP: mpirun not found (install openmpi-bin / libopenmpi-dev for the data-parallel tests)"
  exit 77
fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ranks=${DIST_RANKS:-1 2}
status=0
for np in $ranks; do
  echo "== mpirun -np $np $(basename "$prog") $*"
  mpirun --allow-run-as-root --oversubscribe -np "$np" "$prog" "$@"
  rc=$?
  [ "$rc" -eq 77 ] && exit 77
  [ "$rc" -ne 0 ] && status=1
done
exit $status
