"""Differential tester of the ops that test_differential.py and test_differential_nn.py leave
out, against PyTorch: activations with parameters (leaky_relu, elu, gelu, softplus, hardtanh,
clamp), pow and add_scaled, the scalar forms sub/div, comparisons and where, full reductions
(sum_all, mean_all, max, min), max_dim/min_dim with their indices, argmax/argmin, bmm, cat and
stack, gather, scatter_add, index_select, one_hot, clone/contiguous and the dtype round trip,
dropout at p = 0 and 1 and in eval mode, and the multi-class hinge loss. Same cases, edge values
and settings (DC_DIFF_CASES, DC_DIFF_SEED) as the other testers (diffcase.py)."""
import ctypes as C

import numpy as np
import torch
import torch.nn.functional as F

from dc import ALL_DIMS, F32, F64, TP, MarginOpts, T, lib, run_tests
from diffcase import CASES, SEED, expect_error, run_cases

torch.set_num_threads(2)
cd = C.c_double


def ri(case, lo, hi):
    return int(case.rng.integers(lo, hi + 1))


def gen_activation(case):
    k = ri(case, 0, 6)
    x = [case.array(case.shape())]
    if k == 0:
        s = float(case.rng.choice([0.01, 0.2, -0.5, 0.0]))
        return f"leaky_relu({s})", x, lambda a: lib.dc_leaky_relu(a, cd(s)), \
            lambda a: F.leaky_relu(a, s)
    if k == 1:
        al = float(case.rng.choice([1.0, 0.5, 2.0]))
        return f"elu({al})", x, lambda a: lib.dc_elu(a, cd(al)), lambda a: F.elu(a, al)
    if k == 2:
        th = bool(case.rng.random() < 0.5)
        return f"gelu(tanh={th})", x, lambda a: lib.dc_gelu(a, th), \
            lambda a: F.gelu(a, approximate="tanh" if th else "none")
    if k == 3:
        b, t = float(case.rng.choice([1.0, 2.0, 0.5])), float(case.rng.choice([20.0, 1.0]))
        return f"softplus({b},{t})", x, lambda a: lib.dc_softplus(a, cd(b), cd(t)), \
            lambda a: F.softplus(a, b, t)
    lo, hi = sorted(float(v) for v in case.rng.choice([-1.0, -0.5, 0.0, 0.5, 2.0], size=2))
    if k == 4:
        return f"hardtanh({lo},{hi})", x, lambda a: lib.dc_hardtanh(a, cd(lo), cd(hi)), \
            lambda a: F.hardtanh(a, lo, hi)
    if k == 5:
        lo = -np.inf if case.rng.random() < 0.3 else lo
        return f"clamp({lo},{hi})", x, lambda a: lib.dc_clamp(a, cd(lo), cd(hi)), \
            lambda a: torch.clamp(a, None if np.isinf(lo) else lo, hi)
    s = float(case.rng.choice([0.0, -1.5, 2.0, 0.5]))
    if case.rng.random() < 0.5:
        return f"sub_scalar({s})", x, lambda a: lib.dc_sub_scalar(a, cd(s)), lambda a: a - s
    return f"div_scalar({s})", x, lambda a: lib.dc_div_scalar(a, cd(s)), lambda a: a / s


def broadcast_pair(case):
    s = case.shape()
    t = [1 if case.rng.random() < 0.3 else v for v in s]
    t = tuple(t[ri(case, 0, len(t)):])
    return (s, t) if case.rng.random() < 0.5 else (t, s)


CMP = {"eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt,
       "ge": torch.ge}


def gen_binary(case):
    sa, sb = broadcast_pair(case)
    k = ri(case, 0, 4)
    if k == 0:
        pos = not case.edge
        return "pow", [case.array(sa, positive=pos), case.array(sb)], lib.dc_pow, torch.pow
    if k == 1:
        al = float(case.rng.choice([1.0, -0.5, 2.0, 0.0]))
        return f"add_scaled({al})", [case.array(sa), case.array(sb)], \
            lambda a, b: lib.dc_add_scaled(a, b, cd(al)), lambda a, b: torch.add(a, b, alpha=al)
    if k == 2:
        name = sorted(CMP)[ri(case, 0, len(CMP) - 1)]
        return name, [case.array(sa), case.array(sb)], getattr(lib, "dc_" + name), CMP[name]
    if k == 3:
        s = float(case.rng.choice([0.0, 1.0, -1.0]))
        name = ["gt_scalar", "lt_scalar", "eq_scalar"][ri(case, 0, 2)]
        tf = {"gt_scalar": torch.gt, "lt_scalar": torch.lt, "eq_scalar": torch.eq}[name]
        return f"{name}({s})", [case.array(sa)], lambda a: getattr(lib, "dc_" + name)(a, cd(s)), \
            lambda a: tf(a, s)
    cs = [1 if case.rng.random() < 0.3 else v for v in np.broadcast_shapes(sa, sb)]
    cond = np.asarray(case.rng.random(tuple(cs[ri(case, 0, len(cs)):])) < 0.5)
    dc_c, t_c = T(cond), torch.tensor(cond)
    return "where", [case.array(sa), case.array(sb)], lambda a, b: lib.dc_where(dc_c, a, b), \
        lambda a, b: torch.where(t_c, a, b)


def gen_reduce(case):
    k = ri(case, 0, 5)
    if k < 4:
        shp = case.shape(allow_zero=k < 2)
        name = ["sum_all", "mean_all", "max", "min"][k]
        tf = [torch.sum, torch.mean, torch.max, torch.min][k]
        return name, [case.array(shp)], getattr(lib, "dc_" + name), tf
    shp = case.shape(min_ndim=1, allow_zero=False)
    d = ri(case, -len(shp), len(shp) - 1)
    keep = bool(case.rng.random() < 0.5)
    big = k == 4
    name = "max_dim" if big else "min_dim"
    fn = lib.dc_max_dim if big else lib.dc_min_dim
    tf = torch.max if big else torch.min
    if case.rng.random() < 0.5:  # the values (and their gradient)
        return f"{name}({d}, keepdim={keep})", [case.array(shp)], \
            lambda a: fn(a, d, keep, None), lambda a: tf(a, d, keep)[0]
    flat = case.rng.random() < 0.3
    an = ("argmax" if big else "argmin") + ("(flat)" if flat else f"({d}, keepdim={keep})")
    af = lib.dc_argmax if big else lib.dc_argmin
    tfa = torch.argmax if big else torch.argmin
    return an, [case.array(shp)], lambda a: af(a, ALL_DIMS if flat else d, keep), \
        lambda a: tfa(a, None if flat else d, keep)


def gen_bmm(case):
    b, m, k, n = ri(case, 0, 3), ri(case, 1, 4), ri(case, 0, 4), ri(case, 1, 4)
    return "bmm", [case.array((b, m, k)), case.array((b, k, n))], lib.dc_bmm, torch.bmm


def gen_cat_stack(case):
    shp = list(case.shape(min_ndim=1))
    n = ri(case, 1, 3)
    stack = case.rng.random() < 0.4
    d = ri(case, -len(shp) - stack, len(shp) - 1 + stack)
    shapes = []
    for _ in range(n):
        s = list(shp)
        if not stack:
            s[d] = int(case.rng.choice([0, 1, 2, 3]))
        shapes.append(tuple(s))
    arrays = [case.array(s) for s in shapes]

    def dc_fn(*ts):
        arr = (TP * n)(*ts)
        return (lib.dc_stack if stack else lib.dc_cat)(arr, n, d)
    tf = torch.stack if stack else torch.cat
    return f"{'stack' if stack else 'cat'}(n={n}, dim={d})", arrays, dc_fn, \
        lambda *ts: tf(ts, d)


def gen_index(case):
    shp = case.shape(min_ndim=1, allow_zero=False)
    nd = len(shp)
    d = ri(case, 0, nd - 1)
    k = ri(case, 0, 3)
    if k == 0:  # gather: index no larger than x in the other dims
        ishape = tuple(ri(case, 0, 4) if i == d else ri(case, 1, shp[i]) for i in range(nd))
        idx = case.rng.integers(0, shp[d], size=ishape).astype(np.int64)
        di, ti = T(idx), torch.tensor(idx)
        return f"gather({d})", [case.array(shp)], lambda a: lib.dc_gather(a, d, di), \
            lambda a: torch.gather(a, d, ti)
    if k == 1:  # scatter_add: src and index of one shape, within x
        ishape = tuple(ri(case, 1, shp[i]) if i != d else ri(case, 0, 4) for i in range(nd))
        idx = case.rng.integers(0, shp[d], size=ishape).astype(np.int64)
        di, ti = T(idx), torch.tensor(idx)
        return f"scatter_add({d})", [case.array(shp), case.array(ishape)], \
            lambda a, s: lib.dc_scatter_add(a, d, di, s), \
            lambda a, s: torch.scatter_add(a, d, ti, s)
    if k == 2:
        idx = case.rng.integers(0, shp[d], size=ri(case, 0, 5)).astype(np.int64)
        di, ti = T(idx), torch.tensor(idx)
        return f"index_select({d})", [case.array(shp)], \
            lambda a: lib.dc_index_select(a, d, di), lambda a: torch.index_select(a, d, ti)
    c = ri(case, 1, 5)
    lab = case.rng.integers(0, c, size=case.shape()).astype(np.int64)
    dl, tl = T(lab), torch.tensor(lab)
    return f"one_hot({c})", [case.array(())], lambda a: lib.dc_one_hot(dl, c), \
        lambda a: F.one_hot(tl, c)


def gen_copy(case):
    x = [case.array(case.shape())]
    k = ri(case, 0, 2)
    if k == 0:
        return "clone", x, lib.dc_clone, torch.clone
    if k == 1:
        return "contiguous", x, lib.dc_contiguous, lambda a: a.contiguous()
    f64 = case.dtype == np.float64
    other, back = (F32, F64) if f64 else (F64, F32)
    to = torch.float32 if f64 else torch.float64
    return "to_dtype round trip", x, \
        lambda a: lib.dc_to_dtype(lib.dc_to_dtype(a, other), back), \
        lambda a: a.to(to).to(a.dtype)


def gen_dropout(case):
    x = [case.array(case.shape())]
    p, train = [(0.0, True), (1.0, True), (0.5, False), (0.3, False)][ri(case, 0, 3)]
    return f"dropout(p={p}, training={train})", x, lambda a: lib.dc_dropout(a, cd(p), train), \
        lambda a: F.dropout(a, p, train)


def gen_multi_margin(case):
    c = ri(case, 1, 5)
    shp = (ri(case, 1, 4), c) if case.rng.random() < 0.8 else (c,)
    tgt = case.rng.integers(0, c, size=shp[:-1]).astype(np.int64)
    dt, tt_ = T(tgt), torch.tensor(tgt)
    if tgt.ndim == 0:
        dt = lib.dc_squeeze(dt, 0)
    o = MarginOpts()
    o.p = ri(case, 1, 2)
    m = float(case.rng.choice([1.0, 0.5, 0.0]))
    o.margin, o.zero_margin, o.reduction = m, m == 0.0, ri(case, 0, 2)
    w = np.asarray(case.rng.random(c) + 0.25, case.dtype) if case.rng.random() < 0.4 else None
    tw = None if w is None else torch.tensor(w)
    o.weight = T(w) if w is not None else None
    red = ["mean", "sum", "none"][o.reduction]
    return f"multi_margin_loss(p={o.p} m={m} w={w is not None} {red})", [case.array(shp)], \
        lambda a: lib.dc_multi_margin_loss_opt(a, dt, o), \
        lambda a: F.multi_margin_loss(a, tt_, o.p, m, None if tw is None else tw.to(a.dtype),
                                      reduction=red)


GENERATORS = [gen_activation, gen_binary, gen_reduce, gen_bmm, gen_cat_stack, gen_index, gen_copy,
              gen_dropout, gen_multi_margin]
# ops of this file whose results on non-finite or huge inputs differ from PyTorch's
# (docs/autograd.md, "Differences from PyTorch"); other mismatches fail.
KNOWN_EDGE = {"elu", "hardtanh", "bmm", "sum_all", "mean_all"}


def test_random_cases():
    run_cases(GENERATORS, KNOWN_EDGE)


def test_invalid_arguments():
    rng = np.random.default_rng(SEED)
    for i in range(max(10, CASES // 10)):
        lib.dc_scope_begin()
        try:
            n = int(rng.integers(2, 5))
            x = T(rng.standard_normal((n, 3)).astype(np.float32))
            bad = T(np.array([[n + int(rng.integers(0, 3))]], np.int64))
            expect_error(f"gather index {i}", lib.dc_gather(x, 0, bad))
            expect_error(f"index_select {i}", lib.dc_index_select(x, 0, T(np.array([n], np.int64))))
            expect_error(f"gather dim {i}", lib.dc_gather(x, 2 + int(rng.integers(0, 3)), bad))
            y = T(rng.standard_normal((n + 1, 4)).astype(np.float32))
            expect_error(f"cat shapes {i}", lib.dc_cat((TP * 2)(x, y), 2, 0))
            expect_error(f"stack shapes {i}", lib.dc_stack((TP * 2)(x, y), 2, 0))
            z = T(np.zeros((1, 5, 2), np.float32))
            expect_error(f"bmm shapes {i}", lib.dc_bmm(lib.dc_unsqueeze(x, 0), z))
            expect_error(f"one_hot {i}", lib.dc_one_hot(T(np.array([n], np.int64)), n))
            expect_error(f"dropout p {i}", lib.dc_dropout(x, cd(1.5), True))
            expect_error(f"argmax dim {i}", lib.dc_argmax(x, 3, False))
        finally:
            lib.dc_scope_end()


if __name__ == "__main__":
    run_tests(globals())
