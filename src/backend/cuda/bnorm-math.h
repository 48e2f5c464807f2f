/* The arithmetic of the CUDA batch norm (bnorm.cu), one element or one channel at a time, as
 * __host__ __device__ functions: the kernels only cut the work into blocks and reduce, and
 * tests/unit/test_cuda_math.c runs these same functions on the host against the CPU backend
 * (cpu/nn/batchnorm.c and nn-cpu.h's dc__bn_moments / dc__bn_grad_of, whose formulas they are).
 * Plain C when not compiled by nvcc. Shapes: x, y, yr, gx, gy [N, C, S]; i in [0, N*S) walks
 * channel c's values (n = i / S, s = i % S); weight, bias, running stats, mean, invstd, gw, gb
 * [C]. */
#ifndef DC_CUDA_BNORM_MATH_H
#define DC_CUDA_BNORM_MATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "../hd.h"

/* One batch norm call. Inputs const, outputs not; mean/invstd are outputs of the forward and
 * inputs of the backward. Pointers are element 0 of contiguous tensors, NULL when absent. */
typedef struct dc__cubn {
  int64_t N, C, S;
  bool f64; /* x, y, weight, bias, mean, invstd, gy, yr, gx, gw, gb: float64, else float32 */
  bool rm_f64, rv_f64; /* running_mean's, running_var's dtype */
  bool batch_stats;    /* normalise with the batch's statistics (and update the running ones) */
  bool relu;           /* forward: y = max(bn(x), 0) */
  double momentum, eps;
  const void *x, *weight, *bias, *gy, *yr; /* yr: the fused forward's output (backward), or NULL */
  void *y, *mean, *invstd, *rmean, *rvar, *gx, *gw, *gb;
} dc__cubn;

/* p[c], or dflt when p is NULL */
DC__HD double dc__cubn_ld_opt(const void *p, int64_t c, bool f64, double dflt) {
  return p ? dc__hd_ld(p, c, f64) : dflt;
}
/* flat offset of channel c's i-th value */
DC__HD int64_t dc__cubn_off(const dc__cubn *b, int64_t c, int64_t i) {
  return ((i / b->S) * b->C + c) * b->S + i % b->S;
}

/* ---- forward ---- */

/* the shift of channel c's shifted sums: its first value (0 for an empty channel) */
DC__HD double dc__cubn_shift(const dc__cubn *b, int64_t c) {
  return b->N * b->S > 0 ? dc__hd_ld(b->x, c * b->S, b->f64) : 0.0;
}
/* s1 += x - shift, s2 += (x - shift)^2 for channel c's i-th value */
DC__HD void dc__cubn_stat_elem(const dc__cubn *b, int64_t c, int64_t i, double shift, double *s1,
                               double *s2) {
  double d = dc__hd_ld(b->x, dc__cubn_off(b, c, i), b->f64) - shift;
  *s1 += d;
  *s2 += d * d;
}
/* channel c's mean and biased variance: from the sums (batch_stats) or the running stats */
DC__HD void dc__cubn_stats(const dc__cubn *b, int64_t c, double shift, double s1, double s2,
                           double *mean, double *var) {
  if (!b->batch_stats) {
    *mean = dc__cubn_ld_opt(b->rmean, c, b->rm_f64, 0.0);
    *var = dc__cubn_ld_opt(b->rvar, c, b->rv_f64, 1.0);
    return;
  }
  double M = (double)(b->N * b->S), d = s1 / M;
  *mean = shift + d;
  *var = s2 / M - d * d;
  if (*var < 0) *var = 0;
}
/* What one thread per channel writes: save_mean, save_invstd and (batch_stats) the running
 * stats moved by momentum, the variance unbiased. */
DC__HD void dc__cubn_store(const dc__cubn *b, int64_t c, double mean, double var) {
  dc__hd_st(b->mean, c, b->f64, mean);
  dc__hd_st(b->invstd, c, b->f64, 1.0 / sqrt(var + b->eps));
  if (!b->batch_stats) return;
  double M = (double)(b->N * b->S), mo = b->momentum;
  if (b->rmean)
    dc__hd_st(b->rmean, c, b->rm_f64, (1 - mo) * dc__hd_ld(b->rmean, c, b->rm_f64) + mo * mean);
  if (b->rvar) {
    double unbiased = M > 1 ? var * M / (M - 1) : var;
    dc__hd_st(b->rvar, c, b->rv_f64, (1 - mo) * dc__hd_ld(b->rvar, c, b->rv_f64) + mo * unbiased);
  }
}
/* y = (x - mean) * a + beta with a = invstd * weight (x - mean first: x * a + (beta - mean a)
 * cancels when |mean| >> the spread of x); float32 in float as the CPU's rows; relu keeps NaN */
DC__HD void dc__cubn_affine_elem(const dc__cubn *b, int64_t c, int64_t i, double mean, double var) {
  double a = 1.0 / sqrt(var + b->eps) * dc__cubn_ld_opt(b->weight, c, b->f64, 1.0);
  double beta = dc__cubn_ld_opt(b->bias, c, b->f64, 0.0);
  int64_t o = dc__cubn_off(b, c, i);
  if (b->f64) {
    double v = (((const double *)b->x)[o] - mean) * a + beta;
    ((double *)b->y)[o] = b->relu && v < 0 ? 0.0 : v;
  } else {
    float v = (((const float *)b->x)[o] - (float)mean) * (float)a + (float)beta;
    ((float *)b->y)[o] = b->relu && v < 0.0f ? 0.0f : v;
  }
}

/* ---- backward ---- */

/* gy at flat offset o, zero where the fused ReLU's output yr is <= 0 (a NaN passes) */
DC__HD double dc__cubn_dy(const dc__cubn *b, int64_t o) {
  if (b->yr && dc__hd_ld(b->yr, o, b->f64) <= 0) return 0.0;
  return dc__hd_ld(b->gy, o, b->f64);
}
/* sdy += dy, sdyx += dy * (x - m) for channel c's i-th value */
DC__HD void dc__cubn_dot_elem(const dc__cubn *b, int64_t c, int64_t i, double m, double *sdy,
                              double *sdyx) {
  int64_t o = dc__cubn_off(b, c, i);
  double d = dc__cubn_dy(b, o);
  *sdy += d;
  *sdyx += d * (dc__hd_ld(b->x, o, b->f64) - m);
}
/* the per-channel terms (nn-cpu.h's dc__bn_grad_of): gx = dy * k + (x - m) * a + bc, that is
 * (dy - gmean - (x - m) * proj) * k; training mode (batch_stats) only has gmean and proj */
typedef struct dc__cubn_grad {
  double m, k, a, bc, proj, gmean;
} dc__cubn_grad;
DC__HD dc__cubn_grad dc__cubn_grad_of(const dc__cubn *b, int64_t c, double sdy, double sdyx) {
  dc__cubn_grad g;
  double is = dc__hd_ld(b->invstd, c, b->f64), M = (double)(b->N * b->S);
  g.m = dc__hd_ld(b->mean, c, b->f64);
  g.k = dc__cubn_ld_opt(b->weight, c, b->f64, 1.0) * is;
  g.a = g.bc = g.proj = g.gmean = 0.0;
  if (b->batch_stats && M > 0) {
    g.proj = sdyx * is * is / M;
    g.gmean = sdy / M;
    g.a = -g.proj * g.k;
    g.bc = -g.gmean * g.k;
  }
  return g;
}
/* what one thread per channel writes: gb = sum(dy), gw = sum(dy * (x - m)) * invstd */
DC__HD void dc__cubn_store_grads(const dc__cubn *b, int64_t c, double sdy, double sdyx) {
  if (b->gb) dc__hd_st(b->gb, c, b->f64, sdy);
  if (b->gw) dc__hd_st(b->gw, c, b->f64, sdyx * dc__hd_ld(b->invstd, c, b->f64));
}
/* gx of channel c's i-th value. Eval: dy * k (no x term, so an infinite x gives no NaN).
 * Training: float64 as (dy - gmean - (x - m) * proj) * k; float32 in float as the CPU's rows,
 * (dy k + (x - m) a) + bc alone and dy k + ((x - m) a + bc) fused with the ReLU. */
DC__HD void dc__cubn_grad_elem(const dc__cubn *b, int64_t c, int64_t i, const dc__cubn_grad *g) {
  int64_t o = dc__cubn_off(b, c, i);
  if (!b->batch_stats) {
    double d = dc__hd_ld(b->gy, o, b->f64), y = b->yr ? dc__hd_ld(b->yr, o, b->f64) : 1.0;
    dc__hd_st(b->gx, o, b->f64, y <= 0 ? 0.0 : d * g->k);
    return;
  }
  double d = dc__cubn_dy(b, o);
  if (b->f64) {
    ((double *)b->gx)[o] = (d - g->gmean - (((const double *)b->x)[o] - g->m) * g->proj) * g->k;
    return;
  }
  float df = (float)d, xm = ((const float *)b->x)[o] - (float)g->m;
  float kf = (float)g->k, af = (float)g->a, bf = (float)g->bc;
  ((float *)b->gx)[o] = b->yr ? df * kf + (xm * af + bf) : df * kf + xm * af + bf;
}

#endif
