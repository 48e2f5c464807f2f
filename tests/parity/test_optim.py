"""PyTorch parity of deepc's optimizers, schedules and clipping (include/deepc/optim.h).

Every optimizer runs 50 steps on the same parameters and gradients as torch.optim 1.13 (several
hyper-parameter sets, float32 and float64, a parameter without gradient on some steps, a tensor
big enough for the threaded path), compared after every step; the final state is compared
through state_dict names. Schedules are compared lr for lr over 50 steps, clipping by the total
norm and the clipped gradients.
"""
import ctypes as C
import math
import os

# OpenMP threads sleep instead of spinning between the many small parallel steps: several times
# faster on a busy machine, same results (set before torch and libdeepc load libgomp)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

from dc import F32, F64, TP, T, backward, check_close, err, lib, run_tests, to_np

raw = lib.raw


class HParams(C.Structure):
    _fields_ = [("lr", C.c_double), ("weight_decay", C.c_double), ("maximize", C.c_bool),
                ("momentum", C.c_double), ("dampening", C.c_double), ("nesterov", C.c_bool),
                ("betas", C.c_double * 2), ("amsgrad", C.c_bool),
                ("no_bias_correction", C.c_bool), ("eps", C.c_double), ("alpha", C.c_double),
                ("centered", C.c_bool), ("lr_decay", C.c_double),
                ("initial_accumulator_value", C.c_double)]


class ParamGroup(C.Structure):
    _fields_ = [("params", C.POINTER(TP)), ("n", C.c_int), ("hp", HParams)]


class OptimState(C.Structure):
    _fields_ = [("n", C.c_int), ("names", C.POINTER(C.c_char_p)), ("tensors", C.POINTER(TP)),
                ("cap", C.c_int)]


class OneCycleOpts(C.Structure):
    _fields_ = [("max_lr", C.c_double), ("max_lrs", C.POINTER(C.c_double)),
                ("total_steps", C.c_int64), ("epochs", C.c_int64), ("steps_per_epoch", C.c_int64),
                ("pct_start", C.c_double), ("anneal_linear", C.c_bool),
                ("cycle_momentum", C.c_bool), ("base_momentum", C.c_double),
                ("max_momentum", C.c_double), ("div_factor", C.c_double),
                ("final_div_factor", C.c_double), ("three_phase", C.c_bool)]


class PlateauOpts(C.Structure):
    _fields_ = [("mode", C.c_int), ("factor", C.c_double), ("patience", C.c_int),
                ("threshold", C.c_double), ("threshold_mode", C.c_int), ("cooldown", C.c_int),
                ("min_lr", C.c_double), ("min_lrs", C.POINTER(C.c_double)), ("eps", C.c_double)]


VP, I, D = C.c_void_p, C.c_int, C.c_double
for name, res, args in [
        ("dc_optim_defaults", HParams, [I]),
        ("dc_optim_new", VP, [I, C.POINTER(ParamGroup), I]),
        ("dc_optim_step", I, [VP]), ("dc_optim_zero_grad", None, [VP]),
        ("dc_optim_free", None, [VP]), ("dc_optim_get_lr", D, [VP, I]),
        ("dc_optim_get_hparams", I, [VP, I, C.POINTER(HParams)]),
        ("dc_optim_state_dict", I, [VP, C.POINTER(OptimState)]),
        ("dc_optim_state_free", None, [C.POINTER(OptimState)]),
        ("dc_sched_step_lr", VP, [VP, I, D]),
        ("dc_sched_multistep_lr", VP, [VP, C.POINTER(I), I, D]),
        ("dc_sched_exponential_lr", VP, [VP, D]),
        ("dc_sched_cosine_annealing_lr", VP, [VP, I, D]),
        ("dc_sched_linear_lr", VP, [VP, D, D, I]),
        ("dc_sched_sequential_lr", VP, [VP, C.POINTER(VP), I, C.POINTER(I)]),
        ("dc_sched_chained", VP, [C.POINTER(VP), I]),
        ("dc_onecycle_defaults", OneCycleOpts, [D, C.c_int64]),
        ("dc_sched_onecycle_lr", VP, [VP, OneCycleOpts]),
        ("dc_plateau_defaults", PlateauOpts, []),
        ("dc_sched_reduce_on_plateau", VP, [VP, PlateauOpts]),
        ("dc_sched_step", I, [VP]), ("dc_sched_step_metric", I, [VP, D]),
        ("dc_sched_get_last_lr", D, [VP, I]), ("dc_sched_free", None, [VP]),
        ("dc_clip_grad_norm_", I, [C.POINTER(TP), I, D, D, C.c_bool, C.POINTER(D)]),
        ("dc_clip_grad_value_", I, [C.POINTER(TP), I, D])]:
    f = getattr(raw, name)
    f.restype, f.argtypes = res, args

KINDS = {"SGD": 0, "Adam": 1, "AdamW": 2, "RMSprop": 3, "Adagrad": 4}
TORCH = {"SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW,
         "RMSprop": torch.optim.RMSprop, "Adagrad": torch.optim.Adagrad}
SHAPES = [(5,), (3, 4), (2, 3, 2), (129, 260)]  # the last one runs the threaded, chunked path
SMALL = SHAPES[:3] + [(4, 1, 3)]


def hparams(kind, **kw):
    h = raw.dc_optim_defaults(KINDS[kind])
    for k, v in kw.items():
        if k == "betas":
            h.betas[0], h.betas[1] = v
        else:
            setattr(h, k, v)
    return h


def torch_kwargs(kind, kw):
    kw = dict(kw)
    if kind == "SGD":
        kw.setdefault("lr", 0.1)
    return kw


def make_optim(kind, dc_params, groups_kw):
    """groups_kw: list of (param indices, hyper-parameter dict)"""
    arrs, groups = [], (ParamGroup * len(groups_kw))()
    for gi, (idx, kw) in enumerate(groups_kw):
        arr = (TP * len(idx))(*[dc_params[i] for i in idx])
        arrs.append(arr)
        groups[gi].params, groups[gi].n = arr, len(idx)
        groups[gi].hp = hparams(kind, **torch_kwargs(kind, kw))
    opt = raw.dc_optim_new(KINDS[kind], groups, len(groups_kw))
    assert opt, err()
    return opt


def state_of(opt):
    st = OptimState()
    assert raw.dc_optim_state_dict(opt, C.byref(st)) == 0, err()
    out = {st.names[i].decode(): to_np(st.tensors[i]) for i in range(st.n)}
    raw.dc_optim_state_free(C.byref(st))
    return out


def run_optimizer(kind, groups_kw, dtype, steps=50, seed=0, big=False, tol=None):
    """50 steps of deepc and torch side by side; big: the last parameter is large enough for the
    threaded path (compared every 10 steps to keep the test fast)."""
    rng = np.random.default_rng(seed)
    shapes = SHAPES if big else SMALL
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    dcp = [T(a, requires_grad=True) for a in init]
    tp = [torch.tensor(a, requires_grad=True) for a in init]
    # torch's Adagrad fills its sums from the constructor's initial_accumulator_value only (a
    # group's own value is ignored); deepc honours the group's: pass it to both here
    extra = {}
    if kind == "Adagrad":
        extra["initial_accumulator_value"] = groups_kw[0][1].get("initial_accumulator_value", 0)
    topt = TORCH[kind]([{"params": [tp[i] for i in idx], **torch_kwargs(kind, kw)}
                        for idx, kw in groups_kw], **extra)
    opt = make_optim(kind, dcp, groups_kw)
    rtol, atol = tol or ((2e-5, 2e-6) if dtype == np.float32 else (1e-11, 1e-12))
    try:
        for step in range(steps):
            raw.dc_optim_zero_grad(opt)
            for i, (p, q) in enumerate(zip(dcp, tp)):
                if i == 0 and step % 7 == 3:  # no gradient: the parameter is skipped
                    q.grad = None
                    continue
                g = (rng.standard_normal(init[i].shape) * (1 + step % 3)).astype(dtype)
                q.grad = torch.tensor(g)
                backward(p, grad=T(g))
            topt.step()
            assert raw.dc_optim_step(opt) == 0, err()
            for i, (p, q) in enumerate(zip(dcp, tp)):
                if big and i == 3 and step % 10 != 9:
                    continue
                check_close(f"{kind} {groups_kw} {dtype.__name__} step {step} param {i}",
                            to_np(p), q.detach().numpy(), rtol=rtol, atol=atol)
        # the state under torch's state_dict names
        ours, theirs = state_of(opt), topt.state_dict()
        for pi, st in theirs["state"].items():
            for key, v in st.items():
                if v is None:
                    continue
                name = f"state.{pi}.{key}"
                assert name in ours, f"{kind}: {name} missing from deepc's state_dict"
                want = np.asarray(v.detach().numpy() if torch.is_tensor(v) else v)
                check_close(f"{kind} {name}", ours[name], want, rtol=rtol * 10, atol=atol * 10)
        for gi, grp in enumerate(theirs["param_groups"]):
            for key in ("lr", "momentum", "betas", "eps", "weight_decay", "alpha", "lr_decay"):
                if key in grp and f"param_groups.{gi}.{key}" in ours:
                    check_close(f"{kind} group {gi} {key}", ours[f"param_groups.{gi}.{key}"],
                                np.asarray(grp[key], dtype=np.float64))
    finally:
        raw.dc_optim_free(opt)


ALL = [[0, 1, 2, 3]]


def first(seen):
    """True the first time (the big parameter runs once per optimizer)."""
    if seen:
        return False
    seen.append(1)
    return True


def test_sgd():
    for kw in [dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
               dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
               dict(lr=0.02, weight_decay=0.1, maximize=True, momentum=0.5)]:
        for dt in (np.float32, np.float64):
            run_optimizer("SGD", [(ALL[0], kw)], dt, big=dt == np.float32 and kw.get("nesterov"))


def test_sgd_groups():
    groups = [([0, 3], dict(lr=0.1, momentum=0.9)), ([1], dict(lr=0.01)),
              ([2], dict(lr=0.05, momentum=0.5, nesterov=True))]
    run_optimizer("SGD", groups, np.float32)


def test_adam():
    big_done = []
    for kw in [dict(), dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
               dict(lr=0.01, weight_decay=0.05, amsgrad=True), dict(lr=0.003, maximize=True),
               dict(lr=0.01, betas=(0.0, 0.9))]:
        for dt in (np.float32, np.float64):
            run_optimizer("Adam", [(ALL[0], kw)], dt, big=dt == np.float32 and first(big_done))


def test_adamw():
    big_done = []
    for kw in [dict(), dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, amsgrad=True, eps=1e-5),
               dict(lr=0.005, weight_decay=0.0, betas=(0.5, 0.6))]:
        for dt in (np.float32, np.float64):
            run_optimizer("AdamW", [(ALL[0], kw)], dt, big=dt == np.float32 and first(big_done))


def test_rmsprop():
    big_done = []
    for kw in [dict(), dict(lr=0.001, alpha=0.9, eps=1e-6), dict(lr=0.001, centered=True),
               dict(lr=0.001, momentum=0.9, weight_decay=0.01),
               dict(lr=0.0005, momentum=0.5, centered=True, maximize=True)]:
        for dt in (np.float32, np.float64):
            run_optimizer("RMSprop", [(ALL[0], kw)], dt, big=dt == np.float32 and first(big_done))


def test_adagrad():
    big_done = []
    for kw in [dict(), dict(lr=0.05, lr_decay=0.01), dict(lr=0.1, initial_accumulator_value=0.5),
               dict(lr=0.1, weight_decay=0.05, eps=1e-6, maximize=True)]:
        for dt in (np.float32, np.float64):
            run_optimizer("Adagrad", [(ALL[0], kw)], dt, big=dt == np.float32 and first(big_done))


def test_mixed_groups():
    run_optimizer("Adam", [([0, 1], dict(lr=0.01)), ([2, 3], dict(lr=0.001, amsgrad=True))],
                  np.float32, big=True)
    run_optimizer("RMSprop", [([3], dict(lr=0.001, centered=True)), ([0, 1, 2], dict(lr=0.01))],
                  np.float64)


# ---- schedules ----

class Sched:
    """A deepc optimizer (2 groups, SGD or Adam) with a schedule, beside torch's."""

    def __init__(self, kind="SGD", lrs=(0.1, 0.02), **kw):
        self.dcp = [T(np.zeros(3, np.float32), requires_grad=True) for _ in lrs]
        self.tp = [torch.zeros(3, requires_grad=True) for _ in lrs]
        groups = [([i], dict(lr=lr, **kw)) for i, lr in enumerate(lrs)]
        self.opt = make_optim(kind, self.dcp, groups)
        self.topt = TORCH[kind]([{"params": [self.tp[i]], "lr": lr, **kw}
                                 for i, lr in enumerate(lrs)])
        self.kind = kind

    def compare(self, what, s, ts, step):
        last = ts.get_last_lr() if hasattr(ts, "get_last_lr") else \
            [grp["lr"] for grp in self.topt.param_groups]  # torch 1.13's ReduceLROnPlateau
        for g in range(len(self.tp)):
            got, want = raw.dc_sched_get_last_lr(s, g), last[g]
            check_close(f"{what} step {step} group {g} lr", got, want, rtol=1e-12, atol=1e-15)
            check_close(f"{what} step {step} group {g} optimizer lr", raw.dc_optim_get_lr(self.opt, g),
                        self.topt.param_groups[g]["lr"], rtol=1e-12, atol=1e-15)
            h = HParams()
            raw.dc_optim_get_hparams(self.opt, g, C.byref(h))
            if self.kind == "SGD":
                check_close(f"{what} step {step} momentum", h.momentum,
                            self.topt.param_groups[g]["momentum"], rtol=1e-12)
            else:
                check_close(f"{what} step {step} beta1", h.betas[0],
                            self.topt.param_groups[g]["betas"][0], rtol=1e-12)

    def run(self, what, s, ts, steps=50, metrics=None):
        assert s, what + ": " + err()
        try:
            self.compare(what, s, ts, -1)
            for step in range(steps):
                self.topt.step()
                assert raw.dc_optim_step(self.opt) == 0, err()
                if metrics is None:
                    ts.step()
                    assert raw.dc_sched_step(s) == 0, err()
                else:
                    ts.step(metrics[step])
                    assert raw.dc_sched_step_metric(s, metrics[step]) == 0, err()
                self.compare(what, s, ts, step)
        finally:
            raw.dc_sched_free(s)
            raw.dc_optim_free(self.opt)


LS = torch.optim.lr_scheduler


def test_step_multistep_exponential():
    x = Sched()
    x.run("StepLR", raw.dc_sched_step_lr(x.opt, 7, 0.5), LS.StepLR(x.topt, 7, 0.5))
    ms = [5, 12, 12, 30]
    x = Sched()
    x.run("MultiStepLR", raw.dc_sched_multistep_lr(x.opt, (I * 4)(*ms), 4, 0.3),
          LS.MultiStepLR(x.topt, ms, 0.3))
    x = Sched()
    x.run("ExponentialLR", raw.dc_sched_exponential_lr(x.opt, 0.93), LS.ExponentialLR(x.topt, 0.93))


def test_cosine_linear():
    for T_max, eta in [(10, 0.001), (50, 0.0), (7, 0.01)]:
        x = Sched()
        x.run(f"CosineAnnealingLR({T_max}, {eta})", raw.dc_sched_cosine_annealing_lr(x.opt, T_max, eta),
              LS.CosineAnnealingLR(x.topt, T_max, eta))
    for sf, ef, it in [(0.1, 1.0, 8), (1.0, 0.2, 20), (0.25, 0.75, 60)]:
        x = Sched()
        x.run(f"LinearLR({sf}, {ef}, {it})", raw.dc_sched_linear_lr(x.opt, sf, ef, it),
              LS.LinearLR(x.topt, sf, ef, it))


def test_sequential_and_chained():
    x = Sched()
    warm = raw.dc_sched_linear_lr(x.opt, 0.1, 1.0, 5)
    cos = raw.dc_sched_cosine_annealing_lr(x.opt, 45, 0.0)
    tw, tc = LS.LinearLR(x.topt, 0.1, 1.0, 5), LS.CosineAnnealingLR(x.topt, 45)
    s = raw.dc_sched_sequential_lr(x.opt, (VP * 2)(warm, cos), 2, (I * 1)(5))
    x.run("SequentialLR(linear warm-up, cosine)", s, LS.SequentialLR(x.topt, [tw, tc], [5]))

    x = Sched()
    a = raw.dc_sched_exponential_lr(x.opt, 0.9)
    b = raw.dc_sched_step_lr(x.opt, 3, 0.5)
    c = raw.dc_sched_multistep_lr(x.opt, (I * 2)(10, 20), 2, 0.1)
    ta, tb, tcc = LS.ExponentialLR(x.topt, 0.9), LS.StepLR(x.topt, 3, 0.5), LS.MultiStepLR(x.topt, [10, 20], 0.1)
    s = raw.dc_sched_sequential_lr(x.opt, (VP * 3)(a, b, c), 3, (I * 2)(8, 25))
    x.run("SequentialLR(exp, step, multistep)", s, LS.SequentialLR(x.topt, [ta, tb, tcc], [8, 25]))

    x = Sched()
    a = raw.dc_sched_exponential_lr(x.opt, 0.95)
    b = raw.dc_sched_step_lr(x.opt, 4, 0.7)
    s = raw.dc_sched_chained((VP * 2)(a, b), 2)
    x.run("ChainedScheduler(exp, step)", s,
          LS.ChainedScheduler([LS.ExponentialLR(x.topt, 0.95), LS.StepLR(x.topt, 4, 0.7)]))


def test_onecycle():
    for kind in ("SGD", "Adam"):
        for linear, three, pct in [(False, False, 0.3), (True, False, 0.25), (False, True, 0.3),
                                   (True, True, 0.4)]:
            kw = dict(momentum=0.9) if kind == "SGD" else {}
            x = Sched(kind, **kw)
            o = raw.dc_onecycle_defaults(0.0, 50)
            maxl = (D * 2)(1.0, 0.3)
            o.max_lrs, o.pct_start, o.anneal_linear, o.three_phase = maxl, pct, linear, three
            ts = LS.OneCycleLR(x.topt, [1.0, 0.3], total_steps=50, pct_start=pct,
                               anneal_strategy="linear" if linear else "cos", three_phase=three)
            x.run(f"OneCycleLR({kind}, linear={linear}, three_phase={three})",
                  raw.dc_sched_onecycle_lr(x.opt, o), ts, steps=49)
    x = Sched("SGD", momentum=0.9)
    o = raw.dc_onecycle_defaults(0.5, 0)
    o.epochs, o.steps_per_epoch, o.cycle_momentum, o.div_factor = 5, 8, False, 10.0
    x.run("OneCycleLR(epochs, no momentum)", raw.dc_sched_onecycle_lr(x.opt, o),
          LS.OneCycleLR(x.topt, 0.5, epochs=5, steps_per_epoch=8, cycle_momentum=False,
                        div_factor=10.0), steps=39)


def test_plateau():
    rng = np.random.default_rng(3)
    metrics = list(np.concatenate([np.linspace(1, 0.5, 10), 0.5 + 0.01 * rng.random(40)]))
    for mode, tmode, thr, cd, pat, minlr in [(0, 0, 1e-4, 0, 3, 0.0), (0, 1, 0.01, 2, 2, 0.005),
                                             (1, 0, 1e-3, 1, 4, 0.0), (1, 1, 0.0, 0, 0, 0.01)]:
        x = Sched()
        o = raw.dc_plateau_defaults()
        o.mode, o.threshold_mode, o.threshold, o.cooldown, o.patience, o.min_lr = \
            mode, tmode, thr, cd, pat, minlr
        o.factor = 0.5
        ts = LS.ReduceLROnPlateau(x.topt, mode="max" if mode else "min", factor=0.5,
                                  patience=pat, threshold=thr,
                                  threshold_mode="abs" if tmode else "rel", cooldown=cd,
                                  min_lr=minlr)
        m = metrics if mode == 0 else [-v for v in metrics]
        x.run(f"ReduceLROnPlateau(mode {mode}, threshold_mode {tmode})",
              raw.dc_sched_reduce_on_plateau(x.opt, o), ts, metrics=m)


# ---- clipping ----

def grads_pair(dtype, seed, nan=False):
    rng = np.random.default_rng(seed)
    gs = [rng.standard_normal(s).astype(dtype) * 3 for s in SHAPES]
    if nan:
        gs[1][1, 2] = np.nan
    dcp = [T(np.zeros(s, dtype), requires_grad=True) for s in SHAPES]
    for p, g in zip(dcp, gs):
        backward(p, grad=T(g))
    tp = [torch.zeros(s, dtype=torch.from_numpy(np.zeros(1, dtype)).dtype, requires_grad=True)
          for s in SHAPES]
    for p, g in zip(tp, gs):
        p.grad = torch.tensor(g)
    return dcp, tp


def test_clip_grad_norm():
    for dtype in (np.float32, np.float64):
        for p in (2.0, 1.0, math.inf, -math.inf, 0.0, 0.5, 3.0):
            for max_norm in (1.0, 1e9):
                dcp, tp = grads_pair(dtype, 7)
                arr = (TP * len(dcp))(*dcp)
                total = D()
                assert raw.dc_clip_grad_norm_(arr, len(dcp), max_norm, p, False, C.byref(total)) == 0, err()
                want = torch.nn.utils.clip_grad_norm_(tp, max_norm, p)
                rt = 1e-5 if dtype == np.float32 else 1e-12
                check_close(f"clip_grad_norm_ p={p} total", total.value, want.item(), rtol=rt)
                for i, (a, b) in enumerate(zip(dcp, tp)):
                    check_close(f"clip_grad_norm_ p={p} max {max_norm} grad {i}",
                                to_np(a.contents.grad), b.grad.numpy(), rtol=rt, atol=rt * 1e-2)


def test_clip_nonfinite():
    dcp, tp = grads_pair(np.float32, 8, nan=True)
    arr = (TP * len(dcp))(*dcp)
    before = [to_np(p.contents.grad) for p in dcp]
    total = D()
    assert raw.dc_clip_grad_norm_(arr, len(dcp), 1.0, 2.0, True, C.byref(total)) != 0
    assert "non-finite" in err() and "error_if_nonfinite" in err(), err()
    assert math.isnan(total.value)
    for b, p in zip(before, dcp):  # untouched
        np.testing.assert_array_equal(to_np(p.contents.grad), b)
    # without the check: scaled by the NaN norm, like torch
    assert raw.dc_clip_grad_norm_(arr, len(dcp), 1.0, 2.0, False, C.byref(total)) == 0, err()
    torch.nn.utils.clip_grad_norm_(tp, 1.0)
    for a, b in zip(dcp, tp):
        check_close("clip nan", to_np(a.contents.grad), b.grad.numpy())


def test_clip_grad_value():
    for dtype in (np.float32, np.float64):
        dcp, tp = grads_pair(dtype, 9, nan=True)
        arr = (TP * len(dcp))(*dcp)
        assert raw.dc_clip_grad_value_(arr, len(dcp), 0.7) == 0, err()
        torch.nn.utils.clip_grad_value_(tp, 0.7)
        for a, b in zip(dcp, tp):
            check_close("clip_grad_value_", to_np(a.contents.grad), b.grad.numpy(), rtol=0, atol=0)


run_tests(globals())
