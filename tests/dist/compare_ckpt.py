"""Compares two deepc checkpoints (safetensors layout, FORMATS.md).

usage: compare_ckpt.py A.ckpt B.ckpt RTOL
       compare_ckpt.py A.ckpt B.ckpt --exact
RTOL: the model weights within a relative tolerance (test_train_cli.sh: a data-parallel run
trains the same model as one process); prints the worst entry; exits non-zero when an entry
differs by more than RTOL (relative to the entry's largest magnitude) or the entries differ.
--exact: the same metadata and the same bytes in every entry, the seconds column of
trainer.history (wall time, its last) aside (test_testdev_train.sh: cpu against testdev).
"""
import json, struct, sys

import numpy as np

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64}


def entries(p):
    """(metadata, {name: (dtype, shape, raw bytes)}) of checkpoint p."""
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    d = b[8 + n:]
    out = {}
    for k, v in h.items():
        if k != "__metadata__":
            lo, hi = v["data_offsets"]
            out[k] = (v["dtype"], v["shape"], d[lo:hi])
    return h.get("__metadata__"), out


def load(p):
    """The model.* float/int entries of p as float64 arrays."""
    return {k: np.frombuffer(raw, dtype=DTYPES[dt]).astype(np.float64)
            for k, (dt, _, raw) in entries(p)[1].items()
            if k.startswith("model.") and dt in DTYPES}


def without_seconds(e):
    dt, shape, raw = e
    h = np.frombuffer(raw, dtype=np.float64).reshape(shape).copy()
    h[:, -1] = 0
    return dt, shape, h.tobytes()


def exact(pa, pb):
    (ma, a), (mb, b) = entries(pa), entries(pb)
    for e in (a, b):
        if "trainer.history" in e:
            e["trainer.history"] = without_seconds(e["trainer.history"])
    bad = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if ma != mb or bad:
        print("metadata differs" if ma != mb else "entries differ: " + ", ".join(bad[:5]))
        return 1
    return 0


def main():
    if sys.argv[3] == "--exact":
        return exact(sys.argv[1], sys.argv[2])
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
