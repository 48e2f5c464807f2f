/* CPU conv2d -> batch norm [-> ReLU [-> 2x2 max pooling (stride 2, floor mode)]] as one op: the
 * optional conv_block entries of nn-kernels.h, which Conv2d, BatchNorm2d[, ReLU[, MaxPool2d(2)]]
 * in a Sequential and ResNet's blocks run as. The convolution (oneDNN, or Winograd F(2x2, 5x5)
 * from wino5.c for 5x5 layers) leaves its output in the blocked layout yc [N][K/16][OH][OW][16];
 * the batch-norm statistics, the normalisation, the ReLU and the pooling then run over the 16
 * channels of a block per AVX-512 vector, and only the output is written in NCHW (pooled: a
 * quarter of the size; else through 16x16 transposes in the same pass). Neither direction
 * reorders the full-size activation on its own, and the pooled backward reads it twice instead
 * of six times. Forward: yc = conv(x); statistics of yc (shifted sums, as batchnorm.c);
 * z = yc * a + b, r = max(z, 0) (NaN kept) with the ReLU; pooled, per 2x2 window y = the first
 * largest r (a NaN wins), idx = its position 0..3 (row-major in the window).
 * Backward: d = gy (at the window's argmax when pooled, else 0) except where z <= 0 with the
 * ReLU (a NaN z passes, as the ReLU's rule), else 0 (the pooling's and the ReLU's gradients); the
 * batch-norm sums over d; then one pass writes the convolution's output gradient gyc = d * k + yc *
 * a' + b' (batchnorm.c's formula) in the blocked layout for the convolution's backward-data and
 * backward-weights passes. Per-channel sums run in float lanes per (n, channel block) and are
 * combined in double in batch order, so the result does not depend on the thread count. Shapes: x
 * [N, C, H, W]; w [K, C, kH, kW]; yc, gyc [N, K/16, OH, OW, 16]; y, gy [N, K, PH, PW] with PH =
 * OH/2, PW = OW/2 when pooled, else OH, OW; idx uint8 [N, K/16, PH, PW, 16] (pooled); per-channel
 * vectors [K]. */
#include "nn-cpu.h"

#include <math.h>

#define V 16 /* channels per block: the floats of one vector */

#if defined(__x86_64__)
#include <immintrin.h>

#include "transpose16.h"

#define AVX512 __attribute__((target("avx512f")))

typedef struct blk_geom {
  int64_t n, kb, oh, ow, ph, pw; /* batch, channel blocks, conv output, pooled output */
} blk_geom;

static blk_geom geom_of(const dc_conv2d_geom *g) {
  return (blk_geom){g->n, g->k / V, g->oh, g->ow, g->oh / 2, g->ow / 2};
}

/* relu(z) with NaN kept (z < 0 is false for NaN) */
AVX512 static inline __m512 relu(__m512 z) {
  return _mm512_mask_mov_ps(z, _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ),
                            _mm512_setzero_ps());
}

/* the 16 lanes of a float vector added into double sums s[16] */
AVX512 static void add_lanes(double *s, __m512 v) {
  float t[V];
  _mm512_storeu_ps(t, v);
  for (int l = 0; l < V; l++) s[l] += t[l];
}

/* ---- forward ---- */

/* s1 += sum(y - shift), s2 += sum((y - shift)^2) over the S positions of one block plane
 * y [S][16]; four accumulators of each */
AVX512 static void stats_plane(const float *y, int64_t S, const float *shift16, double *s1,
                               double *s2) {
  const __m512 shift = _mm512_loadu_ps(shift16);
  __m512 a[4], b[4];
  for (int u = 0; u < 4; u++) a[u] = b[u] = _mm512_setzero_ps();
  int64_t s = 0;
  for (; s + 4 <= S; s += 4)
    for (int u = 0; u < 4; u++) {
      __m512 d = _mm512_sub_ps(_mm512_loadu_ps(y + (s + u) * V), shift);
      a[u] = _mm512_add_ps(a[u], d);
      b[u] = _mm512_fmadd_ps(d, d, b[u]);
    }
  for (; s < S; s++) {
    __m512 d = _mm512_sub_ps(_mm512_loadu_ps(y + s * V), shift);
    a[0] = _mm512_add_ps(a[0], d);
    b[0] = _mm512_fmadd_ps(d, d, b[0]);
  }
  add_lanes(s1, _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
  add_lanes(s2, _mm512_add_ps(_mm512_add_ps(b[0], b[1]), _mm512_add_ps(b[2], b[3])));
}

/* One block plane: r = relu(yc * a + b), pooled 2x2: out [PH * PW][16] the maxima, ix (when
 * not NULL) their positions in the window */
AVX512 static void norm_pool_plane(const float *yc, float *out, uint8_t *ix, const blk_geom *b,
                                   const float *a16, const float *b16) {
  const __m512 va = _mm512_loadu_ps(a16), vb = _mm512_loadu_ps(b16);
  const int64_t row = b->ow * V;
  for (int64_t i = 0; i < b->ph; i++)
    for (int64_t j = 0; j < b->pw; j++) {
      const float *p = yc + 2 * i * row + 2 * j * V;
      const float *q[4] = {p, p + V, p + row, p + row + V};
      __m512 best = relu(_mm512_fmadd_ps(_mm512_loadu_ps(q[0]), va, vb));
      __m512i id = _mm512_setzero_si512();
      for (int k = 1; k < 4; k++) {
        __m512 r = relu(_mm512_fmadd_ps(_mm512_loadu_ps(q[k]), va, vb));
        __mmask16 m =
            _mm512_cmp_ps_mask(r, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(r, r, _CMP_UNORD_Q);
        best = _mm512_mask_mov_ps(best, m, r);
        id = _mm512_mask_mov_epi32(id, m, _mm512_set1_epi32(k));
      }
      int64_t o = (i * b->pw + j) * V;
      _mm512_storeu_ps(out + o, best);
      if (ix) _mm_storeu_si128((__m128i *)(ix + o), _mm512_cvtepi32_epi8(id));
    }
}

/* ---- backward ---- */

/* One block plane: d [P][16] holds gy (transposed) on entry and the masked gradient on exit:
 * gy where the window's argmax has z = yc * a + b > 0, else 0. s1 += sum(d),
 * s2 += sum(d * (yc - mean)) (batchnorm.c's sums, over the argmaxes, the only nonzero d). */
AVX512 static void grad_pool_plane(const float *yc, float *d, const uint8_t *ix, const blk_geom *b,
                                   const float *a16, const float *b16, const float *m16, double *s1,
                                   double *s2) {
  const __m512 va = _mm512_loadu_ps(a16), vb = _mm512_loadu_ps(b16), vm = _mm512_loadu_ps(m16);
  const int64_t row = b->ow * V;
  __m512 acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
  for (int64_t i = 0; i < b->ph; i++)
    for (int64_t j = 0; j < b->pw; j++) {
      int64_t o = (i * b->pw + j) * V;
      const float *p = yc + 2 * i * row + 2 * j * V;
      __m512i id = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ix + o)));
      __m512 y = _mm512_loadu_ps(p);
      y = _mm512_mask_loadu_ps(y, _mm512_cmpeq_epi32_mask(id, _mm512_set1_epi32(1)), p + V);
      y = _mm512_mask_loadu_ps(y, _mm512_cmpeq_epi32_mask(id, _mm512_set1_epi32(2)), p + row);
      y = _mm512_mask_loadu_ps(y, _mm512_cmpeq_epi32_mask(id, _mm512_set1_epi32(3)), p + row + V);
      __mmask16 pos =
          _mm512_cmp_ps_mask(_mm512_fmadd_ps(y, va, vb), _mm512_setzero_ps(), _CMP_NLE_UQ);
      __m512 g = _mm512_maskz_mov_ps(pos, _mm512_loadu_ps(d + o));
      _mm512_storeu_ps(d + o, g);
      acc1 = _mm512_add_ps(acc1, g);
      acc2 = _mm512_fmadd_ps(g, _mm512_sub_ps(y, vm), acc2);
    }
  add_lanes(s1, acc1);
  add_lanes(s2, acc2);
}

/* yc * a + b where the channel has a term (a or b nonzero), else 0: in eval mode a = b = 0 and
 * an inf or NaN yc gives no NaN there (torch's eval-mode backward has no yc term). live is
 * affine_live(a, b). */
AVX512 static inline __mmask16 affine_live(__m512 va, __m512 vb) {
  return _mm512_cmp_ps_mask(va, _mm512_setzero_ps(), _CMP_NEQ_UQ) |
         _mm512_cmp_ps_mask(vb, _mm512_setzero_ps(), _CMP_NEQ_UQ);
}
AVX512 static inline __m512 affine_term(const float *yc, __m512 va, __m512 vb, __mmask16 live) {
  return _mm512_maskz_fmadd_ps(live, _mm512_loadu_ps(yc), va, vb);
}

/* gyc = d' * k + yc * a + b over one block plane, d' = d at the window's argmax, else 0 (also
 * on the last row / column that floor-mode pooling leaves out) */
AVX512 static void grad_conv_plane(float *gyc, const float *yc, const float *d, const uint8_t *ix,
                                   const blk_geom *b, const double *co) {
  float kab[3][V]; /* the block's 16 channels of co [16][k, a, b] */
  for (int l = 0; l < V; l++)
    for (int j = 0; j < 3; j++) kab[j][l] = (float)co[3 * l + j];
  const __m512 vk = _mm512_loadu_ps(kab[0]), va = _mm512_loadu_ps(kab[1]),
               vb = _mm512_loadu_ps(kab[2]);
  const __mmask16 live = affine_live(va, vb);
  const int64_t row = b->ow * V;
  for (int64_t i = 0; i < b->ph; i++) {
    for (int64_t j = 0; j < b->pw; j++) {
      int64_t o = (i * b->pw + j) * V, off = 2 * i * row + 2 * j * V;
      __m512i id = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(ix + o)));
      __m512 g = _mm512_loadu_ps(d + o);
      const int64_t at[4] = {off, off + V, off + row, off + row + V};
      for (int k = 0; k < 4; k++) {
        __m512 dk = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(id, _mm512_set1_epi32(k)), g);
        __m512 t = affine_term(yc + at[k], va, vb, live);
        _mm512_storeu_ps(gyc + at[k], _mm512_fmadd_ps(dk, vk, t));
      }
    }
    if (b->ow & 1) /* the column pooling leaves out */
      for (int64_t r = 2 * i; r < 2 * i + 2; r++) {
        int64_t at = r * row + (b->ow - 1) * V;
        _mm512_storeu_ps(gyc + at, affine_term(yc + at, va, vb, live));
      }
  }
  if (b->oh & 1) /* the row pooling leaves out */
    for (int64_t w = 0; w < b->ow; w++) {
      int64_t at = (b->oh - 1) * row + w * V;
      _mm512_storeu_ps(gyc + at, affine_term(yc + at, va, vb, live));
    }
}

/* ---- without pooling: the output and its gradient are full-size NCHW planes ---- */

/* z = yc * a + b at position p of one block plane y [S][16], relu'd when relu_on */
AVX512 static inline __m512 norm_at(const float *yc, int64_t p, __m512 va, __m512 vb,
                                    bool relu_on) {
  __m512 z = _mm512_fmadd_ps(_mm512_loadu_ps(yc + p * V), va, vb);
  return relu_on ? relu(z) : z;
}

/* One block plane: out, NCHW planes [16][S], = z (relu'd when relu_on); 16 positions per
 * transpose, the last S % 16 one by one */
AVX512 static void norm_plane(const float *yc, float *out, int64_t S, const float *a16,
                              const float *b16, bool relu_on) {
  const __m512 va = _mm512_loadu_ps(a16), vb = _mm512_loadu_ps(b16);
  int64_t p = 0;
  for (; p + V <= S; p += V) {
    __m512 r[V];
    for (int q = 0; q < V; q++) r[q] = norm_at(yc, p + q, va, vb, relu_on);
    dc__transpose16(r);
    for (int l = 0; l < V; l++) _mm512_storeu_ps(out + l * S + p, r[l]);
  }
  for (; p < S; p++) {
    float t[V];
    _mm512_storeu_ps(t, norm_at(yc, p, va, vb, relu_on));
    for (int l = 0; l < V; l++) out[l * S + p] = t[l];
  }
}

/* The gradient d at position p of one block plane from gy's planes [16][S]: r[q] (q < cnt) the
 * 16 channels of gy at p + q, zeroed with the ReLU where z = yc * a + b <= 0 */
AVX512 static inline void grad_at(__m512 *r, int cnt, const float *gy, int64_t S, int64_t p,
                                  const float *yc, __m512 va, __m512 vb, bool relu_on) {
  if (cnt == V) {
    for (int l = 0; l < V; l++) r[l] = _mm512_loadu_ps(gy + l * S + p);
    dc__transpose16(r);
  } else {
    float t[V];
    for (int l = 0; l < V; l++) t[l] = gy[l * S + p];
    r[0] = _mm512_loadu_ps(t);
  }
  if (relu_on)
    for (int q = 0; q < cnt; q++) {
      __m512 z = _mm512_fmadd_ps(_mm512_loadu_ps(yc + (p + q) * V), va, vb);
      r[q] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_NLE_UQ), r[q]);
    }
}

/* One block plane: s1 += sum(d), s2 += sum(d * (yc - mean)) (batchnorm.c's sums) */
AVX512 static void grad_sums_plane(const float *yc, const float *gy, int64_t S, const float *a16,
                                   const float *b16, const float *m16, bool relu_on, double *s1,
                                   double *s2) {
  const __m512 va = _mm512_loadu_ps(a16), vb = _mm512_loadu_ps(b16), vm = _mm512_loadu_ps(m16);
  __m512 acc1 = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
  for (int64_t p = 0; p < S;) {
    int cnt = S - p >= V ? V : 1;
    __m512 r[V];
    grad_at(r, cnt, gy, S, p, yc, va, vb, relu_on);
    for (int q = 0; q < cnt; q++) {
      acc1 = _mm512_add_ps(acc1, r[q]);
      acc2 = _mm512_fmadd_ps(r[q], _mm512_sub_ps(_mm512_loadu_ps(yc + (p + q) * V), vm), acc2);
    }
    p += cnt;
  }
  add_lanes(s1, acc1);
  add_lanes(s2, acc2);
}

/* gyc = d * k + yc * a' + b' over one block plane; a16, b16 the forward's affine (the ReLU's
 * mask), co [16][k, a', b'] */
AVX512 static void grad_conv_plane_full(float *gyc, const float *yc, const float *gy, int64_t S,
                                        const float *a16, const float *b16, bool relu_on,
                                        const double *co) {
  float kab[3][V];
  for (int l = 0; l < V; l++)
    for (int j = 0; j < 3; j++) kab[j][l] = (float)co[3 * l + j];
  const __m512 vk = _mm512_loadu_ps(kab[0]), va2 = _mm512_loadu_ps(kab[1]),
               vb2 = _mm512_loadu_ps(kab[2]);
  const __m512 va = _mm512_loadu_ps(a16), vb = _mm512_loadu_ps(b16);
  const __mmask16 live = affine_live(va2, vb2);
  for (int64_t p = 0; p < S;) {
    int cnt = S - p >= V ? V : 1;
    __m512 r[V];
    grad_at(r, cnt, gy, S, p, yc, va, vb, relu_on);
    for (int q = 0; q < cnt; q++) {
      int64_t at = (p + q) * V;
      __m512 t = affine_term(yc + at, va2, vb2, live);
      _mm512_storeu_ps(gyc + at, _mm512_fmadd_ps(r[q], vk, t));
    }
    p += cnt;
  }
}

/* ---- entry points ---- */

/* NCHW planes [16][P] from block-plane vectors v [P][16], and back: 16x16 transposes, the
 * last P % 16 positions one by one */
AVX512 static void to_planes(float *planes, const float *v, int64_t P) {
  int64_t p = 0;
  for (; p + V <= P; p += V) dc__copy_transposed16(planes + p, P, v + p * V, V);
  for (int l = 0; l < V; l++)
    for (int64_t q = p; q < P; q++) planes[l * P + q] = v[q * V + l];
}
AVX512 static void from_planes(float *v, const float *planes, int64_t P) {
  int64_t p = 0;
  for (; p + V <= P; p += V) dc__copy_transposed16(v + p * V, V, planes + p, P);
  for (int64_t q = p; q < P; q++)
    for (int l = 0; l < V; l++) v[q * V + l] = planes[l * P + q];
}

/* The convolution runs as Winograd F(2x2, 5x5) (wino5.c) on the layers it fits unless
 * direct convolution is asked for, else through oneDNN. */
static bool use_wino5(const dc_conv2d_geom *g) {
  return g->algo != DC_CONV_ALGO_DIRECT && dc__cpu_wino5_fits(g) &&
         (g->algo == DC_CONV_ALGO_WINOGRAD || (g->oh >= 8 && g->ow >= 8));
}

int dc__cpu_conv_block_plan(const dc_conv2d_geom *g, bool has_bias, size_t *bytes) {
  if (!__builtin_cpu_supports("avx512f") || g->oh < 2 || g->ow < 2 || g->n < 1)
    return DC_ERR_UNSUPPORTED;
  if (!use_wino5(g)) return dc__cpu_conv2d_dnnl_blocked_plan(g, has_bias, bytes);
  *bytes = (size_t)(g->n * g->k * g->oh * g->ow) * sizeof(float);
  return DC_OK;
}

/* nchw [N, C, H, W] from the blocked blk [N, C/16, H, W, 16] */
AVX512 static void blocked_copy(float *blk, float *nchw, int64_t n, int64_t c, int64_t hw) {
#pragma omp parallel for schedule(static) if (n * c * hw >= DC__PAR_MIN)
  for (int64_t it = 0; it < n * (c / V); it++) /* it = n * C/16 + cb */
    to_planes(nchw + it * V * hw, blk + it * hw * V, hw);
}

/* The block's convolution: yc = conv(x) in the blocked layout */
static int conv_forward(float *yc, const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                        const dc_conv2d_geom *g) {
  if (!use_wino5(g)) return dc__cpu_conv2d_dnnl_forward_blocked(yc, x, w, b, g);
  return dc__cpu_wino5_forward(yc, dc_data(x), dc_data(w), b ? dc_data(b) : NULL, g);
}

/* ... and its gradients from gyc in the blocked layout (each of gx, gw, gb NULL when not
 * wanted) */
static int conv_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const float *gyc,
                         const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g) {
  if (!use_wino5(g)) return dc__cpu_conv2d_dnnl_backward_blocked(gx, gw, gb, gyc, x, w, g);
  int rc = DC_OK;
  if (gx) { /* in the blocked layout, then NCHW */
    float *buf = dc__cpu_ws_get((size_t)dc_numel(x) * sizeof(float));
    rc = buf ? dc__cpu_wino5_backward_data(buf, gyc, dc_data(w), g)
             : dc__errs(DC_ERR_NOMEM, "conv2d: out of memory for scratch buffers");
    if (rc == DC_OK) blocked_copy(buf, dc_data(gx), g->n, g->c, g->h * g->w);
    dc__cpu_ws_put(buf);
  }
  if (rc == DC_OK && (gw || gb)) {
    float *gwd = gw ? dc_data(gw) : dc__cpu_ws_get((size_t)dc_numel(w) * sizeof(float));
    rc = gwd ? dc__cpu_wino5_backward_weights(gwd, gb ? dc_data(gb) : NULL, dc_data(x), gyc, g)
             : dc__errs(DC_ERR_NOMEM, "conv2d: out of memory for scratch buffers");
    if (!gw) dc__cpu_ws_put(gwd);
  }
  return rc;
}

/* AVX-512 throughout: the plan has checked the CPU */
AVX512 int dc__cpu_conv_block_forward(dc_tensor *y, dc_tensor *yc, dc_tensor *idx, dc_tensor *stats,
                                      const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                                      const dc_tensor *bn_w, const dc_tensor *bn_b,
                                      dc_tensor *running_mean, dc_tensor *running_var,
                                      bool batch_stats, double momentum, double eps,
                                      const dc_conv2d_geom *g, int mode) {
  int rc = conv_forward(dc_data(yc), x, w, b, g);
  if (rc != DC_OK) return rc;
  const blk_geom bg = geom_of(g);
  const int64_t K = g->k, S = bg.oh * bg.ow, P = bg.ph * bg.pw, items = bg.n * bg.kb;
  const float *pyc = dc_data(yc);
  double *sums = dc__cpu_ws_get((size_t)(bg.n * K * 2) * sizeof(double)); /* [N][K][s1, s2] */
  const bool pool = mode & DC_CONV_BLOCK_POOL, relu_on = mode & DC_CONV_BLOCK_RELU;
  float *pooled =
      pool ? dc__cpu_ws_get((size_t)(items * P * V) * sizeof(float)) /* [N][K/16][P][16] */
           : NULL;
  if ((pool && !pooled) || !sums) {
    dc__cpu_ws_put(pooled);
    dc__cpu_ws_put(sums);
    return dc__errs(DC_ERR_NOMEM, "conv_block: out of memory for scratch buffers");
  }
  bool par = items * S * V >= DC__PAR_MIN;
  if (batch_stats) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t it = 0; it < items; it++) {
      int64_t n = it / bg.kb, cb = it % bg.kb;
      double *s = sums + (n * K + cb * V) * 2;
      double s1[V] = {0}, s2[V] = {0};
      stats_plane(pyc + it * S * V, S, pyc + cb * S * V, s1, s2);
      for (int l = 0; l < V; l++) s[2 * l] = s1[l], s[2 * l + 1] = s2[l];
    }
  }
  double M = (double)(bg.n * S);
  float *st = dc_data(stats); /* [4][K]: mean, invstd, a, b */
  for (int64_t c = 0; c < K; c++) {
    double m, var;
    if (batch_stats) { /* batchnorm.c's formulas, the shift its first element */
      double shift = pyc[(c / V) * S * V + c % V], s1 = 0, s2 = 0;
      for (int64_t n = 0; n < bg.n; n++) {
        s1 += sums[(n * K + c) * 2];
        s2 += sums[(n * K + c) * 2 + 1];
      }
      dc__bn_moments(shift, s1, s2, M, c, running_mean, running_var, momentum, &m, &var);
    } else {
      m = dc__nn_ld_opt(running_mean, c, 0);
      var = dc__nn_ld_opt(running_var, c, 1);
    }
    double is = 1.0 / sqrt(var + eps), a = is * dc__nn_ld_opt(bn_w, c, 1.0);
    st[c] = (float)m;
    st[K + c] = (float)is;
    st[2 * K + c] = (float)a;
    st[3 * K + c] = (float)(dc__nn_ld_opt(bn_b, c, 0.0) - m * a);
  }
  if (batch_stats && running_mean) running_mean->storage->version++;
  if (batch_stats && running_var) running_var->storage->version++;
  uint8_t *pix = idx ? dc_data(idx) : NULL;
  float *py = dc_data(y);
  dc__cpu_nn_hint_tensor(y);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t it = 0; it < items; it++) {
    int64_t n = it / bg.kb, cb = it % bg.kb;
    if (!pool) {
      norm_plane(pyc + it * S * V, py + (n * K + cb * V) * S, S, st + 2 * K + cb * V,
                 st + 3 * K + cb * V, relu_on);
      continue;
    }
    float *out = pooled + it * P * V;
    norm_pool_plane(pyc + it * S * V, out, pix ? pix + it * P * V : NULL, &bg, st + 2 * K + cb * V,
                    st + 3 * K + cb * V);
    to_planes(py + (n * K + cb * V) * P, out, P);
  }
  dc__cpu_ws_put(sums);
  dc__cpu_ws_put(pooled);
  return DC_OK;
}

AVX512 int dc__cpu_conv_block_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb,
                                       dc_tensor *gbn_w, dc_tensor *gbn_b, const dc_tensor *gy,
                                       const dc_tensor *x, const dc_tensor *w, const dc_tensor *yc,
                                       const dc_tensor *idx, const dc_tensor *bn_w,
                                       const dc_tensor *bn_b, const dc_tensor *stats,
                                       bool batch_stats, const dc_conv2d_geom *g, int mode) {
  const blk_geom bg = geom_of(g);
  const int64_t K = g->k, S = bg.oh * bg.ow, P = bg.ph * bg.pw, items = bg.n * bg.kb;
  bool need_gyc = gx || gw || gb;
  if (!need_gyc && !gbn_w && !gbn_b) return DC_OK;
  const float *pyc = dc_data(yc), *pgy = dc_data(gy), *st = dc_data(stats); /* [4][K] */
  const float *pm = st, *pis = st + K;
  const bool pool = mode & DC_CONV_BLOCK_POOL, relu_on = mode & DC_CONV_BLOCK_RELU;
  const uint8_t *pix = pool ? dc_data(idx) : NULL;
  /* [N][K][2] sums per (n, channel), then [K][3] the backward's k, a', b' */
  double *sums = dc__cpu_ws_get((size_t)(bg.n * K * 2 + K * 3) * sizeof(double));
  /* pooled: the masked gradient [N][K/16][P][16] */
  float *d = pool ? dc__cpu_ws_get((size_t)(items * P * V) * sizeof(float)) : NULL;
  float *gyc = need_gyc ? dc__cpu_ws_get((size_t)(items * S * V) * sizeof(float)) : NULL;
  if (!sums || (pool && !d) || (need_gyc && !gyc)) {
    dc__cpu_ws_put(sums), dc__cpu_ws_put(d), dc__cpu_ws_put(gyc);
    return dc__errs(DC_ERR_NOMEM, "conv_block: out of memory for scratch buffers");
  }
  double *co = sums + bg.n * K * 2;
  bool par = items * S * V >= DC__PAR_MIN;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t it = 0; it < items; it++) {
    int64_t n = it / bg.kb, cb = it % bg.kb;
    double s1[V] = {0}, s2[V] = {0};
    if (pool) {
      float *dp = d + it * P * V;
      from_planes(dp, pgy + (n * K + cb * V) * P, P);
      grad_pool_plane(pyc + it * S * V, dp, pix + it * P * V, &bg, st + 2 * K + cb * V,
                      st + 3 * K + cb * V, pm + cb * V, s1, s2);
    } else {
      grad_sums_plane(pyc + it * S * V, pgy + (n * K + cb * V) * S, S, st + 2 * K + cb * V,
                      st + 3 * K + cb * V, pm + cb * V, relu_on, s1, s2);
    }
    double *s = sums + (n * K + cb * V) * 2;
    for (int l = 0; l < V; l++) s[2 * l] = s1[l], s[2 * l + 1] = s2[l];
  }
  double M = (double)(bg.n * S);
  for (int64_t c = 0; c < K; c++) { /* batchnorm.c's backward coefficients */
    double sdy = 0, sdyx = 0, m = pm[c], is = pis[c];
    for (int64_t n = 0; n < bg.n; n++) {
      sdy += sums[(n * K + c) * 2];
      sdyx += sums[(n * K + c) * 2 + 1];
    }
    if (gbn_b) ((float *)dc_data(gbn_b))[c] = (float)sdy;
    if (gbn_w) ((float *)dc_data(gbn_w))[c] = (float)(sdyx * is);
    dc__bn_grad gr = dc__bn_grad_of(dc__nn_ld_opt(bn_w, c, 1.0), m, is, sdy, sdyx, M, batch_stats);
    co[3 * c] = gr.k, co[3 * c + 1] = gr.a, co[3 * c + 2] = gr.b;
  }
  int rc = DC_OK;
  if (need_gyc) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t it = 0; it < items; it++) {
      int64_t n = it / bg.kb, cb = it % bg.kb;
      if (pool)
        grad_conv_plane(gyc + it * S * V, pyc + it * S * V, d + it * P * V, pix + it * P * V, &bg,
                        co + 3 * cb * V);
      else
        grad_conv_plane_full(gyc + it * S * V, pyc + it * S * V, pgy + (n * K + cb * V) * S, S,
                             st + 2 * K + cb * V, st + 3 * K + cb * V, relu_on, co + 3 * cb * V);
    }
    rc = conv_backward(gx, gw, gb, gyc, x, w, g);
  }
  dc__cpu_ws_put(sums), dc__cpu_ws_put(d), dc__cpu_ws_put(gyc);
  return rc;
}

#else /* no AVX-512 kernels: the plan says no, so the other entries are never called */
int dc__cpu_conv_block_plan(const dc_conv2d_geom *g, bool has_bias, size_t *bytes) {
  (void)g, (void)has_bias, (void)bytes;
  return DC_ERR_UNSUPPORTED;
}
int dc__cpu_conv_block_forward(dc_tensor *y, dc_tensor *yc, dc_tensor *idx, dc_tensor *stats,
                               const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                               const dc_tensor *bn_w, const dc_tensor *bn_b,
                               dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                               double momentum, double eps, const dc_conv2d_geom *g, int mode) {
  (void)y, (void)yc, (void)idx, (void)stats, (void)x, (void)w, (void)b, (void)bn_w, (void)bn_b;
  (void)running_mean, (void)running_var, (void)batch_stats, (void)momentum, (void)eps, (void)g;
  (void)mode;
  return DC_ERR_UNSUPPORTED;
}
int dc__cpu_conv_block_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, dc_tensor *gbn_w,
                                dc_tensor *gbn_b, const dc_tensor *gy, const dc_tensor *x,
                                const dc_tensor *w, const dc_tensor *yc, const dc_tensor *idx,
                                const dc_tensor *bn_w, const dc_tensor *bn_b,
                                const dc_tensor *stats, bool batch_stats, const dc_conv2d_geom *g,
                                int mode) {
  (void)gx, (void)gw, (void)gb, (void)gbn_w, (void)gbn_b, (void)gy, (void)x, (void)w, (void)yc;
  (void)idx, (void)bn_w, (void)bn_b, (void)stats, (void)batch_stats, (void)g, (void)mode;
  return DC_ERR_UNSUPPORTED;
}
#endif
