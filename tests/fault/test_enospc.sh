#!/usr/bin/env bash
# A full disk (ENOSPC) and a failing disk (EIO from fsync) while `deepc train` saves its
# checkpoints: the run stops with a message naming the file and the error, the previous
# checkpoints stay byte for byte, no temporary file is left, and --resume then finishes with the
# same weights as an uninterrupted run. The faults come from an LD_PRELOAD shim
# (enospc_shim.c); where user namespaces allow it, also from a real, nearly full tmpfs.
#   DEEPC_BUILD=build SHIM=build/tests/fault/libdc_enospc_shim.so bash tests/fault/test_enospc.sh
set -u
source "$(dirname "$0")/lib.sh"
BUILD=$DEEPC_BUILD
SHIM=${SHIM:-$BUILD/tests/fault/libdc_enospc_shim.so}
write_npz 400 100
mlp_config "$tmp/s.ini" 4
cat >>"$tmp/s.ini" <<EOF
seed = 5
[optim]
name = sgd
lr = 0.05
momentum = 0.9
EOF

# the same tensors in two checkpoints (the history's wall-clock column aside)
same_ckpt() {
  "$PY" - "$1" "$2" <<'EOF'
import json, struct, sys
import numpy as np
def read(p):
    d = open(p, "rb").read()
    (hl,) = struct.unpack("<Q", d[:8])
    h = json.loads(d[8:8 + hl]); h.pop("__metadata__", None)
    out = {}
    for k, e in h.items():
        raw = d[8 + hl + e["data_offsets"][0]: 8 + hl + e["data_offsets"][1]]
        if k == "trainer.history":
            a = np.frombuffer(raw, np.float64).reshape(e["shape"]).copy(); a[:, 6] = 0
            raw = a.tobytes()
        out[k] = raw
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
sys.exit(0 if a == b else 1)
EOF
}

"$DEEPC" train "$tmp/s.ini" --out "$tmp/ref" --progress none >/dev/null 2>&1 || fail "reference run"

# faulty_resume NAME EXPECT ENV...: two epochs, then a resumed run under the shim must fail
faulty_resume() {
  local name=$1 expect=$2
  shift 2
  local d="$tmp/$name"
  "$DEEPC" train "$tmp/s.ini" --out "$d" --stop-after 2 --progress none >/dev/null 2>&1 ||
    fail "$name: first two epochs"
  cp "$d/last.ckpt" "$tmp/$name.last" && cp "$d/best.ckpt" "$tmp/$name.best"
  local err rc
  err=$(env LD_PRELOAD="$SHIM" "$@" "$DEEPC" train "$tmp/s.ini" --out "$d" --resume \
    --progress none 2>&1 >/dev/null)
  rc=$?
  [ $rc -ne 0 ] || fail "$name: the run succeeded although its checkpoint could not be written"
  grep -qF "$expect" <<<"$err" || fail "$name: the message lacks '$expect': $err"
  grep -qE "(last|best)\.ckpt" <<<"$err" || fail "$name: the message names no checkpoint: $err"
  grep -qF "unchanged" <<<"$err" || fail "$name: the message does not say the old file is kept: $err"
  cmp -s "$d/last.ckpt" "$tmp/$name.last" || fail "$name: last.ckpt changed"
  cmp -s "$d/best.ckpt" "$tmp/$name.best" || fail "$name: best.ckpt changed"
  ls "$d" | grep -q "\.tmp" && fail "$name: temporary files left: $(ls "$d")"
  # the disk has room again: --resume finishes as if nothing happened
  "$DEEPC" train "$tmp/s.ini" --out "$d" --resume --progress none >/dev/null 2>&1 ||
    fail "$name: --resume after the fault"
  same_ckpt "$d/last.ckpt" "$tmp/ref/last.ckpt" || fail "$name: final weights differ"
  echo "$name: $(head -c 300 <<<"$err")"
}

if [ -f "$SHIM" ]; then
  faulty_resume enospc "No space left on device" DEEPC_SHIM_ENOSPC_AFTER=600
  faulty_resume enospc0 "No space left on device" DEEPC_SHIM_ENOSPC_AFTER=0
  faulty_resume eio "Input/output error" DEEPC_SHIM_EIO_FSYNC=1
else
  fail "the shim $SHIM is not built"
fi

# a real full file system: a 4 MiB tmpfs in a user namespace, filled but for ROOM bytes (3 KiB:
# the TensorBoard file fails first; 12 KiB: a checkpoint does)
if unshare -rm true 2>/dev/null; then
  "$DEEPC" train "$tmp/s.ini" --out "$tmp/fs0" --stop-after 2 --progress none >/dev/null 2>&1
  for room in 3072 12000; do
    d="$tmp/fs$room"
    mkdir -p "$d"
    out=$(unshare -rm bash -c '
      set -u
      mount -t tmpfs -o size=4m tmpfs "$1" || exit 77
      cp -r "$2"/. "$1"/ && cp "$1/last.ckpt" "$1/../fs.last"
      avail=$(df -B1 --output=avail "$1" | tail -1)
      head -c $((avail - $5)) /dev/zero >"$1/filler" 2>/dev/null
      "$3" train "$4" --out "$1" --resume --progress none 2>&1 >/dev/null
      echo "rc=$?"
      cmp -s "$1/last.ckpt" "$1/../fs.last" && echo "last-intact"
      ls "$1" | grep -q "\.tmp" && echo "temporaries-left"
      rm -f "$1/filler"
      "$3" train "$4" --out "$1" --resume --progress none >/dev/null 2>&1 && echo "resumed"
      cp "$1/last.ckpt" "$1/../fs.final"
    ' _ "$d" "$tmp/fs0" "$DEEPC" "$tmp/s.ini" "$room")
    if [ $? -eq 77 ]; then
      echo "tmpfs: mount refused in the user namespace (skipped)"
      break
    fi
    grep -q "No space left on device" <<<"$out" || fail "tmpfs $room: no ENOSPC message: $out"
    grep -q "rc=0" <<<"$out" && fail "tmpfs $room: the run succeeded on a full disk"
    grep -q "last-intact" <<<"$out" || fail "tmpfs $room: last.ckpt changed: $out"
    grep -q "temporaries-left" <<<"$out" && fail "tmpfs $room: temporary files left"
    grep -q "resumed" <<<"$out" || fail "tmpfs $room: --resume after freeing space failed"
    same_ckpt "$tmp/fs.final" "$tmp/ref/last.ckpt" || fail "tmpfs $room: final weights differ"
    echo "tmpfs, $room bytes free: $(grep -m1 "No space" <<<"$out")"
  done
else
  echo "tmpfs: no user namespaces here (skipped)"
fi

[ $failures -eq 0 ] && echo "PASS" || echo "$failures failure(s)"
exit $((failures > 0))
