/* Optimizer, schedule and clipping tests that need no PyTorch: bad input refused when the object
 * is made (torch's wording), the fused kernel bit-identical to the reference loop (float32 and
 * float64, threaded sizes), skipped parameters, checkpoint resume bit-identical to an
 * uninterrupted run (every optimizer, with schedules), load errors leaving state untouched, and
 * clipping errors. PyTorch parity is in tests/parity/test_optim.py. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "optim/optim-impl.h"

#define NP 4
#define SMALL 3 /* the parameters below the threading threshold */
static const dc_shape SHAPES[NP] = {{1, {7}}, {2, {3, 5}}, {3, {2, 3, 2}}, {1, {40001}}};

static dc_tensor *param(int k, dc_dtype dt, uint64_t seed) {
  dc_manual_seed(seed + (uint64_t)k);
  dc_tensor *p = dc_randn(SHAPES[k], dt);
  cr_assert_not_null(p, "%s", dc_last_error());
  return dc_requires_grad_(p, true);
}

/* The first n of the parameters (the last one is large enough for the threaded path). */
static void make_n_params(dc_tensor **ps, int n, dc_dtype dt, uint64_t seed) {
  for (int k = 0; k < n; k++) ps[k] = param(k, dt, seed);
}
static void make_params(dc_tensor **ps, dc_dtype dt, uint64_t seed) {
  make_n_params(ps, NP, dt, seed);
}

static void free_n_params(dc_tensor **ps, int n) {
  for (int k = 0; k < n; k++) dc_free(ps[k]);
}
static void free_params(dc_tensor **ps) { free_n_params(ps, NP); }

/* A gradient that depends only on (step, k, element): the same in every run. */
static void set_n_grads(dc_tensor **ps, int n, int step) {
  for (int k = 0; k < n; k++) {
    dc_zero_grad(ps[k]);
    if (k == 0 && step % 5 == 2) continue; /* no gradient this step */
    dc_tensor *g = dc_empty(dc_shape_of(ps[k]), ps[k]->dtype);
    for (int64_t i = 0; i < dc_numel(g); i++) {
      double v = sin(0.37 * (double)i + 1.3 * step + k) * (1 + (step + (int)i) % 4);
      if (g->dtype == DC_F32)
        ((float *)dc_data(g))[i] = (float)v;
      else
        ((double *)dc_data(g))[i] = v;
    }
    cr_assert_eq(dc_backward(ps[k], .grad = g), DC_OK, "%s", dc_last_error());
    dc_free(g);
  }
}

static void set_grads(dc_tensor **ps, int step) { set_n_grads(ps, NP, step); }

static bool same_bits(const dc_tensor *a, const dc_tensor *b) {
  return dc_numel(a) == dc_numel(b) && a->dtype == b->dtype &&
         memcmp(dc_data(a), dc_data(b), (size_t)dc_numel(a) * dc_dtype_size(a->dtype)) == 0;
}

static dc_optim_hparams hp_of(dc_optim_kind kind, double lr) {
  dc_optim_hparams h = dc_optim_defaults(kind);
  h.lr = lr;
  return h;
}

/* ---- bad input ---- */

static void expect_bad(dc_optim_kind kind, dc_optim_hparams h, const char *needle) {
  dc_tensor *p = param(0, DC_F32, 1);
  dc_optim *o = dc_optim_create(kind, &p, 1, h);
  cr_assert_null(o, "%s accepted hyper-parameters that should fail with '%s'",
                 dc_optim_kind_name(kind), needle);
  cr_assert(strstr(dc_last_error(), needle) != NULL, "expected '%s' in: %s", needle,
            dc_last_error());
  cr_assert(strstr(dc_last_error(), dc_optim_kind_name(kind)) != NULL, "%s", dc_last_error());
  dc_free(p);
}

Test(optim_errors, bad_hyper_parameters) {
  dc_optim_hparams h = hp_of(DC_OPTIM_SGD, -0.1);
  expect_bad(DC_OPTIM_SGD, h, "Invalid learning rate: -0.1");
  expect_bad(DC_OPTIM_SGD, dc_optim_defaults(DC_OPTIM_SGD), "SGD has no default lr");
  h = hp_of(DC_OPTIM_ADAM, NAN);
  expect_bad(DC_OPTIM_ADAM, h, "Invalid learning rate: nan");
  double bad_betas[][2] = {{1.0, 0.999}, {0.9, 1.0}, {-0.1, 0.9}, {0.9, NAN}};
  for (int k = 0; k < 4; k++) {
    h = hp_of(DC_OPTIM_ADAMW, 1e-3);
    h.betas[0] = bad_betas[k][0];
    h.betas[1] = bad_betas[k][1];
    expect_bad(DC_OPTIM_ADAMW, h, "Invalid beta parameter at index");
  }
  h = hp_of(DC_OPTIM_ADAM, 1e-3);
  h.eps = -1e-8;
  expect_bad(DC_OPTIM_ADAM, h, "Invalid epsilon value");
  h = hp_of(DC_OPTIM_SGD, 0.1);
  h.nesterov = true;
  expect_bad(DC_OPTIM_SGD, h, "Nesterov momentum requires a momentum and zero dampening");
  h.momentum = 0.9;
  h.dampening = 0.1;
  expect_bad(DC_OPTIM_SGD, h, "Nesterov momentum requires a momentum and zero dampening");
  h = hp_of(DC_OPTIM_SGD, 0.1);
  h.momentum = -0.5;
  expect_bad(DC_OPTIM_SGD, h, "Invalid momentum value");
  h = hp_of(DC_OPTIM_SGD, 0.1);
  h.weight_decay = -1;
  expect_bad(DC_OPTIM_SGD, h, "Invalid weight_decay value");
  h = hp_of(DC_OPTIM_RMSPROP, 0.01);
  h.alpha = -0.9;
  expect_bad(DC_OPTIM_RMSPROP, h, "Invalid alpha value");
  h = hp_of(DC_OPTIM_ADAGRAD, 0.01);
  h.lr_decay = -1;
  expect_bad(DC_OPTIM_ADAGRAD, h, "Invalid lr_decay value");
  h = hp_of(DC_OPTIM_ADAGRAD, 0.01);
  h.initial_accumulator_value = -1;
  expect_bad(DC_OPTIM_ADAGRAD, h, "Invalid initial_accumulator_value value");
}

Test(optim_errors, bad_parameters) {
  dc_tensor *a = param(0, DC_F32, 1), *b = param(1, DC_F32, 2);
  dc_tensor *pair[2] = {a, b}, *twice[2] = {a, a};
  dc_param_group g[2] = {{pair, 2, hp_of(DC_OPTIM_SGD, 0.1)}, {&a, 1, hp_of(DC_OPTIM_SGD, 0.2)}};
  cr_assert_null(dc_optim_new(DC_OPTIM_SGD, g, 2));
  cr_assert(strstr(dc_last_error(), "some parameters appear in more than one parameter group"),
            "%s", dc_last_error());
  cr_assert_null(dc_optim_sgd(twice, 2, 0.1, 0));
  cr_assert(strstr(dc_last_error(), "duplicate parameters"), "%s", dc_last_error());
  dc_tensor *frozen = dc_zeros(DC_SHAPE(3), DC_F32);
  cr_assert_null(dc_optim_adam(&frozen, 1, 1e-3));
  cr_assert(strstr(dc_last_error(), "does not require grad"), "%s", dc_last_error());
  dc_tensor *ints = dc_zeros(DC_SHAPE(3), DC_I64);
  cr_assert_null(dc_optim_adam(&ints, 1, 1e-3));
  cr_assert(strstr(dc_last_error(), "can only optimize floating-point Tensors"), "%s",
            dc_last_error());
  dc_tensor *half = dc_zeros(DC_SHAPE(3), DC_F16);
  cr_assert_null(dc_optim_adam(&half, 1, 1e-3));
  cr_assert(strstr(dc_last_error(), "float32 and float64"), "%s", dc_last_error());
  dc_tensor *view = dc_transpose(b, 0, 1); /* a non-leaf */
  cr_assert_null(dc_optim_sgd(&view, 1, 0.1, 0));
  cr_assert(strstr(dc_last_error(), "non-leaf"), "%s", dc_last_error());
  dc_tensor *none = NULL;
  cr_assert_null(dc_optim_sgd(&none, 1, 0.1, 0));
  cr_assert(strstr(dc_last_error(), "is NULL"), "%s", dc_last_error());
  cr_assert_null(dc_optim_sgd(pair, 0, 0.1, 0));
  cr_assert(strstr(dc_last_error(), "empty parameter list"), "%s", dc_last_error());
  dc_optim *o = dc_optim_sgd(pair, 2, 0.1, 0.9);
  cr_assert_not_null(o, "%s", dc_last_error());
  cr_assert_neq(dc_optim_set_lr(o, 0, -1.0), DC_OK);
  cr_assert(strstr(dc_last_error(), "Invalid learning rate"), "%s", dc_last_error());
  cr_assert_eq(dc_optim_get_lr(o, 0), 0.1);
  cr_assert(isnan(dc_optim_get_lr(o, 3)));
  cr_assert_eq(dc_optim_set_lr(o, 0, 0.05), DC_OK);
  cr_assert_eq(dc_optim_get_lr(o, 0), 0.05);
  cr_assert_neq(dc_optim_add_param_group(o, (dc_param_group){&b, 1, hp_of(DC_OPTIM_SGD, 1)}),
                DC_OK);
  cr_assert(strstr(dc_last_error(), "more than one parameter group"), "%s", dc_last_error());
  dc_optim_free(o);
  dc_free(view);
  dc_free(frozen);
  dc_free(ints);
  dc_free(half);
  dc_free(a);
  dc_free(b);
}

Test(optim_errors, bad_schedules) {
  dc_tensor *p = param(0, DC_F32, 1);
  dc_optim *o = dc_optim_sgd(&p, 1, 0.1, 0.9);
  cr_assert_null(dc_sched_step_lr(o, 0, 0.1));
  cr_assert(strstr(dc_last_error(), "step_size"), "%s", dc_last_error());
  cr_assert_null(dc_sched_linear_lr(o, 0.0, 1.0, 5));
  cr_assert(strstr(dc_last_error(), "Starting multiplicative factor"), "%s", dc_last_error());
  cr_assert_null(dc_sched_cosine_annealing_lr(o, 0, 0));
  dc_plateau_opts po = dc_plateau_defaults();
  po.factor = 1.0;
  cr_assert_null(dc_sched_reduce_on_plateau(o, po));
  cr_assert(strstr(dc_last_error(), "Factor should be < 1.0"), "%s", dc_last_error());
  dc_onecycle_opts oc = dc_onecycle_defaults(0.1, 0);
  cr_assert_null(dc_sched_onecycle_lr(o, oc));
  cr_assert(strstr(dc_last_error(), "total_steps OR (epochs AND steps_per_epoch)"), "%s",
            dc_last_error());
  oc = dc_onecycle_defaults(0.1, 3);
  dc_sched *s = dc_sched_onecycle_lr(o, oc);
  cr_assert_not_null(s, "%s", dc_last_error());
  for (int k = 0; k < 3; k++) cr_assert_eq(dc_sched_step(s), DC_OK, "%s", dc_last_error());
  cr_assert_neq(dc_sched_step(s), DC_OK);
  cr_assert(
      strstr(dc_last_error(), "Tried to step 5 times. The specified number of total steps is 3"),
      "%s", dc_last_error());
  cr_assert_neq(dc_sched_step_metric(s, 1.0), DC_OK);
  dc_sched_free(s);
  s = dc_sched_reduce_on_plateau(o, dc_plateau_defaults());
  cr_assert_neq(dc_sched_step(s), DC_OK);
  cr_assert(strstr(dc_last_error(), "dc_sched_step_metric"), "%s", dc_last_error());
  dc_sched_free(s);
  /* OneCycle momentum cycling needs momentum or betas */
  dc_tensor *q = param(1, DC_F32, 3);
  dc_optim *ada = dc_optim_create(DC_OPTIM_ADAGRAD, &q, 1, hp_of(DC_OPTIM_ADAGRAD, 0.1));
  cr_assert_null(dc_sched_onecycle_lr(ada, dc_onecycle_defaults(0.1, 10)));
  cr_assert(strstr(dc_last_error(), "must support momentum"), "%s", dc_last_error());
  /* a SequentialLR over two optimizers */
  dc_sched *parts[2] = {dc_sched_exponential_lr(o, 0.9), dc_sched_exponential_lr(ada, 0.9)};
  int ms[1] = {3};
  cr_assert_null(dc_sched_sequential_lr(o, parts, 2, ms));
  cr_assert(strstr(dc_last_error(), "same optimizer"), "%s", dc_last_error());
  dc_optim_free(ada);
  dc_optim_free(o);
  dc_free(q);
  dc_free(p);
}

/* ---- the fused kernel against the reference loop ---- */

typedef struct config {
  dc_optim_kind kind;
  dc_optim_hparams hp;
} config;

/* Hyper-parameter sets covering every branch of the kernels. */
static int configs(config *c) {
  int n = 0;
  dc_optim_hparams h = hp_of(DC_OPTIM_SGD, 0.05);
  c[n++] = (config){DC_OPTIM_SGD, h};
  h.momentum = 0.9;
  h.dampening = 0.2;
  h.weight_decay = 0.01;
  c[n++] = (config){DC_OPTIM_SGD, h};
  h.dampening = 0;
  h.nesterov = true;
  h.maximize = true;
  c[n++] = (config){DC_OPTIM_SGD, h};
  h = hp_of(DC_OPTIM_ADAM, 0.01);
  c[n++] = (config){DC_OPTIM_ADAM, h};
  h.amsgrad = true;
  h.weight_decay = 0.1;
  h.maximize = true;
  c[n++] = (config){DC_OPTIM_ADAM, h};
  h.no_bias_correction = true;
  c[n++] = (config){DC_OPTIM_ADAM, h};
  h = hp_of(DC_OPTIM_ADAMW, 0.01);
  c[n++] = (config){DC_OPTIM_ADAMW, h};
  h.amsgrad = true;
  c[n++] = (config){DC_OPTIM_ADAMW, h};
  h = hp_of(DC_OPTIM_RMSPROP, 0.001);
  c[n++] = (config){DC_OPTIM_RMSPROP, h};
  h.centered = true;
  h.momentum = 0.9;
  h.weight_decay = 0.01;
  c[n++] = (config){DC_OPTIM_RMSPROP, h};
  h.centered = false;
  c[n++] = (config){DC_OPTIM_RMSPROP, h};
  h = hp_of(DC_OPTIM_ADAGRAD, 0.1);
  h.lr_decay = 0.01;
  h.initial_accumulator_value = 0.1;
  c[n++] = (config){DC_OPTIM_ADAGRAD, h};
  h.weight_decay = 0.1;
  h.maximize = true;
  c[n++] = (config){DC_OPTIM_ADAGRAD, h};
  return n;
}

Test(optim_kernels, fused_equals_reference) {
  config c[16];
  int nc = configs(c);
  for (int dti = 0; dti < 2; dti++) {
    dc_dtype dt = dti ? DC_F64 : DC_F32;
    for (int ci = 0; ci < nc; ci++) {
      dc_tensor *a[NP], *b[NP];
      make_params(a, dt, 11);
      make_params(b, dt, 11);
      dc_optim *oa = dc_optim_create(c[ci].kind, a, NP, c[ci].hp);
      dc_optim *ob = dc_optim_create(c[ci].kind, b, NP, c[ci].hp);
      cr_assert(oa && ob, "%s", dc_last_error());
      for (int step = 0; step < 6; step++) {
        set_grads(a, step);
        set_grads(b, step);
        cr_assert_eq(dc__optim_step_with(oa, false), DC_OK, "%s", dc_last_error());
        cr_assert_eq(dc__optim_step_with(ob, true), DC_OK, "%s", dc_last_error());
        for (int k = 0; k < NP; k++)
          cr_assert(same_bits(a[k], b[k]),
                    "%s config %d %s: fused and reference differ (param "
                    "%d, step %d)",
                    dc_optim_kind_name(c[ci].kind), ci, dc_dtype_name(dt), k, step);
      }
      dc_optim_free(oa);
      dc_optim_free(ob);
      free_params(a);
      free_params(b);
    }
  }
}

Test(optim_kernels, skipped_params_and_zero_grad) {
  dc_tensor *p[NP];
  make_params(p, DC_F32, 5);
  dc_tensor *before = dc_clone(p[0]);
  dc_optim *o = dc_optim_adam(p, NP, 0.1);
  set_grads(p, 2); /* param 0 has no gradient at step 2 */
  cr_assert_null(p[0]->grad);
  cr_assert_eq(dc_optim_step(o), DC_OK, "%s", dc_last_error());
  cr_assert(same_bits(before, p[0]), "a parameter without gradient must not move");
  dc_optim_state st;
  cr_assert_eq(dc_optim_state_dict(o, &st), DC_OK);
  cr_assert_null(dc_optim_state_get(&st, "state.0.step"), "no state for a skipped parameter");
  cr_assert_float_eq(dc_item(dc_optim_state_get(&st, "state.1.step")), 1.0, 0);
  cr_assert_not_null(dc_optim_state_get(&st, "state.3.exp_avg_sq"));
  cr_assert_float_eq(dc_item(dc_optim_state_get(&st, "param_groups.0.lr")), 0.1, 0);
  cr_assert_float_eq(dc_item_at(dc_optim_state_get(&st, "param_groups.0.betas"), 1), 0.999, 0);
  dc_optim_state_free(&st);
  dc_optim_zero_grad(o);
  for (int k = 0; k < NP; k++) cr_assert_null(p[k]->grad);
  cr_assert_eq(dc_optim_step(o), DC_OK); /* nothing to do */
  dc_optim_free(o);
  dc_free(before);
  free_params(p);
}

Test(optim_clip, norm_independent_of_thread_count) {
  dc_tensor *p[NP];
  make_params(p, DC_F32, 8);
  double norms[2][4];
  const double orders[4] = {2.0, 1.0, 3.5, INFINITY};
  for (int t = 0; t < 2; t++) {
    omp_set_num_threads(t + 1);
    for (int k = 0; k < 4; k++) {
      set_grads(p, 1);
      cr_assert_eq(dc_clip_grad_norm_(p, NP, 1e30, orders[k], true, &norms[t][k]), DC_OK);
    }
  }
  omp_set_num_threads(2);
  for (int k = 0; k < 4; k++)
    cr_assert(memcmp(&norms[0][k], &norms[1][k], sizeof(double)) == 0,
              "norm of order %g: %.17g with 1 thread, %.17g with 2", orders[k], norms[0][k],
              norms[1][k]);
  free_params(p);
}

/* ---- resume: 10 steps, save, fresh objects, load, 10 more == 20 uninterrupted ---- */

typedef enum sched_choice { NO_SCHED, ONECYCLE, WARMUP_COSINE, PLATEAU } sched_choice;

static dc_sched *make_sched(dc_optim *o, sched_choice s) {
  switch (s) {
  case NO_SCHED:
    return NULL;
  case ONECYCLE:
    return dc_sched_onecycle_lr(o, dc_onecycle_defaults(0.05, 25));
  case WARMUP_COSINE: {
    dc_sched *parts[2] = {dc_sched_linear_lr(o, 0.1, 1.0, 4),
                          dc_sched_cosine_annealing_lr(o, 6, 1e-4)};
    int ms[1] = {4};
    return dc_sched_sequential_lr(o, parts, 2, ms);
  }
  case PLATEAU: {
    dc_plateau_opts po = dc_plateau_defaults();
    po.patience = 1;
    return dc_sched_reduce_on_plateau(o, po);
  }
  }
  return NULL;
}

static void run_steps(dc_optim *o, dc_sched *s, dc_tensor **p, int n, int from, int to) {
  for (int step = from; step < to; step++) {
    set_n_grads(p, n, step);
    cr_assert_eq(dc_optim_step(o), DC_OK, "%s", dc_last_error());
    if (s && dc_sched_step_metric(s, 1.0 + (step % 3 == 0)) != DC_OK)
      cr_assert_eq(dc_sched_step(s), DC_OK, "%s", dc_last_error());
  }
}

/* n parameters: SMALL, or NP to include the threaded size */
static void resume_case(const config *c, sched_choice sc, dc_dtype dt, int n) {
  dc_tensor *a[NP], *b[NP];
  make_n_params(a, n, dt, 21);
  make_n_params(b, n, dt, 21);
  dc_optim *oa = dc_optim_create(c->kind, a, n, c->hp);
  dc_sched *sa = make_sched(oa, sc);
  run_steps(oa, sa, a, n, 0, 20);

  dc_optim *ob = dc_optim_create(c->kind, b, n, c->hp);
  dc_sched *sb = make_sched(ob, sc);
  run_steps(ob, sb, b, n, 0, 10);
  dc_optim_state st, ss = {0};
  cr_assert_eq(dc_optim_state_dict(ob, &st), DC_OK, "%s", dc_last_error());
  if (sb) cr_assert_eq(dc_sched_state_dict(sb, &ss), DC_OK, "%s", dc_last_error());
  dc_tensor *saved[NP];
  for (int k = 0; k < n; k++) { /* a plain copy: not recorded by autograd */
    saved[k] = dc_empty(dc_shape_of(b[k]), dt);
    cr_assert_eq(dc_copy_(saved[k], b[k]), DC_OK);
  }
  dc_sched_free(sb);
  dc_optim_free(ob);
  free_n_params(b, n);

  /* a fresh process would read these from a checkpoint */
  for (int k = 0; k < n; k++) b[k] = dc_requires_grad_(saved[k], true);
  dc_optim *oc = dc_optim_create(c->kind, b, n, c->hp);
  dc_sched *sc2 = make_sched(oc, sc);
  cr_assert_eq(dc_optim_load_state_dict(oc, &st), DC_OK, "%s", dc_last_error());
  if (sc2) cr_assert_eq(dc_sched_load_state_dict(sc2, &ss), DC_OK, "%s", dc_last_error());
  run_steps(oc, sc2, b, n, 10, 20);
  for (int k = 0; k < n; k++)
    cr_assert(same_bits(a[k], b[k]),
              "%s %s, schedule %d: resumed run differs from the "
              "uninterrupted one (param %d)",
              dc_optim_kind_name(c->kind), dc_dtype_name(dt), (int)sc, k);
  for (int g = 0; g < dc_optim_num_groups(oa); g++)
    cr_assert_eq(dc_optim_get_lr(oa, g), dc_optim_get_lr(oc, g));
  dc_optim_state_free(&st);
  dc_optim_state_free(&ss);
  dc_sched_free(sa);
  dc_sched_free(sc2);
  dc_optim_free(oa);
  dc_optim_free(oc);
  free_n_params(a, n);
  free_n_params(b, n);
}

Test(optim_state, resume_is_bit_identical) {
  int64_t live = dc_live_tensors();
  config c[16];
  int nc = configs(c);
  for (int ci = 0; ci < nc; ci++)
    resume_case(&c[ci], NO_SCHED, ci % 2 ? DC_F64 : DC_F32, ci == 3 ? NP : SMALL);
  config sgd = {DC_OPTIM_SGD, hp_of(DC_OPTIM_SGD, 0.1)};
  sgd.hp.momentum = 0.9;
  resume_case(&sgd, WARMUP_COSINE, DC_F32, NP);
  resume_case(&sgd, ONECYCLE, DC_F32, SMALL);
  resume_case(&sgd, PLATEAU, DC_F64, SMALL);
  config adam = {DC_OPTIM_ADAM, hp_of(DC_OPTIM_ADAM, 1e-3)};
  resume_case(&adam, ONECYCLE, DC_F32, SMALL);
  resume_case(&adam, WARMUP_COSINE, DC_F64, SMALL);
  cr_assert_eq(dc_live_tensors(), live, "tensors leaked: %lld",
               (long long)(dc_live_tensors() - live));
}

Test(optim_state, load_errors_leave_state_untouched) {
  dc_tensor *p[NP];
  make_params(p, DC_F32, 4);
  dc_optim_hparams h = hp_of(DC_OPTIM_SGD, 0.1);
  h.momentum = 0.9;
  dc_optim *o = dc_optim_create(DC_OPTIM_SGD, p, NP, h);
  set_grads(p, 0);
  dc_optim_step(o);
  dc_optim_state good;
  cr_assert_eq(dc_optim_state_dict(o, &good), DC_OK);
  cr_assert_not_null(dc_optim_state_get(&good, "state.1.momentum_buffer"));
  cr_assert_null(dc_optim_state_get(&good, "state.1.step"), "SGD keeps no step");

  dc_optim_state bad = {0};
  dc_tensor *wrong = dc_zeros(DC_SHAPE(4), DC_F32), *lr = dc_scalar(-1, DC_F64);
  const char *cases[][2] = {{"state.1.momentum_buffer", "is float32 [4] but param 1"},
                            {"state.9.momentum_buffer", "has 4 parameters"},
                            {"state.1.exp_avg", "unknown entry"},
                            {"param_groups.1.lr", "different number of parameter groups"},
                            {"param_groups.0.lr", "Invalid learning rate"},
                            {"optimizer.lr", "unknown entry"}};
  for (int k = 0; k < 6; k++) {
    dc_optim_state_free(&bad);
    cr_assert_eq(dc_optim_state_set(&bad, "state.1.momentum_buffer", o->state[1].buf[0]), DC_OK);
    cr_assert_eq(dc_optim_state_set(&bad, cases[k][0], k == 4 ? lr : wrong), DC_OK);
    cr_assert_neq(dc_optim_load_state_dict(o, &bad), DC_OK, "'%s' was accepted", cases[k][0]);
    cr_assert(strstr(dc_last_error(), cases[k][1]), "%s: %s", cases[k][0], dc_last_error());
  }
  dc_optim_state now;
  cr_assert_eq(dc_optim_state_dict(o, &now), DC_OK);
  cr_assert_eq(now.n, good.n);
  for (int k = 0; k < good.n; k++) {
    cr_assert_str_eq(now.names[k], good.names[k]);
    cr_assert(good.tensors[k]->dtype == DC_I64 || same_bits(now.tensors[k], good.tensors[k]) ||
                  dc_numel(now.tensors[k]) == 1,
              "%s changed by a failed load", now.names[k]);
  }
  cr_assert_eq(dc_optim_get_lr(o, 0), 0.1);
  dc_optim_state_free(&bad);
  dc_optim_state_free(&now);
  dc_optim_state_free(&good);
  dc_free(wrong);
  dc_free(lr);
  dc_optim_free(o);
  free_params(p);
}

/* ---- clipping ---- */

Test(optim_clip, errors_and_edge_cases) {
  dc_tensor *p[NP];
  make_params(p, DC_F32, 6);
  double total = -1;
  cr_assert_eq(dc_clip_grad_norm_(p, NP, 1.0, 2.0, true, &total), DC_OK, "%s", dc_last_error());
  cr_assert_eq(total, 0.0, "no gradients: total norm 0");
  set_grads(p, 1);
  ((float *)dc_data(p[2]->grad))[3] = INFINITY;
  dc_tensor *before = dc_clone(p[1]->grad);
  cr_assert_neq(dc_clip_grad_norm_(p, NP, 1.0, 2.0, true, &total), DC_OK);
  cr_assert(isinf(total));
  cr_assert(strstr(dc_last_error(), "non-finite") && strstr(dc_last_error(), "error_if_nonfinite"),
            "%s", dc_last_error());
  cr_assert(same_bits(before, p[1]->grad), "gradients must be left as they were");
  cr_assert_eq(dc_clip_grad_norm_(p, NP, 1.0, INFINITY, false, &total), DC_OK);
  cr_assert(isinf(total));
  cr_assert_neq(dc_clip_grad_value_(p, NP, -1.0), DC_OK);
  cr_assert(strstr(dc_last_error(), "clip_value must be >= 0"), "%s", dc_last_error());
  cr_assert_neq(dc_clip_grad_norm_(p, NP, NAN, 2.0, false, &total), DC_OK);
  /* finite gradients: the norm drops to max_norm */
  set_grads(p, 3);
  cr_assert_eq(dc_clip_grad_norm_(p, NP, 0.5, 2.0, true, &total), DC_OK);
  cr_assert_gt(total, 0.5);
  cr_assert_eq(dc_clip_grad_norm_(p, NP, 1e9, 2.0, true, &total), DC_OK);
  cr_assert_float_eq(total, 0.5, 1e-5);
  dc_free(before);
  free_params(p);
}

/* ---- allocation failures: clean errors, no leaks, and a failed step changes nothing ---- */

Test(optim_state, allocation_failures) {
  config c[16];
  int nc = configs(c);
  int64_t live = dc_live_tensors();
  for (int ci = 0; ci < nc; ci += 2) {
    dc_tensor *a[SMALL];
    make_n_params(a, SMALL, DC_F32, 31);
    dc_optim *oa = dc_optim_create(c[ci].kind, a, SMALL, c[ci].hp);
    set_n_grads(a, SMALL, 0);
    cr_assert_eq(dc_optim_step(oa), DC_OK, "%s", dc_last_error());
    for (int nth = 1; nth < 40; nth++) {
      dc_tensor *b[SMALL];
      make_n_params(b, SMALL, DC_F32, 31);
      set_n_grads(b, SMALL, 0);
      dc_alloc_fail_at(nth);
      dc_optim *ob = dc_optim_create(c[ci].kind, b, SMALL, c[ci].hp);
      int rc = ob ? dc_optim_step(ob) : DC_ERR_NOMEM;
      dc_optim_state st = {0};
      if (ob && rc == DC_OK && dc_optim_state_dict(ob, &st) == DC_OK)
        dc_optim_load_state_dict(ob, &st); /* may fail: must leave the state as it was */
      dc_alloc_fail_at(0);
      dc_optim_state_free(&st);
      if (!ob) {
        cr_assert_eq(dc_last_status(), DC_ERR_NOMEM, "%s", dc_last_error());
        ob = dc_optim_create(c[ci].kind, b, SMALL, c[ci].hp);
      }
      if (rc != DC_OK) cr_assert_eq(dc_optim_step(ob), DC_OK, "%s", dc_last_error());
      for (int k = 0; k < SMALL; k++)
        cr_assert(same_bits(a[k], b[k]), "%s: a step after allocation %d failed differs",
                  dc_optim_kind_name(c[ci].kind), nth);
      dc_optim_free(ob);
      free_n_params(b, SMALL);
    }
    dc_optim_free(oa);
    free_n_params(a, SMALL);
  }
  cr_assert_eq(dc_live_tensors(), live, "tensors leaked: %lld",
               (long long)(dc_live_tensors() - live));
}
