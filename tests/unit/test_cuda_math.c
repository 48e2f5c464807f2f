/* The arithmetic of the CUDA batch norm and loss kernels, verified on the host: the
 * __host__ __device__ functions of src/backend/cuda/bnorm-math.h and loss-math.h (plain C here)
 * are looped over CPU tensors the way the kernels loop them (per channel, element or row; sums
 * in double) and compared with the CPU backend's entries on the same inputs, special values,
 * ignore_index, class weights, label smoothing, both dtypes, eval and training included. What
 * this leaves to tests/gpu (test_gpu_bnorm.c, test_gpu_loss.c): the launches, the block sums
 * and the device's libm. Runs everywhere (no GPU needed). */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "backend/cuda/bnorm-math.h"
#include "backend/cuda/loss-math.h"

/* results computed in double and stored in dt: float32 may round the other way */
#define TOL(dt) ((dt) == DC_F64 ? 1e-12 : 1e-6), 1e-13

static void scope_in(void) { dc_scope_begin(); }
static void scope_out(void) { dc_scope_end(); }
TestSuite(cuda_math, .init = scope_in, .fini = scope_out);

static const struct dc_nn_kernels *cpu_nn(void) { return dc__backend(DC_CPU)->nn; }

static double val(const dc_tensor *t, int64_t i) {
  return dc__load((const char *)dc_data(t) + (size_t)i * dc_dtype_size(t->dtype), t->dtype);
}

/* ref and got (contiguous cpu tensors) agree: |a - b| <= atol + rtol |a|, NaN with NaN */
static void close_to(const dc_tensor *ref, const dc_tensor *got, double rtol, double atol,
                     const char *what) {
  cr_assert_eq(dc_numel(ref), dc_numel(got), "%s: sizes", what);
  int64_t bad = 0;
  for (int64_t i = 0; i < dc_numel(ref); i++) {
    double a = val(ref, i), b = val(got, i);
    bool ok =
        (isnan(a) && isnan(b)) || a == b || (isfinite(a) && fabs(a - b) <= atol + rtol * fabs(a));
    if (!ok && bad++ < 4)
      cr_log_error("%s (%s): element %lld: cpu %.17g, cuda math %.17g", what,
                   dc_dtype_name(ref->dtype), (long long)i, a, b);
  }
  cr_expect_eq(bad, 0, "%s (%s): %lld elements differ", what, dc_dtype_name(ref->dtype),
               (long long)bad);
}

/* values in [lo, hi) from the seeded generator, the first few special when with_special */
static dc_tensor *vals(dc_shape s, dc_dtype dt, uint64_t seed, double lo, double hi,
                       bool with_special) {
  dc_manual_seed(seed);
  dc_tensor *u = dc_rand(s, DC_F64);
  cr_assert(u, "%s", dc_last_error());
  double *p = dc_data(u);
  static const double special[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1.0, -1.0, 0.5};
  for (int64_t i = 0; i < dc_numel(u); i++) p[i] = lo + (hi - lo) * p[i];
  for (int64_t i = 0; with_special && i < dc_numel(u) && i < 8; i++) p[i] = special[i];
  dc_tensor *t = dc_to_dtype(u, dt);
  cr_assert(t, "%s", dc_last_error());
  return t;
}

static dc_tensor *empty(dc_shape s, dc_dtype dt) {
  dc_tensor *t = dc__new(s, dt, DC_CPU);
  cr_assert(t, "%s", dc_last_error());
  return t;
}

static dc_tensor *copy_of(const dc_tensor *t) {
  dc_tensor *c = dc_clone((dc_tensor *)t);
  cr_assert(c, "%s", dc_last_error());
  return c;
}

static void *ptr(const dc_tensor *t) { return t ? dc_data(t) : NULL; }

/* ---- batch norm ---- */

/* the forward as bn_forward_k runs it, one channel at a time */
static void host_bn_forward(dc__cubn *b) {
  for (int64_t c = 0; c < b->C; c++) {
    double shift = dc__cubn_shift(b, c), s1 = 0, s2 = 0, mean, var;
    for (int64_t i = 0; b->batch_stats && i < b->N * b->S; i++)
      dc__cubn_stat_elem(b, c, i, shift, &s1, &s2);
    dc__cubn_stats(b, c, shift, s1, s2, &mean, &var);
    dc__cubn_store(b, c, mean, var);
    for (int64_t i = 0; i < b->N * b->S; i++) dc__cubn_affine_elem(b, c, i, mean, var);
  }
}

/* the backward as bn_backward_k runs it */
static void host_bn_backward(dc__cubn *b) {
  bool need_sums = b->gw || b->gb || (b->gx && b->batch_stats);
  for (int64_t c = 0; c < b->C; c++) {
    double sdy = 0, sdyx = 0, m = dc__hd_ld(b->mean, c, b->f64);
    for (int64_t i = 0; need_sums && i < b->N * b->S; i++)
      dc__cubn_dot_elem(b, c, i, m, &sdy, &sdyx);
    dc__cubn_store_grads(b, c, sdy, sdyx);
    if (!b->gx) continue;
    dc__cubn_grad g = dc__cubn_grad_of(b, c, sdy, sdyx);
    for (int64_t i = 0; i < b->N * b->S; i++) dc__cubn_grad_elem(b, c, i, &g);
  }
}

/* one configuration: forward and backward on the cpu and through the cuda math */
static void bn_case(dc_dtype dt, bool train, bool relu, bool affine, bool running, bool special,
                    double offset) {
  char what[160];
  snprintf(what, sizeof what, "bn train=%d relu=%d affine=%d running=%d special=%d offset=%g",
           train, relu, affine, running, special, offset);
  int64_t N = 4, C = 3, S = 21;
  double tol[2] = {dt == DC_F64 ? 1e-12 : 1e-5, dt == DC_F64 ? 1e-13 : 1e-6};
  dc_tensor *x = vals(DC_SHAPE(N, C, S), dt, 11, offset - 3, offset + 3, special);
  dc_tensor *w = affine ? vals(DC_SHAPE(C), dt, 12, 0.5, 2, false) : NULL;
  dc_tensor *bb = affine ? vals(DC_SHAPE(C), dt, 13, -1, 1, false) : NULL;
  dc_tensor *rm = running ? vals(DC_SHAPE(C), dt, 14, -1, 1, false) : NULL;
  dc_tensor *rv = running ? vals(DC_SHAPE(C), dt, 15, 0.5, 2, false) : NULL;
  dc_tensor *rm2 = rm ? copy_of(rm) : NULL, *rv2 = rv ? copy_of(rv) : NULL;
  bool batch_stats = train || !running;
  dc_tensor *y = empty(dc_shape_of(x), dt), *mean = empty(DC_SHAPE(C), dt),
            *inv = empty(DC_SHAPE(C), dt);
  int rc = (relu ? cpu_nn()->batch_norm_relu_forward : cpu_nn()->batch_norm_forward)(
      y, mean, inv, x, w, bb, rm, rv, batch_stats, 0.1, 1e-5);
  cr_assert_eq(rc, DC_OK, "%s", dc_last_error());
  dc_tensor *y2 = empty(dc_shape_of(x), dt), *mean2 = empty(DC_SHAPE(C), dt),
            *inv2 = empty(DC_SHAPE(C), dt);
  dc__cubn b = {.N = N,
                .C = C,
                .S = S,
                .f64 = dt == DC_F64,
                .rm_f64 = dt == DC_F64,
                .rv_f64 = dt == DC_F64,
                .batch_stats = batch_stats,
                .relu = relu,
                .momentum = 0.1,
                .eps = 1e-5,
                .x = ptr(x),
                .weight = ptr(w),
                .bias = ptr(bb),
                .y = ptr(y2),
                .mean = ptr(mean2),
                .invstd = ptr(inv2),
                .rmean = ptr(rm2),
                .rvar = ptr(rv2)};
  host_bn_forward(&b);
  close_to(y, y2, tol[0], tol[1], what);
  close_to(mean, mean2, tol[0], tol[1], "save_mean");
  close_to(inv, inv2, tol[0], tol[1], "save_invstd");
  if (running) {
    close_to(rm, rm2, tol[0], tol[1], "running_mean");
    close_to(rv, rv2, tol[0], tol[1], "running_var");
  }
  /* backward from the cpu's saved statistics */
  dc_tensor *gy = vals(DC_SHAPE(N, C, S), dt, 16, -1, 1, false);
  dc_tensor *gx = empty(dc_shape_of(x), dt), *gw = empty(DC_SHAPE(C), dt),
            *gb = empty(DC_SHAPE(C), dt);
  rc = relu ? cpu_nn()->batch_norm_relu_backward(gx, gw, gb, gy, y, x, w, mean, inv, batch_stats)
            : cpu_nn()->batch_norm_backward(gx, gw, gb, gy, x, w, mean, inv, batch_stats);
  cr_assert_eq(rc, DC_OK, "%s", dc_last_error());
  dc_tensor *gx2 = empty(dc_shape_of(x), dt), *gw2 = empty(DC_SHAPE(C), dt),
            *gb2 = empty(DC_SHAPE(C), dt);
  dc__cubn g = {.N = N,
                .C = C,
                .S = S,
                .f64 = dt == DC_F64,
                .batch_stats = batch_stats,
                .x = ptr(x),
                .weight = ptr(w),
                .gy = ptr(gy),
                .yr = relu ? ptr(y) : NULL,
                .mean = ptr(mean),
                .invstd = ptr(inv),
                .gx = ptr(gx2),
                .gw = ptr(gw2),
                .gb = ptr(gb2)};
  host_bn_backward(&g);
  /* float32 sums: the cpu's in float lanes, these in double */
  double gtol = dt == DC_F64 ? 1e-11 : 1e-4;
  close_to(gx, gx2, gtol, tol[1], "batch_norm backward gx");
  close_to(gw, gw2, gtol, tol[1], "batch_norm backward gw");
  close_to(gb, gb2, gtol, tol[1], "batch_norm backward gb");
  /* only gx wanted (no gw, gb) */
  g.gw = g.gb = NULL;
  dc_tensor *gx3 = empty(dc_shape_of(x), dt);
  g.gx = ptr(gx3);
  host_bn_backward(&g);
  close_to(gx, gx3, gtol, tol[1], "batch_norm backward gx alone");
}

Test(cuda_math, batch_norm_matches_cpu) {
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int k = 0; k < 2; k++)
    for (int m = 0; m < 16; m++) bn_case(dts[k], m & 1, m & 2, m & 4, m & 8, false, 0.0);
}

Test(cuda_math, batch_norm_special_values_and_offset) {
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int k = 0; k < 2; k++) {
    bn_case(dts[k], true, false, true, true, true, 0.0);
    bn_case(dts[k], false, true, true, true, true, 0.0);
    bn_case(dts[k], true, true, true, true, false, 1e4); /* the shifted sums keep the variance */
    bn_case(dts[k], false, false, false, true, true, 0.0);
  }
}

/* ---- pointwise losses ---- */

static void pw_case(dc_pwloss_op op, dc_dtype dt, bool weighted, bool reduce, bool special) {
  char what[96];
  snprintf(what, sizeof what, "pointwise loss %d weighted=%d reduce=%d special=%d", (int)op,
           weighted, reduce, special);
  int64_t E = 300;
  bool bce = op == DC_PWLOSS_BCE, hinge = op == DC_PWLOSS_HINGE;
  dc_tensor *x =
      bce ? vals(DC_SHAPE(E), dt, 21, 0, 1, false) : vals(DC_SHAPE(E), dt, 21, -3, 3, special);
  if (bce && special) { /* the ends of [0, 1] */
    for (int i = 0; i < 2; i++) {
      if (dt == DC_F64)
        ((double *)dc_data(x))[i] = i;
      else
        ((float *)dc_data(x))[i] = (float)i;
    }
  }
  dc_tensor *t = hinge ? dc_sign(vals(DC_SHAPE(E), dt, 22, -1, 1, false))
                       : vals(DC_SHAPE(E), dt, 22, 0, 1, false);
  dc_tensor *w = weighted ? vals(DC_SHAPE(E), dt, 23, 0, 2, false) : NULL;
  dc_tensor *pw =
      weighted && op == DC_PWLOSS_BCE_LOGITS ? vals(DC_SHAPE(E), dt, 24, 0.5, 3, false) : NULL;
  double p = op == DC_PWLOSS_SMOOTH_L1 ? 0.7 : hinge ? 1.0 : 0.0, scale = 1.0 / (double)E;
  dc_shape os = reduce ? DC_SCALAR_SHAPE : DC_SHAPE(E);
  dc_tensor *out = empty(os, dt), *out2 = empty(os, dt);
  int rc = cpu_nn()->pointwise_loss_forward(op, out, x, t, w, pw, p, reduce, scale);
  cr_assert_eq(rc, DC_OK, "%s", dc_last_error());
  dc__cupw a = {.op = op,
                .f64 = dt == DC_F64,
                .reduce = reduce,
                .n = E,
                .p = p,
                .scale = scale,
                .x = ptr(x),
                .t = ptr(t),
                .w = ptr(w),
                .pw = ptr(pw),
                .out = ptr(out2)};
  for (int64_t i = 0; i < E; i++) cr_assert(!dc__cupw_bad_input(&a, i), "%s", what);
  double s = 0;
  for (int64_t i = 0; i < E; i++) s += dc__cupw_loss_elem(&a, i);
  if (reduce) dc__hd_st(ptr(out2), 0, a.f64, s * scale);
  close_to(out, out2, dt == DC_F64 ? 1e-12 : 1e-6, 1e-13, what);
  /* backward with gout like the forward's output */
  dc_tensor *gout = reduce ? vals(DC_SCALAR_SHAPE, dt, 25, 0.5, 2, false)
                           : vals(DC_SHAPE(E), dt, 25, -1, 1, false);
  dc_tensor *gx = empty(DC_SHAPE(E), dt), *gt = empty(DC_SHAPE(E), dt);
  dc_tensor *gx2 = empty(DC_SHAPE(E), dt), *gt2 = empty(DC_SHAPE(E), dt);
  rc = cpu_nn()->pointwise_loss_backward(op, gx, gt, gout, x, t, w, pw, p, scale);
  cr_assert_eq(rc, DC_OK, "%s", dc_last_error());
  a.per_elem = dc_numel(gout) == E && gout->ndim > 0;
  a.gout = ptr(gout);
  a.gx = ptr(gx2);
  a.gt = ptr(gt2);
  for (int64_t i = 0; i < E; i++) dc__cupw_grad_elem(&a, i);
  close_to(gx, gx2, TOL(dt), "pointwise loss gx");
  close_to(gt, gt2, TOL(dt), "pointwise loss gt");
}

Test(cuda_math, pointwise_losses_match_cpu) {
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int k = 0; k < 2; k++)
    for (int op = 0; op < DC_PWLOSS_COUNT; op++)
      for (int m = 0; m < 8; m++) pw_case((dc_pwloss_op)op, dts[k], m & 1, m & 2, m & 4);
}

Test(cuda_math, bce_check_finds_the_cpus_bad_element) {
  dc_tensor *x = vals(DC_SHAPE(50), DC_F32, 26, 0, 1, false), *t = copy_of(x);
  ((float *)dc_data(x))[17] = 1.5f;
  ((float *)dc_data(x))[30] = NAN;
  dc_tensor *out = empty(DC_SCALAR_SHAPE, DC_F32);
  cr_assert_eq(cpu_nn()->pointwise_loss_forward(DC_PWLOSS_BCE, out, x, t, NULL, NULL, 0, true, 1),
               DC_ERR_ARG);
  cr_expect(strstr(dc_last_error(), "got 1.5 at flat index 17"), "%s", dc_last_error());
  dc__cupw a = {.op = DC_PWLOSS_BCE, .n = 50, .x = ptr(x)};
  int64_t first = -1;
  for (int64_t i = 0; i < 50 && first < 0; i++)
    if (dc__cupw_bad_input(&a, i)) first = i;
  cr_expect_eq(first, 17);
  cr_expect(dc__cupw_bad_input(&a, 30), "NaN is outside [0, 1]");
}

/* ---- cross-entropy / NLL ---- */

static void xent_case(dc_dtype dt, bool log_softmax, bool weighted, double eps, dc_reduction red,
                      bool special) {
  char what[128];
  snprintf(what, sizeof what, "xent log_softmax=%d weighted=%d eps=%g reduction=%d special=%d",
           log_softmax, weighted, eps, (int)red, special);
  int64_t N = 5, C = 7, I = 3, R = N * I, ignore = -100;
  dc_tensor *x = vals(DC_SHAPE(N, C, I), dt, 31, -4, 4, special);
  int64_t tv[15];
  for (int64_t r = 0; r < R; r++) tv[r] = r % 4 == 3 ? ignore : (r * 5 + 2) % C;
  dc_tensor *t = dc_from_data(tv, DC_SHAPE(N, I), DC_I64);
  dc_tensor *w = weighted ? vals(DC_SHAPE(C), dt, 32, 0.2, 2, false) : NULL;
  dc_xent_params p = {.rows = R,
                      .classes = C,
                      .inner = I,
                      .ignore_index = ignore,
                      .smoothing = eps,
                      .log_softmax = log_softmax,
                      .reduction = red};
  dc_shape os = red == DC_REDUCTION_NONE ? DC_SHAPE(N, I) : DC_SCALAR_SHAPE;
  dc_tensor *out = empty(os, dt), *out2 = empty(os, dt);
  dc_tensor *lse = log_softmax ? empty(DC_SHAPE(R), dt) : NULL;
  dc_tensor *lse2 = log_softmax ? empty(DC_SHAPE(R), dt) : NULL;
  double wsum[2] = {0, 0};
  cr_assert_eq(cpu_nn()->xent_forward(out, lse, wsum, x, t, w, &p), DC_OK, "%s", dc_last_error());
  dc__cuxent a = {.R = R,
                  .C = C,
                  .I = I,
                  .ignore = ignore,
                  .eps = eps,
                  .log_softmax = log_softmax,
                  .reduce = red != DC_REDUCTION_NONE,
                  .mean = red == DC_REDUCTION_MEAN,
                  .f64 = dt == DC_F64,
                  .x = ptr(x),
                  .w = ptr(w),
                  .t = tv,
                  .out = ptr(out2),
                  .lse = ptr(lse2)};
  double sums[3] = {0, 0, 0};
  for (int64_t r = 0; r < R; r++) {
    cr_assert(dc__cuxent_target_ok(tv[r], C, true, ignore));
    dc__cuxent_row_forward(&a, r, sums);
  }
  if (a.reduce) dc__hd_st(ptr(out2), 0, a.f64, dc__cuxent_total(&a, sums));
  close_to(out, out2, TOL(dt), what);
  if (lse) close_to(lse, lse2, TOL(dt), "lse");
  cr_expect_eq(wsum[0], sums[2], "%s: wsum %g vs %g", what, wsum[0], sums[2]);
  cr_expect_eq(wsum[1], sums[2]);
  dc_tensor *gout = red == DC_REDUCTION_NONE ? vals(DC_SHAPE(N, I), dt, 33, -1, 1, false)
                                             : vals(DC_SCALAR_SHAPE, dt, 33, 0.5, 2, false);
  dc_tensor *gx = empty(DC_SHAPE(N, C, I), dt), *gx2 = empty(DC_SHAPE(N, C, I), dt);
  cr_assert_eq(cpu_nn()->xent_backward(gx, gout, x, lse, t, w, wsum, &p), DC_OK, "%s",
               dc_last_error());
  a.gout = ptr(gout);
  a.gx = ptr(gx2);
  a.lse = ptr(lse); /* the cpu's, as the backward gets the forward's */
  a.wsum[0] = wsum[0];
  a.wsum[1] = wsum[1];
  for (int64_t r = 0; r < R; r++) dc__cuxent_row_backward(&a, r);
  close_to(gx, gx2, TOL(dt), "xent backward");
}

Test(cuda_math, cross_entropy_and_nll_match_cpu) {
  dc_dtype dts[2] = {DC_F32, DC_F64};
  dc_reduction reds[3] = {DC_REDUCTION_MEAN, DC_REDUCTION_SUM, DC_REDUCTION_NONE};
  for (int k = 0; k < 2; k++)
    for (int r = 0; r < 3; r++)
      for (int m = 0; m < 8; m++) {
        bool ls = m & 1;
        xent_case(dts[k], ls, m & 2, ls && (m & 4) ? 0.1 : 0.0, reds[r], false);
        xent_case(dts[k], ls, m & 2, ls && (m & 4) ? 0.1 : 0.0, reds[r], true);
      }
}

Test(cuda_math, target_check_agrees_with_cpu) {
  dc_tensor *x = vals(DC_SHAPE(4, 3), DC_F32, 34, -1, 1, false);
  int64_t tv[4] = {0, 2, 3, -1};
  dc_tensor *t = dc_from_data(tv, DC_SHAPE(4), DC_I64), *out = empty(DC_SCALAR_SHAPE, DC_F32);
  dc_xent_params p = {.rows = 4,
                      .classes = 3,
                      .inner = 1,
                      .ignore_index = -100,
                      .log_softmax = true,
                      .reduction = DC_REDUCTION_MEAN};
  double wsum[2];
  dc_tensor *lse = empty(DC_SHAPE(4), DC_F32);
  cr_assert_eq(cpu_nn()->xent_forward(out, lse, wsum, x, t, NULL, &p), DC_ERR_ARG);
  cr_expect(strstr(dc_last_error(), "target label 3 at position [2] is out of range for 3 classes"),
            "%s", dc_last_error());
  int64_t first = -1;
  for (int64_t r = 0; r < 4 && first < 0; r++)
    if (!dc__cuxent_target_ok(tv[r], 3, true, -100)) first = r;
  cr_expect_eq(first, 2);
  cr_expect(!dc__cuxent_target_ok(-100, 3, false, 0), "no ignore_index for multi-margin");
  cr_expect(dc__cuxent_target_ok(-100, 3, true, -100));
}

/* ---- multi-class hinge ---- */

Test(cuda_math, multi_margin_matches_cpu) {
  dc_dtype dts[2] = {DC_F32, DC_F64};
  int64_t N = 9, C = 5, tv[9] = {0, 4, 2, 1, 3, 3, 0, 2, 4};
  dc_tensor *t = dc_from_data(tv, DC_SHAPE(N), DC_I64);
  for (int k = 0; k < 2; k++)
    for (int m = 0; m < 16; m++) {
      dc_dtype dt = dts[k];
      int p = m & 1 ? 2 : 1;
      bool weighted = m & 2, reduce = m & 4;
      double margin = m & 8 ? 0.0 : 1.3, scale = reduce ? 1.0 / (double)N : 1.0;
      dc_tensor *x = vals(DC_SHAPE(N, C), dt, 41, -2, 2, m & 8);
      dc_tensor *w = weighted ? vals(DC_SHAPE(C), dt, 42, 0.2, 2, false) : NULL;
      dc_shape os = reduce ? DC_SCALAR_SHAPE : DC_SHAPE(N);
      dc_tensor *out = empty(os, dt), *out2 = empty(os, dt);
      cr_assert_eq(cpu_nn()->multi_margin_forward(out, x, t, w, p, margin, reduce, scale), DC_OK,
                   "%s", dc_last_error());
      dc__cumm a = {.N = N,
                    .C = C,
                    .p = p,
                    .margin = margin,
                    .scale = scale,
                    .f64 = dt == DC_F64,
                    .reduce = reduce,
                    .x = ptr(x),
                    .w = ptr(w),
                    .t = tv,
                    .out = ptr(out2)};
      double s = 0;
      for (int64_t n = 0; n < N; n++) s += dc__cumm_row_forward(&a, n);
      if (reduce) dc__hd_st(ptr(out2), 0, a.f64, s * scale);
      close_to(out, out2, TOL(dt), "multi_margin forward");
      dc_tensor *gout = reduce ? vals(DC_SCALAR_SHAPE, dt, 43, 0.5, 2, false)
                               : vals(DC_SHAPE(N), dt, 43, -1, 1, false);
      dc_tensor *gx = empty(DC_SHAPE(N, C), dt), *gx2 = empty(DC_SHAPE(N, C), dt);
      cr_assert_eq(cpu_nn()->multi_margin_backward(gx, gout, x, t, w, p, margin, scale), DC_OK);
      a.per_row = gout->ndim > 0;
      a.gout = ptr(gout);
      a.gx = ptr(gx2);
      for (int64_t n = 0; n < N; n++) dc__cumm_row_backward(&a, n);
      close_to(gx, gx2, TOL(dt), "multi_margin backward");
    }
}
