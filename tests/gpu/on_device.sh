#!/usr/bin/env bash
# The GPU check for a lent GPU machine (docs/cuda.md), one prepared script inside one device
# call: builds deepc with every core, runs the GPU tests (ctest -L gpu), then the four reference
# workloads of torch_workloads.py with `deepc bench --device cuda` beside PyTorch eager and
# torch.compile, then each GPU test under compute-sanitizer memcheck (last: it gets what the
# budget has left, at most 60 s a test), and writes under $OUT
# (default ./gpu-logs) three files: summary.txt, bench.md (the table) and logs.tar.gz (every
# log). Every step runs under `timeout`, inside one budget for the whole script, so a hang costs
# only its own step. Exit status: 0 when the build, the tests and memcheck (those that ran)
# passed; the benchmarks' numbers and failures are in bench.md.
# Run from the repository root: OUT=/some/dir bash tests/gpu/on_device.sh
# Knobs (environment):
#   GPU_BUDGET_S   seconds for the whole script (default 570: one 600 s device call)
#   GPU_PHASES     which of "build test bench memcheck" to run (default all, in that order;
#                  a second call on the still-warm machine can run the rest: BUILD is kept)
#   BUILD          build folder (default build-gpu; kept between calls on a warm machine)
#   BENCH_STEPS    timed steps per workload (default 20), BENCH_BATCH (default 128)
#   BENCH_ONLY     workloads (default: the four), BENCH_COMPILE=0 to leave out torch.compile
#   BENCH_AMP      workloads also run in bf16 autocast, `deepc bench W --amp` beside
#                  torch_workloads.py --amp (default resnet34_finetune; empty: none). Skipped,
#                  with a line in summary.txt, when `deepc bench --help` does not mention --amp
#   TORCH_WORKLOADS  path of torch_workloads.py (default: the first of shared/bench/,
#                  ../shared/bench/, bench/; the device call sends shared/ of the checkout
#                  only, so copy it there first: docs/cuda.md)
#   PYTHON         the Python with PyTorch (default python3)
set -uo pipefail
out=${OUT:-gpu-logs}
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
logs="$out/logs"
build=${BUILD:-build-gpu}
jobs=$(nproc)
budget=${GPU_BUDGET_S:-570}
phases=" ${GPU_PHASES:-build test bench memcheck} "
steps=${BENCH_STEPS:-20}
batch=${BENCH_BATCH:-128}
workloads=${BENCH_ONLY:-mlp_cifar_gray cnn_fashion vgg11_cifar resnet34_finetune}
amp_workloads=${BENCH_AMP-resnet34_finetune}
python=${PYTHON:-python3}
t0=$(date +%s)
summary="$out/summary.txt"
: > "$summary"
status=0

note() { echo "$*" | tee -a "$summary"; }
want() { [[ "$phases" == *" $1 "* ]]; }
left() { echo $((budget - ($(date +%s) - t0))); }
# run_limited CAP LOG CMD...: CMD under timeout (CAP seconds or what the budget has left), its
# output in LOG. Returns CMD's status, 124 when it ran out of time, 125 when no time was left.
run_limited() {
  local cap=$1 log=$2 l
  shift 2
  l=$(left)
  ((l < cap)) && cap=$l
  if ((cap < 5)); then
    echo "skipped: the ${budget} s budget is spent" > "$log"
    return 125
  fi
  timeout -k 5 "$cap" "$@" > "$log" 2>&1
}
# finish: pack the logs (the device call brings back at most 8 files), print the results
finish() {
  note "total: $(($(date +%s) - t0)) s of the ${budget} s budget; exit status $status"
  tar -czf "$out/logs.tar.gz" -C "$out" logs 2> /dev/null && rm -rf "$logs"
  [ -f "$out/bench.md" ] && cat "$out/bench.md"
  exit $status
}

nvidia-smi > "$logs/nvidia-smi.txt" 2>&1 || echo "nvidia-smi failed" >> "$logs/nvidia-smi.txt"
head -15 "$logs/nvidia-smi.txt" >> "$summary"
for tool in cmake ninja nvcc pkg-config compute-sanitizer "$python"; do
  command -v "$tool" > /dev/null || note "missing: $tool"
done
pkg-config --exists criterion 2> /dev/null || note "missing: criterion (pkg-config): no tests"

# ---- build: deepc and the GPU tests; without Criterion, deepc alone (for the benchmarks) ----
built=0
if want build; then
  s=$(date +%s)
  cfg=(-S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDC_WERROR=ON)
  targets=(deepc_cli)
  for f in tests/gpu/test_gpu_*.c; do targets+=("$(basename "$f" .c)"); done
  if run_limited 120 "$logs/configure.log" cmake "${cfg[@]}"; then
    # the NCCL test's program (gpu.test_gpu_nccl), in a build with MPI
    cmake --build "$build" --target help 2> /dev/null | grep 'nccl_ddp' > /dev/null && targets+=(nccl_ddp)
    run_limited 300 "$logs/build.log" cmake --build "$build" -j "$jobs" --target "${targets[@]}" &&
      built=2
  elif run_limited 120 "$logs/configure-notests.log" cmake "${cfg[@]}" -DDC_BUILD_TESTS=OFF \
    -DDC_TESTDEV=OFF; then
    run_limited 300 "$logs/build.log" cmake --build "$build" -j "$jobs" --target deepc_cli &&
      built=1
  fi
  grep -h "deepc: CUDA backend" "$logs"/configure*.log >> "$summary" 2> /dev/null
  if ((built == 0)); then
    note "build FAILED ($(($(date +%s) - s)) s): logs/configure*.log, logs/build.log"
    tail -25 "$logs/build.log" "$logs"/configure*.log 2> /dev/null | tail -40
    status=1
  else
    note "build: $(($(date +%s) - s)) s with $jobs jobs$( ((built == 1)) && echo ', deepc only: no Criterion, no tests')"
  fi
elif [ -x "$build/deepc" ]; then
  built=2
fi

# ---- the GPU tests ----
if want test && ((built == 2)); then
  (cd "$build" && run_limited 200 "$logs/ctest-gpu.log" ctest -L gpu --output-on-failure -j 4 \
    --timeout 150) || status=1
  tail -15 "$logs/ctest-gpu.log" 2> /dev/null | tee -a "$summary"
fi

# ---- the benchmarks: deepc and PyTorch eager first, then torch.compile ----
if want bench; then
  tw=${TORCH_WORKLOADS:-}
  for c in shared/bench/torch_workloads.py ../shared/bench/torch_workloads.py \
    bench/torch_workloads.py; do
    [ -z "$tw" ] && [ -f "$c" ] && tw=$c
  done
  if [ -z "$tw" ]; then
    note "torch_workloads.py not found (shared/bench/, ../shared/bench/, bench/): no PyTorch rows"
  else
    note "PyTorch script: $tw"
  fi
  run_one() { # run_one WHO WORKLOAD CAP CMD...: the JSON line (or the error) in logs/bench-*.log
    local who=$1 w=$2 cap=$3 log="$logs/bench-$1-$2.log"
    shift 3
    run_limited "$cap" "$log" "$@"
    local rc=$?
    case $rc in
      0) note "bench $who $w: $(grep '^{' "$log" | tail -1)" ;;
      124) note "bench $who $w: TIMEOUT ($cap s cap or the budget): logs/bench-$who-$w.log" ;;
      *) note "bench $who $w: failed ($rc): $(grep -v '^\s*$' "$log" | tail -1 | cut -c1-200)" ;;
    esac
  }
  for w in $workloads; do
    if ((built > 0)); then
      run_one deepc "$w" 120 "$build/deepc" bench "$w" --device cuda --batch "$batch" \
        --steps "$steps"
    fi
    if [ -n "$tw" ]; then
      run_one eager "$w" 120 env PYTHONUNBUFFERED=1 "$python" "$tw" --device cuda --only "$w" \
        --batch "$batch" --steps "$steps"
    fi
  done
  # bf16 autocast: deepc --amp (when this deepc has it) beside PyTorch eager with --amp
  if [ -n "$amp_workloads" ] && ((built > 0)); then
    if "$build/deepc" bench --help 2>&1 | grep -q -- '--amp'; then
      for w in $amp_workloads; do
        run_one deepc-amp "$w" 150 "$build/deepc" bench "$w" --device cuda --amp --batch "$batch" \
          --steps "$steps"
        if [ -n "$tw" ]; then
          run_one eager-amp "$w" 120 env PYTHONUNBUFFERED=1 "$python" "$tw" --device cuda --amp \
            --only "$w" --batch "$batch" --steps "$steps"
        fi
      done
    else
      note "bench amp: skipped: \`deepc bench --help\` does not mention --amp (no bf16 autocast in this deepc)"
      amp_workloads=""
    fi
  fi
  if [ -n "$tw" ] && [ "${BENCH_COMPILE:-1}" != 0 ]; then
    for w in $workloads; do
      run_one compile "$w" 240 env PYTHONUNBUFFERED=1 "$python" "$tw" --device cuda --only "$w" \
        --batch "$batch" --steps "$steps" --compile default
    done
  fi
  python3 - "$logs" "$batch" "$steps" "$workloads" "$amp_workloads" > "$out/bench.md" << 'EOF'
import json, os, sys
logs, batch, steps, names = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split()
amp_names = sys.argv[5].split()
def result(who, w):
    p = os.path.join(logs, f'bench-{who}-{w}.log')
    if not os.path.exists(p):
        return None, 'not run'
    lines = [l for l in open(p, errors='replace').read().splitlines() if l.strip()]
    for l in reversed(lines):
        if l.startswith('{'):
            try:
                return json.loads(l), ''
            except ValueError:
                pass
    return None, (lines[-1][:120] if lines else 'no output').replace('|', '/')
def num(j, k, f='{:.1f}'):
    return f.format(j[k]) if j and j.get(k) is not None else '-'
print(f'# deepc on cuda against PyTorch (batch {batch}, {steps} timed steps)\n')
print('| workload | deepc samples/s | torch eager | torch.compile | deepc/eager | deepc/compile '
      '| peak MB deepc | peak MB eager | peak MB compile |')
print('|---|---|---|---|---|---|---|---|---|')
notes = []
for w in names:
    r = {who: result(who, w) for who in ('deepc', 'eager', 'compile')}
    d, e, c = (r[k][0] for k in ('deepc', 'eager', 'compile'))
    ratio = lambda a, b: f"{a['samples_per_s'] / b['samples_per_s']:.2f}" if a and b else '-'
    print(f"| {w} | {num(d, 'samples_per_s')} | {num(e, 'samples_per_s')} | "
          f"{num(c, 'samples_per_s')} | {ratio(d, e)} | {ratio(d, c)} | {num(d, 'peak_mem_mb')} | "
          f"{num(e, 'peak_mem_mb')} | {num(c, 'peak_mem_mb')} |")
    notes += [f'- {w}, {k}: {r[k][1]}' for k in r if r[k][0] is None]
if amp_names:
    print('\nbf16 autocast (`deepc bench --amp`, `torch_workloads.py --amp`):\n')
    print('| workload | deepc --amp samples/s | torch eager --amp | deepc/eager | peak MB deepc '
          '| peak MB eager |')
    print('|---|---|---|---|---|---|')
    for w in amp_names:
        r = {who: result(who, w) for who in ('deepc-amp', 'eager-amp')}
        d, e = r['deepc-amp'][0], r['eager-amp'][0]
        ratio = f"{d['samples_per_s'] / e['samples_per_s']:.2f}" if d and e else '-'
        print(f"| {w} | {num(d, 'samples_per_s')} | {num(e, 'samples_per_s')} | {ratio} | "
              f"{num(d, 'peak_mem_mb')} | {num(e, 'peak_mem_mb')} |")
        notes += [f'- {w}, {k}: {r[k][1]}' for k in r if r[k][0] is None]
if notes:
    print('\nNot measured:\n' + '\n'.join(notes))
print('\npeak MB: deepc, tensor storage on the GPU during the timed steps (`deepc bench`\'s '
      'peak_mem_mb); torch, torch.cuda.max_memory_allocated after the warm-up.')
EOF
fi
# ---- compute-sanitizer memcheck, each test on its own clock ----
if want memcheck && ((built == 2)); then
  sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
  [ -x "$sanitizer" ] || note "memcheck: no compute-sanitizer, skipped"
  [ -x "$sanitizer" ] && for t in "$build"/tests/gpu/test_gpu_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    [ "$name" = test_gpu_absent ] && continue
    run_limited 60 "$logs/memcheck-$name.log" "$sanitizer" --tool memcheck \
      --target-processes all --error-exitcode 9 "$t" --jobs 1
    case $? in
      0) note "memcheck $name: ok" ;;
      124) note "memcheck $name: TIMEOUT (60 s)" ;;
      125) note "memcheck $name: skipped (budget spent)" ;;
      *)
        note "memcheck $name: FAILED (logs/memcheck-$name.log)"
        status=1
        ;;
    esac
  done
fi

finish
