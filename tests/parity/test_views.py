"""PyTorch parity for view and copy ops: reshape/view, permute, transpose, narrow, slice,
select, expand, squeeze/unsqueeze, flatten, contiguous, clone and dtype conversion — forward
values and the gradient flowing back through each (float32 and float64)."""
import numpy as np
import torch

from dc import ALL_DIMS, lib, T, to_np, grad_np, backward, check_close, run_tests, shape
import ctypes as C

rng = np.random.default_rng(3)


def both(a, f_dc, f_t, dtype=np.float32, transpose=False):
    a = a.astype(dtype)
    x = T(a, requires_grad=True)
    xin = lib.dc_transpose(x, 0, a.ndim - 1) if transpose else x
    y = f_dc(xin)
    assert y, lib.dc_last_error()
    tx = torch.tensor(a, requires_grad=True)
    ty = f_t(tx.transpose(0, a.ndim - 1) if transpose else tx)
    check_close("forward", to_np(y), ty.detach().numpy())
    g = rng.standard_normal(tuple(ty.shape)).astype(np.float64 if ty.dtype == torch.float64 else np.float32)
    backward(y, T(g))
    ty.backward(torch.tensor(g))
    check_close("grad", grad_np(x), tx.grad.numpy())


def test_reshape_view_flatten():
    a = rng.standard_normal((2, 3, 4))
    for tr in (False, True):
        both(a, lambda x: lib.dc_reshape(x, shape(4, -1)), lambda x: x.reshape(4, -1), transpose=tr)
        both(a, lambda x: lib.dc_flatten(x, 1, -1), lambda x: torch.flatten(x, 1, -1), transpose=tr)
        both(a, lambda x: lib.dc_flatten(x, 0, 1), lambda x: torch.flatten(x, 0, 1), transpose=tr)
    both(a, lambda x: lib.dc_view(x, shape(6, 4)), lambda x: x.view(6, 4), dtype=np.float64)
    # sizes whose product passes int64 are refused, not wrapped round to 24 (was undefined)
    x = T(a.astype(np.float32))
    for big in (shape(1 << 62, 8, 3), shape(1 << 62, 4, -1), shape(3, 1 << 61, 1 << 61)):
        assert not lib.dc_reshape(x, big)
        assert "is invalid for input" in lib.dc_last_error().decode(), lib.dc_last_error()


def test_permute_transpose():
    a = rng.standard_normal((2, 3, 4))
    perm = (C.c_int * 3)(2, 0, 1)
    for tr in (False, True):
        both(a, lambda x: lib.dc_permute(x, perm, 3), lambda x: x.permute(2, 0, 1), transpose=tr)
        both(a, lambda x: lib.dc_transpose(x, -1, 1), lambda x: x.transpose(-1, 1), transpose=tr)


def test_narrow_slice_select():
    a = rng.standard_normal((5, 6, 3))
    for tr in (False, True):
        both(a, lambda x: lib.dc_narrow(x, 1, 1, 3), lambda x: x.narrow(1, 1, 3), transpose=tr)
        both(a, lambda x: lib.dc_slice(x, 0, 1, 5, 2), lambda x: x[1:5:2], transpose=tr)
        both(a, lambda x: lib.dc_slice(x, 1, -4, 100, 3), lambda x: x[:, -4::3], transpose=tr)
        both(a, lambda x: lib.dc_select(x, 1, -1), lambda x: x.select(1, -1), transpose=tr)
        both(a, lambda x: lib.dc_select(x, 0, 2), lambda x: x[2], dtype=np.float64, transpose=tr)


def test_expand_squeeze_unsqueeze():
    a = rng.standard_normal((3, 1, 2))
    both(a, lambda x: lib.dc_expand(x, shape(4, 3, 5, 2)), lambda x: x.expand(4, 3, 5, 2))
    both(a, lambda x: lib.dc_expand(x, shape(-1, 7, -1)), lambda x: x.expand(-1, 7, -1))
    both(a, lambda x: lib.dc_squeeze(x, 1), lambda x: x.squeeze(1))
    both(a, lambda x: lib.dc_squeeze(x, ALL_DIMS), lambda x: x.squeeze())
    both(a, lambda x: lib.dc_unsqueeze(x, -1), lambda x: x.unsqueeze(-1))
    both(a, lambda x: lib.dc_unsqueeze(x, 0), lambda x: x.unsqueeze(0), transpose=True)


def test_contiguous_clone_to_dtype():
    a = rng.standard_normal((3, 4))
    for tr in (False, True):
        both(a, lambda x: lib.dc_contiguous(x), lambda x: x.contiguous(), transpose=tr)
        both(a, lambda x: lib.dc_clone(x), lambda x: x.clone(), transpose=tr)
        both(a, lambda x: lib.dc_to_dtype(x, 1), lambda x: x.double(), transpose=tr)
        both(a, lambda x: lib.dc_to_dtype(x, 0), lambda x: x.float(), dtype=np.float64, transpose=tr)


def test_chained_views_of_views():
    a = rng.standard_normal((4, 6))
    both(a, lambda x: lib.dc_select(lib.dc_slice(lib.dc_transpose(x, 0, 1), 0, 1, 6, 2), 1, 3),
         lambda x: x.t()[1:6:2].select(1, 3))


def test_int_conversion_not_differentiable():
    x = T(np.array([1.7, -2.2], dtype=np.float32), requires_grad=True)
    y = lib.dc_to_dtype(x, 2)  # int64
    assert y and not y.contents.requires_grad
    assert (to_np(y) == np.array([1, -2])).all()  # truncation toward zero, like torch


run_tests(globals())
