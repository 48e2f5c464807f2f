"""PyTorch parity: elementwise binary, scalar, comparison and unary ops, forward and backward,
float32 and float64, broadcasting, 0-d operands and non-contiguous (transposed) inputs; dtype
promotion; second derivatives through create_graph."""
import ctypes as C

import numpy as np
import torch
import torch.nn.functional as F

from dc import lib, T, to_np, grad_np, backward, check_close, run_tests, err, BackwardOpts, TP

rng = np.random.default_rng(0)
D = C.c_double
TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-10, atol=1e-12)}


def tol(dtype, scale=1.0):
    t = TOL[dtype]
    return dict(rtol=t["rtol"] * scale, atol=t["atol"] * scale)


def leaf_pair(a, dtype, transpose):
    """deepc and torch leaves holding a; with transpose the leaves store a.T and the op sees a
    non-contiguous transposed view with a's shape."""
    a = np.asarray(a, dtype=dtype)
    if transpose:
        a = np.ascontiguousarray(a.T)
    x = T(a, requires_grad=True)
    tx = torch.tensor(a, requires_grad=True)
    if transpose:
        return x, lib.dc_transpose(x, 0, a.ndim - 1), tx, tx.transpose(0, a.ndim - 1)
    return x, x, tx, tx


def check_fwd_bwd(name, y, ty, leaves, dtype, scale=1.0):
    assert y, f"{name}: {err()}"
    check_close(name + " forward", to_np(y), ty.detach().numpy(), **tol(dtype, scale))
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    backward(y, T(g))
    ty.backward(torch.tensor(g))
    for k, (x, tx) in enumerate(leaves):
        if tx.grad is None:
            continue
        check_close(f"{name} grad {k}", grad_np(x), tx.grad.numpy(), **tol(dtype, scale))


# ---- binary ops ----

BIN = {
    "add": (lib.dc_add, torch.add),
    "sub": (lib.dc_sub, torch.sub),
    "mul": (lib.dc_mul, torch.mul),
    "div": (lib.dc_div, torch.div),
    "pow": (lib.dc_pow, torch.pow),
    "maximum": (lib.dc_maximum, torch.maximum),
    "minimum": (lib.dc_minimum, torch.minimum),
}

SHAPES = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (5,)), ((5,), ()),
          ((64, 10), (10,)), ((4, 1), (1, 6)), ((), ())]


def operands(name, sa, sb):
    a = rng.standard_normal(sa)
    b = rng.standard_normal(sb)
    if name == "div":
        b = np.where(np.abs(b) < 0.2, 0.7, b)
    if name == "pow":
        a = np.abs(a) + 0.2
    return a, b


def test_binary_ops():
    for name, (fd, ft) in BIN.items():
        for sa, sb in SHAPES:
            for dtype in (np.float32, np.float64):
                a, b = operands(name, sa, sb)
                tr = len(sa) >= 2  # transposed input where there are two dims to swap
                x, xin, tx, txin = leaf_pair(a, dtype, tr)
                w, win, tw, twin = leaf_pair(b, dtype, False)
                check_fwd_bwd(f"{name} {sa} {sb} {np.dtype(dtype)}", fd(xin, win), ft(txin, twin),
                              [(x, tx), (w, tw)], dtype, scale=5 if name == "pow" else 1)


def test_maximum_minimum_ties_and_nan():
    a = np.array([1.0, 2.0, 3.0, np.nan, 1.0])
    b = np.array([2.0, 2.0, 1.0, 1.0, np.nan])
    for name in ("maximum", "minimum"):
        fd, ft = BIN[name]
        for dtype in (np.float32, np.float64):
            x, _, tx, _ = leaf_pair(a, dtype, False)
            w, _, tw, _ = leaf_pair(b, dtype, False)
            check_fwd_bwd(name + " ties", fd(x, w), ft(tx, tw), [(x, tx), (w, tw)], dtype)


def test_pow_edge_gradients():
    a = np.array([0.0, 0.0, 2.0, 2.0, 0.5])
    b = np.array([0.0, 2.0, 0.0, -1.0, 1.5])
    for dtype in (np.float32, np.float64):
        x, _, tx, _ = leaf_pair(a, dtype, False)
        w, _, tw, _ = leaf_pair(b, dtype, False)
        check_fwd_bwd("pow edges", lib.dc_pow(x, w), torch.pow(tx, tw), [(x, tx), (w, tw)], dtype)


def test_add_scaled_and_where():
    lib.dc_add_scaled.argtypes = [TP, TP, D]
    for sa, sb in SHAPES:
        for dtype in (np.float32, np.float64):
            a, b = operands("add", sa, sb)
            x, _, tx, _ = leaf_pair(a, dtype, False)
            w, _, tw, _ = leaf_pair(b, dtype, False)
            check_fwd_bwd(f"add alpha {sa} {sb}", lib.dc_add_scaled(x, w, -0.3),
                          torch.add(tx, tw, alpha=-0.3), [(x, tx), (w, tw)], dtype)
            x, _, tx, _ = leaf_pair(a, dtype, False)
            w, _, tw, _ = leaf_pair(b, dtype, False)
            c = np.asarray(rng.standard_normal(sb) > 0)
            check_fwd_bwd(f"where {sa} {sb}", lib.dc_where(T(c), x, w),
                          torch.where(torch.tensor(c), tx, tw), [(x, tx), (w, tw)], dtype)


# ---- ops with a scalar ----

SCALAR = {
    "add_scalar": (lambda x, s: x + s), "sub_scalar": (lambda x, s: x - s),
    "rsub_scalar": (lambda x, s: s - x), "mul_scalar": (lambda x, s: x * s),
    "div_scalar": (lambda x, s: x / s), "pow_scalar": (lambda x, s: x ** s),
}


def test_scalar_ops():
    for name, ft in SCALAR.items():
        fd = getattr(lib, "dc_" + name)
        fd.argtypes = [TP, D]
        scalars = [2.0, 0.5, -0.5, 3.0, 1.7, -2.0, 0.0] if name == "pow_scalar" else [0.3, -2.5]
        for s in scalars:
            for dtype in (np.float32, np.float64):
                a = rng.standard_normal((5, 3))
                if name == "pow_scalar":
                    a = np.abs(a) + 0.2
                x, xin, tx, txin = leaf_pair(a, dtype, True)
                check_fwd_bwd(f"{name} {s} {np.dtype(dtype)}", fd(xin, s), ft(txin, s),
                              [(x, tx)], dtype, scale=3)


# ---- comparisons ----

def test_comparisons():
    a = rng.integers(-2, 3, (4, 5)).astype(np.float64)
    b = rng.integers(-2, 3, (5,)).astype(np.float64)
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        for dtype in (np.float32, np.float64, np.int64):
            got = to_np(getattr(lib, "dc_" + name)(T(a.astype(dtype)), T(b.astype(dtype))))
            want = getattr(torch, name)(torch.tensor(a.astype(dtype)), torch.tensor(b.astype(dtype)))
            assert got.dtype == np.bool_, name
            assert (got == want.numpy()).all(), name
    for name in ("gt", "lt", "eq"):
        fd = getattr(lib, f"dc_{name}_scalar")
        fd.argtypes = [TP, D]
        for s in (0.0, 1.0, 0.1):
            for dtype in (np.float32, np.int64):
                got = to_np(fd(T(a.astype(dtype) / (10 if dtype == np.float32 else 1)), s))
                ta = torch.tensor(a.astype(dtype) / (10 if dtype == np.float32 else 1))
                want = getattr(torch, name)(ta, s).numpy()
                assert (got == want).all(), f"{name}_scalar {s} {dtype}"


# ---- unary ops ----

def relu_like_data(shape):
    """values away from 0 (kinks), with a few exact zeros added where torch defines the slope"""
    a = rng.standard_normal(shape) * 3
    a = np.where(np.abs(a) < 0.05, 0.5, a)
    a.flat[0] = 0.0
    return a


lib.dc_clamp.argtypes = [TP, D, D]
lib.dc_leaky_relu.argtypes = [TP, D]
lib.dc_elu.argtypes = [TP, D]
lib.dc_gelu.argtypes = [TP, C.c_bool]
lib.dc_softplus.argtypes = [TP, D, D]

UNARY = [
    ("neg", lib.dc_neg, torch.neg, "any"),
    ("abs", lib.dc_abs, torch.abs, "kink"),
    ("sign", lib.dc_sign, torch.sign, "kink"),
    ("exp", lib.dc_exp, torch.exp, "any"),
    ("log", lib.dc_log, torch.log, "pos"),
    ("sqrt", lib.dc_sqrt, torch.sqrt, "pos"),
    ("rsqrt", lib.dc_rsqrt, torch.rsqrt, "pos"),
    ("square", lib.dc_square, torch.square, "any"),
    ("reciprocal", lib.dc_reciprocal, torch.reciprocal, "pos"),
    ("clamp", lambda x: lib.dc_clamp(x, -0.5, 0.8), lambda x: torch.clamp(x, -0.5, 0.8), "any"),
    ("clamp lo", lambda x: lib.dc_clamp(x, -0.5, float("inf")), lambda x: torch.clamp(x, min=-0.5),
     "any"),
    ("sigmoid", lib.dc_sigmoid, torch.sigmoid, "wide"),
    ("tanh", lib.dc_tanh, torch.tanh, "wide"),
    ("relu", lib.dc_relu, torch.relu, "kink"),
    ("leaky_relu", lambda x: lib.dc_leaky_relu(x, 0.1), lambda x: F.leaky_relu(x, 0.1), "kink"),
    ("elu", lambda x: lib.dc_elu(x, 1.3), lambda x: F.elu(x, 1.3), "kink"),
    ("selu", lib.dc_selu, F.selu, "kink"),
    ("gelu", lambda x: lib.dc_gelu(x, False), F.gelu, "wide"),
    ("gelu tanh", lambda x: lib.dc_gelu(x, True), lambda x: F.gelu(x, approximate="tanh"), "wide"),
    ("softplus", lambda x: lib.dc_softplus(x, 1.0, 20.0), F.softplus, "wide"),
    ("softplus b2 t3", lambda x: lib.dc_softplus(x, 2.0, 3.0),
     lambda x: F.softplus(x, beta=2.0, threshold=3.0), "any"),
]


def unary_data(kind, shape):
    if kind == "pos":
        return np.abs(rng.standard_normal(shape)) + 0.1
    if kind == "kink":
        return relu_like_data(shape)
    if kind == "wide":
        return rng.standard_normal(shape) * 6
    return rng.standard_normal(shape) * 2


def test_unary_ops():
    for name, fd, ft, kind in UNARY:
        for shape in ((7, 5), (3, 4, 2), (1000,), ()):
            for dtype in (np.float32, np.float64):
                a = unary_data(kind, shape)
                tr = len(shape) >= 2
                x, xin, tx, txin = leaf_pair(a, dtype, tr)
                check_fwd_bwd(f"{name} {shape} {np.dtype(dtype)}", fd(xin), ft(txin),
                              [(x, tx)], dtype, scale=3)


def test_unary_special_values():
    a = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-40, 88.0, -88.0, 100.0, -100.0])
    for name, fd, ft, kind in UNARY:
        if name in ("gelu", "gelu tanh"):
            continue  # torch gives NaN/0 where deepc's formula stays finite for +-inf
        for dtype in (np.float32, np.float64):
            x = T(a.astype(dtype))
            got = to_np(fd(x))
            want = ft(torch.tensor(a.astype(dtype))).numpy()
            check_close(f"{name} specials {np.dtype(dtype)}", got, want, **tol(dtype, 3))


# ---- promotion ----

def test_promotion():
    cases = [
        (np.ones(3, np.int64), np.ones(3, np.float32), "add"),
        (np.arange(1, 4, dtype=np.int64), np.full(3, 2, np.int64), "div"),
        (np.ones(3, np.float32), np.float64(2.0), "mul"),
        (np.ones(3, np.int32), np.float64(1.5), "add"),
        (np.ones(3, np.uint8) * 250, np.int64(10), "add"),
        (np.ones((2, 3), np.float32), np.ones(3, np.float64), "sub"),
        (np.arange(3, dtype=np.int64), np.arange(3, dtype=np.int32), "maximum"),
    ]
    for a, b, name in cases:
        got = to_np(getattr(lib, "dc_" + name)(T(np.asarray(a)), T(np.asarray(b))))
        want = getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy()
        assert got.dtype == want.dtype, f"{name}: {a.dtype} {np.asarray(b).dtype} -> {got.dtype}, torch {want.dtype}"
        check_close(f"promotion {name}", got, want)


def test_mixed_dtype_gradients():
    a = rng.standard_normal((3, 4))
    b = rng.standard_normal((4,))
    x, _, tx, _ = leaf_pair(a, np.float32, False)
    w, _, tw, _ = leaf_pair(b, np.float64, False)
    y, ty = lib.dc_mul(x, w), tx * tw
    check_fwd_bwd("mixed f32 * f64", y, ty, [(x, tx), (w, tw)], np.float32)
    assert grad_np(x).dtype == np.float32 and grad_np(w).dtype == np.float64


# ---- second derivatives ----

def test_double_backward():
    fns = [("sigmoid", lib.dc_sigmoid, torch.sigmoid), ("tanh", lib.dc_tanh, torch.tanh),
           ("gelu", lambda x: lib.dc_gelu(x, False), F.gelu),
           ("gelu tanh", lambda x: lib.dc_gelu(x, True), lambda x: F.gelu(x, approximate="tanh")),
           ("exp", lib.dc_exp, torch.exp), ("softplus", lambda x: lib.dc_softplus(x, 1.0, 20.0),
                                            F.softplus)]
    for name, fd, ft in fns:
        a = rng.standard_normal((6,)) * 2
        x = T(a, requires_grad=True)
        y = lib.dc_sum_all(fd(x))
        o = BackwardOpts()
        o.create_graph = True
        o.retain_graph = True
        assert lib.dc_backward_opt(y, o) == 0, err()
        g1 = C.cast(C.c_void_p(C.cast(x.contents.grad, C.c_void_p).value), TP)  # own the handle
        first = to_np(g1)
        x.contents.grad = None
        backward(lib.dc_sum_all(g1))
        second = grad_np(x)
        tx = torch.tensor(a, requires_grad=True)
        (tg,) = torch.autograd.grad(ft(tx).sum(), tx, create_graph=True)
        (tgg,) = torch.autograd.grad(tg.sum(), tx)
        check_close(name + " first", first, tg.detach().numpy(), rtol=1e-10, atol=1e-12)
        check_close(name + " second", second, tgg.numpy(), rtol=1e-9, atol=1e-12)
        lib.dc_free(g1)


run_tests(globals())
