/* Every optimizer (with its options), every learning-rate schedule and gradient clipping on the
 * test device against the cpu: the same parameters and gradients on both, N steps, parameters,
 * state buffers and learning rates equal bit for bit; the same through the ops path (a device
 * without fused optimizer kernels); dc_optimizer_to (cpu -> testdev -> cpu) and load_state_dict
 * across devices continuing training identically; an absent device refused. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "optim/optim-impl.h"
#include "optim_cases.h"
#include "tensor_bytes.h"

#define STEPS 7

/* ---- helpers ---- */

static void assert_bits(const dc_tensor *a, const dc_tensor *b, const char *cfg, const char *what) {
  cr_assert(a && b, "%s: %s missing on one side", cfg, what);
  cr_assert_eq(a->dtype, b->dtype, "%s: %s dtype", cfg, what);
  cr_assert(dc_shape_equal(dc_shape_of(a), dc_shape_of(b)), "%s: %s shape", cfg, what);
  size_t na, nb;
  void *pa = bytes_of(a, &na), *pb = bytes_of(b, &nb);
  cr_assert(memcmp(pa, pb, na) == 0, "%s: %s differs between %s and %s", cfg, what,
            dc_device_name(a->device), dc_device_name(b->device));
  free(pa);
  free(pb);
}

/* Every state entry (buffers and numbers) and every parameter equal; the buffers of b on
 * dev_b. */
static void assert_same_state(dc_optim *a, dc_optim *b, dc_tensor **pa, dc_tensor **pb,
                              dc_device dev_b, const char *cfg) {
  compare_state(a, b, pa, pb, dev_b, cfg, assert_bits);
}

/* ---- every optimizer ---- */

/* The cpu with its fused kernel against testdev through path, STEPS steps. */
static void check_config(const config *c, dc_dtype dt, dc__optim_path path) {
  check_config_on(c, dt, path, DC_TESTDEV, STEPS, assert_bits);
}

Test(testdev_optim, every_optimizer_fused) {
  config c[32];
  int n = configs(c);
  for (int i = 0; i < n; i++) {
    check_config(&c[i], DC_F32, DC__OPTIM_PATH_FUSED);
    check_config(&c[i], DC_F64, DC__OPTIM_PATH_FUSED);
  }
}

Test(testdev_optim, every_optimizer_reference_loop) {
  config c[32];
  int n = configs(c);
  for (int i = 0; i < n; i++) check_config(&c[i], DC_F32, DC__OPTIM_PATH_REFERENCE);
}

/* The rules written with ops (a device without DC_CAP_FUSED_OPTIM) round like the kernels. */
Test(testdev_optim, every_optimizer_through_ops) {
  config c[32];
  int n = configs(c);
  for (int i = 0; i < n; i++) {
    check_config(&c[i], DC_F32, DC__OPTIM_PATH_OPS);
    check_config(&c[i], DC_F64, DC__OPTIM_PATH_OPS);
  }
}

/* A device whose backend has no fused optimizer kernels (the test device's table registered
 * again without DC_CAP_FUSED_OPTIM): dc_optim_step and clipping pick the ops by themselves. */
static void drop_fused_optim(void) {
  static dc_backend table;
  table = *dc__backend(DC_TESTDEV);
  table.caps &= ~DC_CAP_BIT(DC_CAP_FUSED_OPTIM);
  table.optim = NULL;
  cr_assert_eq(dc__backend_register(&table), DC_OK, "%s", dc_last_error());
  cr_assert(!dc__backend_supports(DC_TESTDEV, DC_CAP_FUSED_OPTIM));
}

Test(testdev_optim, backend_without_fused_kernels) {
  drop_fused_optim();
  config c[32];
  int n = configs(c);
  for (int i = 0; i < n; i++) check_config(&c[i], DC_F32, DC__OPTIM_PATH_FUSED);
  dc_tensor *pa[NP], *pb[NP];
  make_params(pa, DC_F32, DC_CPU);
  make_params(pb, DC_F32, DC_TESTDEV);
  set_grads(pa, 1, 3.0);
  set_grads(pb, 1, 3.0);
  double na, nb;
  cr_assert_eq(dc_clip_grad_norm_(pa, NP, 1.0, INFINITY, true, &na), DC_OK);
  cr_assert_eq(dc_clip_grad_norm_(pb, NP, 1.0, INFINITY, true, &nb), DC_OK, "%s", dc_last_error());
  cr_assert_eq(na, nb, "inf-norm %g vs %g", na, nb);
  cr_assert_eq(dc_clip_grad_value_(pa, NP, 0.1), DC_OK);
  cr_assert_eq(dc_clip_grad_value_(pb, NP, 0.1), DC_OK, "%s", dc_last_error());
  for (int k = 0; k < NP; k++) assert_bits(pa[k]->grad, pb[k]->grad, "no fused kernels", "grad");
  free_params(pa);
  free_params(pb);
}

/* Hyper-parameters switched on between steps make their buffers on the parameters' device. */
Test(testdev_optim, buffers_made_later_on_the_device) {
  dc_tensor *pa[NP], *pb[NP];
  make_params(pa, DC_F32, DC_CPU);
  make_params(pb, DC_F32, DC_TESTDEV);
  dc_optim_hparams h = dc_optim_defaults(DC_OPTIM_RMSPROP);
  dc_optim *a = make_optim(DC_OPTIM_RMSPROP, h, pa), *b = make_optim(DC_OPTIM_RMSPROP, h, pb);
  for (int s = 0; s < STEPS; s++) {
    if (s == 3) {
      h.momentum = 0.9;
      h.centered = true;
      cr_assert_eq(dc_optim_set_hparams(a, 0, &h), DC_OK);
      cr_assert_eq(dc_optim_set_hparams(b, 0, &h), DC_OK);
    }
    set_grads(pa, s, 1.0);
    set_grads(pb, s, 1.0);
    cr_assert_eq(dc_optim_step(a), DC_OK, "%s", dc_last_error());
    cr_assert_eq(dc_optim_step(b), DC_OK, "%s", dc_last_error());
  }
  assert_same_state(a, b, pa, pb, DC_TESTDEV, "RMSprop switched on");
  dc_optim_free(a);
  dc_optim_free(b);
  free_params(pa);
  free_params(pb);
}

/* ---- every schedule ---- */

typedef dc_sched *(*make_sched_fn)(dc_optim *o);

static dc_sched *s_step(dc_optim *o) { return dc_sched_step_lr(o, 2, 0.5); }
static dc_sched *s_multistep(dc_optim *o) {
  int m[] = {1, 3, 4};
  return dc_sched_multistep_lr(o, m, 3, 0.3);
}
static dc_sched *s_exponential(dc_optim *o) { return dc_sched_exponential_lr(o, 0.8); }
static dc_sched *s_cosine(dc_optim *o) { return dc_sched_cosine_annealing_lr(o, 5, 1e-4); }
static dc_sched *s_linear(dc_optim *o) { return dc_sched_linear_lr(o, 0.1, 1.0, 4); }
static dc_sched *s_sequential(dc_optim *o) {
  dc_sched *k[2] = {dc_sched_linear_lr(o, 0.2, 1.0, 3), dc_sched_cosine_annealing_lr(o, 4, 0)};
  int m[] = {3};
  return dc_sched_sequential_lr(o, k, 2, m);
}
static dc_sched *s_chained(dc_optim *o) {
  dc_sched *k[2] = {dc_sched_exponential_lr(o, 0.9), dc_sched_step_lr(o, 3, 0.5)};
  return dc_sched_chained(k, 2);
}
static dc_sched *s_onecycle(dc_optim *o) {
  return dc_sched_onecycle_lr(o, dc_onecycle_defaults(0.1, STEPS + 1));
}
static dc_sched *s_onecycle3(dc_optim *o) {
  dc_onecycle_opts op = dc_onecycle_defaults(0.05, STEPS + 1);
  op.three_phase = true;
  op.anneal_linear = true;
  return dc_sched_onecycle_lr(o, op);
}
static dc_sched *s_plateau(dc_optim *o) {
  dc_plateau_opts op = dc_plateau_defaults();
  op.patience = 1;
  op.factor = 0.5;
  return dc_sched_reduce_on_plateau(o, op);
}

static void check_sched(const char *name, make_sched_fn make, dc_optim_kind kind, bool plateau) {
  char cfg[96];
  snprintf(cfg, sizeof cfg, "%s with %s", name, dc_optim_kind_name(kind));
  dc_optim_hparams h = dc_optim_defaults(kind);
  h.lr = 0.05;
  if (kind == DC_OPTIM_SGD) h.momentum = 0.9;
  dc_tensor *pa[NP], *pb[NP];
  make_params(pa, DC_F32, DC_CPU);
  make_params(pb, DC_F32, DC_TESTDEV);
  dc_optim *a = make_optim(kind, h, pa), *b = make_optim(kind, h, pb);
  dc_sched *sa = make(a), *sb = make(b);
  cr_assert(sa && sb, "%s: %s", cfg, dc_last_error());
  for (int s = 0; s < STEPS; s++) {
    set_grads(pa, s, 1.0);
    set_grads(pb, s, 1.0);
    cr_assert_eq(dc_optim_step(a), DC_OK, "%s: %s", cfg, dc_last_error());
    cr_assert_eq(dc_optim_step(b), DC_OK, "%s: %s", cfg, dc_last_error());
    if (plateau) { /* a loss that stalls: the same value on the cpu and on the device */
      double loss = s < 2 ? 1.0 - 0.1 * s : 0.9;
      dc_tensor *la = dc_scalar(loss, DC_F32), *lb = dc_scalar_on(loss, DC_F32, DC_TESTDEV);
      cr_assert_eq(dc_sched_step_metric_tensor(sa, la), DC_OK, "%s", dc_last_error());
      cr_assert_eq(dc_sched_step_metric_tensor(sb, lb), DC_OK, "%s", dc_last_error());
      dc_free(la);
      dc_free(lb);
    } else {
      cr_assert_eq(dc_sched_step(sa), DC_OK, "%s: %s", cfg, dc_last_error());
      cr_assert_eq(dc_sched_step(sb), DC_OK, "%s: %s", cfg, dc_last_error());
    }
    for (int g = 0; g < 2; g++) {
      double la = dc_sched_get_last_lr(sa, g), lb = dc_sched_get_last_lr(sb, g);
      cr_assert(memcmp(&la, &lb, sizeof la) == 0, "%s: lr %g vs %g", cfg, la, lb);
    }
  }
  if (plateau) cr_assert_lt(dc_optim_get_lr(b, 0), 0.05, "%s: the plateau did not act", cfg);
  assert_same_state(a, b, pa, pb, DC_TESTDEV, cfg);
  dc_optim_state ssa, ssb;
  cr_assert_eq(dc_sched_state_dict(sa, &ssa), DC_OK);
  cr_assert_eq(dc_sched_state_dict(sb, &ssb), DC_OK);
  cr_assert_eq(ssa.n, ssb.n);
  for (int e = 0; e < ssa.n; e++) assert_bits(ssa.tensors[e], ssb.tensors[e], cfg, ssa.names[e]);
  dc_optim_state_free(&ssa);
  dc_optim_state_free(&ssb);
  dc_sched_free(sa);
  dc_sched_free(sb);
  dc_optim_free(a);
  dc_optim_free(b);
  free_params(pa);
  free_params(pb);
}

Test(testdev_optim, every_schedule) {
  struct {
    const char *name;
    make_sched_fn make;
    bool plateau;
  } s[] = {{"StepLR", s_step, false},
           {"MultiStepLR", s_multistep, false},
           {"ExponentialLR", s_exponential, false},
           {"CosineAnnealingLR", s_cosine, false},
           {"LinearLR", s_linear, false},
           {"SequentialLR", s_sequential, false},
           {"ChainedScheduler", s_chained, false},
           {"OneCycleLR", s_onecycle, false},
           {"OneCycleLR three-phase linear", s_onecycle3, false},
           {"ReduceLROnPlateau", s_plateau, true}};
  dc_optim_kind kinds[] = {DC_OPTIM_SGD, DC_OPTIM_ADAM, DC_OPTIM_RMSPROP};
  for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
      check_sched(s[i].name, s[i].make, kinds[k], s[i].plateau);
}

Test(testdev_optim, plateau_metric_errors) {
  dc_tensor *ps[NP];
  make_params(ps, DC_F32, DC_TESTDEV);
  dc_optim *o = make_optim(DC_OPTIM_SGD, (dc_optim_hparams){.lr = 0.1}, ps);
  dc_sched *s = dc_sched_reduce_on_plateau(o, dc_plateau_defaults());
  dc_tensor *two = dc_zeros_on(DC_SHAPE(2), DC_F32, DC_TESTDEV);
  cr_assert_eq(dc_sched_step_metric_tensor(s, two), DC_ERR_ARG);
  cr_assert_eq(dc_sched_step_metric_tensor(s, NULL), DC_ERR_ARG);
  dc_free(two);
  dc_sched_free(s);
  dc_optim_free(o);
  free_params(ps);
}

/* ---- clipping ---- */

static void check_clip_norm(double max_norm, double p, dc_dtype dt, bool ops) {
  char cfg[96];
  snprintf(cfg, sizeof cfg, "clip_grad_norm_(max %g, p %g) %s%s", max_norm, p, dc_dtype_name(dt),
           ops ? " (ops)" : "");
  dc_tensor *pa[NP], *pb[NP];
  make_params(pa, dt, DC_CPU);
  make_params(pb, dt, DC_TESTDEV);
  set_grads(pa, 1, 3.0);
  set_grads(pb, 1, 3.0);
  double na = -1, nb = -2;
  cr_assert_eq(dc_clip_grad_norm_(pa, NP, max_norm, p, false, &na), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc__clip_grad_norm_with(pb, NP, max_norm, p, false, &nb, ops), DC_OK, "%s: %s", cfg,
               dc_last_error());
  for (int k = 0; k < NP; k++) cr_assert_eq(pb[k]->grad->device, DC_TESTDEV);
  if (!ops) {
    cr_assert(memcmp(&na, &nb, sizeof na) == 0, "%s: total norm %.17g vs %.17g", cfg, na, nb);
    for (int k = 0; k < NP; k++) assert_bits(pa[k]->grad, pb[k]->grad, cfg, "gradient");
  } else { /* the ops sum in another order: the norm agrees to rounding */
    cr_assert(fabs(na - nb) <= 1e-12 * fabs(na), "%s: total norm %.17g vs %.17g", cfg, na, nb);
    double tol = dt == DC_F32 ? 1e-6 : 1e-12;
    for (int k = 0; k < NP; k++) {
      size_t za, zb;
      dc_tensor *ga = dc_to_dtype(pa[k]->grad, DC_F64), *gb = dc_to_dtype(pb[k]->grad, DC_F64);
      double *xa = bytes_of(ga, &za), *xb = bytes_of(gb, &zb);
      for (int64_t i = 0; i < dc_numel(ga); i++)
        cr_assert(fabs(xa[i] - xb[i]) <= tol * (fabs(xa[i]) + 1e-30), "%s: grad %d[%lld] %g vs %g",
                  cfg, k, (long long)i, xa[i], xb[i]);
      free(xa);
      free(xb);
      dc_free(ga);
      dc_free(gb);
    }
  }
  free_params(pa);
  free_params(pb);
}

Test(testdev_optim, clip_grad_norm) {
  double ps[] = {2, 1, INFINITY, -INFINITY, 0, 3, 0.5};
  for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
    for (int ops = 0; ops < 2; ops++) {
      check_clip_norm(1.0, ps[i], DC_F32, ops);  /* scales */
      check_clip_norm(1e30, ps[i], DC_F32, ops); /* leaves them */
      check_clip_norm(0.5, ps[i], DC_F64, ops);
    }
}

Test(testdev_optim, clip_grad_value) {
  for (int ops = 0; ops < 2; ops++)
    for (int d = 0; d < 2; d++) {
      dc_dtype dt = d ? DC_F64 : DC_F32;
      dc_tensor *pa[NP], *pb[NP];
      make_params(pa, dt, DC_CPU);
      make_params(pb, dt, DC_TESTDEV);
      set_grads(pa, 3, 2.0);
      set_grads(pb, 3, 2.0);
      cr_assert_eq(dc_clip_grad_value_(pa, NP, 1.5), DC_OK, "%s", dc_last_error());
      cr_assert_eq(dc__clip_grad_value_with(pb, NP, 1.5, ops), DC_OK, "%s", dc_last_error());
      for (int k = 0; k < NP; k++)
        assert_bits(pa[k]->grad, pb[k]->grad, "clip_grad_value_", "grad");
      free_params(pa);
      free_params(pb);
    }
}

/* A non-finite norm is an error and leaves the device's gradients as they were. */
Test(testdev_optim, clip_nonfinite_on_the_device) {
  for (int ops = 0; ops < 2; ops++) {
    dc_tensor *ps[NP];
    make_params(ps, DC_F32, DC_TESTDEV);
    set_grads(ps, 1, 1.0);
    float inf = INFINITY;
    dc_tensor *bad = dc_from_data_on(&inf, DC_SHAPE(1), DC_F32, DC_TESTDEV);
    dc_tensor *g0 = ps[0]->grad;
    dc_tensor *slot = dc_narrow(g0, 0, 2, 1);
    cr_assert_eq(dc_copy_(slot, bad), DC_OK, "%s", dc_last_error());
    dc_tensor *keep = dc_clone(ps[3]->grad);
    double n = 0;
    cr_assert_eq(dc__clip_grad_norm_with(ps, NP, 1.0, 2.0, true, &n, ops), DC_ERR_STATE);
    cr_assert(isinf(n), "norm %g", n);
    assert_bits(keep, ps[3]->grad, "nonfinite", "gradient left untouched");
    dc_free(keep);
    dc_free(slot);
    dc_free(bad);
    free_params(ps);
  }
}

/* ---- moving the state ---- */

static dc_optim_hparams adam_amsgrad(void) {
  dc_optim_hparams h = dc_optim_defaults(DC_OPTIM_ADAM);
  h.lr = 1e-2;
  h.amsgrad = true;
  return h;
}

static void move_params(dc_tensor **ps, dc_device dev) {
  for (int k = 0; k < NP; k++) {
    dc_zero_grad(ps[k]);
    cr_assert_eq(dc_move_to_device_(ps[k], dev), DC_OK, "%s", dc_last_error());
  }
}

/* cpu -> testdev -> cpu: state unchanged by the trip, training on each leg identical to an
 * optimizer that stayed on the cpu. */
Test(testdev_optim, optimizer_to_round_trip) {
  for (int kind = 0; kind < DC_OPTIM_KIND_COUNT; kind++) {
    const char *kn = dc_optim_kind_name((dc_optim_kind)kind);
    dc_optim_hparams h = kind == DC_OPTIM_ADAM ? adam_amsgrad() : dc_optim_defaults(kind);
    if (kind == DC_OPTIM_SGD) {
      h.lr = 0.1;
      h.momentum = 0.9;
    }
    if (kind == DC_OPTIM_RMSPROP) h.centered = true;
    dc_tensor *pa[NP], *pb[NP];
    make_params(pa, DC_F32, DC_CPU);
    make_params(pb, DC_F32, DC_CPU);
    dc_optim *a = make_optim(kind, h, pa), *b = make_optim(kind, h, pb);
    int s = 0;
    for (; s < 3; s++) {
      set_grads(pa, s, 1.0);
      set_grads(pb, s, 1.0);
      cr_assert_eq(dc_optim_step(a), DC_OK);
      cr_assert_eq(dc_optim_step(b), DC_OK);
    }
    /* the state alone moved: a step refuses, naming the fix, and changes nothing */
    cr_assert_eq(dc_optimizer_to(b, DC_TESTDEV), DC_OK, "%s: %s", kn, dc_last_error());
    set_grads(pb, s, 1.0);
    cr_assert_eq(dc_optim_step(b), DC_ERR_ARG, "%s", kn);
    cr_assert(strstr(dc_last_error(), "dc_optimizer_to"), "%s: %s", kn, dc_last_error());
    cr_assert_eq(dc_optimizer_to(b, DC_CPU), DC_OK);
    assert_same_state(a, b, pa, pb, DC_CPU, "state after cpu -> testdev -> cpu");
    /* the model and the state on the device: training goes on as on the cpu */
    move_params(pb, DC_TESTDEV);
    cr_assert_eq(dc_optimizer_to(b, DC_TESTDEV), DC_OK);
    for (; s < 6; s++) {
      set_grads(pa, s, 1.0);
      set_grads(pb, s, 1.0);
      cr_assert_eq(dc_optim_step(a), DC_OK);
      cr_assert_eq(dc_optim_step(b), DC_OK, "%s on testdev: %s", kn, dc_last_error());
    }
    assert_same_state(a, b, pa, pb, DC_TESTDEV, kn);
    /* and back */
    move_params(pb, DC_CPU);
    cr_assert_eq(dc_optimizer_to(b, DC_CPU), DC_OK);
    for (; s < 9; s++) {
      set_grads(pa, s, 1.0);
      set_grads(pb, s, 1.0);
      cr_assert_eq(dc_optim_step(a), DC_OK);
      cr_assert_eq(dc_optim_step(b), DC_OK, "%s back on the cpu: %s", kn, dc_last_error());
    }
    assert_same_state(a, b, pa, pb, DC_CPU, kn);
    dc_optim_free(a);
    dc_optim_free(b);
    free_params(pa);
    free_params(pb);
  }
}

Test(testdev_optim, optimizer_to_absent_device) {
  dc_tensor *ps[NP];
  make_params(ps, DC_F32, DC_CPU);
  dc_optim *o = make_optim(DC_OPTIM_ADAM, adam_amsgrad(), ps);
  set_grads(ps, 0, 1.0);
  cr_assert_eq(dc_optim_step(o), DC_OK);
  cr_assert(!dc_device_available(DC_CUDA), "this test needs a build without cuda");
  cr_assert_eq(dc_optimizer_to(o, DC_CUDA), DC_ERR_ARG);
  char has[128];
  dc_devices_available(has, sizeof has);
  cr_assert(strstr(dc_last_error(), "cuda") && strstr(dc_last_error(), has), "%s", dc_last_error());
  cr_assert_eq(dc_optimizer_to(o, (dc_device)99), DC_ERR_ARG);
  cr_assert_eq(dc_optimizer_to(NULL, DC_CPU), DC_ERR_ARG);
  cr_assert_eq(o->state[1].buf[0]->device, DC_CPU, "the state moved anyway");
  cr_assert_eq(dc_optim_step(o), DC_OK, "%s", dc_last_error());
  dc_optim_free(o);
  free_params(ps);
}

/* cpu state into an optimizer on the device (and back): the buffers land on the parameters'
 * device and training continues as on the cpu. */
Test(testdev_optim, load_state_dict_across_devices) {
  for (int kind = 0; kind < DC_OPTIM_KIND_COUNT; kind++) {
    const char *kn = dc_optim_kind_name((dc_optim_kind)kind);
    dc_optim_hparams h = kind == DC_OPTIM_ADAM ? adam_amsgrad() : dc_optim_defaults(kind);
    if (kind == DC_OPTIM_SGD) {
      h.lr = 0.1;
      h.momentum = 0.9;
    }
    dc_tensor *pa[NP], *pb[NP], *pc[NP];
    make_params(pa, DC_F32, DC_CPU);
    dc_optim *a = make_optim(kind, h, pa);
    int s = 0;
    for (; s < 3; s++) {
      set_grads(pa, s, 1.0);
      cr_assert_eq(dc_optim_step(a), DC_OK);
    }
    dc_optim_state st;
    cr_assert_eq(dc_optim_state_dict(a, &st), DC_OK);
    make_params(pb, DC_F32, DC_TESTDEV); /* the checkpoint's parameters, on the device */
    for (int k = 0; k < NP; k++) cr_assert_eq(dc_copy_(pb[k], pa[k]), DC_OK, "%s", dc_last_error());
    dc_optim *b = make_optim(kind, h, pb);
    cr_assert_eq(dc_optim_load_state_dict(b, &st), DC_OK, "%s: %s", kn, dc_last_error());
    dc_optim_state_free(&st);
    assert_same_state(a, b, pa, pb, DC_TESTDEV, kn);
    for (; s < 6; s++) {
      set_grads(pa, s, 1.0);
      set_grads(pb, s, 1.0);
      cr_assert_eq(dc_optim_step(a), DC_OK);
      cr_assert_eq(dc_optim_step(b), DC_OK, "%s: %s", kn, dc_last_error());
    }
    assert_same_state(a, b, pa, pb, DC_TESTDEV, kn);
    /* the device's state into a cpu optimizer */
    cr_assert_eq(dc_optim_state_dict(b, &st), DC_OK);
    make_params(pc, DC_F32, DC_CPU);
    for (int k = 0; k < NP; k++) cr_assert_eq(dc_copy_(pc[k], pb[k]), DC_OK);
    dc_optim *c = make_optim(kind, h, pc);
    cr_assert_eq(dc_optim_load_state_dict(c, &st), DC_OK, "%s: %s", kn, dc_last_error());
    dc_optim_state_free(&st);
    set_grads(pa, s, 1.0);
    set_grads(pc, s, 1.0);
    cr_assert_eq(dc_optim_step(a), DC_OK);
    cr_assert_eq(dc_optim_step(c), DC_OK);
    assert_same_state(a, c, pa, pc, DC_CPU, kn);
    dc_optim_free(a);
    dc_optim_free(b);
    dc_optim_free(c);
    free_params(pa);
    free_params(pb);
    free_params(pc);
  }
}

/* Parameters on two devices, or a gradient on another device, are refused by a step. */
Test(testdev_optim, step_device_errors) {
  dc_tensor *ps[NP];
  make_params(ps, DC_F32, DC_CPU);
  dc_optim *o = make_optim(DC_OPTIM_SGD, (dc_optim_hparams){.lr = 0.1}, ps);
  set_grads(ps, 0, 1.0);
  dc_tensor *g = ps[3]->grad;
  cr_assert_eq(dc_move_to_device_(ps[3], DC_TESTDEV), DC_OK); /* its .grad stays on the cpu */
  cr_assert_eq(dc_optim_step(o), DC_ERR_ARG);
  cr_assert(strstr(dc_last_error(), "testdev"), "%s", dc_last_error());
  (void)g;
  dc_optim_free(o);
  free_params(ps);
}
