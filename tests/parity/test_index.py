"""PyTorch parity: gather, scatter_add, index_select, one_hot, cat and stack, forward and
backward, float32 and float64, negative dims, duplicate indices and non-contiguous inputs."""
import ctypes as C

import numpy as np
import torch

from dc import lib, shape, T, to_np, grad_np, backward, check_close, run_tests, err

rng = np.random.default_rng(1)


def leaf(shape, dtype, transposed=False):
    """deepc leaf, the view the op sees, torch leaf, torch view (transposed: last two dims swapped
    in storage, so the op sees a non-contiguous tensor)."""
    if transposed and len(shape) >= 2:
        stored = list(shape)
        stored[-1], stored[-2] = stored[-2], stored[-1]
        a = rng.standard_normal(stored).astype(dtype)
        x, tx = T(a, requires_grad=True), torch.tensor(a, requires_grad=True)
        return x, lib.dc_transpose(x, -1, -2), tx, tx.transpose(-1, -2)
    a = rng.standard_normal(shape).astype(dtype)
    x, tx = T(a, requires_grad=True), torch.tensor(a, requires_grad=True)
    return x, x, tx, tx


def compare(name, out, tout, leaves, dtype):
    assert out, f"{name}: {err()}"
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    check_close(name + " forward", to_np(out), tout.detach().numpy(), **tol)
    g = rng.standard_normal(tout.shape).astype(dtype)
    # a 0-d gradient goes through [1] (T makes arrays at least 1-D)
    backward(out, T(g) if g.ndim else lib.dc_reshape(T(g.reshape(1)), shape()))
    tout.backward(torch.tensor(g))
    for k, (x, tx) in enumerate(leaves):
        check_close(f"{name} grad {k}", grad_np(x), tx.grad.numpy(), **tol)


def index_for(shape, dim, size):
    return rng.integers(0, size, size=shape).astype(np.int64)


def test_gather():
    for shape, ishape, dim in (((3, 5), (3, 4), 1), ((3, 5), (2, 5), 0), ((4, 3, 6), (4, 2, 6), -2),
                               ((7,), (9,), 0), ((2, 3, 4), (2, 3, 1), 2)):
        for dtype in (np.float32, np.float64):
            for tr in (False, True):
                x, xv, tx, txv = leaf(shape, dtype, tr)
                ix = index_for(ishape, dim, shape[dim])
                compare(f"gather {shape} {ishape} dim {dim} T={tr}",
                        lib.dc_gather(xv, dim, T(ix)), torch.gather(txv, dim, torch.tensor(ix)),
                        [(x, tx)], dtype)


def test_scatter_add():
    # torch's backward needs src shaped like index (deepc also takes a larger src: unit tests)
    for shape, sshape, ishape, dim in (((3, 5), (3, 4), (3, 4), 1), ((4, 3), (6, 3), (6, 3), 0),
                                       ((2, 4, 3), (2, 4, 2), (2, 4, 2), -1)):
        for dtype in (np.float32, np.float64):
            for tr in (False, True):
                x, xv, tx, txv = leaf(shape, dtype, tr)
                s, sv, ts, tsv = leaf(sshape, dtype)
                ix = index_for(ishape, dim, shape[dim])
                compare(f"scatter_add {shape} dim {dim}", lib.dc_scatter_add(xv, dim, T(ix), sv),
                        torch.scatter_add(txv, dim, torch.tensor(ix), tsv),
                        [(x, tx), (s, ts)], dtype)


def test_index_select():
    for shape, n, dim in (((5, 3), 7, 0), ((5, 3), 4, 1), ((2, 6, 4), 9, -2), ((8,), 3, 0),
                          ((100, 32), 64, 0)):
        for dtype in (np.float32, np.float64):
            for tr in (False, True):
                x, xv, tx, txv = leaf(shape, dtype, tr)
                ix = rng.integers(0, shape[dim], size=n).astype(np.int64)  # duplicates
                compare(f"index_select {shape} dim {dim} T={tr}",
                        lib.dc_index_select(xv, dim, T(ix)),
                        torch.index_select(txv, dim, torch.tensor(ix)), [(x, tx)], dtype)


def test_one_hot():
    for shape, c in (((6,), 4), ((2, 3), 10), ((5,), -1)):
        lab = rng.integers(0, 4, size=shape).astype(np.int64)
        got = lib.dc_one_hot(T(lab), C.c_int64(c))
        assert got, err()
        want = torch.nn.functional.one_hot(torch.tensor(lab), c).numpy()
        assert to_np(got).dtype == np.int64
        check_close(f"one_hot {shape} {c}", to_np(got), want, rtol=0, atol=0)
    assert not lib.dc_one_hot(T(np.array([1, 5], np.int64)), C.c_int64(3))
    assert "label 5" in err()


def tensor_list(ts):
    return (C.POINTER(type(ts[0].contents)) * len(ts))(*ts)


def test_cat():
    for shapes, dim in ((((2, 3), (2, 1), (2, 4)), 1), (((3, 2), (1, 2)), 0),
                        (((2, 3, 4), (2, 3, 4)), -1), (((4,), (0,), (2,)), 0)):
        for dtype in (np.float32, np.float64):
            for tr in (False, True):
                ls = [leaf(s, dtype, tr) for s in shapes]
                out = lib.dc_cat(tensor_list([v for _, v, _, _ in ls]), len(ls), dim)
                tout = torch.cat([tv for _, _, _, tv in ls], dim)
                compare(f"cat {shapes} dim {dim} T={tr}", out, tout,
                        [(x, tx) for x, _, tx, _ in ls], dtype)
    # mixed dtypes promote like torch.cat and each gradient keeps its input's dtype
    a, av, ta, tav = leaf((2, 3), np.float32)
    b, bv, tb, tbv = leaf((1, 3), np.float64)
    out = lib.dc_cat(tensor_list([av, bv]), 2, 0)
    assert to_np(out).dtype == np.float64
    compare("cat mixed dtypes", out, torch.cat([tav, tbv], 0), [(a, ta), (b, tb)], np.float64)
    assert grad_np(a).dtype == np.float32 and grad_np(b).dtype == np.float64


def test_stack():
    for shape, n in (((2, 3), 3), ((4,), 2), ((2, 3, 2), 4)):
        for dim in range(-len(shape) - 1, len(shape) + 1):
            for dtype in (np.float32, np.float64):
                ls = [leaf(shape, dtype, k % 2 == 1) for k in range(n)]  # some transposed
                out = lib.dc_stack(tensor_list([v for _, v, _, _ in ls]), n, dim)
                tout = torch.stack([tv for _, _, _, tv in ls], dim)
                compare(f"stack {shape} x{n} dim {dim}", out, tout,
                        [(x, tx) for x, _, tx, _ in ls], dtype)


run_tests(globals())
