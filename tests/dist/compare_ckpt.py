"""Compares the model weights of two deepc checkpoints (safetensors layout, FORMATS.md) within a
relative tolerance: used by test_train_cli.sh to check that a data-parallel run trains the same
model as one process.

usage: compare_ckpt.py A.ckpt B.ckpt RTOL
Prints the worst entry; exits non-zero when an entry differs by more than RTOL (relative to the
entry's largest magnitude) or the entries differ.
"""
import json, struct, sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def load(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    d = b[8 + n:]
    out = {}
    for k, v in h.items():
        if k == "__metadata__" or not k.startswith("model.") or v["dtype"] not in DTYPES:
            continue
        lo, hi = v["data_offsets"]
        out[k] = np.frombuffer(d[lo:hi], dtype=DTYPES[v["dtype"]]).astype(np.float64)
    return out


def main():
    a, b, rtol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
    if set(a) != set(b) or not a:
        print("FAIL: different model entries: %s" % sorted(set(a) ^ set(b)))
        return 1
    worst, where = 0.0, ""
    for k in sorted(a):
        scale = max(np.abs(b[k]).max(), 1e-6)
        e = float(np.abs(a[k] - b[k]).max() / scale)
        if e > worst:
            worst, where = e, k
    print("%d model entries, worst relative difference %.3g (%s)" % (len(a), worst, where))
    return 0 if worst <= rtol else 1


if __name__ == "__main__":
    sys.exit(main())
