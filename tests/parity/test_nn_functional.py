"""PyTorch parity of the functional nn ops (nn_functional.h): forward values, input gradients and
parameter gradients of conv2d (stride, padding incl. "same", dilation, groups, bias), max/avg and
adaptive pooling (ceil_mode, count_include_pad, divisor_override), batch norm (1d/2d, train/eval,
affine, running-stat updates), hardtanh, and every loss with each reduction (weights,
ignore_index, label smoothing, pos_weight, target gradients), on odd shapes: batch 1,
non-square images, unbatched inputs."""
import ctypes as C
import warnings

import numpy as np
import torch
import torch.nn.functional as F

import dc
from dc import (ConvOpts, MarginOpts, PoolOpts, T, Tensor, XentOpts, backward, check, check_close,
                err, grad_np, lib, run_tests, to_np)

torch.set_num_threads(2)
warnings.filterwarnings("ignore", message=".*padding=.same.*")
RNG = np.random.default_rng(1234)
MEAN, SUM, NONE = 0, 1, 2
RED = {MEAN: "mean", SUM: "sum", NONE: "none"}
TP = C.POINTER(Tensor)


def pair(v):
    return (C.c_int * 2)(*v)


def rand(*shape, lo=-1.0, hi=1.0, dtype=np.float32):
    return (lo + (hi - lo) * RNG.random(shape)).astype(dtype)


def tt(a, grad=True):
    return torch.tensor(a, requires_grad=grad)


def run_both(dc_fn, torch_fn, arrays, grads, rtol=1e-5, atol=1e-6, name=""):
    """Runs dc_fn(*dc tensors) and torch_fn(*torch tensors); compares outputs and the gradients
    of the inputs flagged in grads (backward with the same random upstream gradient)."""
    dts = [T(a, requires_grad=g) if a is not None else None for a, g in zip(arrays, grads)]
    tts = [tt(a, g) if a is not None else None for a, g in zip(arrays, grads)]
    y = check(dc_fn(*dts))
    ty = torch_fn(*tts)
    check_close(name + " forward", to_np(y), ty.detach().numpy(), rtol, atol)
    if not any(grads):
        return
    g = rand(*ty.shape).astype(arrays[0].dtype)
    backward(y, grad=T(g) if ty.dim() > 0 else None)
    ty.backward(torch.tensor(g) if ty.dim() > 0 else None)
    for i, (d, t) in enumerate(zip(dts, tts)):
        if t is not None and t.requires_grad:
            check_close(f"{name} grad {i}", grad_np(d), t.grad.numpy(), rtol, atol)


# ---- convolution ----

CONV_CASES = [  # x shape, weight shape, opts (stride, padding, dilation, groups, same)
    ((2, 3, 7, 9), (4, 3, 3, 3), dict(padding=(1, 1))),
    ((1, 4, 8, 5), (6, 4, 3, 2), dict(stride=(2, 2), padding=(1, 0))),
    ((2, 4, 9, 9), (4, 2, 3, 3), dict(groups=2, dilation=(2, 2), padding=(2, 1))),
    ((3, 6, 6, 7), (6, 1, 3, 3), dict(groups=6, stride=(2, 1))),
    ((2, 3, 6, 7), (5, 3, 4, 2), dict(same=True)),
    ((2, 3, 6, 7), (5, 3, 3, 5), dict(same=True, dilation=(1, 2))),
    ((1, 16, 11, 10), (8, 16, 5, 5), dict(stride=(2, 2), padding=(2, 2))),
    ((5, 1, 28, 28), (6, 1, 5, 5), dict()),
    ((3, 7, 12), (4, 3, 3, 3), dict(padding=(1, 1))),  # unbatched
    ((8, 32, 12, 10), (24, 32, 3, 3), dict(padding=(1, 1))),  # Winograd under the default auto
]


def conv_opts(o):
    c = ConvOpts()
    c.stride = pair(o.get("stride", (1, 1)))
    c.padding = pair(o.get("padding", (0, 0)))
    c.dilation = pair(o.get("dilation", (1, 1)))
    c.groups = o.get("groups", 1)
    c.same_padding = o.get("same", False)
    return c


def torch_conv(o):
    pad = "same" if o.get("same") else o.get("padding", (0, 0))
    return lambda x, w, b: F.conv2d(x, w, b, stride=o.get("stride", (1, 1)), padding=pad,
                                    dilation=o.get("dilation", (1, 1)), groups=o.get("groups", 1))


def test_conv2d_float32():
    for xs, ws, o in CONV_CASES:
        for bias in (True, False):
            arrays = [rand(*xs), rand(*ws), rand(ws[0]) if bias else None]
            run_both(lambda x, w, b: lib.dc_conv2d_opt(x, w, b, conv_opts(o)), torch_conv(o),
                     arrays, [True, True, bias], rtol=1e-4, atol=1e-4, name=f"conv {xs} {ws} {o}")


def test_conv2d_float64_reference_path():
    for xs, ws, o in CONV_CASES[:5]:
        arrays = [rand(*xs, dtype=np.float64), rand(*ws, dtype=np.float64), rand(ws[0], dtype=np.float64)]
        run_both(lambda x, w, b: lib.dc_conv2d_opt(x, w, b, conv_opts(o)), torch_conv(o), arrays,
                 [True, True, True], rtol=1e-10, atol=1e-10, name=f"conv f64 {xs} {o}")


def test_conv2d_frozen_parts():
    # only some inputs need gradients (frozen weight / input without grad)
    xs, ws, o = CONV_CASES[1]
    for grads in ([True, False, False], [False, True, True], [False, False, True]):
        run_both(lambda x, w, b: lib.dc_conv2d_opt(x, w, b, conv_opts(o)), torch_conv(o),
                 [rand(*xs), rand(*ws), rand(ws[0])], grads, rtol=1e-4, atol=1e-4,
                 name=f"conv grads {grads}")


# ---- pooling ----

POOL_CASES = [  # x shape, kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 8, 8), (2, 2), None, (0, 0), (1, 1), False),
    ((1, 2, 9, 7), (2, 2), None, (0, 0), (1, 1), False),
    ((2, 2, 7, 9), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 3, 10, 7), (3, 2), (2, 1), (1, 0), (1, 1), True),
    ((2, 2, 11, 9), (3, 3), (2, 3), (1, 1), (2, 1), False),
    ((2, 2, 5, 5), (2, 2), (2, 2), (1, 1), (1, 1), True),
    ((3, 6, 5), (2, 2), None, (0, 0), (1, 1), True),  # unbatched
]


def pool_opts(k, s, p, d, ceil, exclude=False, div=0):
    o = PoolOpts()
    o.kernel, o.stride = pair(k), pair(s or (0, 0))
    o.padding, o.dilation = pair(p), pair(d)
    o.ceil_mode, o.exclude_pad, o.divisor_override = ceil, exclude, div
    return o


def test_max_pool2d():
    for xs, k, s, p, d, ceil in POOL_CASES:
        for dt in (np.float32, np.float64):
            run_both(lambda x: lib.dc_max_pool2d_opt(x, pool_opts(k, s, p, d, ceil)),
                     lambda x: F.max_pool2d(x, k, s or k, p, d, ceil_mode=ceil),
                     [rand(*xs, dtype=dt)], [True], name=f"max_pool {xs} {k} {s} {p} {d} {ceil}")


def test_max_pool2d_ties_go_to_first():
    x = np.array([[[[1, 1, 2, 2], [1, 1, 2, 2], [3, 0, 3, 3], [0, 3, 3, 3]]]], np.float32)
    run_both(lambda t: lib.dc_max_pool2d_opt(t, pool_opts((2, 2), None, (0, 0), (1, 1), False)),
             lambda t: F.max_pool2d(t, 2), [x], [True], name="ties")
    run_both(lambda t: lib.dc_max_pool2d_opt(t, pool_opts((3, 3), (1, 1), (1, 1), (1, 1), False)),
             lambda t: F.max_pool2d(t, 3, 1, 1), [x], [True], name="overlapping ties")


def test_avg_pool2d():
    for xs, k, s, p, d, ceil in POOL_CASES:
        if d != (1, 1):
            continue
        for exclude in (False, True):
            run_both(lambda x: lib.dc_avg_pool2d_opt(x, pool_opts(k, s, p, (1, 1), ceil, exclude)),
                     lambda x: F.avg_pool2d(x, k, s or k, p, ceil_mode=ceil,
                                            count_include_pad=not exclude),
                     [rand(*xs)], [True], name=f"avg_pool {xs} {k} {s} {p} {ceil} {exclude}")
    run_both(lambda x: lib.dc_avg_pool2d_opt(x, pool_opts((3, 2), (2, 2), (1, 1), (1, 1), True, False, 5)),
             lambda x: F.avg_pool2d(x, (3, 2), 2, 1, ceil_mode=True, divisor_override=5),
             [rand(2, 3, 7, 8)], [True], name="divisor_override")


def test_adaptive_pools():
    for xs, out in [((2, 3, 7, 5), (3, 2)), ((1, 2, 8, 8), (1, 1)), ((2, 2, 3, 4), (5, 7)),
                    ((2, 3, 10, 6), (4, 4)), ((3, 9, 5), (2, 3))]:
        run_both(lambda x: lib.dc_adaptive_avg_pool2d(x, C.c_int64(out[0]), C.c_int64(out[1])),
                 lambda x: F.adaptive_avg_pool2d(x, out), [rand(*xs)], [True],
                 name=f"adaptive_avg {xs} {out}")
        run_both(lambda x: lib.dc_adaptive_max_pool2d(x, C.c_int64(out[0]), C.c_int64(out[1])),
                 lambda x: F.adaptive_max_pool2d(x, out), [rand(*xs)], [True],
                 name=f"adaptive_max {xs} {out}")


# ---- batch norm ----

def test_batch_norm():
    for xs in [(4, 3, 5, 6), (1, 3, 2, 5), (6, 5), (3, 4, 7)]:
        c = xs[1]
        for training in (True, False):
            for affine in (True, False):
                x = rand(*xs, lo=-2, hi=3)
                w, b = rand(c, lo=0.5, hi=1.5), rand(c)
                rm, rv = rand(c), rand(c, lo=0.5, hi=2)
                d_rm, d_rv = T(rm), T(rv)
                t_rm, t_rv = torch.tensor(rm), torch.tensor(rv)
                run_both(lambda x_, w_, b_: lib.dc_batch_norm(x_, d_rm, d_rv, w_, b_, C.c_bool(training),
                                                              C.c_double(0.3), C.c_double(1e-4)),
                         lambda x_, w_, b_: F.batch_norm(x_, t_rm, t_rv, w_, b_, training, 0.3, 1e-4),
                         [x, w if affine else None, b if affine else None],
                         [True, affine, affine], rtol=1e-4, atol=1e-5,
                         name=f"batch_norm {xs} train={training} affine={affine}")
                check_close("running_mean", to_np(d_rm), t_rm.numpy(), 1e-5, 1e-6)
                check_close("running_var", to_np(d_rv), t_rv.numpy(), 1e-5, 1e-6)


def test_batch_norm_without_running_stats():
    x = rand(5, 4, 3, 3)
    # without running stats eval mode also normalises with the batch statistics (what
    # nn.BatchNorm2d(track_running_stats=False) does)
    for training in (True, False):
        run_both(lambda x_: lib.dc_batch_norm(x_, None, None, None, None, C.c_bool(training),
                                              C.c_double(0.1), C.c_double(1e-5)),
                 lambda x_: F.batch_norm(x_, None, None, None, None, True, 0.1, 1e-5),
                 [x], [True], rtol=1e-4, atol=1e-5, name=f"bn no stats train={training}")


# ---- hardtanh, dropout ----

def test_hardtanh():
    x = rand(4, 9, lo=-2, hi=2)
    run_both(lambda t: lib.dc_hardtanh(t, C.c_double(-0.7), C.c_double(1.1)),
             lambda t: F.hardtanh(t, -0.7, 1.1), [x], [True], name="hardtanh")


def test_dropout_gradient_is_the_mask():
    x = T(rand(64, 64), requires_grad=True)
    y = check(lib.dc_dropout(x, C.c_double(0.25), C.c_bool(True)))
    backward(y, grad=T(np.ones((64, 64), np.float32)))
    yv, gv = to_np(y), grad_np(x)
    check_close("grad = mask * scale", gv, np.where(yv != 0, 1 / 0.75, 0), 1e-6, 1e-6)
    frac = (yv == 0).mean()
    assert 0.2 < frac < 0.3, f"dropped fraction {frac} at p=0.25"


# ---- losses ----

def losses_pointwise():
    """(name, dc call, torch call, arrays, grads) for the pointwise losses."""
    x, t = rand(3, 5, lo=-2, hi=2), rand(3, 5)
    prob = rand(3, 5, lo=0.05, hi=0.95)
    w, pw = rand(3, 5, lo=0.5, hi=2), rand(5, lo=0.5, hi=3)
    pm = np.where(RNG.random((3, 5)) < 0.5, -1.0, 1.0).astype(np.float32)
    yield ("mse", lambda r: (lambda a, b: lib.dc_mse_loss(a, b, r)),
           lambda r: (lambda a, b: F.mse_loss(a, b, reduction=RED[r])), [x, t], [True, True])
    yield ("mse broadcast", lambda r: (lambda a, b: lib.dc_mse_loss(a, b, r)),
           lambda r: (lambda a, b: F.mse_loss(a, b.expand(3, 5), reduction=RED[r])),
           [x, rand(5)], [True, True])
    yield ("l1", lambda r: (lambda a, b: lib.dc_l1_loss(a, b, r)),
           lambda r: (lambda a, b: F.l1_loss(a, b, reduction=RED[r])), [x, t], [True, True])
    for beta in (0.5, 1.0, 0.0):
        yield (f"smooth_l1 {beta}",
               lambda r, beta=beta: (lambda a, b: lib.dc_smooth_l1_loss(a, b, r, C.c_double(beta))),
               lambda r, beta=beta: (lambda a, b: F.smooth_l1_loss(a, b, reduction=RED[r], beta=beta)),
               [x, t], [True, True])
    yield ("bce", lambda r: (lambda a, b, c: lib.dc_binary_cross_entropy(a, b, c, r)),
           lambda r: (lambda a, b, c: F.binary_cross_entropy(a, b, c, reduction=RED[r])),
           [prob, t, w], [True, True, False])
    yield ("bce no weight", lambda r: (lambda a, b: lib.dc_binary_cross_entropy(a, b, None, r)),
           lambda r: (lambda a, b: F.binary_cross_entropy(a, b, reduction=RED[r])),
           [np.array([0.0, 1.0, 0.3, 1e-30], np.float32), np.array([1.0, 0.0, 1.0, 1.0], np.float32)],
           [False, False])
    yield ("bce_logits", lambda r: (lambda a, b, c, d: lib.dc_binary_cross_entropy_with_logits(a, b, c, d, r)),
           lambda r: (lambda a, b, c, d: F.binary_cross_entropy_with_logits(a, b, c, reduction=RED[r], pos_weight=d)),
           [x * 20, t, w, pw], [True, True, False, False])
    yield ("bce_logits plain", lambda r: (lambda a, b: lib.dc_binary_cross_entropy_with_logits(a, b, None, None, r)),
           lambda r: (lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=RED[r])),
           [x, t], [True, True])
    yield ("hinge", lambda r: (lambda a, b: lib.dc_hinge_loss(a, b, C.c_double(0.8), r)),
           lambda r: (lambda a, b: _reduce(torch.clamp(0.8 - a * b, min=0), r)), [x, pm], [True, False])


def _reduce(v, r):
    return v.mean() if r == MEAN else v.sum() if r == SUM else v


def test_pointwise_losses():
    for name, dcf, tf, arrays, grads in losses_pointwise():
        for r in (MEAN, SUM, NONE):
            run_both(dcf(r), tf(r), arrays, grads, rtol=1e-5, atol=1e-6, name=f"{name} {RED[r]}")


def xent_opts(weight=None, ignore=None, smoothing=0.0, r=MEAN):
    o = XentOpts()
    o.weight = weight
    o.has_ignore_index = ignore is not None
    o.ignore_index = ignore if ignore is not None else 0
    o.label_smoothing = smoothing
    o.reduction = r
    return o


def test_cross_entropy_and_nll():
    for shape, classes in [((6, 5), 5), ((1, 4), 4), ((3, 4, 2, 3), 4), ((7,), 7)]:
        x = rand(*shape, lo=-3, hi=3)
        tshape = shape[:1] + shape[2:] if len(shape) > 1 else ()
        target = RNG.integers(0, classes, size=tshape).astype(np.int64)
        if target.size > 2:
            target.flat[1] = -100 if target.size % 2 else 2
        w = rand(classes, lo=0.3, hi=2)
        for r in (MEAN, SUM, NONE):
            for weighted in (False, True):
                for ignore, smooth in [(None, 0.0), (2, 0.0), (None, 0.25), (2, 0.4)]:
                    dw, tw = (T(w), torch.tensor(w)) if weighted else (None, None)
                    ign = -100 if ignore is None else ignore
                    tg_dc, tg_t = T(target), torch.tensor(target)
                    if target.ndim == 0:  # T() makes [1]; view it as 0-d
                        tg_dc = check(lib.dc_view(tg_dc, dc.shape()))
                    run_both(lambda a: lib.dc_cross_entropy_opt(a, tg_dc, xent_opts(dw, ignore, smooth, r)),
                             lambda a: F.cross_entropy(a, tg_t, tw, ignore_index=ign, reduction=RED[r],
                                                       label_smoothing=smooth),
                             [x], [True], rtol=1e-5, atol=1e-6,
                             name=f"ce {shape} {RED[r]} w={weighted} ign={ignore} ls={smooth}")
                    if smooth == 0:
                        run_both(lambda a: lib.dc_nll_loss_opt(a, tg_dc, xent_opts(dw, ignore, 0.0, r)),
                                 lambda a: F.nll_loss(a, tg_t, tw, ignore_index=ign, reduction=RED[r]),
                                 [x], [True], name=f"nll {shape} {RED[r]} w={weighted} ign={ignore}")


def test_multi_margin():
    x = rand(6, 5, lo=-1, hi=1)
    target = RNG.integers(0, 5, size=6).astype(np.int64)
    w = rand(5, lo=0.5, hi=2)
    for p, margin in [(1, 1.0), (2, 1.0), (1, 0.3), (2, 0.0)]:
        for weighted in (False, True):
            for r in (MEAN, SUM, NONE):
                o = MarginOpts()
                o.p, o.margin, o.zero_margin, o.reduction = p, margin, margin == 0, r
                o.weight = T(w) if weighted else None
                tw = torch.tensor(w) if weighted else None
                tg = T(target)
                run_both(lambda a: lib.dc_multi_margin_loss_opt(a, tg, o),
                         lambda a: F.multi_margin_loss(a, torch.tensor(target), p, margin, tw, reduction=RED[r]),
                         [x], [True], name=f"multi_margin p={p} m={margin} w={weighted} {RED[r]}")


def test_bad_labels_message():
    x = T(rand(4, 3))
    y = lib.dc_cross_entropy_opt(x, T(np.array([0, 1, 3, 2], np.int64)), xent_opts())
    assert not y
    msg = err()
    for part in ("label 3", "position [2]", "3 classes"):
        assert part in msg, msg
    lib.dc_clear_error()


if __name__ == "__main__":
    run_tests(globals())
