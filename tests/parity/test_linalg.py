"""PyTorch parity: matmul (every rank combination, broadcast batch dims), bmm and linear, forward
and backward, float32 and float64, contiguous and transposed (non-contiguous) inputs, shapes small
enough for the blocked kernel and large enough for oneDNN."""
import numpy as np
import torch

from dc import lib, shape, T, to_np, grad_np, backward, check_close, run_tests, err

rng = np.random.default_rng(0)

TOL = {np.float32: dict(rtol=2e-4, atol=2e-4), np.float64: dict(rtol=1e-10, atol=1e-10)}


def leaf(shape, dtype, transposed):
    """A deepc leaf and the matching torch leaf; transposed: the op sees a transposed view of a
    leaf stored with its last two dims swapped (a non-contiguous input)."""
    if transposed and len(shape) >= 2:
        stored = list(shape)
        stored[-1], stored[-2] = stored[-2], stored[-1]
        a = rng.standard_normal(stored).astype(dtype)
        x = T(a, requires_grad=True)
        tx = torch.tensor(a, requires_grad=True)
        return x, lib.dc_transpose(x, -1, -2), tx, tx.transpose(-1, -2)
    a = rng.standard_normal(shape).astype(dtype)
    x = T(a, requires_grad=True)
    tx = torch.tensor(a, requires_grad=True)
    return x, x, tx, tx


def compare(name, dc_out, t_out, leaves, dtype):
    assert dc_out, f"{name}: {err()}"
    tol = TOL[dtype]
    check_close(name + " forward", to_np(dc_out), t_out.detach().numpy(), **tol)
    g = rng.standard_normal(t_out.shape).astype(dtype)
    # a 0-d gradient goes through [1] (T makes arrays at least 1-D)
    backward(dc_out, T(g) if g.ndim else lib.dc_reshape(T(g.reshape(1)), shape()))
    t_out.backward(torch.tensor(g))
    for k, (x, tx) in enumerate(leaves):
        check_close(f"{name} grad {k}", grad_np(x), tx.grad.numpy(), **tol)


MM_CASES = [
    ((5,), (5,)), ((3, 5), (5,)), ((5,), (5, 4)), ((3, 5), (5, 4)), ((2, 3, 5), (5,)),
    ((2, 3, 3, 5), (5, 4)), ((5,), (2, 5, 4)), ((3, 5), (2, 5, 4)), ((2, 3, 5), (2, 5, 4)),
    ((2, 1, 3, 5), (4, 5, 2)), ((1, 3, 5), (2, 1, 5, 4)), ((4, 1, 6, 7), (1, 3, 7, 2)),
    # big enough for oneDNN (above the small-product cut-over)
    ((64, 300), (300, 200)), ((3, 40, 70), (70, 90)), ((2, 50, 60), (2, 60, 80)),
    ((1, 70, 60), (3, 60, 50)),
]


def test_matmul():
    for sa, sb in MM_CASES:
        for dtype in (np.float32, np.float64):
            for ta, tb in ((False, False), (True, True), (True, False)):
                x, xv, tx, txv = leaf(sa, dtype, ta)
                y, yv, ty, tyv = leaf(sb, dtype, tb)
                name = f"matmul {sa}{'T' if ta else ''} x {sb}{'T' if tb else ''} {dtype.__name__}"
                compare(name, lib.dc_matmul(xv, yv), torch.matmul(txv, tyv),
                        [(x, tx), (y, ty)], dtype)


def test_bmm():
    for sa, sb in (((3, 2, 4), (3, 4, 5)), ((2, 64, 100), (2, 100, 30))):
        for dtype in (np.float32, np.float64):
            for tr in (False, True):
                x, xv, tx, txv = leaf(sa, dtype, tr)
                y, yv, ty, tyv = leaf(sb, dtype, not tr)
                compare(f"bmm {sa} {sb} {tr}", lib.dc_bmm(xv, yv), torch.bmm(txv, tyv),
                        [(x, tx), (y, ty)], dtype)


def test_linear():
    cases = [((4, 6), 5, True), ((2, 3, 6), 5, True), ((6,), 5, True), ((4, 6), 5, False),
             ((64, 784), 256, True), ((8, 16, 100), 64, True)]
    for sx, n, bias in cases:
        for dtype in (np.float32, np.float64):
            for tr in (False, True):
                k = sx[-1]
                x, xv, tx, txv = leaf(sx, dtype, tr and len(sx) >= 3)
                w, wv, tw, twv = leaf((n, k), dtype, tr)
                leaves = [(x, tx), (w, tw)]
                b = tb = None
                if bias:
                    bb = rng.standard_normal(n).astype(dtype)
                    b, tb = T(bb, requires_grad=True), torch.tensor(bb, requires_grad=True)
                    leaves.append((b, tb))
                compare(f"linear {sx} -> {n} bias={bias} T={tr} {dtype.__name__}",
                        lib.dc_linear(xv, wv, b), torch.nn.functional.linear(txv, twv, tb),
                        leaves, dtype)


def test_errors_match_torch_refusals():
    a = T(np.ones((2, 3), np.float32))
    b = T(np.ones((4, 5), np.float32))
    assert not lib.dc_matmul(a, b)
    assert "[2, 3]" in err() and "[4, 5]" in err()
    c = T(np.ones((3, 2), np.float64))
    assert not lib.dc_matmul(a, c) and "float64" in err()


run_tests(globals())
