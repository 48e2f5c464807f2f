"""Writes the hostile-input corpus for bad_replay.c into OUTDIR (run by CTest with Debian's
/usr/bin/python3 before the replay): small valid files of every reader (replayed truncated at
every offset) and crafted bad files (wrong magic, overflowing sizes, offsets past the end, zip
entries that overlap or escape their folder, CRC mismatches, forbidden pickle globals, unknown
opcodes, out-of-range memo indices, million-deep nesting, decompression-bomb image sizes,
${var} cycles, 10^12-parameter layers, bad spec columns), plus OUTDIR/manifest.tsv:

    reader <TAB> path <TAB> mode <TAB> expect

mode: ok (must load), bad (must fail), trunc[:k,k..|tail:n] (every strict prefix must fail,
except the listed lengths / the last n), trunc-any (prefixes may load; none may crash or leak).
expect: '|'-separated strings of which the error message must hold one (empty: bad_replay's
generic check that the message names the file and a place)."""
import gzip
import io
import json
import os
import pickle
import struct
import sys
import warnings
import zipfile
import zlib

import numpy as np
from PIL import Image

warnings.filterwarnings("ignore")  # zipfile warns about the duplicate names made on purpose
OUT = sys.argv[1] if len(sys.argv) > 1 else "bad-corpus"
rows = []
counter = {}


def put(reader, name, data, mode="bad", expect=""):
    """Writes OUT/<reader>/<name> (name may hold folders) and adds a manifest row."""
    path = os.path.join(reader, name)
    full = os.path.join(OUT, path)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
        f.write(data)
    rows.append((reader, path, mode, expect))
    counter[reader] = counter.get(reader, 0) + 1


def put_row(reader, path, mode, expect=""):
    rows.append((reader, path, mode, expect))


rng = np.random.default_rng(0)

# ======================= IDX =======================
def idx(a, code=0x08):
    a = np.ascontiguousarray(a)
    return bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + \
        a.astype(a.dtype.newbyteorder(">")).tobytes()


def idx_hdr(dims, code=0x08):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


imgs = rng.integers(0, 255, size=(3, 4, 4), dtype=np.uint8)
good_idx = idx(imgs)
put("idx", "images.idx", good_idx, "ok")
put("idx", "images_trunc.idx", good_idx, "trunc")
put("idx", "float32_trunc.idx", idx(np.linspace(0, 1, 6, dtype=np.float32), 0x0D), "trunc")
put("idx", "gz_trunc.idx.gz", gzip.compress(good_idx, mtime=0), "trunc")
put("idx", "magic.idx", b"\x01\x00\x08\x03" + good_idx[4:], expect="magic")
put("idx", "type_byte.idx", b"\x00\x00\x07\x03" + good_idx[4:], expect="offset 0")
put("idx", "ndim0.idx", b"\x00\x00\x08\x00", expect="offset 3")
put("idx", "ndim200.idx", b"\x00\x00\x08\xc8" + b"\x00" * 64, expect="offset 3")
put("idx", "overflow.idx", idx_hdr([65536, 65536, 65536, 65536]) + b"\x00" * 16, expect="offset 4")
put("idx", "overflow_f64.idx", idx_hdr([1 << 31, 1 << 31, 4], 0x0E) + b"\x00" * 16, expect="offset 4")
put("idx", "max_dims.idx", idx_hdr([0xFFFFFFFF] * 3) + b"\x00" * 16, expect="offset 4")
put("idx", "past_end.idx", idx_hdr([60000, 28, 28]) + b"\x00" * 100, expect="offset 4")
put("idx", "extra.idx", good_idx + b"\x00", expect="offset 64")
put("idx", "gz_claims_huge.idx.gz", gzip.compress(idx_hdr([60000, 28, 28, 28]), mtime=0), expect="offset 4")
flip = bytearray(gzip.compress(good_idx, mtime=0))
flip[14] ^= 0xFF
put("idx", "gz_corrupt.idx.gz", bytes(flip), expect="gzip|truncated|offset")
put("idx", "gz_junk.idx.gz", b"\x1f\x8b" + b"\x00" * 30, expect="gzip|truncated|offset")
put("idx", "empty.idx", b"", expect="too short")

# IDX pairs as a dataset (dc_idx_dataset): counts disagree, labels out of range
put("idxds", "mismatch/images.idx", idx(imgs))
put("idxds", "mismatch/labels.idx", idx(np.array([1, 2], dtype=np.uint8)))
rows.pop()  # the labels file is read through its images row
counter["idxds"] -= 1
put("idxds", "range/images.idx", idx(imgs))
put("idxds", "range/labels.idx", idx(np.array([1, 2, 200], dtype=np.uint8)))
rows.pop()
counter["idxds"] -= 1
put("idxds", "labels_not_1d/images.idx", idx(imgs))
put("idxds", "labels_not_1d/labels.idx", idx(np.zeros((3, 2), dtype=np.uint8)))
rows.pop()
counter["idxds"] -= 1

# samples with a zero-sized dimension (used to load as N empty images): refused, naming the field
for name, dims, where in (("rows0", (10, 0, 28), "offset 8"), ("cols0", (10, 28, 0), "offset 12"),
                          ("chan0", (10, 2, 2, 0), "offset 16")):
    put("idxds", f"{name}/images.idx", idx(np.zeros(dims, np.uint8)), expect=where)
    put("idxds", f"{name}/labels.idx", idx(np.zeros(10, np.uint8)))
    rows.pop()
    counter["idxds"] -= 1
put("dataset", "empty_idx/features.idx", idx(np.zeros((6, 0), np.uint8)), expect="offset 8")

# ======================= CIFAR binary =======================
px = rng.integers(0, 255, size=(2, 3072), dtype=np.uint8)
c10 = b"".join(bytes([k + 3]) + px[k].tobytes() for k in range(2))
c100 = b"".join(bytes([5, 70 + k]) + px[k].tobytes() for k in range(2))
put("dataset", "c10/data_batch_1.bin", c10, "ok")
put("dataset", "c10t/data_batch_1.bin", c10, "trunc:3073")
put("dataset", "c100/train.bin", c100, "ok")
put("dataset", "c100t/train.bin", c100, "trunc:3074")
put("dataset", "c10_label/data_batch_1.bin", bytes([10]) + px[0].tobytes(), expect="label")
put("dataset", "c100_label/train.bin", bytes([5, 100]) + px[0].tobytes(), expect="label")
put("dataset", "c10_ragged/data_batch_1.bin", c10 + b"\x01\x02\x03", expect="3073|cannot tell")
put("dataset", "c10_empty/data_batch_1.bin", b"", expect="empty|record|bytes")

# ======================= NumPy pickles (src/data/pickle.c) =======================
batch = {"batch_label": "training batch 1 of 5", "labels": [3, 1], "data": px, "filenames": ["a.png", "b.png"]}
good_batch = pickle.dumps(batch, protocol=2)
put("pickle", "cifar_batch.pkl", good_batch, "ok")
put("pickleds", "cifar_batch.pkl", good_batch, "ok")
small = pickle.dumps({"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": [0, 1]}, protocol=2)
put("pickle", "small_trunc.pkl", small, "trunc")
put("pickle", "small_p4_trunc.pkl", pickle.dumps((np.arange(4.0, dtype=np.float32), [1, 0, 1, 0]), protocol=4), "trunc")
put("pickleds", "labels_mismatch.pkl", pickle.dumps({"data": np.zeros((2, 3), np.uint8), "labels": [0, 1, 2]}, protocol=2),
    expect="label|sample|rows|length|3")
put("pickleds", "labels_negative.pkl", pickle.dumps({"data": np.zeros((2, 3), np.uint8), "labels": [0, -4]}, protocol=2),
    expect="label|-4|negative")
put("pickleds", "labels_huge.pkl", pickle.dumps({"data": np.zeros((2, 3), np.uint8), "labels": [0, 16000000]}, protocol=2),
    expect="implausible")  # fuzz_pydata: 16 million class names for a 200-byte file
put("pickleds", "data_0_wide.pkl", pickle.dumps({"data": np.zeros((2, 0), np.uint8), "labels": [0, 1]}, protocol=2),
    expect="key 'data'")
put("pickleds", "labels_0_wide.pkl", pickle.dumps((np.zeros((2, 3), np.float32), np.zeros((2, 0), np.float32)), protocol=2),
    expect="item 1")
put("pickleds", "data_not_array.pkl", pickle.dumps({"data": "hello", "labels": [0]}, protocol=2))
put("pickleds", "no_arrays.pkl", pickle.dumps([1, 2, 3], protocol=2))


def forbidden(mod, name, proto2=True):
    """A pickle calling mod.name('echo pwned'): GLOBAL (protocol 2) or STACK_GLOBAL (4)."""
    if proto2:
        return b"\x80\x02c" + mod.encode() + b"\n" + name.encode() + b"\nX\x0a\x00\x00\x00echo pwned\x85R."
    s = lambda t: b"\x8c" + bytes([len(t)]) + t.encode()
    return b"\x80\x04" + s(mod) + s(name) + b"\x93" + s("echo pwned") + b"\x85R."


GLOBALS = [("os", "system"), ("posix", "system"), ("nt", "system"), ("builtins", "eval"),
           ("builtins", "exec"), ("__builtin__", "eval"), ("subprocess", "Popen"),
           ("builtins", "getattr"), ("numpy", "load"), ("torch", "load"), ("collections", "os")]


def pickle_cases(reader, wrap):
    """Hostile pickles, each put through wrap (identity for plain pickles, an archive for .pth)."""
    ext = ".pth" if reader == "weights" else ".pkl"
    for mod, name in GLOBALS:
        for p2 in (True, False):
            put(reader, f"global_{mod}_{name}_{'p2' if p2 else 'p4'}{ext}", wrap(forbidden(mod, name, p2)),
                expect=f"{mod}.{name}|{mod} {name}")
    put(reader, "global_proto0" + ext, wrap(b"cos\nsystem\n(S'echo pwned'\ntR."), expect="os.system|os system|offset")
    put(reader, "inst_opcode" + ext, wrap(b"\x80\x02(S'echo'\nios\nsystem\n."), expect="offset")
    put(reader, "unknown_opcode" + ext, wrap(b"\x80\x02\xff."), expect="offset 2")
    put(reader, "unknown_opcode_0x01" + ext, wrap(b"\x80\x02N\x01."), expect="offset 3")
    put(reader, "memo_get" + ext, wrap(b"\x80\x02h\x05."), expect="memo|offset")
    put(reader, "memo_long_get" + ext, wrap(b"\x80\x02j\xff\xff\xff\xff."), expect="memo|offset")
    put(reader, "memo_get_after_put" + ext, wrap(b"\x80\x02Nq\x00h\x01."), expect="memo|offset")
    put(reader, "memo_long_put" + ext, wrap(b"\x80\x02Nr\xff\xff\xff\x7fh\x00."), expect="memo|offset")
    put(reader, "nest_lists_1M" + ext, wrap(b"\x80\x02" + b"]" * 1000000 + b"a" * 999999 + b"."),
        expect="deep|nest|offset|stack")
    put(reader, "nest_marks_1M" + ext, wrap(b"\x80\x02" + b"(" * 1000000 + b"t" * 1000000 + b"."),
        expect="deep|nest|offset|mark|stack")
    put(reader, "nest_tuples_1M" + ext, wrap(b"\x80\x02N" + b"\x85" * 1000000 + b"."), expect="deep|nest|offset")
    put(reader, "stack_underflow" + ext, wrap(b"\x80\x02R."), expect="offset")
    put(reader, "mark_on_empty_stack" + ext, wrap(b"\x80\x02(t(dR."), expect="offset")
    put(reader, "setitems_no_mark" + ext, wrap(b"\x80\x02}Nu."), expect="offset")
    put(reader, "stop_empty" + ext, wrap(b"\x80\x02."), expect="offset")
    put(reader, "no_stop" + ext, wrap(b"\x80\x02}"), expect="offset|STOP|end")
    put(reader, "unicode_len_huge" + ext, wrap(b"\x80\x02X\xff\xff\xff\xffab."), expect="offset")
    put(reader, "unicode_bad_utf8" + ext, wrap(b"\x80\x02X\x02\x00\x00\x00\xc3\x28."), expect="offset|UTF")
    put(reader, "bytes8_len_huge" + ext, wrap(b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b"ab."), expect="offset")
    put(reader, "unicode8_len_wrap" + ext, wrap(b"\x80\x04\x8d" + struct.pack("<Q", (1 << 64) - 2) + b"ab."), expect="offset")
    put(reader, "frame_huge" + ext, wrap(b"\x80\x04\x95" + struct.pack("<Q", 1 << 60) + b"N."), expect="offset")
    put(reader, "long4_huge" + ext, wrap(b"\x80\x02\x8b\xff\xff\xff\x7f."), expect="offset")
    put(reader, "long1_255" + ext, wrap(b"\x80\x02\x8a\xff" + b"\x7f" * 255 + b"."), expect="offset|integer|int")
    put(reader, "proto_99" + ext, wrap(b"\x80\x63N."), expect="offset|protocol")
    put(reader, "reduce_non_callable" + ext, wrap(b"\x80\x02K\x01)R."), expect="offset")
    put(reader, "dict_key_list" + ext, wrap(b"\x80\x02}]Ns."), expect="offset|key")


pickle_cases("pickle", lambda b: b)

# ======================= .npy / .npz =======================
def npy_bytes(a, version=None):
    b = io.BytesIO()
    if version:
        np.lib.format.write_array(b, a, version=version)
    else:
        np.save(b, a)
    return b.getvalue()


def npy_raw(header, data=b"", major=1):
    h = header.encode()
    total = 10 + len(h) + 1 if major == 1 else 12 + len(h) + 1
    pad = (64 - total % 64) % 64
    h = h + b" " * pad + b"\n"
    lenf = struct.pack("<H", len(h)) if major == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([major, 0]) + lenf + h + data


f4 = npy_bytes(np.arange(6, dtype=np.float32).reshape(2, 3))
put("npy", "f4.npy", f4, "ok")
put("npy", "f4_trunc.npy", f4, "trunc")
put("npy", "v2_trunc.npy", npy_bytes(np.arange(3, dtype=np.int16), (2, 0)), "trunc")
put("npy", "magic.npy", b"\x93NUMPZ" + f4[6:], expect="offset 0")
put("npy", "version.npy", f4[:6] + b"\x09\x09" + f4[8:], expect="offset 6")
put("npy", "header_len_past_end.npy", f4[:8] + b"\xff\xff" + f4[10:], expect="header|offset 8")
put("npy", "header_len_v2_huge.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}", expect="header|offset 8")
put("npy", "not_dict.npy", npy_raw("[1, 2, 3]"), expect="header|offset")
put("npy", "descr_complex.npy", npy_raw("{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", b"\x00" * 16),
    expect="c16")
put("npy", "descr_object.npy", npy_raw("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", b"\x00" * 8),
    expect="|O|object")
put("npy", "descr_struct.npy", npy_raw("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", b"\x00" * 4),
    expect="descr")
put("npy", "shape_negative.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), expect="shape|-1")
put("npy", "shape_overflow.npy", npy_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }"),
    expect="shape|bytes|data")
put("npy", "shape_huge_int.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }"),
    expect="shape|99999")
put("npy", "shape_past_end.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (1000, 1000), }", b"\x00" * 8),
    expect="shape|bytes|data")
put("npy", "shape_33_dims.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 33 + "), }", b"\x00" * 4),
    expect="dim|shape")
put("npy", "fortran_bad.npy", npy_raw("{'descr': '<f4', 'fortran_order': Maybe, 'shape': (1,), }", b"\x00" * 4),
    expect="fortran")
put("npy", "missing_key.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, }", b"\x00" * 4), expect="shape")
put("npy", "nested_parens.npy", npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': " + "(" * 5000 + "), }"),
    expect="shape|header")
put("npy", "extra_data.npy", f4 + b"\x00" * 4, expect="bytes|data|offset")


def npz_bytes(arrays, compressed=False):
    b = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, **arrays)
    return b.getvalue()


xy = {"x": rng.integers(0, 255, size=(2, 2, 2), dtype=np.uint8), "y": np.array([0, 1], dtype=np.int64)}
npz_ok = npz_bytes(xy)
put("npz", "xy.npz", npz_ok, "ok")
put("npz", "xy_trunc.npz", npz_ok, "trunc")
put("npz", "xy_deflated_trunc.npz", npz_bytes(xy, True), "trunc")


def zip_of(entries, method=zipfile.ZIP_STORED):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", method) as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return b.getvalue()


def central(data):
    """Offsets of the central directory records of a zip (list) and of the end record."""
    end = data.rfind(b"PK\x05\x06")
    n = struct.unpack_from("<H", data, end + 10)[0]
    at = struct.unpack_from("<I", data, end + 16)[0]
    recs = []
    for _ in range(n):
        recs.append(at)
        nl, el, cl = struct.unpack_from("<HHH", data, at + 28)
        at += 46 + nl + el + cl
    return recs, end


def crc_flip(data, name):
    """Flips a data byte of the stored entry `name`."""
    d = bytearray(data)
    at = d.find(b"PK\x03\x04" + d[4:4])  # first local header
    while at >= 0:
        nl, el = struct.unpack_from("<HH", d, at + 26)
        if d[at + 30:at + 30 + nl].decode() == name:
            d[at + 30 + nl + el] ^= 0x55
            return bytes(d)
        at = d.find(b"PK\x03\x04", at + 4)
    raise KeyError(name)


def overlap(data):
    """Points the second central record at the first entry's local header."""
    d = bytearray(data)
    recs, _ = central(data)
    first = struct.unpack_from("<I", d, recs[0] + 42)[0]
    struct.pack_into("<I", d, recs[1] + 42, first)
    return bytes(d)


def size_lie(data, k, size):
    """Makes central record k claim `size` uncompressed bytes."""
    d = bytearray(data)
    recs, _ = central(data)
    struct.pack_into("<I", d, recs[k] + 24, size)
    return bytes(d)


put("npz", "crc.npz", crc_flip(npz_ok, "x.npy"), expect="CRC|crc|x.npy")
put("npz", "overlap.npz", overlap(npz_ok), expect="y.npy|x.npy|overlap|zip")
put("npz", "size_lie.npz", size_lie(npz_ok, 0, 0x7FFFFFFF), expect="x.npy|zip")
put("npz", "bomb_claim.npz", size_lie(npz_bytes(xy, True), 0, 0xFFFFFFF0), expect="x.npy|zip")
put("npz", "escape.npz", zip_of([("../x.npy", npy_bytes(xy["x"])), ("y.npy", npy_bytes(xy["y"]))]),
    expect="../x.npy|outside|name")
put("npz", "absolute.npz", zip_of([("/etc/x.npy", npy_bytes(xy["x"]))]), expect="/etc/x.npy|outside|name")
put("npz", "duplicate.npz", zip_of([("x.npy", npy_bytes(xy["x"])), ("x.npy", npy_bytes(xy["y"]))]),
    expect="x.npy|twice|duplicate")
put("npz", "bad_member.npz", zip_of([("x.npy", b"\x93NUMPY\x01\x00\xff\xff{")]), expect="x.npy")
put("npz", "no_arrays.npz", zip_of([("readme.txt", b"hello")]), expect="no .npy")
put("npz", "bzip2.npz", zip_of([("x.npy", npy_bytes(xy["x"]))], zipfile.ZIP_BZIP2), expect="x.npy|compression")
put("dataset", "empty_samples.npy", npy_bytes(np.zeros((4, 0), np.float32)), expect="sample dimension 1")
put("dataset", "x_0.npz", npz_bytes({"x": np.zeros((3, 2, 0), np.uint8), "y": np.arange(3)}), expect="array 'x'")
put("dataset", "y_0.npz", npz_bytes({"x": np.zeros((3, 2), np.uint8), "y": np.zeros((3, 0), np.float32)}),
    expect="array 'y'")
put("npz", "not_zip.npz", b"PK\x03\x04" + b"\x00" * 40, expect="zip")

# ======================= .pth (zip + pickle VM), safetensors, checkpoints =======================
import torch  # noqa: E402  (only the .pth files need it)

torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
b = io.BytesIO()
torch.save(net.state_dict(), b)
pth_ok = b.getvalue()
put("weights", "net.pth", pth_ok, "ok")
put("weights", "net_trunc.pth", pth_ok, "trunc")
entries = zipfile.ZipFile(io.BytesIO(pth_ok)).namelist()
folder = entries[0].split("/")[0]
good_pkl = zipfile.ZipFile(io.BytesIO(pth_ok)).read(folder + "/data.pkl")
put("pickle", "torch_state_dict.pkl", good_pkl, expect="torch._utils._rebuild_tensor_v2")  # torch globals: refused


def pth_with(pkl, storages=None, extra=()):
    """A torch.save-like archive: folder/data.pkl, folder/data/<k>, version, byteorder."""
    storages = storages if storages is not None else {"0": np.arange(16, dtype=np.float32).tobytes()}
    ents = [("archive/data.pkl", pkl), ("archive/byteorder", b"little")]
    ents += [(f"archive/data/{k}", v) for k, v in storages.items()]
    ents += [("archive/version", b"3\n")] + list(extra)
    return zip_of(ents)


pickle_cases("weights", pth_with)


def tensor_pkl(storage="FloatStorage", key="0", numel=16, offset=0, size=(4, 4), stride=(4, 1)):
    """Pickle (protocol 2) of {'w': _rebuild_tensor_v2(storage, offset, size, stride)}."""
    def tup(v):
        return b"(" + b"".join(b"J" + struct.pack("<i", x) if -2**31 <= x < 2**31 else
                               b"\x8a\x08" + struct.pack("<q", x) for x in v) + b"t"
    out = b"\x80\x02ccollections\nOrderedDict\n)R(X\x01\x00\x00\x00w"
    out += b"ctorch._utils\n_rebuild_tensor_v2\n("
    out += b"(X\x07\x00\x00\x00storagectorch\n" + storage.encode() + b"\nX" + struct.pack("<I", len(key)) + key.encode()
    out += b"X\x03\x00\x00\x00cpu" + (b"J" + struct.pack("<i", numel) if numel < 2**31 else b"\x8a\x08" + struct.pack("<q", numel))
    out += b"tQ" + (b"J" + struct.pack("<i", offset) if -2**31 <= offset < 2**31 else b"\x8a\x08" + struct.pack("<q", offset))
    out += tup(size) + tup(stride) + b"\x89ccollections\nOrderedDict\n)Rt" + b"Ru."
    return out


put("weights", "tensor_ok.pth", pth_with(tensor_pkl()), "ok")
put("weights", "storage_missing.pth", pth_with(tensor_pkl(key="7")), expect="data/7")
put("weights", "storage_numel_past_entry.pth", pth_with(tensor_pkl(numel=1000)), expect="data/0|1000")
put("weights", "view_past_storage.pth", pth_with(tensor_pkl(offset=10, size=(4, 4))), expect="w")
put("weights", "negative_stride.pth", pth_with(tensor_pkl(stride=(-4, 1))), expect="w|stride")
put("weights", "negative_offset.pth", pth_with(tensor_pkl(offset=-4)), expect="w|offset")
put("weights", "size_overflow.pth", pth_with(tensor_pkl(size=(1 << 40, 1 << 40), stride=(0, 0))), expect="w")
put("weights", "numel_overflow.pth", pth_with(tensor_pkl(numel=(1 << 62) + 5)), expect="data/0|numel|storage")
put("weights", "storage_class.pth", pth_with(tensor_pkl(storage="EvilStorage")), expect="EvilStorage")
put("weights", "crc.pth", crc_flip(pth_with(tensor_pkl()), "archive/data/0"), expect="CRC|crc|data/0")
put("weights", "overlap.pth", overlap(pth_with(tensor_pkl())), expect="zip|overlap|archive")
put("weights", "size_lie.pth", size_lie(pth_with(tensor_pkl()), 2, 0x7FFFFFFF), expect="zip|data/0|size")
put("weights", "escape_dotdot.pth", pth_with(tensor_pkl(), extra=[("archive/../x", b"x")]), expect="archive/../x")
put("weights", "escape_root.pth", pth_with(tensor_pkl(), extra=[("../x", b"x")]), expect="../x")
put("weights", "escape_absolute.pth", pth_with(tensor_pkl(), extra=[("/etc/passwd", b"x")]), expect="/etc/passwd")
put("weights", "two_folders.pth", pth_with(tensor_pkl(), extra=[("other/data.pkl", b"\x80\x02}.")]), expect="data.pkl|folder")
put("weights", "duplicate_entry.pth", pth_with(tensor_pkl(), extra=[("archive/data/0", b"\x00" * 64)]),
    expect="archive/data/0|twice|duplicate|zip")
put("weights", "no_data_pkl.pth", zip_of([("archive/version", b"3\n")]), expect="data.pkl")
put("weights", "torchscript.pth", pth_with(tensor_pkl(), extra=[("archive/constants.pkl", b"\x80\x02).")]),
    expect="TorchScript|constants")
put("weights", "legacy.pth", b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", expect="legacy|1.6|zip")
put("weights", "not_zip.pth", b"PK\x03\x04" + b"\xff" * 60, expect="zip")
put("weights", "big_endian.pth", zip_of([("archive/data.pkl", tensor_pkl()), ("archive/byteorder", b"big"),
                                         ("archive/data/0", b"\x00" * 64)]), expect="big|byteorder")


def st(tensors, meta=None, raw_header=None, data=None):
    header = {"__metadata__": meta} if meta else {}
    blobs, off = [], 0
    for k, a in tensors.items():
        bts = a.tobytes()
        header[k] = {"dtype": {"float32": "F32", "int64": "I64", "uint8": "U8"}[str(a.dtype)],
                     "shape": list(a.shape), "data_offsets": [off, off + len(bts)]}
        blobs.append(bts)
        off += len(bts)
    h = raw_header if raw_header is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + (data if data is not None else b"".join(blobs))


st_ok = st({"a": np.arange(4, dtype=np.float32), "b": np.arange(3, dtype=np.int64)}, {"format": "pt"})
put("weights", "ok.safetensors", st_ok, "ok")
put("weights", "trunc.safetensors", st_ok, "trunc")


def sth(header, data=b"\x00" * 16):
    return st({}, raw_header=json.dumps(header).encode(), data=data)


def stcases(reader, ext):
    put(reader, "hlen_past_end" + ext, struct.pack("<Q", 1000) + b"{}", expect="offset 0|header")
    put(reader, "hlen_max" + ext, struct.pack("<Q", (1 << 64) - 1) + b"{}", expect="offset 0|header")
    put(reader, "hlen_wrap" + ext, struct.pack("<Q", (1 << 64) - 8) + b"{}" * 8, expect="offset 0|header")
    put(reader, "short" + ext, b"\x02\x00\x00", expect="short|bytes|header")
    put(reader, "not_json" + ext, st({}, raw_header=b"{not json"), expect="JSON|offset 8")
    put(reader, "json_array" + ext, st({}, raw_header=b"[1,2]"), expect="JSON|object|offset 8")
    put(reader, "json_deep" + ext, st({}, raw_header=b"[" * 200000 + b"]" * 200000), expect="JSON|offset 8")
    put(reader, "dtype" + ext, sth({"a": {"dtype": "F99", "shape": [4], "data_offsets": [0, 16]}}), expect="F99")
    put(reader, "shape_negative" + ext, sth({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}}),
        expect="'a'|a:|shape")
    put(reader, "shape_overflow" + ext,
        sth({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 4294967296], "data_offsets": [0, 16]}}),
        expect="'a'|a:|shape")
    put(reader, "shape_float" + ext, sth({"a": {"dtype": "F32", "shape": [1e300], "data_offsets": [0, 16]}}),
        expect="'a'|a:|shape")
    put(reader, "offsets_reversed" + ext, sth({"a": {"dtype": "U8", "shape": [0], "data_offsets": [16, 0]}}),
        expect="'a'|a:|offset")
    put(reader, "offsets_past_end" + ext, sth({"a": {"dtype": "U8", "shape": [4096], "data_offsets": [0, 4096]}}),
        expect="'a'|a:|offset|end")
    put(reader, "offsets_huge" + ext,
        sth({"a": {"dtype": "U8", "shape": [16], "data_offsets": [18446744073709551600, 18446744073709551616]}}),
        expect="'a'|a:|offset")
    put(reader, "gap" + ext, sth({"a": {"dtype": "U8", "shape": [8], "data_offsets": [8, 16]}}), expect="gap|[0, 8)")
    put(reader, "overlap" + ext, sth({"a": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]},
                                      "b": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}}), expect="overlap")
    put(reader, "trailing" + ext, sth({"a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}}),
        expect="end|padded|16")
    put(reader, "duplicate" + ext, st({}, raw_header=b'{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},'
                                                     b'"a":{"dtype":"U8","shape":[8],"data_offsets":[8,16]}}',
                                      data=b"\x00" * 16), expect="'a'|twice|duplicate")
    put(reader, "meta_not_string" + ext, sth({"__metadata__": {"epoch": 3}}, b""), expect="epoch|__metadata__")
    put(reader, "entry_not_object" + ext, sth({"a": 5}, b""), expect="'a'|a:|a ")


stcases("weights", ".safetensors")

ck_ok = st({"model.w": np.arange(6, dtype=np.float32).reshape(2, 3), "trainer.step": np.array([4], dtype=np.int64)},
           {"format": "deepc-checkpoint", "epoch": "2"})
put("ckpt", "ok.ckpt", ck_ok, "ok")
put("ckpt", "trunc.ckpt", ck_ok, "trunc")
stcases("ckpt", ".ckpt")

# ======================= configs and layer specs =======================
cfg_ok = b"[model]\narch = mlp\nhidden = 32, 16\n\n[train]\nepochs = 2\nbatch_size = 8\n[optim]\nname = sgd\nlr = 0.1\n"
put("config", "ok.ini", cfg_ok, "ok")
put("config", "trunc.ini", cfg_ok, "trunc-any")
put("config", "section.ini", b"[model]\narch = mlp\n[trian]\nepochs = 2\n", expect=":3")
put("config", "key.ini", b"[train]\nepoch = 2\n", expect=":2")
put("config", "value.ini", b"[train]\n\nepochs = two\n", expect=":3")
put("config", "huge_int.ini", b"[train]\nepochs = 99999999999999999999999\n", expect=":2")
put("config", "huge_float.ini", b"[optim]\nlr = 1e999\n", expect=":2")
put("config", "no_equals.ini", b"[train]\nepochs\n", expect=":2")
put("config", "no_section.ini", b"epochs = 2\n", expect=":1")
put("config", "unterminated.ini", b"[train\nepochs = 2\n", expect=":1")
put("config", "var_undefined.ini", b"[train]\nepochs = ${n}\n", expect=":2")
put("config", "var_cycle.ini", b"[vars]\na = ${b}\nb = ${a}\n[train]\nepochs = ${a}\n", expect=":2|:3|:5")
put("config", "var_self.ini", b"[vars]\na = ${a}\n[train]\nepochs = ${a}\n", expect=":2|:4")
put("config", "var_laughs.ini", b"[vars]\na = " + b"x" * 1000 + b"\nb = " + b"${a}" * 1000 + b"\n"
    b"[model]\nlayers = " + b"${b}" * 1000 + b"\n", expect=":2|:3|:5|expands")
put("config", "var_unclosed.ini", b"[vars]\na = 1\n[train]\nepochs = ${a\n", expect=":4")
put("config", "nul_byte.ini", b"[train]\nepochs = 2\x00\nbatch_size = 3\n", expect=":2|NUL|byte")
put("config", "long_line.ini", b"[train]\nepochs = " + b"9" * 1000000 + b"\n", expect=":2")
put("config", "binary.ini", bytes(range(256)) * 4, expect=":1")
put("config", "duplicate_key.ini", b"[train]\nepochs = 2\nepochs = 3\n", expect=":3")
put("config", "layers_unparsable.ini", b"[model]\narch = layers\nlayers = linear(4,, 2)\n", expect=":3|column")
put("config", "layers_huge.ini", b"[model]\narch = layers\nlayers = linear(1000000, 1000000)\n", expect=":3|column")

spec_ok = b"conv2d(1, 8, 3, padding=1), batchnorm2d(8), relu, maxpool2d(2), flatten, linear(8*14*14, classes)"
spec_ok = b"conv2d(1, 8, 3, padding=1), batchnorm2d(8), relu, maxpool2d(2), flatten, linear(1568, classes)"
put("spec", "ok.txt", spec_ok, "ok")
put("spec", "trunc.txt", spec_ok, "trunc-any")
SPECS = {
    "linear_1e12": (b"flatten, linear(1000000, 1000000)", "column 10"),
    "conv_1e14": (b"conv2d(100000, 100000, 100)", "column 1"),
    "linear_1e30": (b"linear(1e30, 2)", "column"),
    "linear_2_64": (b"linear(18446744073709551616, 2)", "column"),
    "linear_negative": (b"linear(-1, 5)", "column"),
    "linear_zero_big": (b"linear(0, 10000000000000)", "column"),
    "bn_huge": (b"batchnorm2d(100000000000)", "column"),
    "missing_arg": (b"relu, linear(10)", "column 7"),
    "double_comma": (b"conv2d(1, 32, 5,, padding=2)", "column 17"),
    "unknown_layer": (b"relu, linaer(1, 2)", "column 7"),
    "unknown_kw": (b"conv2d(1, 2, 3, paddin=1)", "column 17"),
    "unclosed": (b"relu, linear(1, 2", "column"),
    "unterminated_str": (b"conv2d(1, 2, 3, padding='same)", "column 25"),
    "bad_char": (b"relu; linear(1, 2)", "column 5"),
    "tuple_long": (b"maxpool2d((1, 2, 3, 4, 5))", "column"),
    "tuple_deep": (b"maxpool2d(" + b"(" * 1000000 + b")", "column"),
    "tuple_nested": (b"maxpool2d(((2, 2), 2))", "column 12"),
    "kernel_huge": (b"conv2d(1, 1, 1000000000)", "column"),
    "dropout_p": (b"dropout(1.5)", "column"),
    "malformed_number": (b"linear(1x, 2)", "column 8"),
    "empty": (b"", "column 1|empty"),
    "long_name": (b"a" * 100000, "column 1"),
}
for name, (text, exp) in SPECS.items():
    put("spec", name + ".txt", text, expect=exp)

# ======================= images (through an ImageFolder) =======================
img = Image.fromarray(rng.integers(0, 255, size=(5, 4, 3), dtype=np.uint8))


def saved_img(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def chunk(typ, data):
    return struct.pack(">I", len(data)) + typ + data + struct.pack(">I", zlib.crc32(typ + data) & 0xFFFFFFFF)


def png(w, h, depth=8, color=2, idat=None, interlace=0, crc_ok=True):
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace)
    c = chunk(b"IHDR", ihdr)
    if not crc_ok:
        c = c[:-4] + b"\x00\x00\x00\x00"
    idat = idat if idat is not None else zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + c + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_claim(w, h, progressive=False):
    """A baseline (SOF0) or progressive (SOF2) JPEG that claims w x h (the scans are the 5x4
    image's)."""
    data = bytearray(saved_img(img, "JPEG", progressive=progressive))
    at = data.find(b"\xff\xc2" if progressive else b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, h, w)
    return bytes(data)


def jpeg_gray_claim(w, h):
    data = bytearray(saved_img(img.convert("L"), "JPEG"))
    at = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, at + 5, h, w)
    return data


def put_img(name, data, mode="bad", expect=""):
    put("image", f"{name}/c/{name}" + ("" if "." in name else ".img"), data, mode, expect)


# the folder is the dataset: rows name the image file; bad_replay opens its grandparent folder
put_img("ok.png", saved_img(img, "PNG"), "ok")
put_img("ok.jpg", saved_img(img, "JPEG"), "ok")
put_img("trunc.png", saved_img(img, "PNG"), "trunc:tail12")
put_img("trunc_gray.png", saved_img(img.convert("L"), "PNG"), "trunc:tail12")
put_img("trunc.jpg", saved_img(img, "JPEG"), "trunc")
put_img("trunc_progressive.jpg", saved_img(img, "JPEG", progressive=True), "trunc")
put_img("trunc.ppm", saved_img(img, "PPM"), "trunc")
put_img("png_100000x100000.png", png(100000, 100000), expect="100000x100000")
put_img("png_2e9_wide.png", png(0x7FFFFFFF, 1), expect="2147483647")
put_img("png_width0.png", png(0, 4), expect="0x4|IHDR|width|empty")
put_img("png_depth.png", png(4, 4, depth=7), expect="depth|IHDR|invalid|bit")
put_img("png_crc.png", png(4, 4, crc_ok=False), expect="CRC|crc|IHDR")
put_img("png_10000x10000_tiny_idat.png", png(10000, 10000, color=0), expect="IDAT|truncated|data|row")
put_img("png_idat_garbage.png", png(4, 4, idat=b"\x78\x9c\xff\xff\xff\xff"), expect="IDAT|data|zlib|deflate|inflate")
put_img("jpeg_65000x65000.jpg", jpeg_claim(65000, 65000), expect="65000x65000")
put_img("jpeg_0x4.jpg", jpeg_claim(0, 4), expect="0x4|empty|JPEG")
# within the pixel limit, but far more 8x8 blocks than a few hundred bytes can code: refused
# before 243 MB of pixels are allocated (libjpeg would fill them with gray)
put_img("jpeg_9000x9000_bomb.jpg", jpeg_claim(9000, 9000), expect="9000x9000")
put_img("jpeg_9000x9000_bomb_progressive.jpg", jpeg_claim(9000, 9000, True), expect="9000x9000")
put_img("jpeg_2000x2000_gray.jpg", bytes(jpeg_gray_claim(2000, 2000)), expect="2000x2000")
put_img("jpeg_huffman.jpg", saved_img(img, "JPEG")[:200] + b"\xff\xd9", expect="JPEG|truncated|data")
put_img("ppm_100000x100000.ppm", b"P6\n100000 100000\n255\n" + b"\x00" * 64, expect="100000x100000")
put_img("ppm_overflow.ppm", b"P6\n99999999999999999999 1\n255\n" + b"\x00" * 64, expect="P6|header|99999")
put_img("ppm_maxval0.ppm", b"P6\n2 2\n0\n" + b"\x00" * 12, expect="maxval|0")
put_img("ppm_maxval16bit.ppm", b"P5\n2 2\n65535\n" + b"\x00" * 8, expect="maxval|65535")
put_img("ppm_short.ppm", b"P6\n4 4\n255\n" + b"\x00" * 10, expect="truncated")
put_img("ppm_comment_only.ppm", b"P6\n#" + b"x" * 1000, expect="P6|header")
put_img("not_image.png", b"\x89PNX\r\n\x1a\n" + b"\x00" * 32, expect="offset 0|not a JPEG")

# ======================= CSV =======================
csv_ok = b"a,b,label\n1,2,cat\n3.5,-4e2,dog\n"
put("csv", "ok.csv", csv_ok, "ok")
put("csv", "trunc.csv", csv_ok, "trunc-any")
put("csv", "ragged.csv", b"a,b,label\n1,2,0\n3,0\n", expect="line 3")
put("csv", "too_many.csv", b"a,b,label\n1,2,0\n3,4,5,6\n", expect="line 3")
put("csv", "not_number.csv", b"a,b,label\n1,2,0\n3,x7,1\n", expect="line 3, column 2")
put("csv", "missing.csv", b"a,b,label\n1,,0\n", expect="line 2, column 2")
put("csv", "nan_text.csv", b"a,b,label\n1,0x1p3,0\n", expect="line 2, column 2")
put("csv", "header_only.csv", b"a,b,label\n", expect="no data rows")
put("csv", "empty.csv", b"", expect="empty")
put("csv", "only_label.csv", b"label\n1\n", expect="no feature columns besides the label (column 1, 'label')")
put("csv", "unterminated_quote.csv", b'a,b,label\n1,"2,0\n3,4,1\n', expect="line 2")
put("csv", "nul.csv", b"a,b,label\n1,2\x00,0\n", expect="line 2")
put("csv", "wide_tall.csv", b",".join(b"c%d" % i for i in range(300000)) + b"\n" + b"\n0" * 300000,
    expect="line 2|line 3")
put("csv", "cell_huge.csv", b"a,label\n" + b"9" * 100000 + b",1\n", expect="line 2")

put("history", "ok.csv", b"epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,0.5,0.8,0.6,0.7,0.1,2\n", "ok")
put("history", "trunc.csv", b"epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n1,0.5,0.8,0.6,0.7,0.1,2\n",
    "trunc-any")
put("history", "bad_number.csv", b"epoch,train_loss\n1,abc\n", expect=":2:")
put("history", "epoch_float.csv", b"epoch,train_loss\n1.5,0.2\n", expect=":2:")
put("history", "epoch_huge.csv", b"epoch,train_loss\n99999999999999999999,0.2\n", expect=":2:")
put("history", "no_epoch.csv", b"loss\n0.5\n", expect="epoch")

# ======================= ONNX (src/io/onnx_import.c) =======================
import onnx  # noqa: E402  (Debian python3-onnx)
from onnx import TensorProto as TP_, helper as oh  # noqa: E402


def onnx_model(nodes, inits=(), inputs=None, outputs=None, opset=17, **kw):
    inputs = inputs if inputs is not None else [oh.make_tensor_value_info("x", TP_.FLOAT, ["N", 4])]
    outputs = outputs if outputs is not None else [oh.make_tensor_value_info("y", TP_.FLOAT, ["N", 3])]
    g = oh.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return oh.make_model(g, opset_imports=[oh.make_opsetid("", opset)], **kw)


def onnx_bytes(m):
    return m.SerializeToString()


def f32(name, a):
    a = np.asarray(a, dtype=np.float32)
    return oh.make_tensor(name, TP_.FLOAT, a.shape, a.tobytes(), raw=True)


w_ok, b_ok = rng.standard_normal((3, 4)), rng.standard_normal(3)
gemm = oh.make_node("Gemm", ["x", "w", "b"], ["h"], name="fc", transB=1)
relu = oh.make_node("Relu", ["h"], ["y"], name="act")
good = onnx_model([gemm, relu], [f32("w", w_ok), f32("b", b_ok)])
put("onnx", "ok.onnx", onnx_bytes(good), "ok")
put("onnx", "trunc.onnx", onnx_bytes(good), "trunc")
put("onnx", "garbage.onnx", b"\xff\xff\xff\xff\x0f" + bytes(range(200)), expect="protobuf")
put("onnx", "empty.onnx", b"", expect="graph")


def bad_init(name, t, expect):
    put("onnx", name, onnx_bytes(onnx_model([gemm, relu], [t, f32("b", b_ok)])), expect=expect)


t = f32("w", w_ok)
del t.dims[:]
t.dims.extend([1 << 40, 1 << 40])
bad_init("huge_dims.onnx", t, "2^31")
t = f32("w", w_ok)
t.dims[0] = -3
bad_init("negative_dim.onnx", t, "negative")
t = f32("w", w_ok)
del t.dims[:]
t.dims.extend([1] * 12)
bad_init("rank12.onnx", t, "too many dimensions")
t = f32("w", w_ok)
t.raw_data = t.raw_data[:-4]
bad_init("raw_short.onnx", t, "raw_data")


def typed_tensor(name, dtype, dims, floats=(), strings=()):
    t = TP_()
    t.name, t.data_type = name, dtype
    t.dims.extend(dims)
    t.float_data.extend(floats)
    t.string_data.extend(strings)
    return t


bad_init("float_data_short.onnx", typed_tensor("w", TP_.FLOAT, [3, 4], [1.0] * 11), "count")
bad_init("float_data_huge_dims.onnx", typed_tensor("w", TP_.FLOAT, [1 << 20, 1 << 10], [1.0] * 4),
         "count")
bad_init("string_tensor.onnx", typed_tensor("w", TP_.STRING, [1], strings=[b"a"]), "data_type")


def ext_init(name, location, expect, mode="bad", length=None, data=None):
    t = f32("w", w_ok)
    t.ClearField("raw_data")
    t.data_location = TP_.EXTERNAL
    for k, v in [("location", location)] + ([("length", str(length))] if length is not None else []):
        e = t.external_data.add()
        e.key, e.value = k, v
    if data is not None:
        put("onnx", "ext/" + location, data, "ok" if mode == "ok" else "bad")
        rows.pop()  # the weights file is no row of its own
    put("onnx", "ext/" + name, onnx_bytes(onnx_model([gemm, relu], [t, f32("b", b_ok)])),
        mode, expect)


ext_init("ext_ok.onnx", "w.bin", "", "ok", data=np.asarray(w_ok, np.float32).tobytes())
ext_init("ext_dotdot.onnx", "../../../../etc/passwd", "leaves the model's folder")
ext_init("ext_absolute.onnx", "/etc/passwd", "leaves the model's folder")
ext_init("ext_short.onnx", "short.bin", "offset", data=b"\0" * 8)
ext_init("ext_length.onnx", "w.bin", "offset/length", length=7)
ext_init("ext_missing.onnx", "nothere.bin", "nothere.bin")
os.symlink("/etc/hostname", os.path.join(OUT, "onnx", "ext", "link.bin"))
ext_init("ext_symlink.onnx", "link.bin", "outside the model's folder")

cyc = [oh.make_node("Relu", ["z"], ["h"], name="first"), oh.make_node("Relu", ["h"], ["z"], name="second"),
       oh.make_node("Relu", ["x"], ["y"], name="out")]
put("onnx", "cycle.onnx", onnx_bytes(onnx_model(cyc)), expect="cycle")
put("onnx", "self_loop.onnx", onnx_bytes(onnx_model([oh.make_node("Add", ["x", "y"], ["y"], name="loop")])),
    expect="cycle")
twice = [oh.make_node("Relu", ["x"], ["y"], name="a"), oh.make_node("Relu", ["x"], ["y"], name="b")]
put("onnx", "defined_twice.onnx", onnx_bytes(onnx_model(twice)), expect="twice")
put("onnx", "unknown_op.onnx", onnx_bytes(onnx_model([oh.make_node("Cos", ["x"], ["y"], name="my_cos")])),
    expect="'Cos'")
put("onnx", "custom_domain.onnx",
    onnx_bytes(onnx_model([oh.make_node("Relu", ["x"], ["y"], name="r", domain="com.evil")])), expect="domain")
put("onnx", "no_output_node.onnx", onnx_bytes(onnx_model([oh.make_node("Relu", ["x"], ["h"], name="r")])),
    expect="made by no node")
put("onnx", "opset99.onnx", onnx_bytes(onnx_model([relu], opset=99)), expect="opset")
two_in = [oh.make_tensor_value_info("x", TP_.FLOAT, [1, 4]), oh.make_tensor_value_info("x2", TP_.FLOAT, [1, 4])]
put("onnx", "two_inputs.onnx", onnx_bytes(onnx_model([oh.make_node("Add", ["x", "x2"], ["y"])], inputs=two_in)),
    expect="inputs")
put("onnx", "gemm_one_input.onnx", onnx_bytes(onnx_model([oh.make_node("Gemm", ["x"], ["y"], name="g")])),
    expect="inputs")
conv_w = f32("cw", rng.standard_normal((2, 1, 3, 3)))
img_in = [oh.make_tensor_value_info("x", TP_.FLOAT, ["N", 1, 8, 8])]
conv = oh.make_node("Conv", ["x", "cw"], ["y"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1])
put("onnx", "conv_ok.onnx", onnx_bytes(onnx_model([conv], [conv_w], inputs=img_in)), "ok")
for nm, kw, exp in [("pads_asym", {"pads": [0, 0, 1, 1]}, "pads"),
                    ("stride0", {"strides": [0, 1]}, "strides"),
                    ("kernel_float", {"kernel_shape": [3.0, 3.0]}, "kernel_shape"),
                    ("dilation_huge", {"dilations": [1 << 40, 1]}, "dilations"),
                    ("group_neg", {"group": -2}, "group"),
                    ("auto_pad", {"auto_pad": "SAME_UPPER"}, "auto_pad")]:
    args = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    args.update(kw)
    n = oh.make_node("Conv", ["x", "cw"], ["y"], name="conv", **args)
    put("onnx", nm + ".onnx", onnx_bytes(onnx_model([n], [conv_w], inputs=img_in)), expect=exp)
shape_in = [oh.make_tensor_value_info("x", TP_.FLOAT, ["N", 4]), oh.make_tensor_value_info("s", TP_.INT64, [2])]
put("onnx", "reshape_dynamic.onnx",
    onnx_bytes(onnx_model([oh.make_node("Relu", ["x"], ["h"]), oh.make_node("Reshape", ["h", "h"], ["y"], name="rs")])),
    expect="constant")
sh = oh.make_tensor("sh", TP_.INT64, [2], [-1, -1])
put("onnx", "reshape_two_minus.onnx",
    onnx_bytes(onnx_model([oh.make_node("Reshape", ["x", "sh"], ["y"], name="rs")], [sh])), expect="shape")
# a million nodes (and a graph just over deepc's node limit): refused before they are all kept
chain = [oh.make_node("Relu", ["x" if i == 0 else "v%d" % (i - 1)], ["y" if i == 999999 else "v%d" % i])
         for i in range(1000000)]
put("onnx", "million_nodes.onnx", onnx_bytes(onnx_model(chain)), expect="nodes")
del chain
many = [oh.make_node("Identity", ["x" if i == 0 else "v%d" % (i - 1)], ["y" if i == 100000 else "v%d" % i])
        for i in range(100001)]
put("onnx", "nodes_100001.onnx", onnx_bytes(onnx_model(many)), expect="nodes")
del many

with open(os.path.join(OUT, "manifest.tsv"), "w") as f:
    for r in rows:
        f.write("\t".join(r) + "\n")
print("bad corpus:", ", ".join(f"{k} {v}" for k, v in sorted(counter.items())), f"({len(rows)} rows)")
