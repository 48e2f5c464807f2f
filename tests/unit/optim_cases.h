/* The optimizer cases that a device's optimizer is checked with against the cpu's
 * (test_testdev_optim.c on the test device, tests/gpu/test_gpu_optim.c on cuda): NP parameters
 * of SHAPES in two groups, gradients that depend only on (step, parameter, element), every
 * optimizer with its options, and the run of one case on two devices. */
#ifndef OPTIM_CASES_H
#define OPTIM_CASES_H

#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim-impl.h"

#define NP 4
static const dc_shape SHAPES[NP] = {{1, {7}}, {2, {3, 5}}, {3, {2, 3, 2}}, {1, {40001}}};

/* The NP parameters from one seed on dev (made on the cpu, then moved: the same values). */
static void make_params(dc_tensor **ps, dc_dtype dt, dc_device dev) {
  for (int k = 0; k < NP; k++) {
    dc_manual_seed(7 + (uint64_t)k);
    ps[k] = dc_randn(SHAPES[k], dt);
    cr_assert_not_null(ps[k], "%s", dc_last_error());
    cr_assert_eq(dc_move_to_device_(ps[k], dev), DC_OK, "%s", dc_last_error());
    dc_requires_grad_(ps[k], true);
  }
}

static void free_params(dc_tensor **ps) {
  for (int k = 0; k < NP; k++) dc_free(ps[k]);
}

/* A gradient that depends only on (step, k, element), made on the parameter's device;
 * parameter 0 has none on steps 2, 7, ... (it is skipped). */
static void set_grads(dc_tensor **ps, int step, double scale) {
  for (int k = 0; k < NP; k++) {
    dc_zero_grad(ps[k]);
    if (k == 0 && step % 5 == 2) continue;
    int64_t n = dc_numel(ps[k]);
    size_t z = dc_dtype_size(ps[k]->dtype);
    char *h = malloc((size_t)n * z);
    for (int64_t i = 0; i < n; i++) {
      double v = scale * sin(0.37 * (double)i + 1.3 * step + k) * (1 + (step + (int)i) % 4);
      if (ps[k]->dtype == DC_F32)
        ((float *)h)[i] = (float)v;
      else
        ((double *)h)[i] = v;
    }
    dc_tensor *g = dc_from_data_on(h, SHAPES[k], ps[k]->dtype, ps[k]->device);
    free(h);
    cr_assert_not_null(g, "%s", dc_last_error());
    cr_assert_eq(dc_backward(ps[k], .grad = g), DC_OK, "%s", dc_last_error());
    cr_assert_eq(ps[k]->grad->device, ps[k]->device);
    dc_free(g);
  }
}

/* Two groups: params 0-1 with hp, 2-3 with lr halved. */
static dc_optim *make_optim(dc_optim_kind kind, dc_optim_hparams hp, dc_tensor **ps) {
  dc_optim_hparams h2 = hp;
  h2.lr = hp.lr / 2;
  dc_param_group g[2] = {{.params = ps, .n = 2, .hp = hp}, {.params = ps + 2, .n = 2, .hp = h2}};
  dc_optim *o = dc_optim_new(kind, g, 2);
  cr_assert_not_null(o, "%s", dc_last_error());
  return o;
}

typedef struct config {
  const char *name;
  dc_optim_kind kind;
  dc_optim_hparams hp;
} config;

/* Every optimizer with its options into c[] (32 fit); returns their count. */
static int configs(config *c) {
  int n = 0;
  dc_optim_hparams h;
#define ADD(nm, k, ...)                                                                            \
  do {                                                                                             \
    h = dc_optim_defaults(k);                                                                      \
    __VA_ARGS__;                                                                                   \
    c[n++] = (config){nm, k, h};                                                                   \
  } while (0)
  ADD("SGD", DC_OPTIM_SGD, h.lr = 0.1);
  ADD("SGD momentum", DC_OPTIM_SGD, h.lr = 0.1, h.momentum = 0.9);
  ADD("SGD momentum dampening wd", DC_OPTIM_SGD, h.lr = 0.05, h.momentum = 0.8, h.dampening = 0.1,
      h.weight_decay = 1e-2);
  ADD("SGD nesterov wd", DC_OPTIM_SGD, h.lr = 0.05, h.momentum = 0.9, h.nesterov = true,
      h.weight_decay = 1e-3);
  ADD("SGD maximize", DC_OPTIM_SGD, h.lr = 0.1, h.momentum = 0.5, h.maximize = true);
  ADD("Adam", DC_OPTIM_ADAM, h.lr = 1e-2);
  ADD("Adam amsgrad wd", DC_OPTIM_ADAM, h.lr = 1e-2, h.amsgrad = true, h.weight_decay = 1e-2);
  ADD("Adam no bias correction maximize", DC_OPTIM_ADAM, h.no_bias_correction = true,
      h.maximize = true);
  ADD("AdamW", DC_OPTIM_ADAMW, h.lr = 1e-2);
  ADD("AdamW amsgrad", DC_OPTIM_ADAMW, h.lr = 1e-2, h.amsgrad = true, h.weight_decay = 0.1);
  ADD("RMSprop", DC_OPTIM_RMSPROP, h.lr = 1e-2);
  ADD("RMSprop momentum centered wd", DC_OPTIM_RMSPROP, h.momentum = 0.9, h.centered = true,
      h.weight_decay = 1e-2);
  ADD("RMSprop momentum", DC_OPTIM_RMSPROP, h.momentum = 0.5, h.alpha = 0.9);
  ADD("Adagrad", DC_OPTIM_ADAGRAD, h.lr = 0.1);
  ADD("Adagrad lr_decay init wd", DC_OPTIM_ADAGRAD, h.lr = 0.1, h.lr_decay = 1e-2,
      h.initial_accumulator_value = 0.1, h.weight_decay = 1e-2);
#undef ADD
  return n;
}

/* Compares two tensors (a on the cpu, b on the device) with the test's tolerance. */
typedef void (*bits_fn)(const dc_tensor *a, const dc_tensor *b, const char *cfg, const char *what);

/* Every parameter and every state entry (buffers and numbers) of two runs compared by bits;
 * b's parameters and state buffers on dev. */
static void compare_state(dc_optim *a, dc_optim *b, dc_tensor **pa, dc_tensor **pb, dc_device dev,
                          const char *cfg, bits_fn bits) {
  for (int k = 0; k < NP; k++) {
    cr_assert_eq(pb[k]->device, dev, "%s: param %d left %s", cfg, k, dc_device_name(dev));
    char what[32];
    snprintf(what, sizeof what, "param %d", k);
    bits(pa[k], pb[k], cfg, what);
  }
  dc_optim_state sa, sb;
  cr_assert_eq(dc_optim_state_dict(a, &sa), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_optim_state_dict(b, &sb), DC_OK, "%s", dc_last_error());
  cr_assert_eq(sa.n, sb.n, "%s: %d vs %d state entries", cfg, sa.n, sb.n);
  for (int e = 0; e < sa.n; e++) {
    cr_assert_str_eq(sa.names[e], sb.names[e], "%s", cfg);
    if (strncmp(sa.names[e], "state.", 6) == 0 && !strstr(sa.names[e], ".step"))
      cr_assert_eq(sb.tensors[e]->device, dev, "%s: %s on %s", cfg, sb.names[e],
                   dc_device_name(sb.tensors[e]->device));
    bits(sa.tensors[e], sb.tensors[e], cfg, sa.names[e]);
  }
  dc_optim_state_free(&sa);
  dc_optim_state_free(&sb);
}

/* Case c on the cpu (fused kernel) against dev through path, steps steps, then compare_state with
 * bits. */
static void check_config_on(const config *c, dc_dtype dt, dc__optim_path path, dc_device dev,
                            int steps, bits_fn bits) {
  char cfg[128];
  snprintf(cfg, sizeof cfg, "%s %s%s", c->name, dc_dtype_name(dt),
           path == DC__OPTIM_PATH_OPS         ? " (ops)"
           : path == DC__OPTIM_PATH_REFERENCE ? " (reference loop)"
                                              : "");
  dc_tensor *pa[NP], *pb[NP];
  make_params(pa, dt, DC_CPU);
  make_params(pb, dt, dev);
  dc_optim *a = make_optim(c->kind, c->hp, pa), *b = make_optim(c->kind, c->hp, pb);
  for (int s = 0; s < steps; s++) {
    set_grads(pa, s, 1.0);
    set_grads(pb, s, 1.0);
    cr_assert_eq(dc_optim_step(a), DC_OK, "%s: %s", cfg, dc_last_error());
    cr_assert_eq(dc__optim_step_path(b, path), DC_OK, "%s: %s", cfg, dc_last_error());
  }
  compare_state(a, b, pa, pb, dev, cfg, bits);
  dc_optim_free(a);
  dc_optim_free(b);
  free_params(pa);
  free_params(pb);
}

#endif
