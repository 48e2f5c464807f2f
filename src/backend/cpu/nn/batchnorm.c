/* CPU batch norm, forward and backward, threaded over channels, alone or fused with the ReLU
 * that follows it (y = max(bn(x), 0) in the same pass; the backward zeroes gy where y <= 0 as it
 * reads it, so a NaN passes as in the ReLU's own rule). Statistics take one pass per channel
 * (shifted sums, so the variance does not cancel), the normalisation a second pass that finds the
 * channel's data still in cache; the backward pass is one reduction plus one fused elementwise
 * pass. Row sums run in float lanes and are combined in double, in a fixed order. Shapes: x, y, gx,
 * gy [N, C, S]; weight, bias, running stats, mean, invstd, gw, gb [C]. */
#include "nn-cpu.h"

#include <math.h>

#define LANES 16
#define CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

/* ---- row helpers (one row = the S elements of one (n, c)) ---- */

/* s1 += sum(x - c), s2 += sum((x - c)^2) */
CLONES static void stats_row_f32(const float *restrict x, int64_t S, float c, double *s1,
                                 double *s2) {
  float a[LANES] = {0}, b[LANES] = {0};
  int64_t s = 0;
  for (; s + LANES <= S; s += LANES)
    for (int j = 0; j < LANES; j++) {
      float d = x[s + j] - c;
      a[j] += d;
      b[j] += d * d;
    }
  double t1 = 0, t2 = 0;
  for (int j = 0; j < LANES; j++) {
    t1 += a[j];
    t2 += b[j];
  }
  for (; s < S; s++) {
    double d = (double)x[s] - c;
    t1 += d;
    t2 += d * d;
  }
  *s1 += t1;
  *s2 += t2;
}

static void stats_row_f64(const double *x, int64_t S, double c, double *s1, double *s2) {
  for (int64_t s = 0; s < S; s++) {
    double d = x[s] - c;
    *s1 += d;
    *s2 += d * d;
  }
}

/* s1 += sum(dy), s2 += sum(dy * (x - m)) */
CLONES static void dot_row_f32(const float *restrict dy, const float *restrict x, int64_t S,
                               float m, double *s1, double *s2) {
  float a[LANES] = {0}, b[LANES] = {0};
  int64_t s = 0;
  for (; s + LANES <= S; s += LANES)
    for (int j = 0; j < LANES; j++) {
      a[j] += dy[s + j];
      b[j] += dy[s + j] * (x[s + j] - m);
    }
  double t1 = 0, t2 = 0;
  for (int j = 0; j < LANES; j++) {
    t1 += a[j];
    t2 += b[j];
  }
  for (; s < S; s++) {
    t1 += dy[s];
    t2 += (double)dy[s] * ((double)x[s] - m);
  }
  *s1 += t1;
  *s2 += t2;
}

static void dot_row_f64(const double *dy, const double *x, int64_t S, double m, double *s1,
                        double *s2) {
  for (int64_t s = 0; s < S; s++) {
    *s1 += dy[s];
    *s2 += dy[s] * (x[s] - m);
  }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX512_BN 1
/* dot_row_relu_f32 for AVX-512 with explicit masks (the compiler leaves the select in the lane
 * loop scalar): the same lanes, the same order, the same sums. */
__attribute__((target("avx512f"))) static void
dot_row_relu_avx512(const float *restrict dy, const float *restrict y, const float *restrict x,
                    int64_t S, float m, double *s1, double *s2) {
  __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps(), vm = _mm512_set1_ps(m);
  int64_t s = 0;
  for (; s + LANES <= S; s += LANES) {
    __mmask16 pos = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + s), _mm512_setzero_ps(), _CMP_NLE_UQ);
    __m512 d = _mm512_maskz_mov_ps(pos, _mm512_loadu_ps(dy + s));
    a = _mm512_add_ps(a, d);
    b = _mm512_fmadd_ps(d, _mm512_sub_ps(_mm512_loadu_ps(x + s), vm), b);
  }
  float la[LANES], lb[LANES];
  _mm512_storeu_ps(la, a);
  _mm512_storeu_ps(lb, b);
  double t1 = 0, t2 = 0;
  for (int j = 0; j < LANES; j++) {
    t1 += la[j];
    t2 += lb[j];
  }
  for (; s < S; s++) {
    float d = y[s] <= 0 ? 0.0f : dy[s];
    t1 += d;
    t2 += (double)d * ((double)x[s] - m);
  }
  *s1 += t1;
  *s2 += t2;
}

/* grad_row_relu_f32 for AVX-512 */
__attribute__((target("avx512f"))) static void
grad_row_relu_avx512(float *restrict gx, const float *restrict dy, const float *restrict y,
                     const float *restrict x, int64_t S, float m, float k, float a, float b) {
  __m512 vk = _mm512_set1_ps(k), va = _mm512_set1_ps(a), vb = _mm512_set1_ps(b);
  __m512 vm = _mm512_set1_ps(m);
  int64_t s = 0;
  for (; s + LANES <= S; s += LANES) {
    __mmask16 pos = _mm512_cmp_ps_mask(_mm512_loadu_ps(y + s), _mm512_setzero_ps(), _CMP_NLE_UQ);
    __m512 d = _mm512_maskz_mov_ps(pos, _mm512_loadu_ps(dy + s));
    __m512 t = _mm512_fmadd_ps(_mm512_sub_ps(_mm512_loadu_ps(x + s), vm), va, vb);
    _mm512_storeu_ps(gx + s, _mm512_fmadd_ps(d, vk, t));
  }
  for (; s < S; s++) gx[s] = (y[s] <= 0 ? 0.0f : dy[s]) * k + ((x[s] - m) * a + b);
}
#endif

/* s1 += sum(dy'), s2 += sum(dy' * (x - m)) with dy' = y <= 0 ? 0 : dy (the ReLU's gradient) */
CLONES static void dot_row_relu_f32(const float *restrict dy, const float *restrict y,
                                    const float *restrict x, int64_t S, float m, double *s1,
                                    double *s2) {
  float a[LANES] = {0}, b[LANES] = {0};
  int64_t s = 0;
  for (; s + LANES <= S; s += LANES)
    for (int j = 0; j < LANES; j++) {
      float d = y[s + j] <= 0 ? 0.0f : dy[s + j];
      a[j] += d;
      b[j] += d * (x[s + j] - m);
    }
  double t1 = 0, t2 = 0;
  for (int j = 0; j < LANES; j++) {
    t1 += a[j];
    t2 += b[j];
  }
  for (; s < S; s++) {
    float d = y[s] <= 0 ? 0.0f : dy[s];
    t1 += d;
    t2 += (double)d * ((double)x[s] - m);
  }
  *s1 += t1;
  *s2 += t2;
}

static void dot_row_relu_f64(const double *dy, const double *y, const double *x, int64_t S,
                             double m, double *s1, double *s2) {
  for (int64_t s = 0; s < S; s++) {
    double d = y[s] <= 0 ? 0.0 : dy[s];
    *s1 += d;
    *s2 += d * (x[s] - m);
  }
}

/* y = (x - m) * a + b (x - m first: x * a + (b - m a) cancels when |m| >> the spread of x) */
CLONES static void affine_row_f32(float *restrict y, const float *restrict x, int64_t S, float m,
                                  float a, float b) {
  for (int64_t s = 0; s < S; s++) y[s] = (x[s] - m) * a + b;
}

/* y = relu((x - m) * a + b), NaN kept as the ReLU keeps it */
CLONES static void affine_relu_row_f32(float *restrict y, const float *restrict x, int64_t S,
                                       float m, float a, float b) {
  for (int64_t s = 0; s < S; s++) {
    float v = (x[s] - m) * a + b;
    y[s] = v < 0.0f ? 0.0f : v;
  }
}

/* gx = dy * k + x * a + b */
CLONES static void grad_row_f32(float *restrict gx, const float *restrict dy,
                                const float *restrict x, int64_t S, float m, float k, float a,
                                float b) {
  for (int64_t s = 0; s < S; s++) gx[s] = dy[s] * k + (x[s] - m) * a + b;
}

/* gx = dy' * k + (x - m) * a + b, dy' = y <= 0 ? 0 : dy (equal to grad_row_f32 of the masked dy
 * up to where the compiler contracts the products into FMAs: an ulp apart at most) */
CLONES static void grad_row_relu_f32(float *restrict gx, const float *restrict dy,
                                     const float *restrict y, const float *restrict x, int64_t S,
                                     float m, float k, float a, float b) {
  for (int64_t s = 0; s < S; s++) {
    float d = y[s] <= 0 ? 0.0f : dy[s], t = (x[s] - m) * a + b;
    gx[s] = d * k + t;
  }
}

/* ---- forward ---- */

/* relu: y = max(bn(x), 0) */
static int bn_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                      const dc_tensor *x, const dc_tensor *weight, const dc_tensor *bias,
                      dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                      double momentum, double eps, bool relu) {
  dc__cpu_nn_hint_tensor(y);
  bool f64 = x->dtype == DC_F64;
  int64_t N = x->shape[0], C = x->shape[1], S = dc_numel(x) / (N * C > 0 ? N * C : 1);
  int64_t M = N * S;
  const char *px = dc_data(x);
  char *py = dc_data(y);
  size_t z = dc_dtype_size(x->dtype);
#pragma omp parallel for schedule(static) if (N * C * S >= DC__PAR_MIN)
  for (int64_t c = 0; c < C; c++) {
    double mean, var;
    if (batch_stats) {
      double shift = M > 0 ? dc__nn_ld(px, c * S, f64) : 0.0, s1 = 0, s2 = 0;
      for (int64_t n = 0; n < N; n++) {
        const char *row = px + (size_t)((n * C + c) * S) * z;
        if (f64)
          stats_row_f64((const double *)row, S, shift, &s1, &s2);
        else
          stats_row_f32((const float *)row, S, (float)shift, &s1, &s2);
      }
      dc__bn_moments(shift, s1, s2, (double)M, c, running_mean, running_var, momentum, &mean, &var);
    } else {
      mean = dc__nn_ld_opt(running_mean, c, 0);
      var = dc__nn_ld_opt(running_var, c, 1);
    }
    double invstd = 1.0 / sqrt(var + eps);
    dc__nn_st(dc_data(save_mean), c, f64, mean);
    dc__nn_st(dc_data(save_invstd), c, f64, invstd);
    double beta = dc__nn_ld_opt(bias, c, 0.0), a = invstd * dc__nn_ld_opt(weight, c, 1.0);
    for (int64_t n = 0; n < N; n++) {
      size_t off = (size_t)((n * C + c) * S) * z;
      if (f64) {
        const double *xr = (const double *)(px + off);
        double *yr = (double *)(py + off);
        for (int64_t s = 0; s < S; s++) {
          double v = (xr[s] - mean) * a + beta;
          yr[s] = relu && v < 0 ? 0.0 : v;
        }
      } else if (relu) {
        affine_relu_row_f32((float *)(py + off), (const float *)(px + off), S, (float)mean,
                            (float)a, (float)beta);
      } else {
        affine_row_f32((float *)(py + off), (const float *)(px + off), S, (float)mean, (float)a,
                       (float)beta);
      }
    }
  }
  if (running_mean) running_mean->storage->version++;
  if (running_var) running_var->storage->version++;
  return DC_OK;
}

int dc__cpu_batch_norm_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                               const dc_tensor *x, const dc_tensor *weight, const dc_tensor *bias,
                               dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                               double momentum, double eps) {
  return bn_forward(y, save_mean, save_invstd, x, weight, bias, running_mean, running_var,
                    batch_stats, momentum, eps, false);
}

int dc__cpu_batch_norm_relu_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                                    const dc_tensor *x, const dc_tensor *weight,
                                    const dc_tensor *bias, dc_tensor *running_mean,
                                    dc_tensor *running_var, bool batch_stats, double momentum,
                                    double eps) {
  return bn_forward(y, save_mean, save_invstd, x, weight, bias, running_mean, running_var,
                    batch_stats, momentum, eps, true);
}

/* ---- backward ---- */

/* eval mode: gx = dy' * k for channel c's rows (no x term, so an infinite x does not make the
 * gradient NaN through (x - m) * 0); dy' masked by the fused ReLU's output yr when given */
static void eval_grad_channel(char *pgx, const char *pdy, const char *pyr, int64_t N, int64_t C,
                              int64_t S, int64_t c, double k, bool f64) {
  size_t z = f64 ? sizeof(double) : sizeof(float);
  for (int64_t n = 0; n < N; n++) {
    size_t off = (size_t)((n * C + c) * S) * z;
    for (int64_t s = 0; s < S; s++) {
      double d = f64 ? ((const double *)(pdy + off))[s] : ((const float *)(pdy + off))[s];
      double y = !pyr  ? 1.0
                 : f64 ? ((const double *)(pyr + off))[s]
                       : ((const float *)(pyr + off))[s];
      d = y <= 0 ? 0.0 : d * k; /* the mask of the fused rows below */
      if (f64)
        ((double *)(pgx + off))[s] = d;
      else
        ((float *)(pgx + off))[s] = (float)d;
    }
  }
}

/* yr: the ReLU output [N, C, S] of the fused forward (its gradient masks gy), or NULL */
static int bn_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                       const dc_tensor *yr, const dc_tensor *x, const dc_tensor *weight,
                       const dc_tensor *mean, const dc_tensor *invstd, bool batch_stats) {
  dc__cpu_nn_hint_tensor(gx);
  bool f64 = x->dtype == DC_F64;
  int64_t N = x->shape[0], C = x->shape[1], S = dc_numel(x) / (N * C > 0 ? N * C : 1);
  double M = (double)(N * S);
  const char *px = dc_data(x), *pdy = dc_data(gy), *pyr = yr ? dc_data(yr) : NULL;
  char *pgx = gx ? dc_data(gx) : NULL;
  size_t z = dc_dtype_size(x->dtype);
  bool need_sums = gw || gb || (gx && batch_stats);
#ifdef HAVE_AVX512_BN
  bool use_avx512 = __builtin_cpu_supports("avx512f");
#else
  bool use_avx512 = false;
#endif
#pragma omp parallel for schedule(static) if (N * C * S >= DC__PAR_MIN)
  for (int64_t c = 0; c < C; c++) {
    double m = dc__nn_ld(dc_data(mean), c, f64), is = dc__nn_ld(dc_data(invstd), c, f64);
    double sdy = 0, sdyx = 0;
    for (int64_t n = 0; need_sums && n < N; n++) {
      size_t off = (size_t)((n * C + c) * S) * z;
      if (f64 && pyr)
        dot_row_relu_f64((const double *)(pdy + off), (const double *)(pyr + off),
                         (const double *)(px + off), S, m, &sdy, &sdyx);
      else if (f64)
        dot_row_f64((const double *)(pdy + off), (const double *)(px + off), S, m, &sdy, &sdyx);
      else if (pyr && use_avx512)
        dot_row_relu_avx512((const float *)(pdy + off), (const float *)(pyr + off),
                            (const float *)(px + off), S, (float)m, &sdy, &sdyx);
      else if (pyr)
        dot_row_relu_f32((const float *)(pdy + off), (const float *)(pyr + off),
                         (const float *)(px + off), S, (float)m, &sdy, &sdyx);
      else
        dot_row_f32((const float *)(pdy + off), (const float *)(px + off), S, (float)m, &sdy,
                    &sdyx);
    }
    if (gb) dc__nn_st(dc_data(gb), c, f64, sdy);
    if (gw) dc__nn_st(dc_data(gw), c, f64, sdyx * is);
    if (!gx) continue;
    /* training: gx = (dy - mean(dy) - (x - m) * is^2 * mean(dy * (x - m))) * w * is
     * eval:     gx = dy * w * is */
    dc__bn_grad t = dc__bn_grad_of(dc__nn_ld_opt(weight, c, 1.0), m, is, sdy, sdyx, M, batch_stats);
    double k = t.k, a = t.a, proj = t.proj, gmean = t.gmean;
    if (!batch_stats) {
      eval_grad_channel(pgx, pdy, pyr, N, C, S, c, k, f64);
      continue;
    }
    /* float32 rows take x - m first: x * a + t.b cancels when |m| >> the spread of x */
    double bc = -gmean * k;
    for (int64_t n = 0; n < N; n++) {
      size_t off = (size_t)((n * C + c) * S) * z;
      if (f64) {
        const double *dr = (const double *)(pdy + off), *xr = (const double *)(px + off);
        const double *yrr = pyr ? (const double *)(pyr + off) : NULL;
        double *gr = (double *)(pgx + off);
        for (int64_t s = 0; s < S; s++) {
          double d = yrr && yrr[s] <= 0 ? 0.0 : dr[s];
          gr[s] = (d - gmean - (xr[s] - m) * proj) * k;
        }
      } else if (pyr && use_avx512) {
        grad_row_relu_avx512((float *)(pgx + off), (const float *)(pdy + off),
                             (const float *)(pyr + off), (const float *)(px + off), S, (float)m,
                             (float)k, (float)a, (float)bc);
      } else if (pyr) {
        grad_row_relu_f32((float *)(pgx + off), (const float *)(pdy + off),
                          (const float *)(pyr + off), (const float *)(px + off), S, (float)m,
                          (float)k, (float)a, (float)bc);
      } else {
        grad_row_f32((float *)(pgx + off), (const float *)(pdy + off), (const float *)(px + off), S,
                     (float)m, (float)k, (float)a, (float)bc);
      }
    }
  }
  return DC_OK;
}

int dc__cpu_batch_norm_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                                const dc_tensor *x, const dc_tensor *weight, const dc_tensor *mean,
                                const dc_tensor *invstd, bool batch_stats) {
  return bn_backward(gx, gw, gb, gy, NULL, x, weight, mean, invstd, batch_stats);
}

int dc__cpu_batch_norm_relu_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb,
                                     const dc_tensor *gy, const dc_tensor *y, const dc_tensor *x,
                                     const dc_tensor *weight, const dc_tensor *mean,
                                     const dc_tensor *invstd, bool batch_stats) {
  return bn_backward(gx, gw, gb, gy, y, x, weight, mean, invstd, batch_stats);
}
