"""PyTorch parity of the weight files (include/deepc/io.h, dc_weights_*).

Files written by torch.save (every dtype, views with offsets and strides, shared storages,
parameters, nested checkpoint dicts, _metadata, pickle protocol 4) are read by deepc with the same
bytes; files written by deepc load with torch.load(weights_only=True) and load_state_dict;
safetensors files written by a Python transcription of the reference writer are read, and deepc's
are checked against the format's rules; `deepc inspect` reports zlib.crc32 of every tensor and
`deepc convert` round-trips; malicious pickles, whole-model pickles, TorchScript and legacy files
are refused without running anything.
"""
import ctypes as C
import json
import os
import struct
import subprocess
import tempfile
import zlib

import numpy as np
import torch
import torch.nn as nn

from dc import lib, run_tests

raw = lib.raw
VP = C.c_void_p
raw.dc_weights_load.restype = VP
raw.dc_weights_load.argtypes = [C.c_char_p]
raw.dc_weights_free.argtypes = [VP]
raw.dc_weights_count.argtypes = [VP]
raw.dc_weights_find.argtypes = [VP, C.c_char_p]
raw.dc_weights_name.restype = C.c_char_p
raw.dc_weights_name.argtypes = [VP, C.c_int]
raw.dc_weights_dtype_name.restype = C.c_char_p
raw.dc_weights_dtype_name.argtypes = [VP, C.c_int]
raw.dc_weights_data.restype = VP
raw.dc_weights_data.argtypes = [VP, C.c_int, C.POINTER(C.c_size_t)]
raw.dc_weights_meta.restype = C.c_char_p
raw.dc_weights_meta.argtypes = [VP, C.c_char_p]
raw.dc_last_error.restype = C.c_char_p

DEEPC = os.path.join(os.path.dirname(os.path.abspath(os.environ.get("DEEPC_LIB", "build/x"))), "deepc")
TMP = tempfile.mkdtemp(prefix="dc_pth_parity_")


def path(name):
    return os.path.join(TMP, name)


def err():
    return (raw.dc_last_error() or b"").decode()


def raw_bytes(t):
    """Row-major little-endian bytes of a tensor, whatever its dtype."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


class Weights:
    def __init__(self, p):
        self.w = raw.dc_weights_load(p.encode())
        self.error = None if self.w else err()

    def __enter__(self):
        assert self.w, self.error
        return self

    def __exit__(self, *a):
        raw.dc_weights_free(self.w)

    def names(self):
        return [raw.dc_weights_name(self.w, i).decode() for i in range(raw.dc_weights_count(self.w))]

    def dtype(self, name):
        return raw.dc_weights_dtype_name(self.w, raw.dc_weights_find(self.w, name.encode())).decode()

    def data(self, name):
        i = raw.dc_weights_find(self.w, name.encode())
        assert i >= 0, name
        n = C.c_size_t()
        p = raw.dc_weights_data(self.w, i, C.byref(n))
        return C.string_at(p, n.value) if n.value else b""

    def meta(self, key):
        v = raw.dc_weights_meta(self.w, key.encode())
        return v.decode() if v is not None else None


def deepc(*args, ok=True):
    r = subprocess.run([DEEPC, *args], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, f"deepc {' '.join(args)}: {r.stderr}"
    return r


def sample_dict():
    torch.manual_seed(0)
    base = torch.randn(6, 8)
    sd = {
        "f32": torch.randn(3, 4),
        "f64": torch.randn(5, dtype=torch.float64),
        "f16": torch.randn(2, 3).half(),
        "bf16": torch.randn(4, 2).bfloat16(),
        "i8": torch.randint(-128, 127, (7,), dtype=torch.int8),
        "i16": torch.randint(-30000, 30000, (3, 3), dtype=torch.int16),
        "i32": torch.randint(-2**31, 2**31 - 1, (4,), dtype=torch.int32),
        "i64": torch.tensor([2**40, -5, 7]),
        "u8": torch.randint(0, 255, (2, 5), dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "c64": torch.randn(3, dtype=torch.complex64),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "transposed": base.t(),                 # strides (1, 8)
        "slice": base[2:5, 1:7:2],              # offset 17, strides (8, 2)
        "row": base[4],                         # shares base's storage
        "base": base,
        "expanded": torch.arange(3.0).expand(4, 3),  # stride 0
        "param": nn.Parameter(torch.randn(2, 2)),
    }
    return sd


def sample_file(proto=2):
    p = path(f"sample{proto}.pth")
    if not os.path.exists(p):
        torch.save(sample_dict(), p, pickle_protocol=proto)
    return p


def src_file():
    """sample_dict() without complex values (for formats and checks that lack them)."""
    p = path("src.pth")
    if not os.path.exists(p):
        torch.save({k: v for k, v in sample_dict().items() if k != "c64"}, p)
    return p


def test_torch_written_files_all_dtypes_and_views():
    sd = sample_dict()
    for proto in (2, 4):
        p = sample_file(proto)
        with Weights(p) as w:
            assert w.names() == list(sd), w.names()
            for k, t in sd.items():
                assert w.data(k) == raw_bytes(t), f"{k} (protocol {proto})"
                want = str(t.dtype).replace("torch.", "")
                assert w.dtype(k) == want, (k, w.dtype(k), want)


def test_inspect_reports_crc32_of_every_tensor():
    sd = sample_dict()
    p = path("inspect.pth")
    torch.save(sd, p)
    out = deepc("inspect", p).stdout
    for k, t in sd.items():
        line = next(l for l in out.splitlines() if l.split()[:1] == [k])
        assert line.split()[-1] == "%08x" % zlib.crc32(raw_bytes(t)), line
        assert f"[{', '.join(str(s) for s in t.shape)}]" in line, line
    assert "19 tensors" in out, out


def test_nested_checkpoint_and_metadata():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1, 4, 4)).sum().backward()
    opt.step()
    ck = {"epoch": 7, "best_acc": 0.875, "name": "run-1", "model_state_dict": model.state_dict(),
          "optimizer_state_dict": opt.state_dict()}
    p = path("ckpt.pth")
    torch.save(ck, p)
    with Weights(p) as w:
        names = w.names()
        for k, t in model.state_dict().items():
            assert w.data("model_state_dict." + k) == raw_bytes(t), k
        assert "optimizer_state_dict.state.0.momentum_buffer" in names, names
        assert w.meta("epoch") == "7" and w.meta("best_acc") == "0.875", (w.meta("epoch"), w.meta("best_acc"))
        assert w.meta("name") == "'run-1'"
        md = json.loads(w.meta("model_state_dict._metadata"))
        assert md == {k: dict(v) for k, v in model.state_dict()._metadata.items()}, md
        assert w.meta("optimizer_state_dict.param_groups.0.lr") == "0.1"


def test_deepc_written_pth_loads_in_torch():
    sd = {k: v for k, v in sample_dict().items() if k != "c64"}
    src = src_file()
    out = path("deepc.pth")
    deepc("convert", src, out)
    back = torch.load(out, weights_only=True)  # PyTorch's own restricted loader accepts it
    assert list(back) == list(sd)
    for k, t in sd.items():
        assert back[k].dtype == t.dtype and back[k].shape == t.shape, k
        assert torch.equal(back[k], t.detach().contiguous()), k
    # complex values too, through torch.load
    deepc("convert", sample_file(), path("all.pth"))
    allb = torch.load(path("all.pth"))
    assert torch.equal(allb["c64"], sample_dict()["c64"])
    # _metadata survives, so load_state_dict sees BatchNorm's version 2
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    torch.save(m.state_dict(), path("bn.pth"))
    deepc("convert", path("bn.pth"), path("bn2.pth"))
    sd2 = torch.load(path("bn2.pth"))
    assert dict(sd2._metadata) == dict(m.state_dict()._metadata)
    m.load_state_dict(sd2)


def test_safetensors_reference_layout_and_rules():
    sd = {k: v for k, v in sample_dict().items()
          if k not in ("c64", "transposed", "slice", "row", "expanded")}
    codes = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
             torch.bfloat16: "BF16", torch.int8: "I8", torch.int16: "I16", torch.int32: "I32",
             torch.int64: "I64", torch.uint8: "U8", torch.bool: "BOOL"}
    # the reference writer: sorted by (alignment desc, name), header padded with spaces to 8
    items = sorted(sd.items(), key=lambda kv: (-kv[1].element_size(), kv[0]))
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for k, t in items:
        b = raw_bytes(t)
        header[k] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    p = path("ref.safetensors")
    with open(p, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    with Weights(p) as w:
        assert w.meta("format") == "pt"
        for k, t in sd.items():
            assert w.data(k) == raw_bytes(t), k
    # deepc's own file obeys the rules and holds the same bytes
    out = path("deepc.safetensors")
    deepc("convert", src_file(), out)
    data = open(out, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    assert n % 8 == 0 and data[8:9] == b"{"
    hdr = json.loads(data[8:8 + n])
    spans = sorted(v["data_offsets"] for k, v in hdr.items() if k != "__metadata__")
    at = 0
    for b, e in spans:
        assert b == at, spans
        at = e
    assert 8 + n + at == len(data)
    src = torch.load(src_file())
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        t = src[k]
        assert v["shape"] == list(t.shape) and v["dtype"] == codes[t.dtype], k
        b, e = v["data_offsets"]
        assert data[8 + n + b:8 + n + e] == raw_bytes(t), k


def test_convert_round_trips_keep_every_byte():
    src = sample_file()
    chain = [src, path("c1.safetensors"), path("c2.ckpt"), path("c3.pth"), path("c4.safetensors")]
    for a, b in zip(chain, chain[1:]):
        deepc("convert", a, b)
    with Weights(src) as w0, Weights(chain[-1]) as w1:
        assert w0.names() == w1.names()
        for k in w0.names():
            assert w0.data(k) == w1.data(k) and w0.dtype(k) == w1.dtype(k), k
    with Weights(chain[2]) as ck:
        assert ck.names()[0].startswith("model."), ck.names()[:3]


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + path("pwned"),))


def test_malicious_pickles_are_refused_not_run():
    torch.save({"w": torch.ones(2), "x": Evil()}, path("evil.pth"))
    r = deepc("inspect", path("evil.pth"), ok=False)
    assert r.returncode == 1, r
    assert "refusing global 'posix.system'" in r.stderr or "refusing global 'os.system'" in r.stderr, r.stderr
    assert "offset" in r.stderr
    assert not os.path.exists(path("pwned"))
    w = raw.dc_weights_load(path("evil.pth").encode())
    assert not w and "system" in err()
    # eval through builtins
    class Eval:
        def __reduce__(self):
            return (eval, ("1+1",))
    torch.save({"x": Eval()}, path("eval.pth"))
    msg = deepc("inspect", path("eval.pth"), ok=False).stderr
    assert "builtins.eval'" in msg or "__builtin__.eval'" in msg, msg


def test_whole_model_torchscript_and_legacy_files():
    m = nn.Sequential(nn.Linear(2, 3))
    torch.save(m, path("model.pth"))
    r = deepc("inspect", path("model.pth"), ok=False)
    assert "torch.nn" in r.stderr and "state_dict()" in r.stderr, r.stderr
    torch.jit.save(torch.jit.script(m), path("script.pt"))
    r = deepc("inspect", path("script.pt"), ok=False)
    assert "TorchScript" in r.stderr, r.stderr
    torch.save(m.state_dict(), path("legacy.pth"), _use_new_zipfile_serialization=False)
    r = deepc("inspect", path("legacy.pth"), ok=False)
    assert "legacy" in r.stderr, r.stderr


if __name__ == "__main__":
    run_tests(globals())
