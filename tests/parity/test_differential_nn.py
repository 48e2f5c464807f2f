"""Differential tester of nn_functional.h against PyTorch: seeded random cases of conv2d (stride,
padding incl. "same", dilation, groups, bias), max/avg pooling (ceil_mode, padding, dilation,
count_include_pad, divisor_override), adaptive pooling, batch norm (train/eval, affine), linear,
cross-entropy and NLL (class weights, ignore_index, label smoothing, extra dims, each reduction)
and the pointwise losses (mse, l1, smooth_l1, bce, bce with logits, hinge), in float32 and
float64, with transposed inputs and edge values (diffcase.py). Values, input and parameter
gradients and NaN positions are compared; invalid arguments must give NULL and a message.

DC_DIFF_CASES and DC_DIFF_SEED as in test_differential.py."""
import ctypes as C

import numpy as np
import torch
import torch.nn.functional as F
import warnings

from dc import ConvOpts, PoolOpts, T, XentOpts, lib, run_tests
from diffcase import CASES, SEED, expect_error, run_cases

torch.set_num_threads(2)
warnings.filterwarnings("ignore", message=".*padding=.same.*")
MEAN, SUM, NONE = 0, 1, 2
RED = {MEAN: "mean", SUM: "sum", NONE: "none"}


def ri(case, lo, hi):
    """A random int in [lo, hi]."""
    return int(case.rng.integers(lo, hi + 1))


def like(t, x):
    """A torch constant in x's dtype (the float64 reference run casts the inputs)."""
    return None if t is None else t.to(x.dtype) if t.dtype.is_floating_point else t


def pair(v):
    return (C.c_int * 2)(*v)


def gen_conv2d(case):
    groups = int(case.rng.choice([1, 1, 2, 3]))
    cin, cout = groups * ri(case, 1, 3), groups * ri(case, 1, 3)
    k = (ri(case, 1, 4), ri(case, 1, 4))
    dil = (ri(case, 1, 2), ri(case, 1, 2))
    same = case.rng.random() < 0.2
    stride = (1, 1) if same else (ri(case, 1, 3), ri(case, 1, 3))
    pad = (ri(case, 0, 2), ri(case, 0, 2))
    # input at least the dilated kernel minus the padding, so that the output has >= 1 row
    hw = [max(1, dil[i] * (k[i] - 1) + 1 - 2 * (0 if same else pad[i])) + ri(case, 0, 4)
          for i in range(2)]
    xs = (ri(case, 1, 3), cin, *hw) if case.rng.random() < 0.85 else (cin, *hw)
    bias = case.rng.random() < 0.7
    o = ConvOpts()
    o.stride, o.padding, o.dilation = pair(stride), pair(pad), pair(dil)
    o.groups, o.same_padding = groups, same
    arrays = [case.array(xs), case.array((cout, cin // groups, *k))]
    if bias:
        arrays.append(case.array((cout,)))
    tpad = "same" if same else pad
    name = f"conv2d(k={k} s={stride} p={tpad} d={dil} g={groups} bias={bias})"
    if bias:
        return name, arrays, lambda x, w, b: lib.dc_conv2d_opt(x, w, b, o), \
            lambda x, w, b: F.conv2d(x, w, b, stride, tpad, dil, groups)
    return name, arrays, lambda x, w: lib.dc_conv2d_opt(x, w, None, o), \
        lambda x, w: F.conv2d(x, w, None, stride, tpad, dil, groups)


def pool_shape(case, k, pad, dil):
    hw = [dil[i] * (k[i] - 1) + 1 + ri(case, 0, 5) for i in range(2)]
    c = ri(case, 1, 3)
    return (ri(case, 1, 2), c, *hw) if case.rng.random() < 0.85 else (c, *hw)


def gen_pool(case):
    is_max = case.rng.random() < 0.5
    k = (ri(case, 1, 3), ri(case, 1, 3))
    stride = (ri(case, 1, 3), ri(case, 1, 3)) if case.rng.random() < 0.7 else None
    pad = (ri(case, 0, k[0] // 2), ri(case, 0, k[1] // 2))
    dil = (ri(case, 1, 2), ri(case, 1, 2)) if is_max else (1, 1)
    ceil = bool(case.rng.random() < 0.4)
    o = PoolOpts()
    o.kernel, o.stride, o.padding, o.dilation = pair(k), pair(stride or (0, 0)), pair(pad), \
        pair(dil)
    o.ceil_mode = ceil
    x = [case.array(pool_shape(case, k, pad, dil))]
    ts = stride or k
    if is_max:
        return f"max_pool2d(k={k} s={stride} p={pad} d={dil} ceil={ceil})", x, \
            lambda t: lib.dc_max_pool2d_opt(t, o), \
            lambda t: F.max_pool2d(t, k, ts, pad, dil, ceil_mode=ceil)
    include = bool(case.rng.random() < 0.6)
    div = ri(case, 1, 5) if case.rng.random() < 0.2 else 0
    o.exclude_pad, o.divisor_override = not include, div
    return f"avg_pool2d(k={k} s={stride} p={pad} ceil={ceil} incl={include} div={div})", x, \
        lambda t: lib.dc_avg_pool2d_opt(t, o), \
        lambda t: F.avg_pool2d(t, k, ts, pad, ceil, include, div or None)


def gen_adaptive(case):
    is_max = case.rng.random() < 0.5
    c = ri(case, 1, 3)
    hw = (ri(case, 1, 9), ri(case, 1, 9))
    out = (ri(case, 1, hw[0] + 2), ri(case, 1, hw[1] + 2))
    x = [case.array((ri(case, 1, 2), c, *hw) if case.rng.random() < 0.85 else (c, *hw))]
    oh, ow = C.c_int64(out[0]), C.c_int64(out[1])
    if is_max:
        return f"adaptive_max_pool2d({out})", x, \
            lambda t: lib.dc_adaptive_max_pool2d(t, oh, ow), \
            lambda t: F.adaptive_max_pool2d(t, out)
    return f"adaptive_avg_pool2d({out})", x, lambda t: lib.dc_adaptive_avg_pool2d(t, oh, ow), \
        lambda t: F.adaptive_avg_pool2d(t, out)


def gen_batch_norm(case):
    c = ri(case, 1, 4)
    rest = [(), (ri(case, 1, 5),), (ri(case, 1, 4), ri(case, 1, 4))][ri(case, 0, 2)]
    training = bool(case.rng.random() < 0.6)
    n = ri(case, 2, 4) if training and int(np.prod(rest)) == 1 else ri(case, 1, 3)
    running = not training or case.rng.random() < 0.5
    rm = np.asarray(case.rng.standard_normal(c), case.dtype)
    rv = np.asarray(case.rng.random(c) + 0.5, case.dtype)
    eps, mom = 1e-5, 0.1
    arrays = [case.array((n, c, *rest)), case.array((c,)), case.array((c,))]
    drm, drv = (T(rm), T(rv)) if running else (None, None)
    trm, trv = (torch.tensor(rm), torch.tensor(rv)) if running else (None, None)
    return f"batch_norm(train={training} running={running})", arrays, \
        lambda x, w, b: lib.dc_batch_norm(x, drm, drv, w, b, training, C.c_double(mom),
                                          C.c_double(eps)), \
        lambda x, w, b: F.batch_norm(x, like(trm, x), like(trv, x), w, b, training, mom, eps)


def gen_linear(case):
    fin, fout = ri(case, 1, 6), ri(case, 1, 6)
    lead = tuple(ri(case, 0, 3) for _ in range(ri(case, 0, 2)))
    arrays = [case.array(lead + (fin,)), case.array((fout, fin)), case.array((fout,))]
    return "linear", arrays, lib.dc_linear, F.linear


def xent_opts(weight, ignore, smoothing, r):
    o = XentOpts()
    o.weight, o.has_ignore_index = weight, ignore is not None
    o.ignore_index = 0 if ignore is None else ignore
    o.label_smoothing, o.reduction = smoothing, r
    return o


def gen_cross_entropy(case):
    c = ri(case, 1, 5)
    shp = [(ri(case, 1, 5), c), (ri(case, 1, 3), c, ri(case, 1, 3)), (c,)][ri(case, 0, 2)]
    tshape = (shp[0], *shp[2:]) if len(shp) > 1 else ()
    target = case.rng.integers(0, c, size=tshape).astype(np.int64)
    ignore = int(case.rng.choice([-100, 0, c - 1])) if case.rng.random() < 0.4 else None
    if ignore is not None and target.size and case.rng.random() < 0.5:
        target.flat[0] = ignore
    r = ri(case, 0, 2)
    nll = case.rng.random() < 0.3
    smooth = 0.0 if nll or case.rng.random() < 0.5 else float(case.rng.choice([0.1, 0.4, 1.0]))
    w = np.asarray(case.rng.random(c) + 0.25, case.dtype) if case.rng.random() < 0.4 else None
    dt, tt_ = T(target), torch.tensor(target)
    if target.ndim == 0:
        dt = lib.dc_squeeze(dt, 0)  # T() gives [1]
    dw, tw = (T(w), torch.tensor(w)) if w is not None else (None, None)
    o = xent_opts(dw, ignore, smooth, r)
    ign = -100 if ignore is None else ignore
    tag = f"(C={c} ign={ignore} ls={smooth} w={w is not None} {RED[r]})"
    if nll:
        return "nll_loss" + tag, [case.array(shp)], lambda x: lib.dc_nll_loss_opt(x, dt, o), \
            lambda x: F.nll_loss(x, tt_, like(tw, x), ignore_index=ign, reduction=RED[r])
    return "cross_entropy" + tag, [case.array(shp)], \
        lambda x: lib.dc_cross_entropy_opt(x, dt, o), \
        lambda x: F.cross_entropy(x, tt_, like(tw, x), ignore_index=ign, reduction=RED[r],
                                  label_smoothing=smooth)


def gen_pointwise_loss(case):
    shp = case.shape(max_ndim=3)
    r = ri(case, 0, 2)
    kind = ri(case, 0, 5)
    x, t = case.array(shp), case.array(shp)
    if kind == 0:
        return f"mse_loss({RED[r]})", [x, t], lambda a, b: lib.dc_mse_loss(a, b, r), \
            lambda a, b: F.mse_loss(a, b, reduction=RED[r])
    if kind == 1:
        return f"l1_loss({RED[r]})", [x, t], lambda a, b: lib.dc_l1_loss(a, b, r), \
            lambda a, b: F.l1_loss(a, b, reduction=RED[r])
    if kind == 2:
        beta = float(case.rng.choice([0.0, 0.5, 1.0, 2.0]))
        return f"smooth_l1_loss({RED[r]} beta={beta})", [x, t], \
            lambda a, b: lib.dc_smooth_l1_loss(a, b, r, C.c_double(beta)), \
            lambda a, b: F.smooth_l1_loss(a, b, reduction=RED[r], beta=beta)
    if kind == 3:
        p = np.where(np.isfinite(x), np.clip(np.abs(x) / (1 + np.abs(x)), 0, 1), 0.5)
        p = np.asarray(p, case.dtype).reshape(shp)
        y = np.asarray(case.rng.random(shp), case.dtype)
        return f"binary_cross_entropy({RED[r]})", [p, y], \
            lambda a, b: lib.dc_binary_cross_entropy(a, b, None, r), \
            lambda a, b: F.binary_cross_entropy(a, b, reduction=RED[r])
    if kind == 4:
        y = np.asarray(case.rng.random(shp), case.dtype)
        pw = np.asarray(case.rng.random(shp[-1:]) * 3, case.dtype) if shp else None
        dpw, tpw = (T(pw), torch.tensor(pw)) if pw is not None else (None, None)
        return f"bce_with_logits({RED[r]} pos_weight={pw is not None})", [x, y], \
            lambda a, b: lib.dc_binary_cross_entropy_with_logits(a, b, None, dpw, r), \
            lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=RED[r],
                                                            pos_weight=like(tpw, a))
    m = float(case.rng.choice([0.0, 0.8, 1.0]))
    y = np.where(case.rng.random(shp) < 0.5, -1.0, 1.0).astype(case.dtype)
    red = {MEAN: torch.mean, SUM: torch.sum, NONE: lambda v: v}[r]
    return f"hinge_loss({RED[r]} margin={m})", [x, y], \
        lambda a, b: lib.dc_hinge_loss(a, b, C.c_double(m), r), \
        lambda a, b: red(torch.clamp(m - a * b, min=0))


GENERATORS = [gen_conv2d, gen_pool, gen_adaptive, gen_batch_norm, gen_linear, gen_cross_entropy,
              gen_pointwise_loss]
# nn ops whose results on non-finite or huge inputs differ from PyTorch's (docs/autograd.md,
# "Differences from PyTorch"); other mismatches fail.
KNOWN_EDGE = {"conv2d", "linear", "batch_norm", "cross_entropy", "bce_with_logits", "hinge_loss"}


def test_random_cases():
    run_cases(GENERATORS, KNOWN_EDGE)


def test_invalid_arguments():
    rng = np.random.default_rng(SEED)
    for _ in range(max(5, CASES // 30)):
        n = int(rng.integers(1, 4))
        x = T(np.ones((n, 4, 5, 5), np.float32))
        o = ConvOpts()
        o.groups = 3
        expect_error("conv2d groups 3 of 4 channels",
                     lib.dc_conv2d_opt(x, T(np.ones((3, 1, 3, 3), np.float32)), None, o))
        expect_error("conv2d kernel larger than the input",
                     lib.dc_conv2d_opt(x, T(np.ones((2, 4, 7, 7), np.float32)), None, ConvOpts()))
        p = PoolOpts()
        p.kernel, p.padding = pair((2, 2)), pair((2, 2))
        expect_error("max_pool2d padding over half the kernel", lib.dc_max_pool2d_opt(x, p))
        logits = T(np.ones((n, 3), np.float32))
        bad = T(np.full((n,), 3, np.int64))
        expect_error("cross_entropy label 3 of 3 classes",
                     lib.dc_cross_entropy_opt(logits, bad, xent_opts(None, None, 0.0, MEAN)))
        expect_error("mse_loss of [n,3] and [n,4]",
                     lib.dc_mse_loss(logits, T(np.ones((n, 4), np.float32)), MEAN))


if __name__ == "__main__":
    run_tests(globals())
