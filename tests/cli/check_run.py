"""Checks the files a `deepc train` run writes (used by test_train.sh).

usage: check_run.py files RUN_DIR MIN_TEST_ACC
       check_run.py same-ckpt A.ckpt B.ckpt      (model/optimizer/trainer state bit for bit)
       check_run.py torch-mlp CKPT N ACC        (PyTorch scores the checkpoint's 784-h-10 MLP on
                                                 the first N Fashion-MNIST test images: ACC %)
Exits non-zero with a message on the first failed check.
"""
import csv, json, math, os, struct, sys


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


# ---- TensorBoard event files: TFRecord framing, masked CRC32C, Event/Summary protobufs ----
def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(b, i):
    shift = v = 0
    while True:
        c = b[i]; i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def fields(b):
    """(field number, wire type, value) of a protobuf message."""
    i, out = 0, []
    while i < len(b):
        key, i = varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = varint(b, i)
        elif w == 1:
            v = b[i:i + 8]; i += 8
        elif w == 5:
            v = b[i:i + 4]; i += 4
        elif w == 2:
            n, i = varint(b, i)
            v = b[i:i + n]; i += n
        else:
            fail("event file: unexpected wire type %d" % w)
        out.append((f, w, v))
    return out


def read_events(path):
    data = open(path, "rb").read()
    i, events = 0, []
    while i < len(data):
        if i + 12 > len(data):
            fail("%s: truncated record header at %d" % (path, i))
        n = struct.unpack("<Q", data[i:i + 8])[0]
        if struct.unpack("<I", data[i + 8:i + 12])[0] != masked(crc32c(data[i:i + 8])):
            fail("%s: bad length CRC at %d" % (path, i))
        body = data[i + 12:i + 12 + n]
        if struct.unpack("<I", data[i + 12 + n:i + 16 + n])[0] != masked(crc32c(body)):
            fail("%s: bad data CRC at %d" % (path, i))
        ev = {"scalars": {}}
        for f, w, v in fields(body):
            if f == 1 and w == 1:
                ev["wall_time"] = struct.unpack("<d", v)[0]
            elif f == 2 and w == 0:
                ev["step"] = v
            elif f == 3 and w == 2:
                ev["file_version"] = v.decode()
            elif f == 5 and w == 2:
                for sf, _, sv in fields(v):
                    if sf == 1:
                        val = dict((a, c) for a, _, c in fields(sv))
                        ev["scalars"][val[1].decode()] = struct.unpack("<f", val[2])[0]
        events.append(ev)
        i += 16 + n
    return events


def check_files(run, min_acc):
    for name in ["metrics.csv", "curves.png", "curves.svg", "report.md", "config.ini",
                 "last.ckpt", "best.ckpt"]:
        if not os.path.isfile(os.path.join(run, name)):
            fail("%s missing" % name)
    rows = list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))
    want = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"]
    if not rows or list(rows[0].keys()) != want:
        fail("metrics.csv header %s" % (list(rows[0].keys()) if rows else "empty"))
    for r in rows:
        for k in want:
            float(r[k])
    if [int(r["epoch"]) for r in rows] != list(range(1, len(rows) + 1)):
        fail("metrics.csv epochs")
    from PIL import Image
    im = Image.open(os.path.join(run, "curves.png"))
    im.load()
    if im.size[0] < 600 or im.size[1] < 300:
        fail("curves.png is %s" % (im.size,))
    px = im.convert("RGB").getcolors(1 << 20)
    if len(px) < 10:
        fail("curves.png has only %d colours (empty plot?)" % len(px))
    svg = open(os.path.join(run, "curves.svg")).read()
    if "<svg" not in svg:
        fail("curves.svg is not SVG")
    tb = os.path.join(run, "tb")
    files = [f for f in os.listdir(tb) if f.startswith("events.out.tfevents.")]
    if not files:
        fail("no event file in tb/")
    events = []
    for f in sorted(files):
        evs = read_events(os.path.join(tb, f))
        if evs[0].get("file_version") != "brain.Event:2":
            fail("first event is not brain.Event:2")
        events += evs[1:]
    for r in rows:
        e = int(r["epoch"])
        got = [ev["scalars"]["loss/train"] for ev in events
               if ev.get("step") == e and "loss/train" in ev["scalars"]]
        if not got or abs(got[-1] - float(r["train_loss"])) > 1e-5 * max(1, abs(got[-1])):
            fail("event file loss/train at step %d: %s vs csv %s" % (e, got, r["train_loss"]))
    report = open(os.path.join(run, "report.md")).read()
    for s in ["## Results", "## Per-class results", "## Confusion matrix", "curves.png", "**test**"]:
        if s not in report:
            fail("report.md lacks %r" % s)
    line = [l for l in report.splitlines() if l.startswith("| **test**")][0]
    acc = float(line.split("|")[3].strip().strip("*").replace("%", "").strip())
    if acc < min_acc:
        fail("test accuracy %.2f%% < %.2f%%" % (acc, min_acc))
    print("files ok: %d epochs, test accuracy %.2f%%, %d events" % (len(rows), acc, len(events)))


def load_ckpt(p):
    b = open(p, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    if n % 8:
        fail("%s: header length %d not a multiple of 8" % (p, n))
    h = json.loads(b[8:8 + n])
    d = b[8 + n:]
    return {k: d[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in h.items()
            if k != "__metadata__"}, h["__metadata__"]


def same_ckpt(a, b):
    ta, ma = load_ckpt(a)
    tb, mb = load_ckpt(b)
    if set(ta) != set(tb):
        fail("different entries: %s" % sorted(set(ta) ^ set(tb)))
    # everything but the history (its seconds column is wall time)
    keys = [k for k in ta if k != "trainer.history"]
    diff = [k for k in keys if ta[k] != tb[k]]
    if diff:
        fail("%d of %d entries differ: %s" % (len(diff), len(keys), diff[:8]))
    if not any(k.startswith("model.") for k in keys) or not any(k.startswith("optim.") for k in keys):
        fail("no model/optim entries")
    print("checkpoints identical: %d entries" % len(keys))


def torch_mlp(path, n, want):
    """Loads the weights of a deepc MLP checkpoint into the same PyTorch network and scores it
    on the first n test images with the same normalisation: the accuracies must agree."""
    import gzip
    import numpy as np
    import torch
    t, meta = load_ckpt(path)
    h = json.loads(open(path, "rb").read()[8:8 + struct.unpack("<Q", open(path, "rb").read(8))[0]])
    sd = {k[6:]: torch.tensor(np.frombuffer(t[k], np.float32).reshape(h[k]["shape"]).copy())
          for k in t if k.startswith("model.")}
    hidden = sd["1.weight"].shape[0]
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, hidden), torch.nn.ReLU(),
                            torch.nn.Linear(hidden, 10))
    m.load_state_dict(sd, strict=True)
    d = "/usr/share/datasets/fashion-mnist/"

    def idx(p):
        b = gzip.open(p).read()
        nd = b[3]
        dims = np.frombuffer(b[4:4 + 4 * nd], ">u4")
        return np.frombuffer(b[4 + 4 * nd:], np.uint8).reshape(dims)
    x = torch.tensor(idx(d + "t10k-images-idx3-ubyte.gz")[:n], dtype=torch.float32)
    x = (x.unsqueeze(1) / 255 - 0.2860) / 0.3530
    y = torch.tensor(idx(d + "t10k-labels-idx1-ubyte.gz")[:n].astype(np.int64))
    with torch.no_grad():
        acc = 100 * (m(x).argmax(1) == y).float().mean().item()
    if abs(acc - want) > 0.1 + 1e-9:
        fail("PyTorch scores the checkpoint %.2f%%, deepc %.2f%%" % (acc, want))
    print("PyTorch agrees: %.2f%%" % acc)


if __name__ == "__main__":
    if sys.argv[1] == "files":
        check_files(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1] == "torch-mlp":
        torch_mlp(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    elif sys.argv[1] == "same-ckpt":
        same_ckpt(sys.argv[2], sys.argv[3])
    else:
        fail("unknown check %s" % sys.argv[1])
