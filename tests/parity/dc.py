"""ctypes bridge from Python to libdeepc for PyTorch-parity tests.

Run with /usr/bin/python3 (Debian's torch). DEEPC_LIB names the shared library (CTest sets it).
    from dc import lib, T, to_np, check_close, run_tests
    x = T(np_array, requires_grad=True)     # dc_tensor* from a NumPy array (float32/64, int64, ...)
    y = lib.dc_sigmoid(x)                   # every dc_* function returning a tensor gives a pointer
    lib.dc_backward_opt(y_sum, BackwardOpts())
    to_np(y), grad_np(x)                    # NumPy copies of values / .grad
Tests are plain functions named test_*; run_tests(globals()) runs them, prints
"N passed, M failed" and exits non-zero on any failure.
DC_PARITY_DEVICE=testdev (or cuda) makes T() create its tensors on that device, so the ops under
test run there; DC_PARITY_RECORD=FILE writes a digest of every value read back (to_np) to FILE,
in order: tests/parity/compare_devices.py runs a suite on the cpu and on a device and requires
the two records to be equal, bit for bit.
"""
import ctypes as C
import hashlib
import os
import sys
import traceback

import numpy as np

MAX_DIMS = 8
ALL_DIMS = 127  # DC_ALL_DIMS (include/deepc/tensor.h)
_lib_path = os.environ.get("DEEPC_LIB") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "libdeepc.so")
lib = C.CDLL(os.path.abspath(_lib_path))


class Shape(C.Structure):
    _fields_ = [("ndim", C.c_int), ("d", C.c_int64 * MAX_DIMS)]


class Tensor(C.Structure):
    pass


Tensor._fields_ = [
    ("storage", C.c_void_p), ("offset", C.c_int64), ("ndim", C.c_int),
    ("shape", C.c_int64 * MAX_DIMS), ("stride", C.c_int64 * MAX_DIMS),
    ("dtype", C.c_int), ("device", C.c_int), ("requires_grad", C.c_bool),
    ("retains_grad", C.c_bool), ("grad", C.POINTER(Tensor)), ("grad_fn", C.c_void_p),
    ("name", C.c_char_p), ("refcount", C.c_int32), ("scope_level", C.c_int32),
    ("scope_slot", C.c_int32)]
TP = C.POINTER(Tensor)


# option structs of nn_functional.h, field for field
class ConvOpts(C.Structure):
    _fields_ = [("stride", C.c_int * 2), ("padding", C.c_int * 2), ("dilation", C.c_int * 2),
                ("groups", C.c_int), ("same_padding", C.c_bool)]


class PoolOpts(C.Structure):
    _fields_ = [("kernel", C.c_int * 2), ("stride", C.c_int * 2), ("padding", C.c_int * 2),
                ("dilation", C.c_int * 2), ("ceil_mode", C.c_bool), ("exclude_pad", C.c_bool),
                ("divisor_override", C.c_int)]


class XentOpts(C.Structure):
    _fields_ = [("weight", TP), ("ignore_index", C.c_int64), ("has_ignore_index", C.c_bool),
                ("label_smoothing", C.c_double), ("reduction", C.c_int)]


class MarginOpts(C.Structure):
    _fields_ = [("p", C.c_int), ("margin", C.c_double), ("zero_margin", C.c_bool),
                ("weight", TP), ("reduction", C.c_int)]


class BackwardOpts(C.Structure):
    _fields_ = [("grad", TP), ("retain_graph", C.c_bool), ("create_graph", C.c_bool)]


F32, F64, I64, I32, U8, BOOL, BF16, F16 = range(8)
DEVICES = {"cpu": 0, "cuda": 1, "testdev": 2}  # dc_device (include/deepc/tensor.h)
DEVICE = DEVICES[os.environ.get("DC_PARITY_DEVICE", "cpu")]
_RECORD_PATH = os.environ.get("DC_PARITY_RECORD")
_record = []  # "test index dtype shape sha1" of each value read back, in order
_current_test = "-"
_NP = {F32: np.float32, F64: np.float64, I64: np.int64, I32: np.int32, U8: np.uint8,
       BOOL: np.bool_}
_DT = {np.dtype(v): k for k, v in _NP.items()}


class _Lib:
    """Attribute access gives dc_* functions with restype guessed from the name."""

    def __init__(self, raw):
        self.raw = raw
        self._cache = {}

    def __getattr__(self, name):
        if name in self._cache:
            return self._cache[name]
        f = getattr(self.raw, name)
        if name in ("dc_item", "dc_item_at"):
            f.restype = C.c_double
        elif name in ("dc_last_error", "dc_grad_fn_name", "dc_dtype_name"):
            f.restype = C.c_char_p
        elif name.startswith(("dc_backward", "dc_copy_", "dc_fill_", "dc_scope", "dc_retain",
                              "dc_uniform_", "dc_normal_", "dc_copy_to_buffer", "dc_live",
                              "dc_numel", "dc_is_", "dc_manual_seed", "dc_free", "dc_clear",
                              "dc_set_", "dc_zero_grad", "dc_print", "dc_last_status")):
            f.restype = C.c_int64 if name in ("dc_live_tensors", "dc_numel") else C.c_int
        else:
            f.restype = TP
        self._cache[name] = f
        return f


lib = _Lib(lib)


def shape(*dims):
    s = Shape()
    s.ndim = len(dims)
    for i, v in enumerate(dims):
        s.d[i] = v
    return s


def err():
    return (lib.dc_last_error() or b"").decode()


def T(a, requires_grad=False, dtype=None):
    a = np.array(a if dtype is None else np.asarray(a, dtype=dtype), order="C")  # keeps 0-d
    dt = _DT[a.dtype]
    t = lib.dc_from_data_on(a.ctypes.data_as(C.c_void_p), shape(*a.shape), dt, DEVICE)
    assert t, err()
    if requires_grad:
        assert lib.dc_requires_grad_(t, True), err()
    return t


def check(t):
    assert t, "deepc returned NULL: " + err()
    return t


def to_np(t):
    check(t)
    s = t.contents
    dims = [s.shape[i] for i in range(s.ndim)]
    out = np.empty(dims, dtype=_NP[s.dtype])
    rc = lib.dc_copy_to_buffer(t, out.ctypes.data_as(C.c_void_p), C.c_size_t(out.nbytes))
    assert rc == 0, err()
    record(out)
    return out


def record(out):
    """Adds array out to the record that compare_devices.py compares (when one is kept)."""
    if _RECORD_PATH:
        digest = hashlib.sha1(out.tobytes()).hexdigest()
        _record.append(f"{_current_test} {len(_record)} {out.dtype} {list(out.shape)} {digest}")


def grad_np(t):
    g = t.contents.grad
    return to_np(g) if g else None


def backward(t, grad=None, retain_graph=False):
    o = BackwardOpts()
    o.grad = grad if grad is not None else None
    o.retain_graph = retain_graph
    rc = lib.dc_backward_opt(t, o)
    assert rc == 0, err()


def dims(*ds):
    """(const int *dims, int ndims) argument pair for reductions."""
    arr = (C.c_int * max(1, len(ds)))(*ds)
    return arr, len(ds)


def check_close(name, got, want, rtol=1e-5, atol=1e-6):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"{name}: shape {got.shape} != torch {want.shape}")
    if not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
        bad = ~np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
        i = tuple(int(v) for v in np.argwhere(bad)[0]) if bad.ndim else ()
        raise AssertionError(f"{name}: {int(bad.sum())} of {bad.size} differ, first at {i}: "
                             f"deepc {got[i]!r} vs torch {want[i]!r} (rtol {rtol}, atol {atol})")


def run_tests(ns):
    tests = [(k, v) for k, v in sorted(ns.items()) if k.startswith("test_") and callable(v)]
    passed = failed = 0
    global _current_test
    for name, fn in tests:
        _current_test = name
        try:
            lib.dc_scope_begin()
            try:
                fn()
            finally:
                lib.dc_scope_end()
            passed += 1
            print(f"PASS {name}")
        except Exception:  # report every failure, keep going
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    if _RECORD_PATH:
        with open(_RECORD_PATH, "w") as f:
            f.write("\n".join(_record) + "\n")
    sys.exit(1 if failed or not tests else 0)
