"""PyTorch parity: reductions and softmax, forward and backward, float32 and float64,
contiguous and transposed inputs."""
import ctypes as C

import numpy as np
import torch

from dc import ALL_DIMS, lib, T, to_np, grad_np, backward, dims, check_close, run_tests, err

rng = np.random.default_rng(0)


def run(name, a, dlist, keep, fwd_dc, fwd_t, transpose=False, dtype=np.float32):
    a = a.astype(dtype)
    x = T(a, requires_grad=True)
    xin = lib.dc_transpose(x, 0, a.ndim - 1) if transpose else x
    y = fwd_dc(xin, dlist, keep)
    assert y, f"{name}: {err()}"
    tx = torch.tensor(a, requires_grad=True)
    txin = tx.transpose(0, a.ndim - 1) if transpose else tx
    ty = fwd_t(txin, dlist, keep)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    check_close(name + " forward", to_np(y), ty.detach().numpy(), **tol)
    g = rng.standard_normal(ty.shape).astype(dtype)
    backward(y, T(g))
    ty.backward(torch.tensor(g))
    check_close(name + " grad", grad_np(x), tx.grad.numpy(), **tol)


def dc_red(fn):
    def f(x, dl, keep):
        arr, n = dims(*dl)
        return getattr(lib, fn)(x, arr, n, keep)
    return f


def t_red(fn):
    def f(x, dl, keep):
        if not dl:
            return fn(x)
        return fn(x, dim=tuple(dl), keepdim=keep)
    return f


CASES = [((3, 4, 5), [1], False), ((3, 4, 5), [0, 2], True), ((3, 4, 5), [], False),
         ((7,), [0], False), ((2, 1, 6), [-1], True), ((64, 10), [0], False)]


def test_sum_mean():
    for shape, dl, keep in CASES:
        for tr in (False, True):
            for dt in (np.float32, np.float64):
                a = rng.standard_normal(shape)
                run("sum", a, dl, keep, dc_red("dc_sum"), t_red(torch.sum), tr, dt)
                run("mean", a, dl, keep, dc_red("dc_mean"), t_red(torch.mean), tr, dt)


def test_amax_amin_logsumexp():
    for shape, dl, keep in CASES:
        if not dl:
            continue
        for tr in (False, True):
            a = rng.standard_normal(shape)
            run("amax", a, dl, keep, dc_red("dc_amax"), lambda x, d, k: torch.amax(x, dim=d, keepdim=k), tr)
            run("amin", a, dl, keep, dc_red("dc_amin"), lambda x, d, k: torch.amin(x, dim=d, keepdim=k), tr)
            run("logsumexp", a, dl, keep, dc_red("dc_logsumexp"),
                lambda x, d, k: torch.logsumexp(x, dim=d, keepdim=k), tr)


def test_amax_ties_split_gradient():
    a = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    run("amax ties", a, [1], False, dc_red("dc_amax"), lambda x, d, k: torch.amax(x, dim=d, keepdim=k))


def test_var_std():
    for shape, dl, keep in CASES:
        if not dl:
            continue
        for corr in (0, 1):
            a = rng.standard_normal(shape)
            run(f"var{corr}", a, dl, keep,
                lambda x, d, k: lib.dc_var(x, *dims(*d), corr, k),
                lambda x, d, k: torch.var(x, dim=d, unbiased=bool(corr), keepdim=k), dtype=np.float64)
            run(f"std{corr}", a, dl, keep,
                lambda x, d, k: lib.dc_std(x, *dims(*d), corr, k),
                lambda x, d, k: torch.std(x, dim=d, unbiased=bool(corr), keepdim=k), dtype=np.float64)


def test_std_gradient_where_std_is_zero():
    """torch's std_backward: 0 where std == 0 (one element with correction 0, equal elements),
    not sqrt's inf * 0 = NaN; elsewhere in the same tensor the usual gradient."""
    for a, d, corr in [(np.array([[1.0, 2.0, 3.0]]), (0,), 0),
                       (np.array([[2.0, 2.0, 2.0], [1.0, 5.0, 0.5]]), (1,), 1),
                       (np.full((2, 3), 7.0), (), 0)]:
        for dtype in (np.float32, np.float64):
            x = T(a.astype(dtype), requires_grad=True)
            y = lib.dc_std(x, *dims(*d), corr, False)
            backward(lib.dc_sum_all(y))
            t = torch.tensor(a.astype(dtype), requires_grad=True)
            (torch.std(t, dim=d, unbiased=bool(corr)) if d else t.std(unbiased=bool(corr))).sum().backward()
            g = grad_np(x)
            assert not np.isnan(g).any(), f"std{d} corr {corr}: NaN gradient {g}"
            check_close(f"std{d} corr {corr} grad", g, t.grad.numpy())


def test_max_dim_and_argmax():
    a = rng.standard_normal((4, 5, 3)).astype(np.float32)
    for d in (0, 1, 2, -1):
        for keep in (False, True):
            idx = C.POINTER(type(T(a).contents))()
            x = T(a, requires_grad=True)
            y = lib.dc_max_dim(x, d, keep, C.byref(idx))
            tx = torch.tensor(a, requires_grad=True)
            tv, ti = torch.max(tx, dim=d, keepdim=keep)
            check_close("max values", to_np(y), tv.detach().numpy())
            assert (to_np(idx) == ti.numpy()).all()
            g = rng.standard_normal(tv.shape).astype(np.float32)
            backward(y, T(g))
            tv.backward(torch.tensor(g))
            check_close("max grad", grad_np(x), tx.grad.numpy())
            am = lib.dc_argmax(T(a), d, keep)
            assert (to_np(am) == torch.argmax(torch.tensor(a), dim=d, keepdim=keep).numpy()).all()
            amn = lib.dc_argmin(T(a), d, keep)
            assert (to_np(amn) == torch.argmin(torch.tensor(a), dim=d, keepdim=keep).numpy()).all()
    assert int(to_np(lib.dc_argmax(T(a), ALL_DIMS, False))) == int(torch.argmax(torch.tensor(a)))


def test_softmax_log_softmax():
    for shape in [(8, 10), (2, 3, 4), (64, 1000), (5,)]:
        for d in range(-1, len(shape)):
            for tr in (False, True):
                if tr and len(shape) < 2:
                    continue
                for dt in (np.float32, np.float64):
                    a = rng.standard_normal(shape) * 3
                    run("softmax", a, [d], False, lambda x, dl, k: lib.dc_softmax(x, dl[0]),
                        lambda x, dl, k: torch.softmax(x, dim=dl[0]), tr, dt)
                    run("log_softmax", a, [d], False, lambda x, dl, k: lib.dc_log_softmax(x, dl[0]),
                        lambda x, dl, k: torch.log_softmax(x, dim=dl[0]), tr, dt)


def test_large_sum_deterministic():
    a = rng.standard_normal(1 << 20).astype(np.float32)
    s1 = float(to_np(lib.dc_sum(T(a), None, 0, False)))
    s2 = float(to_np(lib.dc_sum(T(a), None, 0, False)))
    assert s1 == s2
    check_close("big sum", s1, a.astype(np.float64).sum(), rtol=1e-6)


run_tests(globals())
