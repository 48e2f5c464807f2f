/* CPU pooling kernels: max / avg pooling with padding, dilation and ceil-mode windows, adaptive
 * avg / max pooling, and their backward passes, threaded over planes (one (n, c) image each).
 * Window rules follow PyTorch 1.13 exactly (first maximum wins, NaN counts as a maximum; avg
 * divisors with and without padding). Float32 max pooling without dilation has AVX-512 paths
 * (MaxPool2d(2) also a vectorisable portable one).
 * Shapes: x [P, H, W] (P = N*C planes), y and idx [P, OH, OW]; idx is int32 h * W + w. */
#include "nn-cpu.h"

#include "../../pool-window.h"

#include <math.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

bool dc__cpu_pool_scalar; /* tests: true runs the portable 2x2 kernel instead of AVX-512 */

static bool par_planes(const dc_pool2d_geom *g) { return g->planes * g->h * g->w >= DC__PAR_MIN; }

/* ---- max pooling ---- */

INLINE void max_plane(void *py, int32_t *pi, const void *px, const dc_pool2d_geom *g, int64_t p,
                      bool f64) {
  int64_t H = g->h, W = g->w, dh = g->dilation[0], dw = g->dilation[1];
  int64_t xo = p * H * W, yo = p * g->oh * g->ow;
  for (int64_t oh = 0; oh < g->oh; oh++) {
    int64_t h0 = oh * g->stride[0] - g->pad[0];
    int64_t h1 = h0 + (g->kernel[0] - 1) * dh + 1 < H ? h0 + (g->kernel[0] - 1) * dh + 1 : H;
    while (h0 < 0) h0 += dh;
    for (int64_t ow = 0; ow < g->ow; ow++) {
      int64_t w0 = ow * g->stride[1] - g->pad[1];
      int64_t w1 = w0 + (g->kernel[1] - 1) * dw + 1 < W ? w0 + (g->kernel[1] - 1) * dw + 1 : W;
      while (w0 < 0) w0 += dw;
      int64_t best = h0 * W + w0;
      double m = -INFINITY;
      for (int64_t ih = h0; ih < h1; ih += dh)
        for (int64_t iw = w0; iw < w1; iw += dw) {
          double v = dc__nn_ld(px, xo + ih * W + iw, f64);
          if (v > m || isnan(v)) {
            m = v;
            best = ih * W + iw;
          }
        }
      dc__nn_st(py, yo + oh * g->ow + ow, f64, m);
      if (pi) pi[yo + oh * g->ow + ow] = (int32_t)best;
    }
  }
}

/* kernel 2, stride 2, no padding or dilation, every window inside the input */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
max_plane_2x2_f32(float *restrict y, int32_t *restrict idx, const float *restrict x, int64_t H,
                  int64_t W, int64_t OH, int64_t OW) {
  for (int64_t oh = 0; oh < OH; oh++) {
    const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
    float *yr = y + oh * OW;
    int32_t *ir = idx + oh * OW;
    int32_t base = (int32_t)(2 * oh * W);
    for (int64_t ow = 0; ow < OW; ow++) {
      float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
      float m = a;
      int32_t i = 0;
      bool t = b > m || b != b;
      m = t ? b : m;
      i = t ? 1 : i;
      t = c > m || c != c;
      m = t ? c : m;
      i = t ? (int32_t)W : i;
      t = d > m || d != d;
      m = t ? d : m;
      i = t ? (int32_t)W + 1 : i;
      yr[ow] = m;
      ir[ow] = base + (int32_t)(2 * ow) + i;
    }
  }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_AVX512_POOL 1
/* The same 2x2 kernel 16 outputs at a time: the even and odd columns of both input rows are
 * split with permutes, and the comparisons (strictly greater, or NaN) run as masked blends, so a
 * row costs no branches. Equal to max_plane_2x2_f32 element for element, indices included. */
__attribute__((target("avx512f"))) static void
max_plane_2x2_avx512(float *restrict y, int32_t *restrict idx, const float *restrict x, int64_t H,
                     int64_t W, int64_t OH, int64_t OW) {
  (void)H;
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i one = _mm512_set1_epi32(1), iw = _mm512_set1_epi32((int32_t)W),
                iw1 = _mm512_set1_epi32((int32_t)W + 1);
  for (int64_t oh = 0; oh < OH; oh++) {
    const float *r0 = x + 2 * oh * W, *r1 = r0 + W;
    float *yr = y + oh * OW;
    int32_t *ir = idx + oh * OW;
    int32_t base = (int32_t)(2 * oh * W);
    for (int64_t ow = 0; ow < OW; ow += 16) {
      int64_t rem = OW - ow < 16 ? OW - ow : 16, n2 = 2 * rem;
      __mmask16 om = (__mmask16)(rem == 16 ? 0xFFFF : (1u << rem) - 1);
      __mmask16 mlo = (__mmask16)(n2 >= 16 ? 0xFFFF : (1u << n2) - 1);
      __mmask16 mhi = (__mmask16)(n2 >= 32 ? 0xFFFF : n2 > 16 ? (1u << (n2 - 16)) - 1 : 0);
      __m512 a0 = _mm512_maskz_loadu_ps(mlo, r0 + 2 * ow);
      __m512 a1 = _mm512_maskz_loadu_ps(mhi, r0 + 2 * ow + 16);
      __m512 c0 = _mm512_maskz_loadu_ps(mlo, r1 + 2 * ow);
      __m512 c1 = _mm512_maskz_loadu_ps(mhi, r1 + 2 * ow + 16);
      __m512 a = _mm512_permutex2var_ps(a0, even, a1), b = _mm512_permutex2var_ps(a0, odd, a1);
      __m512 c = _mm512_permutex2var_ps(c0, even, c1), d = _mm512_permutex2var_ps(c0, odd, c1);
      __m512 m = a;
      __m512i i = _mm512_setzero_si512();
      __mmask16 t = _mm512_cmp_ps_mask(b, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
      m = _mm512_mask_mov_ps(m, t, b);
      i = _mm512_mask_mov_epi32(i, t, one);
      t = _mm512_cmp_ps_mask(c, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(c, c, _CMP_UNORD_Q);
      m = _mm512_mask_mov_ps(m, t, c);
      i = _mm512_mask_mov_epi32(i, t, iw);
      t = _mm512_cmp_ps_mask(d, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(d, d, _CMP_UNORD_Q);
      m = _mm512_mask_mov_ps(m, t, d);
      i = _mm512_mask_mov_epi32(i, t, iw1);
      __m512i pos = _mm512_add_epi32(_mm512_set1_epi32(base + (int32_t)(2 * ow)), even);
      _mm512_mask_storeu_ps(yr + ow, om, m);
      _mm512_mask_storeu_epi32(ir + ow, om, _mm512_add_epi32(pos, i));
    }
  }
}

/* Any window with dilation 1, 16 outputs of a row at a time: each window position is a masked
 * gather of the 16 lanes' inputs, compared in max_plane's order (rows, then columns; strictly
 * greater, or NaN) with the same first position where no input is larger than -inf. Equal to
 * max_plane element for element, indices included. ResNet's 3x3 stride-2 stem pooling. */
__attribute__((target("avx512f"))) static void max_plane_avx512(float *restrict y,
                                                                int32_t *restrict idx,
                                                                const float *restrict x,
                                                                const dc_pool2d_geom *g) {
  const int64_t H = g->h, W = g->w, OW = g->ow, kw = g->kernel[1];
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i zero = _mm512_setzero_si512(), vw = _mm512_set1_epi32((int32_t)W);
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  for (int64_t oh = 0; oh < g->oh; oh++) {
    int64_t h0 = oh * g->stride[0] - g->pad[0];
    int64_t h1 = h0 + g->kernel[0] < H ? h0 + g->kernel[0] : H;
    if (h0 < 0) h0 = 0;
    for (int64_t ow = 0; ow < OW; ow += 16) {
      int64_t rem = OW - ow < 16 ? OW - ow : 16;
      __mmask16 om = (__mmask16)(rem == 16 ? 0xFFFF : (1u << rem) - 1);
      /* the lanes' first window column, ow * stride - pad, and the first one inside */
      __m512i w0 = _mm512_sub_epi32(
          _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32((int32_t)ow)),
                             _mm512_set1_epi32((int32_t)g->stride[1])),
          _mm512_set1_epi32((int32_t)g->pad[1]));
      __m512i best =
          _mm512_add_epi32(_mm512_set1_epi32((int32_t)(h0 * W)), _mm512_max_epi32(w0, zero));
      __m512 m = ninf;
      for (int64_t ih = h0; ih < h1; ih++) {
        const float *row = x + ih * W;
        __m512i at = _mm512_set1_epi32((int32_t)(ih * W));
        for (int64_t k = 0; k < kw; k++) {
          __m512i iw = _mm512_add_epi32(w0, _mm512_set1_epi32((int32_t)k));
          __mmask16 in = om & _mm512_cmpge_epi32_mask(iw, zero) & _mm512_cmplt_epi32_mask(iw, vw);
          __m512 v = _mm512_mask_i32gather_ps(ninf, in, iw, row, 4);
          __mmask16 t =
              in & (_mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q));
          m = _mm512_mask_mov_ps(m, t, v);
          best = _mm512_mask_mov_epi32(best, t, _mm512_add_epi32(at, iw));
        }
      }
      _mm512_mask_storeu_ps(y + oh * OW + ow, om, m);
      if (idx) _mm512_mask_storeu_epi32(idx + oh * OW + ow, om, best);
    }
  }
}
#endif

static bool is_2x2(const dc_pool2d_geom *g) {
  return g->kernel[0] == 2 && g->kernel[1] == 2 && g->stride[0] == 2 && g->stride[1] == 2 &&
         g->pad[0] == 0 && g->pad[1] == 0 && g->dilation[0] == 1 && g->dilation[1] == 1 &&
         2 * g->oh <= g->h && 2 * g->ow <= g->w;
}

int dc__cpu_max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                               const dc_pool2d_geom *g) {
  dc__cpu_nn_hint_tensor(y);
  dc__cpu_nn_hint_tensor(idx);
  bool f64 = x->dtype == DC_F64;
  const void *px = dc_data(x);
  void *py = dc_data(y);
  int32_t *pi = idx ? dc_data(idx) : NULL;
  int64_t osz = g->oh * g->ow;
  if (!f64 && pi && is_2x2(g)) {
#ifdef HAVE_AVX512_POOL
    if (__builtin_cpu_supports("avx512f") && !dc__cpu_pool_scalar) {
#pragma omp parallel for schedule(static) if (par_planes(g))
      for (int64_t p = 0; p < g->planes; p++)
        max_plane_2x2_avx512((float *)py + p * osz, pi + p * osz,
                             (const float *)px + p * g->h * g->w, g->h, g->w, g->oh, g->ow);
      return DC_OK;
    }
#endif
#pragma omp parallel for schedule(static) if (par_planes(g))
    for (int64_t p = 0; p < g->planes; p++)
      max_plane_2x2_f32((float *)py + p * osz, pi + p * osz, (const float *)px + p * g->h * g->w,
                        g->h, g->w, g->oh, g->ow);
    return DC_OK;
  }
#ifdef HAVE_AVX512_POOL
  if (!f64 && g->dilation[0] == 1 && g->dilation[1] == 1 && __builtin_cpu_supports("avx512f") &&
      !dc__cpu_pool_scalar) {
#pragma omp parallel for schedule(static) if (par_planes(g))
    for (int64_t p = 0; p < g->planes; p++)
      max_plane_avx512((float *)py + p * osz, pi ? pi + p * osz : NULL,
                       (const float *)px + p * g->h * g->w, g);
    return DC_OK;
  }
#endif
#pragma omp parallel for schedule(static) if (par_planes(g))
  for (int64_t p = 0; p < g->planes; p++) {
    if (f64)
      max_plane(py, pi, px, g, p, true);
    else
      max_plane(py, pi, px, g, p, false);
  }
  return DC_OK;
}

INLINE void scatter_plane(void *pgx, const void *pgy, const int32_t *pi, const dc_pool2d_geom *g,
                          int64_t p, bool f64) {
  int64_t isz = g->h * g->w, osz = g->oh * g->ow;
  if (f64) {
    double *gx = (double *)pgx + p * isz;
    const double *gy = (const double *)pgy + p * osz;
    memset(gx, 0, sizeof *gx * (size_t)isz);
    for (int64_t o = 0; o < osz; o++) gx[pi[p * osz + o]] += gy[o];
  } else {
    float *gx = (float *)pgx + p * isz;
    const float *gy = (const float *)pgy + p * osz;
    memset(gx, 0, sizeof *gx * (size_t)isz);
    for (int64_t o = 0; o < osz; o++) gx[pi[p * osz + o]] += gy[o];
  }
}

int dc__cpu_max_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *idx,
                                const dc_pool2d_geom *g) {
  dc__cpu_nn_hint_tensor(gx);
  bool f64 = gx->dtype == DC_F64;
  void *pgx = dc_data(gx);
  const void *pgy = dc_data(gy);
  const int32_t *pi = dc_data(idx);
#pragma omp parallel for schedule(static) if (par_planes(g))
  for (int64_t p = 0; p < g->planes; p++) {
    if (f64)
      scatter_plane(pgx, pgy, pi, g, p, true);
    else
      scatter_plane(pgx, pgy, pi, g, p, false);
  }
  return DC_OK;
}

/* ---- avg pooling (the window: ../../pool-window.h, CUDA's too) ---- */

INLINE void avg_plane(void *py, const void *px, const dc_pool2d_geom *g, int64_t p, bool f64) {
  int64_t xo = p * g->h * g->w, yo = p * g->oh * g->ow;
  for (int64_t oh = 0; oh < g->oh; oh++)
    for (int64_t ow = 0; ow < g->ow; ow++) {
      dc__pool_win a = dc__pool_avg_window(g, oh, ow);
      double s = 0;
      for (int64_t ih = a.h0; ih < a.h1; ih++)
        for (int64_t iw = a.w0; iw < a.w1; iw++) s += dc__nn_ld(px, xo + ih * g->w + iw, f64);
      dc__nn_st(py, yo + oh * g->ow + ow, f64, a.div > 0 ? s / a.div : 0.0);
    }
}

int dc__cpu_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g) {
  dc__cpu_nn_hint_tensor(y);
  bool f64 = x->dtype == DC_F64;
  const void *px = dc_data(x);
  void *py = dc_data(y);
#pragma omp parallel for schedule(static) if (par_planes(g))
  for (int64_t p = 0; p < g->planes; p++) {
    if (f64)
      avg_plane(py, px, g, p, true);
    else
      avg_plane(py, px, g, p, false);
  }
  return DC_OK;
}

INLINE void avg_plane_backward(void *pgx, const void *pgy, const dc_pool2d_geom *g, int64_t p,
                               bool f64) {
  int64_t xo = p * g->h * g->w, yo = p * g->oh * g->ow;
  for (int64_t i = 0; i < g->h * g->w; i++) dc__nn_st(pgx, xo + i, f64, 0.0);
  for (int64_t oh = 0; oh < g->oh; oh++)
    for (int64_t ow = 0; ow < g->ow; ow++) {
      dc__pool_win a = dc__pool_avg_window(g, oh, ow);
      if (a.div == 0) continue;
      double v = dc__nn_ld(pgy, yo + oh * g->ow + ow, f64) / a.div;
      for (int64_t ih = a.h0; ih < a.h1; ih++)
        for (int64_t iw = a.w0; iw < a.w1; iw++) {
          int64_t k = xo + ih * g->w + iw;
          dc__nn_st(pgx, k, f64, dc__nn_ld(pgx, k, f64) + v);
        }
    }
}

int dc__cpu_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_pool2d_geom *g) {
  dc__cpu_nn_hint_tensor(gx);
  bool f64 = gx->dtype == DC_F64;
  void *pgx = dc_data(gx);
  const void *pgy = dc_data(gy);
#pragma omp parallel for schedule(static) if (par_planes(g))
  for (int64_t p = 0; p < g->planes; p++) {
    if (f64)
      avg_plane_backward(pgx, pgy, g, p, true);
    else
      avg_plane_backward(pgx, pgy, g, p, false);
  }
  return DC_OK;
}

/* ---- adaptive pooling: window o of O over I is [floor(o*I/O), ceil((o+1)*I/O)) ---- */

static int64_t ad_start(int64_t o, int64_t O, int64_t I) { return (o / O) * I + ((o % O) * I) / O; }
static int64_t ad_end(int64_t o, int64_t O, int64_t I) { return 1 + ((o + 1) * I - 1) / O; }

INLINE void adaptive_plane(void *py, int32_t *pi, const void *px, const dc_pool2d_geom *g,
                           int64_t p, bool is_max, bool f64) {
  int64_t xo = p * g->h * g->w, yo = p * g->oh * g->ow;
  for (int64_t oh = 0; oh < g->oh; oh++) {
    int64_t h0 = ad_start(oh, g->oh, g->h), h1 = ad_end(oh, g->oh, g->h);
    for (int64_t ow = 0; ow < g->ow; ow++) {
      int64_t w0 = ad_start(ow, g->ow, g->w), w1 = ad_end(ow, g->ow, g->w);
      double acc = is_max ? -INFINITY : 0.0;
      int64_t best = h0 * g->w + w0;
      for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
          double v = dc__nn_ld(px, xo + ih * g->w + iw, f64);
          if (!is_max) {
            acc += v;
          } else if (v > acc || isnan(v)) {
            acc = v;
            best = ih * g->w + iw;
          }
        }
      int64_t o = yo + oh * g->ow + ow;
      dc__nn_st(py, o, f64, is_max ? acc : acc / (double)((h1 - h0) * (w1 - w0)));
      if (is_max) pi[o] = (int32_t)best;
    }
  }
}

static int adaptive_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                            const dc_pool2d_geom *g, bool is_max) {
  dc__cpu_nn_hint_tensor(y);
  bool f64 = x->dtype == DC_F64;
  const void *px = dc_data(x);
  void *py = dc_data(y);
  int32_t *pi = idx ? dc_data(idx) : NULL;
#pragma omp parallel for schedule(static) if (par_planes(g))
  for (int64_t p = 0; p < g->planes; p++) {
    if (f64)
      adaptive_plane(py, pi, px, g, p, is_max, true);
    else
      adaptive_plane(py, pi, px, g, p, is_max, false);
  }
  return DC_OK;
}

int dc__cpu_adaptive_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g) {
  return adaptive_forward(y, NULL, x, g, false);
}

int dc__cpu_adaptive_max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                                        const dc_pool2d_geom *g) {
  return adaptive_forward(y, idx, x, g, true);
}

INLINE void adaptive_avg_plane_backward(void *pgx, const void *pgy, const dc_pool2d_geom *g,
                                        int64_t p, bool f64) {
  int64_t xo = p * g->h * g->w, yo = p * g->oh * g->ow;
  for (int64_t i = 0; i < g->h * g->w; i++) dc__nn_st(pgx, xo + i, f64, 0.0);
  for (int64_t oh = 0; oh < g->oh; oh++) {
    int64_t h0 = ad_start(oh, g->oh, g->h), h1 = ad_end(oh, g->oh, g->h);
    for (int64_t ow = 0; ow < g->ow; ow++) {
      int64_t w0 = ad_start(ow, g->ow, g->w), w1 = ad_end(ow, g->ow, g->w);
      double v = dc__nn_ld(pgy, yo + oh * g->ow + ow, f64) / (double)((h1 - h0) * (w1 - w0));
      for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
          int64_t k = xo + ih * g->w + iw;
          dc__nn_st(pgx, k, f64, dc__nn_ld(pgx, k, f64) + v);
        }
    }
  }
}

int dc__cpu_adaptive_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy,
                                         const dc_pool2d_geom *g) {
  dc__cpu_nn_hint_tensor(gx);
  bool f64 = gx->dtype == DC_F64;
  void *pgx = dc_data(gx);
  const void *pgy = dc_data(gy);
#pragma omp parallel for schedule(static) if (par_planes(g))
  for (int64_t p = 0; p < g->planes; p++) {
    if (f64)
      adaptive_avg_plane_backward(pgx, pgy, g, p, true);
    else
      adaptive_avg_plane_backward(pgx, pgy, g, p, false);
  }
  return DC_OK;
}
