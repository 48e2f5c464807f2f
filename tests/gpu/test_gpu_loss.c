/* The CUDA losses (loss.cu, xent.cu) against the CPU's: every pointwise loss (weights,
 * pos_weight, reduced or not, backward with gout per element or 0-d), cross-entropy and NLL
 * ([N, C, inner], ignore_index, class weights, label smoothing, the three reductions, lse and
 * wsum), the multi-class hinge loss (p = 1, 2, margins, weights), the target and BCE input checks
 * (the CPU's message, outputs untouched), large reductions (many blocks, run twice: the same
 * bits), and float64 gradient checks on the device through the public loss functions. Skips
 * without a GPU. */
#include "gpu.h"

#include "backend/nn-kernels.h"

TestSuite(gpu_loss, .init = gpu_scope_in, .fini = gpu_scope_out);

/* computed in double, stored in dt; cuda's double exp/log are within an ulp of glibc's */
#define LOSS_TOL(dt) ((dt) == DC_F64 ? 1e-12 : 1e-6), 1e-12

static dc_tensor *on(dc_tensor *t, bool gpu) { return t && gpu ? to_gpu(t) : t; }

/* values in (lo, hi) on the cpu */
static dc_tensor *between(dc_shape s, dc_dtype dt, uint64_t seed, double lo, double hi) {
  dc_tensor *u = inputs(s, DC_F64, seed, false); /* [-3, 3) */
  dc_tensor *t = dc_to_dtype(dc_add_scalar(dc_mul_scalar(u, (hi - lo) / 6.0), (lo + hi) / 2), dt);
  cr_assert(t, "%s", dc_last_error());
  return t;
}

static const struct dc_nn_kernels *nn_of(bool gpu) { return gpu ? gpu_be()->nn : cpu_be()->nn; }

/* ---- pointwise losses ---- */

static void pw_case(dc_pwloss_op op, dc_dtype dt, bool weighted, bool reduce, int64_t E) {
  char what[96];
  snprintf(what, sizeof what, "pointwise loss %d (%s) weighted=%d reduce=%d E=%lld", (int)op,
           dc_dtype_name(dt), weighted, reduce, (long long)E);
  bool bce = op == DC_PWLOSS_BCE, hinge = op == DC_PWLOSS_HINGE;
  /* special values (inf, NaN) only unreduced: they would make every sum NaN */
  dc_tensor *x = bce ? between(DC_SHAPE(E), dt, 301, 0, 1) : inputs(DC_SHAPE(E), dt, 301, !reduce);
  dc_tensor *t =
      hinge ? dc_sign(inputs(DC_SHAPE(E), dt, 302, false)) : between(DC_SHAPE(E), dt, 302, 0, 1);
  dc_tensor *w = weighted ? between(DC_SHAPE(E), dt, 303, 0, 2) : NULL;
  dc_tensor *pw =
      weighted && op == DC_PWLOSS_BCE_LOGITS ? between(DC_SHAPE(E), dt, 304, 0.5, 3) : NULL;
  double p = op == DC_PWLOSS_SMOOTH_L1 ? 0.7 : hinge ? 1.0 : 0.0, scale = 1.0 / (double)E;
  dc_shape os = reduce ? DC_SCALAR_SHAPE : DC_SHAPE(E);
  dc_tensor *gout =
      reduce ? between(DC_SCALAR_SHAPE, dt, 305, 0.5, 2) : inputs(DC_SHAPE(E), dt, 305, false);
  dc_tensor *out[2], *gx[2], *gt[2];
  for (int d = 0; d < 2; d++) {
    bool g = d == 1;
    dc_device dev = g ? DC_CUDA : DC_CPU;
    out[d] = dc__new(os, dt, dev);
    gx[d] = dc__new(DC_SHAPE(E), dt, dev);
    gt[d] = dc__new(DC_SHAPE(E), dt, dev);
    cr_assert_eq(nn_of(g)->pointwise_loss_forward(op, out[d], on(x, g), on(t, g), on(w, g),
                                                  on(pw, g), p, reduce, scale),
                 DC_OK, "%s: %s", what, dc_last_error());
    cr_assert_eq(nn_of(g)->pointwise_loss_backward(op, gx[d], gt[d], on(gout, g), on(x, g),
                                                   on(t, g), on(w, g), on(pw, g), p, scale),
                 DC_OK, "%s backward: %s", what, dc_last_error());
  }
  /* a sum of many terms: the orders differ (cpu blocks of 8192, cuda trees) */
  expect_close(out[0], out[1], reduce ? 1e-10 : 1e-12, 1e-12, what);
  expect_close(gx[0], gx[1], LOSS_TOL(dt), "gx");
  expect_close(gt[0], gt[1], LOSS_TOL(dt), "gt");
}

Test(gpu_loss, pointwise_losses_match_cpu) {
  GPU_OR_SKIP();
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int k = 0; k < 2; k++)
    for (int op = 0; op < DC_PWLOSS_COUNT; op++)
      for (int m = 0; m < 4; m++) pw_case((dc_pwloss_op)op, dts[k], m & 1, m & 2, 333);
  pw_case(DC_PWLOSS_MSE, DC_F64, true, true, 1 << 20); /* 1024 blocks, then their sum */
  pw_case(DC_PWLOSS_BCE_LOGITS, DC_F32, true, true, 300000);
}

Test(gpu_loss, bce_bad_input_is_the_cpus_error) {
  GPU_OR_SKIP();
  dc_tensor *x = between(DC_SHAPE(5000), DC_F32, 311, 0, 1), *t = dc_clone(x);
  ((float *)dc_data(x))[4321] = -0.25f;
  ((float *)dc_data(x))[4400] = NAN;
  dc_tensor *out = dc_full(DC_SCALAR_SHAPE, 7.0, DC_F32);
  cr_assert_eq(
      cpu_be()->nn->pointwise_loss_forward(DC_PWLOSS_BCE, out, x, t, NULL, NULL, 0, true, 1.0),
      DC_ERR_ARG);
  char cpu_msg[512];
  snprintf(cpu_msg, sizeof cpu_msg, "%s", dc_last_error());
  dc_tensor *og = to_gpu(out);
  cr_assert_eq(gpu_be()->nn->pointwise_loss_forward(DC_PWLOSS_BCE, og, to_gpu(x), to_gpu(t), NULL,
                                                    NULL, 0, true, 1.0),
               DC_ERR_ARG);
  cr_expect(strstr(dc_last_error(), cpu_msg), "cuda: %s\ncpu: %s", dc_last_error(), cpu_msg);
  expect_close(out, og, EXACT, "out untouched");
}

/* ---- cross-entropy / NLL ---- */

typedef struct xent_case {
  dc_dtype dt;
  bool log_softmax, weighted, special;
  double eps;
  dc_reduction red;
  int64_t n, c, inner;
} xent_case;

static void run_xent(xent_case k) {
  char what[160];
  snprintf(what, sizeof what, "xent %s log_softmax=%d weighted=%d eps=%g red=%d [%lld,%lld,%lld]",
           dc_dtype_name(k.dt), k.log_softmax, k.weighted, k.eps, (int)k.red, (long long)k.n,
           (long long)k.c, (long long)k.inner);
  int64_t R = k.n * k.inner, ignore = -100;
  dc_tensor *x = inputs(DC_SHAPE(k.n, k.c, k.inner), k.dt, 321, k.special);
  int64_t *tv = malloc(sizeof(int64_t) * (size_t)R);
  for (int64_t r = 0; r < R; r++) tv[r] = r % 5 == 4 ? ignore : (r * 7 + 3) % k.c;
  dc_tensor *t = dc_from_data(tv, DC_SHAPE(k.n, k.inner), DC_I64);
  free(tv);
  dc_tensor *w = k.weighted ? between(DC_SHAPE(k.c), k.dt, 322, 0.2, 2) : NULL;
  dc_xent_params p = {.rows = R,
                      .classes = k.c,
                      .inner = k.inner,
                      .ignore_index = ignore,
                      .smoothing = k.eps,
                      .log_softmax = k.log_softmax,
                      .reduction = k.red};
  dc_shape os = k.red == DC_REDUCTION_NONE ? DC_SHAPE(k.n, k.inner) : DC_SCALAR_SHAPE;
  dc_tensor *gout =
      k.red == DC_REDUCTION_NONE ? inputs(os, k.dt, 323, false) : between(os, k.dt, 323, 0.5, 2);
  dc_tensor *out[2], *lse[2] = {NULL, NULL}, *gx[2];
  double wsum[2][2];
  for (int d = 0; d < 2; d++) {
    bool g = d == 1;
    dc_device dev = g ? DC_CUDA : DC_CPU;
    out[d] = dc__new(os, k.dt, dev);
    if (k.log_softmax) lse[d] = dc__new(DC_SHAPE(R), k.dt, dev);
    gx[d] = dc__new(DC_SHAPE(k.n, k.c, k.inner), k.dt, dev);
    dc_tensor *xd = on(x, g), *td = on(t, g), *wd = on(w, g);
    cr_assert_eq(nn_of(g)->xent_forward(out[d], lse[d], wsum[d], xd, td, wd, &p), DC_OK, "%s: %s",
                 what, dc_last_error());
    cr_assert_eq(nn_of(g)->xent_backward(gx[d], on(gout, g), xd, lse[d], td, wd, wsum[d], &p),
                 DC_OK, "%s backward: %s", what, dc_last_error());
  }
  expect_close(out[0], out[1], k.red == DC_REDUCTION_NONE ? 1e-12 : 1e-10, 1e-12, what);
  if (k.log_softmax) expect_close(lse[0], lse[1], LOSS_TOL(k.dt), "lse");
  for (int i = 0; i < 2; i++)
    cr_expect(fabs(wsum[0][i] - wsum[1][i]) <= 1e-12 * fabs(wsum[0][i]),
              "%s: wsum[%d] %.17g vs %.17g", what, i, wsum[0][i], wsum[1][i]);
  expect_close(gx[0], gx[1], LOSS_TOL(k.dt), "xent gx");
}

Test(gpu_loss, cross_entropy_and_nll_match_cpu) {
  GPU_OR_SKIP();
  dc_dtype dts[2] = {DC_F32, DC_F64};
  dc_reduction reds[3] = {DC_REDUCTION_MEAN, DC_REDUCTION_SUM, DC_REDUCTION_NONE};
  for (int k = 0; k < 2; k++)
    for (int r = 0; r < 3; r++)
      for (int m = 0; m < 16; m++) {
        bool ls = m & 1;
        run_xent((xent_case){dts[k], ls, m & 2, m & 8, ls && (m & 4) ? 0.1 : 0.0, reds[r], 6, 7,
                             m & 8 ? 1 : 3});
      }
  /* many rows (many blocks) and a wide row */
  run_xent((xent_case){DC_F32, true, true, false, 0.05, DC_REDUCTION_MEAN, 200000, 10, 1});
  run_xent((xent_case){DC_F64, true, false, false, 0.0, DC_REDUCTION_SUM, 4, 5000, 2});
}

Test(gpu_loss, bad_targets_are_the_cpus_error) {
  GPU_OR_SKIP();
  dc_tensor *x = inputs(DC_SHAPE(2, 3, 4), DC_F32, 331, false);
  int64_t tv[8] = {0, 1, 2, -100, 2, 5, 1, 7}; /* 5 at [1, 1] first */
  dc_tensor *t = dc_from_data(tv, DC_SHAPE(2, 4), DC_I64);
  dc_xent_params p = {.rows = 8,
                      .classes = 3,
                      .inner = 4,
                      .ignore_index = -100,
                      .log_softmax = true,
                      .reduction = DC_REDUCTION_MEAN};
  double wsum[2] = {-1, -1};
  dc_tensor *out = dc_full(DC_SCALAR_SHAPE, 7.0, DC_F32), *lse = dc_full(DC_SHAPE(8), 7.0, DC_F32);
  cr_assert_eq(cpu_be()->nn->xent_forward(out, lse, wsum, x, t, NULL, &p), DC_ERR_ARG);
  char cpu_msg[512];
  snprintf(cpu_msg, sizeof cpu_msg, "%s", dc_last_error());
  cr_expect(strstr(cpu_msg, "target label 5 at position [1, 1]"), "%s", cpu_msg);
  dc_tensor *og = to_gpu(out), *lg = to_gpu(lse);
  cr_assert_eq(gpu_be()->nn->xent_forward(og, lg, wsum, to_gpu(x), to_gpu(t), NULL, &p),
               DC_ERR_ARG);
  cr_expect_str_eq(dc_last_error(), cpu_msg);
  expect_close(out, og, EXACT, "out untouched");
  expect_close(lse, lg, EXACT, "lse untouched");
  cr_expect_eq(wsum[0], -1.0, "wsum untouched");
  /* multi-margin: no ignore_index, -100 is bad too */
  dc_tensor *x2 = inputs(DC_SHAPE(4, 3), DC_F32, 332, false);
  int64_t tv2[4] = {0, -100, 2, 3};
  dc_tensor *t2 = dc_from_data(tv2, DC_SHAPE(4), DC_I64);
  cr_assert_eq(cpu_be()->nn->multi_margin_forward(out, x2, t2, NULL, 1, 1.0, true, 1.0),
               DC_ERR_ARG);
  snprintf(cpu_msg, sizeof cpu_msg, "%s", dc_last_error());
  cr_assert_eq(
      gpu_be()->nn->multi_margin_forward(og, to_gpu(x2), to_gpu(t2), NULL, 1, 1.0, true, 1.0),
      DC_ERR_ARG);
  cr_expect_str_eq(dc_last_error(), cpu_msg);
  expect_close(out, og, EXACT, "multi_margin out untouched");
}

/* ---- multi-class hinge ---- */

Test(gpu_loss, multi_margin_matches_cpu) {
  GPU_OR_SKIP();
  dc_dtype dts[2] = {DC_F32, DC_F64};
  int64_t N = 2000, C = 6;
  int64_t *tv = malloc(sizeof(int64_t) * (size_t)N);
  for (int64_t n = 0; n < N; n++) tv[n] = (n * 5 + 1) % C;
  dc_tensor *t = dc_from_data(tv, DC_SHAPE(N), DC_I64);
  free(tv);
  for (int k = 0; k < 2; k++)
    for (int m = 0; m < 16; m++) {
      dc_dtype dt = dts[k];
      int pp = m & 1 ? 2 : 1;
      bool weighted = m & 2, reduce = m & 4;
      double margin = m & 8 ? 0.0 : 1.3, scale = reduce ? 1.0 / (double)N : 1.0;
      dc_tensor *x = inputs(DC_SHAPE(N, C), dt, 341, m & 8);
      dc_tensor *w = weighted ? between(DC_SHAPE(C), dt, 342, 0.2, 2) : NULL;
      dc_shape os = reduce ? DC_SCALAR_SHAPE : DC_SHAPE(N);
      dc_tensor *gout = reduce ? between(os, dt, 343, 0.5, 2) : inputs(os, dt, 343, false);
      dc_tensor *out[2], *gx[2];
      for (int d = 0; d < 2; d++) {
        bool g = d == 1;
        dc_device dev = g ? DC_CUDA : DC_CPU;
        out[d] = dc__new(os, dt, dev);
        gx[d] = dc__new(DC_SHAPE(N, C), dt, dev);
        cr_assert_eq(nn_of(g)->multi_margin_forward(out[d], on(x, g), on(t, g), on(w, g), pp,
                                                    margin, reduce, scale),
                     DC_OK, "%s", dc_last_error());
        cr_assert_eq(nn_of(g)->multi_margin_backward(gx[d], on(gout, g), on(x, g), on(t, g),
                                                     on(w, g), pp, margin, scale),
                     DC_OK, "%s", dc_last_error());
      }
      expect_close(out[0], out[1], reduce ? 1e-10 : 1e-12, 1e-12, "multi_margin");
      expect_close(gx[0], gx[1], LOSS_TOL(dt), "multi_margin gx");
    }
}

Test(gpu_loss, reductions_are_deterministic) {
  GPU_OR_SKIP();
  dc_tensor *x = to_gpu(inputs(DC_SHAPE(100000, 10), DC_F32, 351, false));
  dc_tensor *y = to_gpu(inputs(DC_SHAPE(100000, 10), DC_F32, 352, false));
  int64_t *tv = malloc(sizeof(int64_t) * 100000);
  for (int64_t n = 0; n < 100000; n++) tv[n] = n % 10;
  dc_tensor *t = dc_from_data_on(tv, DC_SHAPE(100000), DC_I64, DC_CUDA);
  free(tv);
  dc_tensor *a[2], *b[2];
  for (int r = 0; r < 2; r++) {
    a[r] = dc_mse_loss(x, y, DC_REDUCTION_MEAN);
    b[r] = dc_cross_entropy(x, t, .label_smoothing = 0.1);
    cr_assert(a[r] && b[r], "%s", dc_last_error());
  }
  expect_close(a[0], a[1], EXACT, "mse_loss run twice");
  expect_close(b[0], b[1], EXACT, "cross_entropy run twice");
}

/* ---- float64 gradient checks on the device, through the public API ---- */

typedef struct loss_ud {
  dc_tensor *target;    /* int64 [3, 2] with a -100 (the default ignore_index) */
  dc_tensor *target3;   /* int64 [3, 2] with 3s, ignored by case 1 */
  dc_tensor *mm_target; /* int64 [3] for multi-margin */
  dc_tensor *weight, *pos_weight;
  int which;
} loss_ud;

static dc_tensor *f_pw(dc_tensor *const *in, int n, void *ud) {
  const loss_ud *u = ud;
  switch (u->which) {
  case 0:
    return dc_mse_loss(in[0], in[1], DC_REDUCTION_MEAN);
  case 1:
    return dc_l1_loss(in[0], in[1], DC_REDUCTION_NONE);
  case 2:
    return dc_smooth_l1_loss(in[0], in[1], DC_REDUCTION_SUM, 0.8);
  case 3:
    return dc_binary_cross_entropy(dc_sigmoid(in[0]), dc_sigmoid(in[1]), u->weight,
                                   DC_REDUCTION_MEAN);
  case 4:
    return dc_binary_cross_entropy_with_logits(in[0], dc_sigmoid(in[1]), u->weight, u->pos_weight,
                                               DC_REDUCTION_SUM);
  default:
    return dc_hinge_loss(in[0], dc_sign(in[1]), 1.0, DC_REDUCTION_MEAN);
  }
}

static dc_tensor *leaf(dc_shape s, uint64_t seed) {
  dc_tensor *t = to_gpu(inputs(s, DC_F64, seed, false));
  return dc_requires_grad_(t, true);
}

Test(gpu_loss, pointwise_gradcheck_on_device) {
  GPU_OR_SKIP();
  loss_ud u = {.weight = to_gpu(between(DC_SHAPE(3, 4), DC_F64, 361, 0.2, 2)),
               .pos_weight = to_gpu(between(DC_SHAPE(4), DC_F64, 362, 0.5, 3))};
  for (u.which = 0; u.which < 6; u.which++) {
    dc_tensor *in[2] = {leaf(DC_SHAPE(3, 4), 363), leaf(DC_SHAPE(3, 4), 364)};
    if (u.which == 5) dc_requires_grad_(in[1], false); /* sign: no gradient through it */
    cr_expect(dc_gradcheck(f_pw, in, 2, &u), "pointwise loss %d: %s", u.which, dc_last_error());
  }
}

static dc_tensor *f_class(dc_tensor *const *in, int n, void *ud) {
  const loss_ud *u = ud;
  switch (u->which) {
  case 0:
    return dc_cross_entropy(in[0], u->target, .weight = u->weight, .label_smoothing = 0.2);
  case 1:
    return dc_cross_entropy(in[0], u->target3, .reduction = DC_REDUCTION_NONE, .ignore_index = 3,
                            .has_ignore_index = true);
  case 2:
    return dc_nll_loss(dc_log_softmax(in[0], 1), u->target, .weight = u->weight,
                       .reduction = DC_REDUCTION_SUM);
  default:
    return dc_multi_margin_loss(dc_reshape(in[0], DC_SHAPE(3, 8)), u->mm_target, .p = 2,
                                .margin = 0.7, .weight = u->weight);
  }
}

Test(gpu_loss, class_loss_gradcheck_on_device) {
  GPU_OR_SKIP();
  int64_t tv[6] = {0, 2, 1, 3, -100, 1}, tv3[6] = {3, 2, 1, 3, 0, 1}; /* [3, 2]: x [3, 4, 2] */
  int64_t mv[3] = {5, 0, 7};
  loss_ud u = {.target = dc_from_data_on(tv, DC_SHAPE(3, 2), DC_I64, DC_CUDA),
               .target3 = dc_from_data_on(tv3, DC_SHAPE(3, 2), DC_I64, DC_CUDA),
               .mm_target = dc_from_data_on(mv, DC_SHAPE(3), DC_I64, DC_CUDA)};
  for (u.which = 0; u.which < 4; u.which++) {
    u.weight = to_gpu(between(DC_SHAPE(u.which == 3 ? 8 : 4), DC_F64, 371, 0.2, 2));
    dc_tensor *in[1] = {leaf(DC_SHAPE(3, 4, 2), 372)};
    cr_expect(dc_gradcheck(f_class, in, 1, &u), "class loss %d: %s", u.which, dc_last_error());
  }
}
