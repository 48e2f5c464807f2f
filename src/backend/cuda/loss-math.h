/* The arithmetic of the CUDA losses (loss.cu, xent.cu), one element or one row at a time, as
 * __host__ __device__ functions: the kernels only cut the work into blocks and sum, and
 * tests/unit/test_cuda_math.c runs these same functions on the host against the CPU backend
 * (cpu/nn/loss.c, cpu/nn/xent.c, whose formulas they are; the pointwise losses' own formula is
 * one, ../pwloss-math.h, that the CPU includes too). Plain C when not compiled by nvcc.
 * Shapes: E elements of a pointwise loss (x, t, weight, pos_weight, gx, gt [E], out/gout [E] or
 * 0-d); cross-entropy x, gx [N, C, I] with R = N * I rows, row r = (n, i) the C values
 * x[n, :, i], target int64 [R], weight [C], out/gout/lse [R]; multi-margin x, gx [N, C]. */
#ifndef DC_CUDA_LOSS_MATH_H
#define DC_CUDA_LOSS_MATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "../nn-kernels.h"
#ifdef __cplusplus
}
#endif
#include "../pwloss-math.h"

#include "../hd.h"

/* ---- pointwise losses ---- */

/* One pointwise loss call; weight, pos_weight NULL when absent, gx/gt NULL when not wanted. */
typedef struct dc__cupw {
  dc_pwloss_op op;
  bool f64, reduce;
  bool per_elem; /* backward: gout [E], else 0-d */
  int64_t n;     /* E */
  double p, scale;
  const void *x, *t, *w, *pw, *gout;
  void *out, *gx, *gt;
} dc__cupw;

/* BCE's input check: element i outside [0, 1] (NaN included) */
DC__HD bool dc__cupw_bad_input(const dc__cupw *a, int64_t i) {
  double v = dc__hd_ld(a->x, i, a->f64);
  return a->op == DC_PWLOSS_BCE && !(v >= 0 && v <= 1);
}
/* element i's weighted loss; stored in out[i] unless reduced (then the caller sums it) */
DC__HD double dc__cupw_loss_elem(const dc__cupw *a, int64_t i) {
  double l = dc__pwloss_value(a->op, dc__hd_ld(a->x, i, a->f64), dc__hd_ld(a->t, i, a->f64), a->p,
                              a->pw ? dc__hd_ld(a->pw, i, a->f64) : NAN);
  if (a->w) l *= dc__hd_ld(a->w, i, a->f64);
  if (!a->reduce) dc__hd_st(a->out, i, a->f64, l);
  return l;
}
/* gx[i], gt[i] = the element's gradients times gout (per element or 0-d), scale, weight */
DC__HD void dc__cupw_grad_elem(const dc__cupw *a, int64_t i) {
  double dx, dt, g = dc__hd_ld(a->gout, a->per_elem ? i : 0, a->f64) * a->scale;
  dc__pwloss_grad(a->op, dc__hd_ld(a->x, i, a->f64), dc__hd_ld(a->t, i, a->f64), a->p,
                  a->pw ? dc__hd_ld(a->pw, i, a->f64) : NAN, &dx, &dt);
  if (a->w) g *= dc__hd_ld(a->w, i, a->f64);
  if (a->gx) dc__hd_st(a->gx, i, a->f64, dx * g);
  if (a->gt) dc__hd_st(a->gt, i, a->f64, dt * g);
}

/* ---- cross-entropy / NLL ---- */

/* One cross-entropy call (params as dc_xent_params). */
typedef struct dc__cuxent {
  int64_t R, C, I, ignore;
  double eps; /* label smoothing */
  bool log_softmax, reduce, mean, f64;
  const void *x, *w, *gout; /* w NULL: unweighted */
  const int64_t *t;
  void *out, *lse, *gx;
  double wsum[2]; /* backward: the forward's weighted-mean denominators */
} dc__cuxent;

/* a target is a class in [0, C) or (has_ignore) the ignore_index */
DC__HD bool dc__cuxent_target_ok(int64_t t, int64_t C, bool has_ignore, int64_t ignore) {
  return (has_ignore && t == ignore) || (t >= 0 && t < C);
}
DC__HD int64_t dc__cuxent_base(const dc__cuxent *a, int64_t r) {
  return (r / a->I) * a->C * a->I + r % a->I;
}
DC__HD double dc__cuxent_w(const dc__cuxent *a, int64_t c) {
  return a->w ? dc__hd_ld(a->w, c, a->f64) : 1.0;
}
/* the largest of the row's C values (NaN if one is NaN) */
DC__HD double dc__cuxent_row_max(const dc__cuxent *a, int64_t base) {
  double mx = -INFINITY;
  for (int64_t c = 0; c < a->C; c++) {
    double v = dc__hd_ld(a->x, base + c * a->I, a->f64);
    if (v > mx || isnan(v)) mx = v;
  }
  return mx;
}
/* Row r: writes lse[r] (log_softmax) and out[r] (unreduced); adds the row's NLL term, smoothing
 * term and target weight to sums[0..2] (a non-ignored row only). The log-probability of class c
 * is (x[c] - max) - lse, never x[c] - (max + lse), which loses lse at |max| = 1e30. */
DC__HD void dc__cuxent_row_forward(const dc__cuxent *a, int64_t r, double *sums) {
  int64_t base = dc__cuxent_base(a, r), C = a->C, I = a->I;
  double mx = 0, ls = 0;
  if (a->log_softmax) {
    mx = dc__cuxent_row_max(a, base);
    double se = 0;
    for (int64_t c = 0; c < C; c++) se += exp(dc__hd_ld(a->x, base + c * I, a->f64) - mx);
    ls = isinf(mx) ? 0 : log(se);
    dc__hd_st(a->lse, r, a->f64, ls);
  }
  int64_t t = a->t[r];
  double row = 0;
  if (t != a->ignore) {
    double wt = dc__cuxent_w(a, t);
    double na = -wt * ((dc__hd_ld(a->x, base + t * I, a->f64) - mx) - ls), s = 0;
    if (a->eps > 0)
      for (int64_t c = 0; c < C; c++)
        s -= dc__cuxent_w(a, c) * ((dc__hd_ld(a->x, base + c * I, a->f64) - mx) - ls);
    sums[0] += na;
    sums[1] += s;
    sums[2] += wt;
    row = (1 - a->eps) * na + a->eps / (double)C * s;
  }
  if (!a->reduce) dc__hd_st(a->out, r, a->f64, row);
}
/* the reduced loss from the summed terms (sum of NLL terms, of smoothing terms, of weights):
 * MEAN divides both by the summed weights of the non-ignored targets, as PyTorch 1.13 */
DC__HD double dc__cuxent_total(const dc__cuxent *a, const double *sums) {
  double eps = a->eps, C = (double)a->C;
  if (a->mean) return (1 - eps) * sums[0] / sums[2] + (eps > 0 ? eps / C * sums[1] / sums[2] : 0.0);
  return (1 - eps) * sums[0] + eps / C * sums[1];
}
/* gx of row r: softmax minus the (smoothed, weighted) one-hot target, times gout (NLL: -w[t] at
 * t); 0 for an ignored row */
DC__HD void dc__cuxent_row_backward(const dc__cuxent *a, int64_t r) {
  int64_t base = dc__cuxent_base(a, r), t = a->t[r], C = a->C, I = a->I;
  if (t == a->ignore) {
    for (int64_t c = 0; c < C; c++) dc__hd_st(a->gx, base + c * I, a->f64, 0.0);
    return;
  }
  double W = 0;
  for (int64_t c = 0; c < C; c++) W += dc__cuxent_w(a, c);
  double g = dc__hd_ld(a->gout, a->reduce ? 0 : r, a->f64), wt = dc__cuxent_w(a, t);
  double d1 = a->mean ? a->wsum[0] : 1.0, d2 = a->mean ? a->wsum[1] : 1.0;
  double c1 = (1 - a->eps) * g / d1 * wt, c2 = a->eps / (double)C * g / d2;
  if (!a->log_softmax) {
    for (int64_t c = 0; c < C; c++) dc__hd_st(a->gx, base + c * I, a->f64, c == t ? -c1 : 0.0);
    return;
  }
  double mx = dc__cuxent_row_max(a, base), ls = dc__hd_ld(a->lse, r, a->f64);
  for (int64_t c = 0; c < C; c++) {
    double pc = exp((dc__hd_ld(a->x, base + c * I, a->f64) - mx) - ls);
    double v = c1 * (pc - (double)(c == t)) + c2 * (pc * W - dc__cuxent_w(a, c));
    dc__hd_st(a->gx, base + c * I, a->f64, v);
  }
}

/* ---- multi-class hinge: loss_n = sum over i != y of w[y] max(0, margin - x[y] + x[i])^p / C ----
 */

typedef struct dc__cumm {
  int64_t N, C;
  int p; /* 1 or 2 */
  double margin, scale;
  bool f64, reduce, per_row; /* per_row: gout [N], else 0-d */
  const void *x, *w, *gout;
  const int64_t *t;
  void *out, *gx;
} dc__cumm;

/* row n's loss; stored in out[n] unless reduced (then the caller sums it) */
DC__HD double dc__cumm_row_forward(const dc__cumm *a, int64_t n) {
  int64_t y = a->t[n], C = a->C;
  double xy = dc__hd_ld(a->x, n * C + y, a->f64), s = 0;
  for (int64_t i = 0; i < C; i++) {
    if (i == y) continue;
    double z = a->margin - xy + dc__hd_ld(a->x, n * C + i, a->f64);
    if (z > 0) s += (a->p == 1 ? z : z * z) * (a->w ? dc__hd_ld(a->w, y, a->f64) : 1.0);
  }
  s /= (double)C;
  if (!a->reduce) dc__hd_st(a->out, n, a->f64, s);
  return s;
}
/* gx of row n */
DC__HD void dc__cumm_row_backward(const dc__cumm *a, int64_t n) {
  int64_t y = a->t[n], C = a->C;
  double g = dc__hd_ld(a->gout, a->per_row ? n : 0, a->f64) * a->scale / (double)C;
  if (a->w) g *= dc__hd_ld(a->w, y, a->f64);
  double xy = dc__hd_ld(a->x, n * C + y, a->f64), gy = 0;
  for (int64_t i = 0; i < C; i++) {
    if (i == y) continue;
    double z = a->margin - xy + dc__hd_ld(a->x, n * C + i, a->f64);
    double h = z > 0 ? (a->p == 1 ? g : 2 * g * z) : 0.0;
    gy -= h;
    dc__hd_st(a->gx, n * C + i, a->f64, h);
  }
  dc__hd_st(a->gx, n * C + y, a->f64, gy);
}

#endif
