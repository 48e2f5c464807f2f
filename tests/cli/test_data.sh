#!/usr/bin/env bash
# `deepc data`: info on Fashion-MNIST (class names and counts), on files written by NumPy and
# Python (npz, pickle), on an image folder; the refusal of a malicious pickle and of a truncated
# IDX file with exit status 1 and a message naming the file; fetch failing clearly without
# network and on a wrong checksum; bench printing samples/s; usage errors with status 2.
set -euo pipefail
deepc=${DEEPC_BUILD:?}/deepc
py=${DC_PYTHON:-/usr/bin/python3}
fail() { echo "FAIL: $*"; exit 1; }
has() { grep -qF -- "$2" <<<"$1" || fail "expected '$2' in:"$'\n'"$1"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# status and combined output of a command that must fail with status $1
fails() {
  local want=$1
  shift
  set +e
  out=$("$@" 2>&1)
  local rc=$?
  set -e
  [ "$rc" -eq "$want" ] || fail "exit status $rc (want $want) from: $*"$'\n'"$out"
}

if [ -d /usr/share/datasets/fashion-mnist ]; then
  out=$("$deepc" data info fashion-mnist)
  has "$out" "format:  Fashion-MNIST"
  has "$out" "samples: 60000"
  has "$out" "sample:  uint8 [28, 28, 1]"
  grep -qE '^ +9  Ankle boot +6000$' <<<"$out" || fail "Ankle boot should have 6000:"$'\n'"$out"
  has "$out" "samples: 10000"
  out=$("$deepc" data info /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz)
  grep -qE '^ +0  T-shirt/top +1000$' <<<"$out" || fail "T-shirt/top should have 1000:"$'\n'"$out"
  out=$("$deepc" data bench fashion-mnist --batch 64 --workers 2 --batches 100)
  has "$out" "epoch 1: 100 batches, 6400 samples"
  has "$out" "samples/s"
fi

"$py" - "$tmp" <<'EOF'
import os, pickle, sys
import numpy as np
from PIL import Image
d = sys.argv[1]
np.savez_compressed(os.path.join(d, "set.npz"), x=np.zeros((5, 3), np.float32), y=np.array([0, 1, 1, 2, 2]))
with open(os.path.join(d, "data.pkl"), "wb") as f:
    pickle.dump((np.ones((4, 2), np.float32), np.array([1, 0, 1, 1])), f, protocol=4)
class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(d, "pwned"),))
with open(os.path.join(d, "evil.pkl"), "wb") as f:
    pickle.dump({"x": np.zeros(2), "y": Evil()}, f, protocol=2)
for c, n in (("cat", 3), ("dog", 2)):
    os.makedirs(os.path.join(d, "imgs", c))
    for i in range(n):
        Image.fromarray(np.full((8 + i, 10, 3), 40 * i, np.uint8)).save(os.path.join(d, "imgs", c, f"{i}.png"))
open(os.path.join(d, "imgs", "dog", "notes.txt"), "w").write("x")
EOF

out=$("$deepc" data info "$tmp/set.npz")
has "$out" "x                    float32 [5, 3]"
has "$out" "format:  NPZ"
has "$out" "samples: 5"
has "$out" "classes: 3"
grep -qE '^ +2  2 +2$' <<<"$out" || fail "class 2 should have 2 samples:"$'\n'"$out"

out=$("$deepc" data info "$tmp/data.pkl")
has "$out" "tuple of 2"
has "$out" "[0]: ndarray float32 [4, 2]"
has "$out" "samples: 4"

fails 1 "$deepc" data info "$tmp/evil.pkl"
has "$out" "evil.pkl"
has "$out" "refusing global 'posix.system'"
[ ! -e "$tmp/pwned" ] || fail "the malicious pickle ran code"

out=$("$deepc" data info "$tmp/imgs")
has "$out" "format:  ImageFolder"
has "$out" "samples: 5"
has "$out" "skipped: 1 files"
grep -qE '^ +0  cat +3$' <<<"$out" || fail "class cat should have 3 samples:"$'\n'"$out"
has "$out" "sizes:   H 8..10"

printf '\x00\x00\x08\x03\x00\x00\x00\x0a\x00\x00\x00\x1c\x00\x00\x00\x1cshort' > "$tmp/cut-images-idx3-ubyte"
fails 1 "$deepc" data info "$tmp/cut-images-idx3-ubyte"
has "$out" "cut-images-idx3-ubyte: offset 4"
has "$out" "7840"

fails 1 "$deepc" data info "$tmp/nothing-here"
has "$out" "no such file or folder"

# fetch: an unreachable mirror, then one whose file has the wrong checksum
fails 1 env DEEPC_DATA_MIRROR="http://127.0.0.1:9/" "$deepc" data fetch fashion-mnist --dir "$tmp/dl"
has "$out" "cannot download http://127.0.0.1:9/train-images-idx3-ubyte.gz"
has "$out" "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
mkdir -p "$tmp/mirror"
echo "not the dataset" | gzip > "$tmp/mirror/train-images-idx3-ubyte.gz"
fails 1 env DEEPC_DATA_MIRROR="file://$tmp/mirror/" "$deepc" data fetch fashion-mnist --dir "$tmp/dl"
has "$out" "MD5 checksum"
has "$out" "does not match the expected 8d4fb7e6c68d591d4c3dfef9ec88bf0d"
[ ! -e "$tmp/dl/fashion-mnist/train-images-idx3-ubyte.gz" ] || fail "kept a file with a bad checksum"

fails 2 "$deepc" data fetch imagenet
has "$out" "fetch needs one of mnist"
fails 2 "$deepc" data frobnicate
has "$out" "unknown action 'frobnicate'"
out=$("$deepc" help data)
has "$out" "usage: deepc data info"
echo "ok"
