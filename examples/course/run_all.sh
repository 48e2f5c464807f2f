#!/usr/bin/env bash
# Runs every course exercise (examples/course/<NN_name>/run.sh) in order: `make exercises`.
#   bash examples/course/run_all.sh [--quick] [--build DIR] [--out DIR] [--only NN,NN]
# --out DIR: each exercise writes to DIR/<NN_name> (default runs/course/<NN_name>).
# Stops at the first exercise that fails; prints each one's time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
args=() outroot="" only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --out) outroot=$2; shift ;;
    --only) only=$2; shift ;;
    --quick) args+=("$1") ;;
    --build) args+=("$1" "$2"); shift ;;
    -h|--help) sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_all.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done
for dir in "$here"/[0-9][0-9]_*/; do
  name=$(basename "$dir")
  if [ -n "$only" ] && [[ ",$only," != *",${name%%_*},"* ]]; then continue; fi
  o=()
  [ -n "$outroot" ] && o=(--out "$outroot/$name")
  echo "######## $name"
  s=$(date +%s)
  bash "$dir/run.sh" "${args[@]}" "${o[@]}"
  echo "######## $name done in $(( $(date +%s) - s )) s"
done
