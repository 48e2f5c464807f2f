/* The arithmetic of one output (forward) or one input position (backward) of the CUDA pooling
 * kernels (pool.cu), as plain C functions nvcc compiles for host and device, so a host test
 * (tests/unit/test_cuda_pool_math.c) runs them over CPU tensors against cpu/nn/pool.c here.
 * The rules are the CPU's: first maximum wins, NaN counts as a maximum; sums in double; the
 * backward passes gather (no atomics) in the CPU's scatter order, rounding after each add.
 * Shapes: x and gx [P, H, W], y, gy and idx [P, OH, OW]; idx is int32 h * W + w in the plane. */
#ifndef DC_CUDA_POOL_MATH_H
#define DC_CUDA_POOL_MATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "../nn-kernels.h"
#include "../pool-window.h"

#include "../hd.h"

DC__HD double dc__pool_ld(const void *x, bool f64, int64_t i) {
  return f64 ? ((const double *)x)[i] : (double)((const float *)x)[i];
}

/* acc + v rounded to the tensor's dtype, as the CPU's gx[i] += v does (float: double rounding
 * of a sum through double equals float addition) */
DC__HD double dc__pool_acc(double acc, double v, bool f64) {
  return f64 ? acc + v : (double)(float)(acc + v);
}

/* ---- max pooling (cpu/nn/pool.c max_plane) ---- */

/* y at output (p, oh, ow); *best its argmax in the plane */
DC__HD double dc__pool_max_at(const dc_pool2d_geom *g, const void *x, bool f64, int64_t p,
                              int64_t oh, int64_t ow, int32_t *best) {
  int64_t H = g->h, W = g->w, dh = g->dilation[0], dw = g->dilation[1];
  int64_t h0 = oh * g->stride[0] - g->pad[0], w0 = ow * g->stride[1] - g->pad[1];
  int64_t h1 = h0 + (g->kernel[0] - 1) * dh + 1, w1 = w0 + (g->kernel[1] - 1) * dw + 1;
  if (h1 > H) h1 = H;
  if (w1 > W) w1 = W;
  while (h0 < 0) h0 += dh;
  while (w0 < 0) w0 += dw;
  int64_t b = h0 * W + w0, xo = p * H * W;
  double m = -INFINITY;
  for (int64_t ih = h0; ih < h1; ih += dh)
    for (int64_t iw = w0; iw < w1; iw += dw) {
      double v = dc__pool_ld(x, f64, xo + ih * W + iw);
      if (v > m || v != v) {
        m = v;
        b = ih * W + iw;
      }
    }
  *best = (int32_t)b;
  return m;
}

/* ---- avg pooling (the window: ../pool-window.h, the CPU's too) ---- */

/* y at output (p, oh, ow) */
DC__HD double dc__pool_avg_at(const dc_pool2d_geom *g, const void *x, bool f64, int64_t p,
                              int64_t oh, int64_t ow) {
  dc__pool_win a = dc__pool_avg_window(g, oh, ow);
  int64_t xo = p * g->h * g->w;
  double s = 0;
  for (int64_t ih = a.h0; ih < a.h1; ih++)
    for (int64_t iw = a.w0; iw < a.w1; iw++) s += dc__pool_ld(x, f64, xo + ih * g->w + iw);
  return a.div > 0 ? s / a.div : 0.0;
}

/* The outputs [*lo, *hi] along one dim whose (unclipped) window [o*s - pad, o*s - pad + span)
 * can hold input position i. */
DC__HD void dc__pool_range(int64_t i, int64_t s, int64_t pad, int64_t span, int64_t O, int64_t *lo,
                           int64_t *hi) {
  int64_t first = i + pad - span + 1; /* o*s >= first */
  *lo = first <= 0 ? 0 : (first + s - 1) / s;
  *hi = (i + pad) / s;
  if (*hi > O - 1) *hi = O - 1;
}

/* gx at input (p, ih, iw): gy / divisor of every window holding it, in output order */
DC__HD double dc__pool_avg_grad_at(const dc_pool2d_geom *g, const void *gy, bool f64, int64_t p,
                                   int64_t ih, int64_t iw) {
  int64_t oh0, oh1, ow0, ow1, yo = p * g->oh * g->ow;
  dc__pool_range(ih, g->stride[0], g->pad[0], g->kernel[0], g->oh, &oh0, &oh1);
  dc__pool_range(iw, g->stride[1], g->pad[1], g->kernel[1], g->ow, &ow0, &ow1);
  double acc = 0.0;
  for (int64_t oh = oh0; oh <= oh1; oh++)
    for (int64_t ow = ow0; ow <= ow1; ow++) {
      dc__pool_win a = dc__pool_avg_window(g, oh, ow);
      if (a.div == 0 || ih < a.h0 || ih >= a.h1 || iw < a.w0 || iw >= a.w1) continue;
      acc = dc__pool_acc(acc, dc__pool_ld(gy, f64, yo + oh * g->ow + ow) / a.div, f64);
    }
  return acc;
}

/* ---- adaptive pooling: window o of O over I is [floor(o*I/O), ceil((o+1)*I/O)) ---- */

DC__HD int64_t dc__pool_ad_start(int64_t o, int64_t O, int64_t I) {
  return (o / O) * I + ((o % O) * I) / O;
}
DC__HD int64_t dc__pool_ad_end(int64_t o, int64_t O, int64_t I) {
  return 1 + ((o + 1) * I - 1) / O;
}
/* the outputs [*lo, *hi] whose window holds input position i */
DC__HD void dc__pool_ad_range(int64_t i, int64_t O, int64_t I, int64_t *lo, int64_t *hi) {
  *lo = i * O / I;
  *hi = ((i + 1) * O + I - 1) / I - 1;
  if (*hi > O - 1) *hi = O - 1;
}

/* y at output (p, oh, ow): the mean, or with is_max the maximum and *best its argmax */
DC__HD double dc__pool_adaptive_at(const dc_pool2d_geom *g, const void *x, bool f64, int64_t p,
                                   int64_t oh, int64_t ow, bool is_max, int32_t *best) {
  int64_t h0 = dc__pool_ad_start(oh, g->oh, g->h), h1 = dc__pool_ad_end(oh, g->oh, g->h);
  int64_t w0 = dc__pool_ad_start(ow, g->ow, g->w), w1 = dc__pool_ad_end(ow, g->ow, g->w);
  int64_t xo = p * g->h * g->w, b = h0 * g->w + w0;
  double acc = is_max ? -INFINITY : 0.0;
  for (int64_t ih = h0; ih < h1; ih++)
    for (int64_t iw = w0; iw < w1; iw++) {
      double v = dc__pool_ld(x, f64, xo + ih * g->w + iw);
      if (!is_max) {
        acc += v;
      } else if (v > acc || v != v) {
        acc = v;
        b = ih * g->w + iw;
      }
    }
  *best = (int32_t)b;
  return is_max ? acc : acc / (double)((h1 - h0) * (w1 - w0));
}

/* gx at input (p, ih, iw) of adaptive avg pooling: gy / window size of every window holding it */
DC__HD double dc__pool_adaptive_avg_grad_at(const dc_pool2d_geom *g, const void *gy, bool f64,
                                            int64_t p, int64_t ih, int64_t iw) {
  int64_t oh0, oh1, ow0, ow1, yo = p * g->oh * g->ow;
  dc__pool_ad_range(ih, g->oh, g->h, &oh0, &oh1);
  dc__pool_ad_range(iw, g->ow, g->w, &ow0, &ow1);
  double acc = 0.0;
  for (int64_t oh = oh0; oh <= oh1; oh++) {
    int64_t h0 = dc__pool_ad_start(oh, g->oh, g->h), h1 = dc__pool_ad_end(oh, g->oh, g->h);
    if (ih < h0 || ih >= h1) continue;
    for (int64_t ow = ow0; ow <= ow1; ow++) {
      int64_t w0 = dc__pool_ad_start(ow, g->ow, g->w), w1 = dc__pool_ad_end(ow, g->ow, g->w);
      if (iw < w0 || iw >= w1) continue;
      double v = dc__pool_ld(gy, f64, yo + oh * g->ow + ow) / (double)((h1 - h0) * (w1 - w0));
      acc = dc__pool_acc(acc, v, f64);
    }
  }
  return acc;
}

/* ---- max pooling backward (plain and adaptive: the geometry's kernel is 0 for adaptive) ---- */

/* gx at input (p, ih, iw): the sum of gy over the outputs whose idx names this position, in
 * output order. Only windows that can hold the position are read: an argmax lies in its window. */
DC__HD double dc__pool_max_grad_at(const dc_pool2d_geom *g, const void *gy, const int32_t *idx,
                                   bool f64, int64_t p, int64_t ih, int64_t iw) {
  int64_t oh0, oh1, ow0, ow1, yo = p * g->oh * g->ow;
  if (g->kernel[0] == 0) { /* adaptive */
    dc__pool_ad_range(ih, g->oh, g->h, &oh0, &oh1);
    dc__pool_ad_range(iw, g->ow, g->w, &ow0, &ow1);
  } else {
    dc__pool_range(ih, g->stride[0], g->pad[0], (g->kernel[0] - 1) * g->dilation[0] + 1, g->oh,
                   &oh0, &oh1);
    dc__pool_range(iw, g->stride[1], g->pad[1], (g->kernel[1] - 1) * g->dilation[1] + 1, g->ow,
                   &ow0, &ow1);
  }
  int32_t at = (int32_t)(ih * g->w + iw);
  double acc = 0.0;
  for (int64_t oh = oh0; oh <= oh1; oh++)
    for (int64_t ow = ow0; ow <= ow1; ow++) {
      int64_t o = yo + oh * g->ow + ow;
      if (idx[o] == at) acc = dc__pool_acc(acc, dc__pool_ld(gy, f64, o), f64);
    }
  return acc;
}

#endif
