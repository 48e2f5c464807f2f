#!/usr/bin/env bash
# `deepc bench`: one JSON line with torch_workloads.py's fields plus peak memory and FLOPs for a
# short run of the MLP and CNN workloads (the MLP's 2 x 6 x (1024*256 + 256*128 + 128*64 + 64*10)
# FLOPs per sample), and the errors: --device cuda without a CUDA backend, an unknown workload.
set -euo pipefail
deepc=${DEEPC_BUILD:?}/deepc
fail() { echo "FAIL: $*"; exit 1; }
has() { grep -qF -- "$2" <<<"$1" || fail "expected '$2' in:"$'\n'"$1"; }

out=$("$deepc" bench mlp_cifar_gray --steps 3 --batch 16 --threads 1)
for f in '"workload": "mlp_cifar_gray"' '"device": "cpu"' '"batch": 16' '"steps": 3' \
  '"threads": 1' '"samples_per_s": ' '"ms_per_step": ' '"loss": ' '"peak_rss_mb": ' \
  '"tensor_peak_mb": ' '"alloc_peak_mb": ' '"gflop_per_step": 0.02916'; do
  has "$out" "$f"
done
[ "$(wc -l <<<"$out")" = 1 ] || fail "expected one line, got: $out"
/usr/bin/python3 -c 'import json,sys; j=json.loads(sys.argv[1]); assert j["samples_per_s"] > 0 and j["loss"] > 0 and j["tensor_peak_mb"] > 0.5, j' "$out" ||
  fail "bad JSON: $out"

out=$("$deepc" bench cnn_fashion --steps 1 --batch 4)
has "$out" '"workload": "cnn_fashion"'
has "$out" '"conv_algo": "auto"'
out=$(DEEPC_CONV_ALGO=direct "$deepc" bench cnn_fashion --steps 1 --batch 4)
has "$out" '"conv_algo": "direct"'

has "$out" '"amp_bf16": false'
out=$("$deepc" bench cnn_fashion --steps 2 --batch 8 --amp)
has "$out" '"amp_bf16": true'
/usr/bin/python3 -c 'import json,sys,math; j=json.loads(sys.argv[1]); assert math.isfinite(j["loss"]) and j["loss"] > 0, j' "$out" ||
  fail "bad loss under --amp: $out"

if err=$("$deepc" bench mlp_cifar_gray --device cuda 2>&1); then fail "--device cuda succeeded"; fi
has "$err" "no CUDA" # backend (a CPU-only build) or device (no GPU here)
if err=$("$deepc" bench resnet99 2>&1); then fail "unknown workload accepted"; fi
has "$err" "unknown workload 'resnet99'"
has "$("$deepc" help bench)" "usage: deepc bench WORKLOAD"
echo "test_bench: ok"
