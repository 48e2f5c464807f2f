#!/usr/bin/env bash
# Long libFuzzer runs of every reader at once, one process per target (more for the slow ones),
# then a table of executions, new inputs, peak RSS and crashes per target (docs/reliability.md).
#
# usage: tests/fuzz/long_run.sh BIN_DIR SEED_DIR WORK_DIR SECONDS [TARGET ...]
#   BIN_DIR   folder with the fuzz_<target> binaries (build-fuzz/tests/fuzz)
#   SEED_DIR  tests/fuzz/corpus (a sub-folder per target)
#   WORK_DIR  where each target's growing corpus, logs and crash files go; reusing it resumes
#   SECONDS   how long every process runs
#   TARGET    targets that get a second process (repeat a name for more)
# DC_FUZZ_TARGETS="pth zip" runs only those (default: all 12).
# Prints the summary to stdout and writes WORK_DIR/summary.md; WORK_DIR/totals.tsv accumulates
# (target, process-seconds, executions, new inputs, crashes, CPU seconds) over calls.
set -u
bin=$1 seeds=$2 work=$3 secs=$4
shift 4
targets=${DC_FUZZ_TARGETS:-pth pickle safetensors zip ckpt idx cifar npy pydata csv image config}
mkdir -p "$work"

pids=()
start() { # target, process index
  local t=$1 i=$2
  mkdir -p "$work/$t/corpus" "$work/$t/crashes"
  local timer=()  # CPU seconds of the process (a shared machine gives less than its wall time)
  [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "cpu_seconds: %U %S" -o "$work/$t/run$i.cpu")
  "${timer[@]}" "$bin/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -print_final_stats=1 -artifact_prefix="$work/$t/crashes/" "$work/$t/corpus" "$seeds/$t" \
    >"$work/$t/run$i.log" 2>&1 &
  pids+=($!)
}
for t in $targets; do start "$t" 1; done
n=2
for t in "$@"; do start "$t" "$n"; n=$((n + 1)); done
for p in "${pids[@]}"; do wait "$p"; done
stamp=$(date +%Y%m%d-%H%M%S)

final_stat() { # log, name: the value of libFuzzer's final stat::name (0 when missing)
  local v
  v=$(sed -n "s/^stat::$2: *//p" "$1" | tail -1)
  echo "${v:-0}"
}
{
  echo "| target | processes | seconds each | CPU seconds | executions | per second | new inputs | peak RSS (MB) | crashes |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for t in $targets; do
    execs=0 added=0 rss=0 procs=0 cpu=0
    for f in "$work/$t"/run*.cpu; do
      [ -f "$f" ] || continue
      cpu=$(awk -v c="$cpu" '/cpu_seconds/ {c += $2 + $3} END {printf "%d", c}' "$f")
      rm -f "$f"
    done
    for log in "$work/$t"/run*.log; do
      [ -f "$log" ] || continue
      procs=$((procs + 1))
      execs=$((execs + $(final_stat "$log" number_of_executed_units)))
      added=$((added + $(final_stat "$log" new_units_added)))
      r=$(final_stat "$log" peak_rss_mb)
      [ "$r" -gt "$rss" ] && rss=$r
    done
    crashes=$(find "$work/$t/crashes" -type f | wc -l)
    echo "| \`$t\` | $procs | $secs | $cpu | $execs | $((execs / (procs * secs))) | $added | $rss | $crashes |"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" $((procs * secs)) "$execs" "$added" "$crashes" "$cpu" \
      >>"$work/totals.tsv"
    mkdir -p "$work/$t/logs"
    for log in "$work/$t"/run*.log; do mv "$log" "$work/$t/logs/$stamp-${log##*/}"; done
  done
} | tee "$work/summary.md"
