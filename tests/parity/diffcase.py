"""The case machinery of the differential testers (test_differential.py for the tensor ops,
test_differential_nn.py for nn_functional.h): a seeded random case (dtype, shapes, edge values),
the comparison of deepc's values, input gradients and NaN positions with PyTorch's, and the loop
that runs the cases and sorts mismatches into failures and known differences.

DC_DIFF_CASES sets the number of cases (300 by default: `make test`; `make test-parity-long` runs
20000), DC_DIFF_SEED the seed, DC_DIFF_SHOW how many known differences to print."""
import os

import numpy as np
import torch

from dc import T, backward, check_close, err, grad_np, lib, to_np

CASES = int(os.environ.get("DC_DIFF_CASES", "300"))
SEED = int(os.environ.get("DC_DIFF_SEED", "2026"))
EDGE = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e30, -1e30, 1e-30, 1.0, -1.0]


class Case:
    def __init__(self, index):
        self.index = index
        self.rng = np.random.default_rng([SEED, index])
        self.dtype = np.float32 if self.rng.random() < 0.5 else np.float64
        self.edge = self.rng.random() < 0.3

    def shape(self, min_ndim=0, max_ndim=4, allow_zero=True):
        nd = int(self.rng.integers(min_ndim, max_ndim + 1))
        choices = [0, 1, 1, 2, 3, 5] if allow_zero else [1, 1, 2, 3, 5]
        return tuple(int(self.rng.choice(choices)) for _ in range(nd))

    def array(self, shape, positive=False):
        a = np.array(self.rng.standard_normal(shape) * 2, dtype=np.float64)
        if positive:
            a = np.abs(a) + 0.1
        if self.edge and a.size:
            k = self.rng.random(a.shape) < 0.3
            vals = [v for v in EDGE if not positive or v > 0]
            a[k] = self.rng.choice(vals, size=int(k.sum()))
        if a.size > 1 and self.rng.random() < 0.2:  # ties
            a.flat[: a.size // 2] = a.flat[0]
        return a.astype(self.dtype)

    def tol(self, want):
        finite = np.abs(want[np.isfinite(want)]) if want.size else np.zeros(0)
        scale = max(1.0, float(finite.max())) if finite.size else 1.0
        if self.dtype == np.float32:
            return dict(rtol=1e-4, atol=1e-5 * scale)
        return dict(rtol=1e-9, atol=1e-11 * scale)


def leaf(case, a):
    """(dc leaf, dc input, transposed): the input is a transposed view of a contiguous leaf in
    a third of the cases with >= 2 dims."""
    if a.ndim >= 2 and case.rng.random() < 0.33:
        x = T(np.ascontiguousarray(np.swapaxes(a, -1, -2)), requires_grad=True)
        return x, lib.dc_transpose(x, -1, -2), True
    x = T(a, requires_grad=True)
    return x, x, False


def torch_run(arrays, flips, torch_fn, dtype, g):
    """torch_fn on leaves of arrays (cast to dtype, laid out as deepc's) -> (output, [input
    gradients]) as arrays, or (output, None) when the output has no gradient; g: the upstream
    gradient or None for no backward."""
    leaves, ins = [], []
    for a, flip in zip(arrays, flips):
        s = np.ascontiguousarray(np.swapaxes(a, -1, -2)) if flip else a
        t = torch.tensor(s.astype(dtype), requires_grad=True)
        leaves.append(t)
        ins.append(t.transpose(-1, -2) if flip else t)
    ty = torch_fn(*ins)
    if g is None or not ty.dtype.is_floating_point or not ty.requires_grad:
        return ty.detach().numpy(), None
    ty.backward(torch.tensor(g.astype(dtype)))
    return ty.detach().numpy(), [t.grad.numpy() if t.grad is not None else
                                 np.zeros(t.shape, dtype) for t in leaves]


def check_result(case, tag, got, want, ref):
    """got (deepc) against want (torch in the case's dtype). In float32 an element that misses
    want's tolerance still passes when deepc is at most twice as far from ref (torch in float64)
    as torch's float32 result is, plus the tolerance: both round, and on ill-conditioned cases
    (batch norm of two nearly equal values) neither is within 1e-4 of the other."""
    tol = case.tol(want)
    if ref is not None and got.shape == want.shape:
        g64, w64, r64 = (np.asarray(v, np.float64) for v in (got, want, ref))
        near = np.abs(g64 - r64) <= 2 * np.abs(w64 - r64) + tol["atol"] + tol["rtol"] * np.abs(r64)
        got = np.where(near & np.isfinite(g64) & np.isfinite(w64), w64, g64)
    check_close(tag, got, want, **tol)


def compare(case, name, arrays, dc_fn, torch_fn):
    tag = f"case {case.index} (seed {SEED}) {name} {np.dtype(case.dtype).name} " \
          f"{[a.shape for a in arrays]}"
    ins = [leaf(case, a) for a in arrays]
    flips = [i[2] for i in ins]
    y = dc_fn(*[i[1] for i in ins])
    assert y, f"{tag}: deepc returned NULL: {err()}"
    want, _ = torch_run(arrays, flips, torch_fn, case.dtype, None)
    got = to_np(y)
    g = None
    if want.dtype.kind == "f":
        g = case.array(want.shape) if not case.edge else \
            case.rng.standard_normal(want.shape).astype(case.dtype)
    want, want_g = torch_run(arrays, flips, torch_fn, case.dtype, g)
    ref, ref_g = torch_run(arrays, flips, torch_fn, np.float64, g) \
        if case.dtype == np.float32 and g is not None else (None, None)
    check_result(case, tag + " forward", got, want, ref)
    if want_g is None:
        return
    backward(y, T(g))
    for k, (x, _, _) in enumerate(ins):
        got_g = grad_np(x)
        got_g = np.zeros(want_g[k].shape, case.dtype) if got_g is None else got_g
        check_result(case, f"{tag} grad {k}", got_g, want_g[k], ref_g[k] if ref_g else None)


def run_cases(generators, known_edge):
    """Runs CASES cases, case i from generators[i % len]; fails on any mismatch that is not an
    edge-value case of an op in known_edge (docs/autograd.md lists those differences)."""
    failures, known_diffs = [], []
    for i in range(CASES):
        case = Case(i)
        lib.dc_scope_begin()
        name = "?"
        try:
            name, arrays, dfn, tfn = generators[i % len(generators)](case)
            compare(case, name, arrays, dfn, tfn)
        except AssertionError as e:
            known = case.edge and name.split("[")[0].split("(")[0] in known_edge
            (known_diffs if known else failures).append(f"case {i} {name}: {e}")
        finally:
            lib.dc_scope_end()
    print(f"{CASES} cases, {len(known_diffs)} known edge-value differences "
          f"(docs/autograd.md), {len(failures)} failures")
    for f in known_diffs[:int(os.environ.get("DC_DIFF_SHOW", "0"))]:
        print("known:", f)
    for f in failures[:int(os.environ.get("DC_DIFF_SHOW", "20"))]:
        print(f)
    assert not failures, f"{len(failures)} of {CASES} cases differ from PyTorch"


def expect_error(tag, t):
    """An invalid-argument check: t must be NULL with a message (which is then cleared)."""
    assert not t, f"{tag}: expected NULL"
    assert err(), f"{tag}: NULL without a message"
    lib.dc_clear_error()
