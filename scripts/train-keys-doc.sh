#!/usr/bin/env bash
# Rewrites (or with --check, compares) the key tables of docs/training.md from the key table of
# src/train/spec.h, as `deepc train --help-keys --markdown` prints it: the lines between
# "<!-- keys:begin" and "<!-- keys:end -->". Usage: scripts/train-keys-doc.sh DEEPC [--check]
set -eu
deepc=${1:?usage: $0 path/to/deepc [--check]}
doc="$(dirname "$0")/../docs/training.md"
gen=$(mktemp)
new=$(mktemp)
trap 'rm -f "$gen" "$new"' EXIT
"$deepc" train --help-keys --markdown >"$gen"
grep -q '^<!-- keys:begin' "$doc" && grep -q '^<!-- keys:end -->' "$doc" ||
  { echo "$doc: no <!-- keys:begin --> ... <!-- keys:end --> block" >&2; exit 1; }
awk -v gen="$gen" '
  /^<!-- keys:begin/ { print; while ((getline line < gen) > 0) print line; skip = 1; next }
  /^<!-- keys:end -->/ { skip = 0 }
  !skip { print }' "$doc" >"$new"
if [ "${2:-}" = "--check" ]; then
  diff -u "$doc" "$new" || {
    echo "docs/training.md's key tables differ from \`deepc train --help-keys --markdown\`;" \
      "run scripts/train-keys-doc.sh $deepc" >&2
    exit 1
  }
else
  cp "$new" "$doc"
fi
