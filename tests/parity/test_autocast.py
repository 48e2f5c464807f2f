"""PyTorch parity of autocast (include/deepc/autocast.h) against torch 1.13's
torch.autocast("cpu", torch.bfloat16): the output dtype of each list's ops, bfloat16 ops
(matmul, linear, conv2d forward and backward, batch norm with a bfloat16 input and float32
weights, pooling) against torch's bfloat16 kernels, and a small CNN (conv-bn-relu-pool-linear,
cross-entropy) under autocast from the same weights: the loss and every float32 parameter
gradient.

Tolerances: bfloat16 has an 8-bit significand (one ulp is 2^-8 = 0.39 % relative). Both sides
accumulate in float32 and round once, in different orders, so a result may land one rounding
step apart: values are compared with rtol 1e-2 and atol 1e-2 x max|torch| (at most ~2.5 ulps).
(Debian's torch 1.13 computes 1-row bfloat16 products with bfloat16 accumulation, far less
exactly: those are compared with the float32 product of the bfloat16 values, rounded once.)
The CNN's gradients pass through several bfloat16 roundings each (a flipped rounding in the
forward moves every gradient a little): rtol 5e-2, atol 2e-2 x max|torch grad|, and the loss
to 1e-2 relative."""
import ctypes as C

import numpy as np
import torch
import torch.nn.functional as F

from dc import (ConvOpts, PoolOpts, T, XentOpts, backward, check, check_close, err, grad_np, lib,
                run_tests, to_np)
import dc

torch.set_num_threads(2)
RNG = np.random.default_rng(77)
CPU = 0
lib.raw.dc_autocast_push.restype = C.c_int
lib.raw.dc_autocast_push.argtypes = [C.c_int, C.c_int, C.c_bool]
lib.raw.dc_autocast_pop.restype = C.c_int
NAMES = {dc.F32: torch.float32, dc.F64: torch.float64, dc.BF16: torch.bfloat16, dc.I64: torch.int64}


class autocast:
    def __init__(self, enabled=True):
        self.enabled = enabled

    def __enter__(self):
        assert lib.raw.dc_autocast_push(CPU, dc.BF16, self.enabled) == 0, err()

    def __exit__(self, *a):
        assert lib.raw.dc_autocast_pop() == 0, err()


def rand(*shape, scale=1.0):
    return (scale * RNG.standard_normal(shape)).astype(np.float32)


def dtype_of(t):
    return NAMES[check(t).contents.dtype]


def f32(t):
    """NumPy float32 copy of a deepc tensor of any float dtype (bfloat16 widens exactly)."""
    return to_np(lib.dc_to_dtype(check(t), dc.F32))


def bf16_T(a, grad=False):
    t = check(lib.dc_to_dtype(T(a), dc.BF16))
    if grad:
        assert lib.dc_requires_grad_(t, True), err()
    return t


def close(name, got, want, rtol=1e-2, rel_atol=1e-2):
    want = np.asarray(want, dtype=np.float64)
    check_close(name, got, want, rtol=rtol, atol=rel_atol * max(1e-6, float(np.abs(want).max())))


def conv_opts(pad):
    o = ConvOpts()
    o.padding[0] = o.padding[1] = pad
    return o


def pool_opts(k):
    o = PoolOpts()
    o.kernel[0] = o.kernel[1] = k
    return o


def test_list_dtypes_match_torch():
    x, w, b = rand(2, 3, 6, 6), rand(4, 3, 3, 3), rand(4)
    v, lw, lb, t = rand(2, 8), rand(5, 8), rand(5), rand(2, 5)
    y = np.array([1, 4], dtype=np.int64)
    d = RNG.standard_normal((3, 3))
    dx, dw, db, dv, dlw, dlb, dt, dy, dd = (T(a) for a in (x, w, b, v, lw, lb, t, y, d))
    with autocast():
        conv = lib.dc_conv2d_opt(dx, dw, db, conv_opts(1))
        lin = lib.dc_linear(dv, dlw, dlb)
        ours = {
            "conv2d": conv, "linear": lin, "matmul": lib.dc_matmul(dv, lib.dc_transpose(dlw, 0, 1)),
            "relu_bf16": lib.dc_relu(conv), "relu_f32": lib.dc_relu(dx),
            "softmax": lib.dc_softmax(lin, 1), "add_mixed": lib.dc_add(lin, dt),
            "mse": lib.dc_mse_loss(lin, dt, 0), "cross_entropy": lib.dc_cross_entropy_opt(
                lin, dy, XentOpts(ignore_index=-100)),
            "maxpool": lib.dc_max_pool2d_opt(conv, pool_opts(2)), "mm_f64": lib.dc_matmul(dd, dd)}
    tx, tw, tb, tv, tlw, tlb, tt, ty, td = (torch.tensor(a) for a in (x, w, b, v, lw, lb, t, y, d))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        tconv = F.conv2d(tx, tw, tb, padding=1)
        tlin = F.linear(tv, tlw, tlb)
        theirs = {
            "conv2d": tconv, "linear": tlin, "matmul": tv @ tlw.t(), "relu_bf16": F.relu(tconv),
            "relu_f32": F.relu(tx), "softmax": F.softmax(tlin, 1), "add_mixed": tlin + tt,
            "mse": F.mse_loss(tlin, tt), "cross_entropy": F.cross_entropy(tlin, ty),
            "maxpool": F.max_pool2d(tconv, 2), "mm_f64": td @ td}
    for k in ours:
        assert dtype_of(ours[k]) == theirs[k].dtype, f"{k}: deepc {dtype_of(ours[k])} vs torch {theirs[k].dtype}"
    with autocast(), autocast(enabled=False):
        assert dtype_of(lib.dc_linear(dv, dlw, dlb)) == torch.float32


def test_bf16_matmul_linear():
    for m, k, n in ((7, 33, 5), (16, 64, 16), (1, 200, 3)):
        a, b, bias = rand(m, k), rand(k, n), rand(n)
        got = lib.dc_matmul(bf16_T(a), bf16_T(b))
        ta, tb = torch.tensor(a).bfloat16(), torch.tensor(b).bfloat16()
        assert dtype_of(got) == torch.bfloat16
        # the product of the bfloat16 values in float32, rounded once
        close(f"matmul {m}x{k}x{n}", f32(got), (ta.float() @ tb.float()).bfloat16().float())
        if m > 1:  # torch's own bfloat16 kernel (oneDNN); its 1-row products accumulate in
            # bfloat16 (Debian's generic BLAS build: -6.5625 for -6.4338), so not compared
            close(f"matmul {m}x{k}x{n} vs torch bf16", f32(got), (ta @ tb).float().numpy())
        got = lib.dc_linear(bf16_T(a), bf16_T(b.T.copy()), bf16_T(bias))
        want = F.linear(torch.tensor(a).bfloat16(), torch.tensor(b.T.copy()).bfloat16(),
                        torch.tensor(bias).bfloat16())
        close(f"linear {m}x{k}x{n}", f32(got), want.float().numpy())


def test_bf16_conv2d_forward_backward():
    for xs, ws, pad in (((2, 3, 9, 7), (4, 3, 3, 3), 1), ((3, 8, 8, 8), (16, 8, 3, 3), 1),
                        ((1, 4, 6, 6), (2, 4, 1, 1), 0)):
        x, w, b, g = rand(*xs), rand(*ws), rand(ws[0]), None
        dx, dw, db = bf16_T(x, True), bf16_T(w, True), bf16_T(b, True)
        y = check(lib.dc_conv2d_opt(dx, dw, db, conv_opts(pad)))
        tx, tw, tb = (torch.tensor(a).bfloat16().requires_grad_() for a in (x, w, b))
        ty = F.conv2d(tx, tw, tb, padding=pad)
        assert dtype_of(y) == torch.bfloat16
        close(f"conv2d {xs}", f32(y), ty.float().detach().numpy())
        g = rand(*ty.shape)
        backward(y, grad=bf16_T(g))
        ty.backward(torch.tensor(g).bfloat16())
        for name, d, t in (("x", dx, tx), ("w", dw, tw), ("b", db, tb)):
            gd = check(d.contents.grad)
            assert dtype_of(gd) == torch.bfloat16, name
            close(f"conv2d {xs} grad {name}", f32(gd), t.grad.float().numpy())


def test_bf16_batch_norm_float32_weights():
    x = rand(4, 3, 5, 5, scale=2.0) + 1.0
    w, b = rand(3), rand(3)
    for training in (True, False):
        rm, rv = np.zeros(3, np.float32) + 0.5, np.ones(3, np.float32) * 2
        drm, drv, dwt, dbt = T(rm), T(rv), T(w, True), T(b, True)
        dx = bf16_T(x, True)
        y = check(lib.dc_batch_norm(dx, drm, drv, dwt, dbt, training, C.c_double(0.1),
                                    C.c_double(1e-5)))
        trm, trv = torch.tensor(rm), torch.tensor(rv)
        tx = torch.tensor(x).bfloat16().requires_grad_()
        tw, tb = torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)
        ty = F.batch_norm(tx, trm, trv, tw, tb, training=training, momentum=0.1, eps=1e-5)
        assert dtype_of(y) == ty.dtype == torch.bfloat16
        close(f"batch_norm training={training}", f32(y), ty.float().detach().numpy())
        close("running_mean", to_np(drm), trm.numpy(), rtol=1e-3, rel_atol=1e-3)
        close("running_var", to_np(drv), trv.numpy(), rtol=1e-3, rel_atol=1e-3)
        g = rand(*x.shape)
        backward(y, grad=bf16_T(g))
        ty.backward(torch.tensor(g).bfloat16())
        close("batch_norm grad x", f32(dx.contents.grad), tx.grad.float().numpy(), 2e-2, 2e-2)
        for name, d, t in (("weight", dwt, tw), ("bias", dbt, tb)):
            assert dtype_of(check(d.contents.grad)) == t.grad.dtype == torch.float32, name
            close(f"batch_norm grad {name}", grad_np(d), t.grad.numpy(), 2e-2, 2e-2)


def test_bf16_pooling():
    x = rand(2, 3, 8, 7)
    dx = bf16_T(x, True)
    tx = torch.tensor(x).bfloat16().requires_grad_()
    cases = [("max_pool2d", lib.dc_max_pool2d_opt(dx, pool_opts(2)), F.max_pool2d(tx, 2)),
             ("avg_pool2d", lib.dc_avg_pool2d_opt(dx, pool_opts(3)), F.avg_pool2d(tx, 3)),
             ("adaptive_avg", lib.dc_adaptive_avg_pool2d(dx, 1, 1), F.adaptive_avg_pool2d(tx, 1))]
    for name, y, ty in cases:
        assert dtype_of(y) == ty.dtype == torch.bfloat16, name
        close(name, f32(y), ty.float().detach().numpy())
    tot = lib.dc_add(lib.dc_add(lib.dc_sum(cases[0][1], None, 0, False),
                                lib.dc_sum(cases[1][1], None, 0, False)),
                     lib.dc_sum(cases[2][1], None, 0, False))
    backward(tot)
    (cases[0][2].sum() + cases[1][2].sum() + cases[2][2].sum()).backward()
    close("pool grads", f32(dx.contents.grad), tx.grad.float().numpy())


def test_small_cnn_under_autocast():
    """conv(1->6, 3x3, pad 1) -> batch norm -> relu -> max pool 2 -> flatten -> linear(96 -> 4),
    cross-entropy, batch 8 of 8x8 images; forward and loss under autocast, backward outside."""
    x = rand(8, 1, 8, 8)
    y = np.array([0, 1, 2, 3, 0, 1, 2, 3], dtype=np.int64)
    params = dict(cw=rand(6, 1, 3, 3, scale=0.5), cb=rand(6, scale=0.1), bw=1 + rand(6, scale=0.1),
                  bb=rand(6, scale=0.1), lw=rand(4, 96, scale=0.1), lb=rand(4, scale=0.1))
    dp = {k: T(v, True) for k, v in params.items()}
    rm, rv = T(np.zeros(6, np.float32)), T(np.ones(6, np.float32))
    with autocast():
        h = lib.dc_conv2d_opt(T(x), dp["cw"], dp["cb"], conv_opts(1))
        h = lib.dc_batch_norm(h, rm, rv, dp["bw"], dp["bb"], True, C.c_double(0.1), C.c_double(1e-5))
        h = lib.dc_max_pool2d_opt(lib.dc_relu(h), pool_opts(2))
        out = lib.dc_linear(lib.dc_reshape(h, dc.shape(8, 96)), dp["lw"], dp["lb"])
        loss = check(lib.dc_cross_entropy_opt(out, T(y), XentOpts(ignore_index=-100)))
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    trm, trv = torch.zeros(6), torch.ones(6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        th = F.conv2d(torch.tensor(x), tp["cw"], tp["cb"], padding=1)
        th = F.batch_norm(th, trm, trv, tp["bw"], tp["bb"], training=True, momentum=0.1, eps=1e-5)
        th = F.max_pool2d(F.relu(th), 2)
        tout = F.linear(th.reshape(8, 96), tp["lw"], tp["lb"])
        tloss = F.cross_entropy(tout, torch.tensor(y))
    assert dtype_of(out) == tout.dtype == torch.bfloat16
    assert dtype_of(loss) == tloss.dtype == torch.float32
    close("cnn logits", f32(out), tout.float().detach().numpy(), 2e-2, 2e-2)
    close("cnn loss", to_np(loss), tloss.detach().numpy(), 1e-2, 1e-2)
    backward(loss)
    tloss.backward()
    close("cnn running_mean", to_np(rm), trm.numpy(), 2e-2, 2e-2)
    for k in params:
        g = check(dp[k].contents.grad)
        assert dtype_of(g) == torch.float32 and tp[k].grad.dtype == torch.float32, k
        if k == "cb":  # batch norm cancels the conv bias: its gradient is 0 up to rounding noise
            scale = float(np.abs(tp["cw"].grad.numpy()).max())
            assert np.abs(grad_np(dp[k])).max() < 2e-2 * scale, grad_np(dp[k])
            assert np.abs(tp[k].grad.numpy()).max() < 2e-2 * scale
            continue
        close(f"cnn grad {k}", grad_np(dp[k]), tp[k].grad.numpy(), 5e-2, 2e-2)


run_tests(globals())
