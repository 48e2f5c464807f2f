"""Differential tester against PyTorch: seeded random cases of the elementwise, reduction,
softmax, view and matmul ops (ops.h, tensor.h), with random shapes (0-d, size-1 and size-0 dims,
broadcasting), float32 and float64, transposed (non-contiguous) inputs and edge values (0, -0,
+-inf, NaN, huge and tiny magnitudes, ties). Each case compares the values, the input gradients
(backward of a random upstream gradient) and the NaN positions with PyTorch; invalid arguments
must give NULL and a message.

The case machinery and its settings (DC_DIFF_CASES, DC_DIFF_SEED, DC_DIFF_SHOW) are in
diffcase.py. A failure prints the case's index and seed to replay it."""
import ctypes as C

import numpy as np
import torch
import torch.nn.functional as F

from dc import ALL_DIMS, T, dims, lib, run_tests, shape
from diffcase import CASES, SEED, expect_error, run_cases

torch.set_num_threads(2)

# name: (arity, dc function, torch function, domain); domain "pos" draws positive inputs
UNARY = {
    "neg": (lib.dc_neg, torch.neg), "abs": (lib.dc_abs, torch.abs),
    "exp": (lib.dc_exp, torch.exp), "log": (lib.dc_log, torch.log),
    "sqrt": (lib.dc_sqrt, torch.sqrt), "rsqrt": (lib.dc_rsqrt, torch.rsqrt),
    "square": (lib.dc_square, torch.square), "reciprocal": (lib.dc_reciprocal, torch.reciprocal),
    "sigmoid": (lib.dc_sigmoid, torch.sigmoid), "tanh": (lib.dc_tanh, torch.tanh),
    "relu": (lib.dc_relu, torch.relu), "selu": (lib.dc_selu, torch.selu),
    "sign": (lib.dc_sign, torch.sign), "erf": (lib.dc_erf, torch.erf),
}
BINARY = {
    "add": (lib.dc_add, torch.add), "sub": (lib.dc_sub, torch.sub),
    "mul": (lib.dc_mul, torch.mul), "div": (lib.dc_div, torch.div),
    "maximum": (lib.dc_maximum, torch.maximum), "minimum": (lib.dc_minimum, torch.minimum),
}
REDUCE = {
    "sum": (lib.dc_sum, lambda x, d, k: torch.sum(x, d, keepdim=k)),
    "mean": (lib.dc_mean, lambda x, d, k: torch.mean(x, d, keepdim=k)),
    "amax": (lib.dc_amax, lambda x, d, k: torch.amax(x, d, keepdim=k)),
    "amin": (lib.dc_amin, lambda x, d, k: torch.amin(x, d, keepdim=k)),
    "logsumexp": (lib.dc_logsumexp, lambda x, d, k: torch.logsumexp(x, d, keepdim=k)),
}


def broadcast_pair(case):
    s = case.shape()
    t = list(s)
    for i in range(len(t)):  # size-1 dims broadcast
        if case.rng.random() < 0.3:
            t[i] = 1
    t = tuple(t[int(case.rng.integers(0, len(t) + 1)):])  # fewer leading dims, 0-d too
    return (s, t) if case.rng.random() < 0.5 else (t, s)


def gen_unary(case):
    name = sorted(UNARY)[int(case.rng.integers(0, len(UNARY)))]
    dfn, tfn = UNARY[name]
    pos = name in ("log", "sqrt", "rsqrt") and not case.edge
    return name, [case.array(case.shape(), positive=pos)], dfn, tfn


def gen_binary(case):
    name = sorted(BINARY)[int(case.rng.integers(0, len(BINARY)))]
    dfn, tfn = BINARY[name]
    sa, sb = broadcast_pair(case)
    return name, [case.array(sa), case.array(sb)], dfn, tfn


def gen_scalar(case):
    s = float(case.rng.choice([0.0, -1.5, 2.0, 0.5, 3.0]))
    cs = C.c_double(s)
    kind = int(case.rng.integers(0, 4))
    ops = [("add_scalar", lambda x: lib.dc_add_scalar(x, cs), lambda x: x + s),
           ("mul_scalar", lambda x: lib.dc_mul_scalar(x, cs), lambda x: x * s),
           ("rsub_scalar", lambda x: lib.dc_rsub_scalar(x, cs), lambda x: s - x),
           ("pow_scalar", lambda x: lib.dc_pow_scalar(x, cs), lambda x: torch.pow(x, s))]
    name, dfn, tfn = ops[kind]
    return f"{name}({s})", [case.array(case.shape(), positive=kind == 3 and not case.edge)], \
        dfn, tfn


def gen_reduce(case):
    name = sorted(REDUCE)[int(case.rng.integers(0, len(REDUCE)))]
    dfn, tfn = REDUCE[name]
    shp = case.shape(min_ndim=1, allow_zero=name in ("sum", "mean", "logsumexp"))
    nd = len(shp)
    dl = sorted(set(int(d) for d in case.rng.integers(0, nd, size=int(case.rng.integers(1, nd + 1)))))
    keep = bool(case.rng.random() < 0.5)
    return f"{name}{dl} keepdim={keep}", [case.array(shp)], \
        lambda x: dfn(x, *dims(*dl), keep), lambda x: tfn(x, dl, keep)


def gen_var_std(case):
    shp = case.shape(min_ndim=1, allow_zero=False)
    d = int(case.rng.integers(0, len(shp)))
    corr = int(case.rng.integers(0, 2))
    keep = bool(case.rng.random() < 0.5)
    is_std = case.rng.random() < 0.5
    dfn = lib.dc_std if is_std else lib.dc_var
    tfn = torch.std if is_std else torch.var
    return f"{'std' if is_std else 'var'}[{d}] correction={corr}", [case.array(shp)], \
        lambda x: dfn(x, *dims(d), corr, keep), \
        lambda x: tfn(x, d, unbiased=bool(corr), keepdim=keep)


def gen_softmax(case):
    shp = case.shape(min_ndim=1)
    d = int(case.rng.integers(-len(shp), len(shp)))
    log = case.rng.random() < 0.5
    dfn = lib.dc_log_softmax if log else lib.dc_softmax
    tfn = F.log_softmax if log else F.softmax
    return f"{'log_' if log else ''}softmax({d})", [case.array(shp)], \
        lambda x: dfn(x, d), lambda x: tfn(x, d)


def gen_matmul(case):
    k = int(case.rng.integers(1, 5))
    ra, rb = int(case.rng.integers(1, 4)), int(case.rng.integers(1, 4))
    batch = tuple(int(case.rng.choice([1, 2, 3])) for _ in range(max(ra, rb) - 2)) \
        if max(ra, rb) > 2 else ()
    sa = (k,) if ra == 1 else batch[len(batch) - (ra - 2):] + (int(case.rng.integers(1, 4)), k)
    sb = (k,) if rb == 1 else batch[len(batch) - (rb - 2):] + (k, int(case.rng.integers(1, 4)))
    return "matmul", [case.array(sa), case.array(sb)], lib.dc_matmul, torch.matmul


def gen_view(case):
    shp = case.shape(min_ndim=1)
    nd = len(shp)
    d = int(case.rng.integers(0, nd))
    kind = int(case.rng.integers(0, 10))
    x = [case.array(shp)]
    i64 = C.c_int64
    if kind == 0:
        return "unsqueeze", x, lambda t: lib.dc_unsqueeze(t, d), lambda t: t.unsqueeze(d)
    if kind == 1:
        s, e = sorted(int(v) for v in case.rng.integers(0, nd, size=2))
        return f"flatten({s},{e})", x, lambda t: lib.dc_flatten(t, s, e), \
            lambda t: t.flatten(s, e)
    if kind == 2 and shp[d] > 0:
        i = int(case.rng.integers(-shp[d], shp[d]))
        return f"select({d},{i})", x, lambda t: lib.dc_select(t, d, i64(i)), \
            lambda t: t.select(d, i)
    if kind == 3:
        st = int(case.rng.integers(0, shp[d] + 1))
        ln = int(case.rng.integers(0, shp[d] - st + 1))
        return f"narrow({d},{st},{ln})", x, lambda t: lib.dc_narrow(t, d, i64(st), i64(ln)), \
            lambda t: t.narrow(d, st, ln)
    if kind == 4:
        st, en = (int(v) for v in case.rng.integers(-6, 7, size=2))
        step = int(case.rng.integers(1, 4))
        sl = [slice(None)] * d + [slice(st, en, step)]
        return f"slice({d},{st}:{en}:{step})", x, \
            lambda t: lib.dc_slice(t, d, i64(st), i64(en), i64(step)), lambda t: t[tuple(sl)]
    if kind == 5:
        ex = [int(case.rng.choice([2, 3])) if v == 1 and case.rng.random() < 0.6 else
              (-1 if case.rng.random() < 0.3 else v) for v in shp]
        lead = [int(case.rng.choice([0, 2]))] if case.rng.random() < 0.3 else []
        full = lead + ex
        return f"expand({full})", x, lambda t: lib.dc_expand(t, shape(*full)), \
            lambda t: t.expand(*full)
    if kind == 6:
        sq = d if case.rng.random() < 0.7 else None
        return f"squeeze({sq})", x, \
            lambda t: lib.dc_squeeze(t, ALL_DIMS if sq is None else sq), \
            lambda t: t.squeeze() if sq is None else t.squeeze(sq)
    if kind == 7:
        perm = [int(v) for v in case.rng.permutation(nd)]
        arr = (C.c_int * nd)(*perm)
        return f"permute({perm})", x, lambda t: lib.dc_permute(t, arr, nd), \
            lambda t: t.permute(*perm)
    if kind == 8:
        n = int(np.prod(shp))
        new = [n] if n == 0 or case.rng.random() < 0.3 else factor_shape(case, n)
        if new and case.rng.random() < 0.4 and n > 0:
            new[int(case.rng.integers(0, len(new)))] = -1
        return f"reshape({new})", x, lambda t: lib.dc_reshape(t, shape(*new)), \
            lambda t: t.reshape(tuple(new))
    e = int(case.rng.integers(0, nd))
    return f"transpose({d},{e})", x, lambda t: lib.dc_transpose(t, d, e), \
        lambda t: t.transpose(d, e)


def factor_shape(case, n):
    """A random shape with n elements (n > 0), up to 4 dims with size-1 dims mixed in."""
    dims_ = []
    while n > 1 and len(dims_) < 3:
        f = [k for k in range(2, n + 1) if n % k == 0]
        k = int(case.rng.choice(f))
        dims_.append(k)
        n //= k
    if n > 1:
        dims_.append(n)
    if case.rng.random() < 0.5:
        dims_.insert(int(case.rng.integers(0, len(dims_) + 1)), 1)
    return dims_


# Ops whose results on non-finite or huge inputs differ from PyTorch's in ways docs/autograd.md
# ("Differences from PyTorch") lists; a mismatch of one of them in an edge-value case is reported,
# not failed. Any other mismatch fails.
KNOWN_EDGE = {"var", "std", "sum", "mean", "softmax", "log_softmax", "matmul", "div", "selu"}

GENERATORS = [gen_unary, gen_binary, gen_scalar, gen_reduce, gen_var_std, gen_softmax,
              gen_matmul, gen_view]


def test_random_cases():
    run_cases(GENERATORS, KNOWN_EDGE)


def test_invalid_arguments():
    rng = np.random.default_rng(SEED)
    for i in range(max(10, CASES // 10)):
        n = int(rng.integers(2, 5))
        a = T(np.ones((n, 3), np.float32))
        b = T(np.ones((n + 1, 3), np.float32))
        expect_error("add of [n,3] and [n+1,3]", lib.dc_add(a, b))
        expect_error("sum over dim 2 of a 2-d tensor", lib.dc_sum(a, *dims(2), False))
        expect_error("matmul [n,3] x [4,2]", lib.dc_matmul(a, T(np.ones((4, 2), np.float32))))
        expect_error("select past the end", lib.dc_select(a, 0, n))
        expect_error("transpose dim 5", lib.dc_transpose(a, 0, 5))
        expect_error("softmax dim -3", lib.dc_softmax(a, -3))
        expect_error("amax over an empty dim", lib.dc_amax(T(np.ones((0, 2), np.float32)),
                                                          *dims(0), False))
        expect_error("var with correction -1", lib.dc_var(a, *dims(0), -1, False))
        expect_error("narrow past the end", lib.dc_narrow(a, 1, C.c_int64(2), C.c_int64(2)))
        expect_error("slice with step 0", lib.dc_slice(a, 0, C.c_int64(0), C.c_int64(1),
                                                       C.c_int64(0)))
        expect_error("expand [n,3] to [n,4]", lib.dc_expand(a, shape(n, 4)))
        expect_error("permute (0,0)", lib.dc_permute(a, (C.c_int * 2)(0, 0), 2))
        expect_error("reshape 3n elements to [7]", lib.dc_reshape(a, shape(3 * n + 1)))
        expect_error("reshape with two -1", lib.dc_reshape(a, shape(-1, -1)))
        expect_error("squeeze dim 2", lib.dc_squeeze(a, 2))


if __name__ == "__main__":
    run_tests(globals())
