#!/usr/bin/env bash
# The GPU check for a lent GPU machine (docs/cuda.md): builds deepc with every core, runs the
# GPU tests (ctest -L gpu), then each GPU test under compute-sanitizer memcheck, and writes the
# logs under $OUT (default ./gpu-logs). Exit status: 0 when everything passed. Run from the
# repository root: OUT=/some/dir bash tests/gpu/on_device.sh
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out"
build=${BUILD:-build-gpu}
jobs=$(nproc)
status=0

nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >> "$out/nvidia-smi.txt"
start=$(date +%s)
if ! { cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDC_WERROR=ON &&
       cmake --build "$build" -j "$jobs"; } > "$out/build.log" 2>&1; then
  echo "build failed: $out/build.log"
  tail -40 "$out/build.log"
  exit 1
fi
echo "build: $(( $(date +%s) - start )) s with $jobs jobs" | tee "$out/summary.txt"

(cd "$build" && ctest -L gpu --output-on-failure -j 4) > "$out/ctest-gpu.log" 2>&1 || status=1
tail -15 "$out/ctest-gpu.log" | tee -a "$out/summary.txt"

sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for t in "$build"/tests/gpu/test_gpu_*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  if "$sanitizer" --tool memcheck --target-processes all --error-exitcode 9 "$t" --jobs 1 \
      > "$out/memcheck-$name.log" 2>&1; then
    echo "memcheck $name: ok" | tee -a "$out/summary.txt"
  else
    echo "memcheck $name: FAILED ($out/memcheck-$name.log)" | tee -a "$out/summary.txt"
    status=1
  fi
done
exit $status
