/* Winograd F(2x2, 5x5) convolution on the 16-channel blocked layout, forward, backward data and
 * backward weights, for the fused conv block (conv_block.c): 5x5 kernels, stride 1, no
 * dilation, no groups, channel counts that are multiples of 16. oneDNN has Winograd only for
 * 3x3; for 5x5 its direct convolution already runs near the FMA peak, so fewer multiplications
 * are the only way to go faster: each 6x6 input tile gives a 2x2 output tile with 36 products
 * per channel pair instead of 100 (2.78x fewer). The interpolation points are 0, +-1, +-2 and
 * infinity, the same as oneDNN's F(4x4, 3x3), so the rounding error is of the same size.
 * Per tile: V = BT d BT^T (input), U = G g G^T (filter), M = U . V summed over input channels
 * (36 small matrix products), y = AT M AT^T. Backward data is the same with the filter flipped
 * and its channels swapped; backward weights sums V . (AT^T dy AT) over the tiles and maps back
 * with G^T . G. Tiles are processed in blocks of TB (12 or 24) that keep V, M and U in the L2
 * cache.
 * Results do not depend on the thread count: the forward has no cross-tile sums, the weights'
 * sums run in a fixed number of partial sums added in order.
 * Shapes: x [N, C, H, W] (NCHW); y, gy [N, K/16, OH, OW, 16]; gx [N, C/16, H, W, 16]; w, gw
 * [K, C, 5, 5] (PyTorch's);
 * b, gb [K]; V [TB][36][Cin]; M [TB][36][Cout]; U [36][Cin][Cout]. */
#include "nn-cpu.h"

#include <omp.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#include "transpose16.h"

#define V16 16
/* tiles per block: a multiple of the micro-kernels' row counts 6 and 12. 24 in general; 12 for
 * the products of narrow layers (cin + cout <= 64), whose blocks then stay in L2 (measured on
 * the Fashion CNN's 32 -> 32 layer: 15% faster forward and backward data; its 32 -> 64 layer and
 * the weight gradients are faster with 24) */
#define TB_WIDE 24
#define TB_NARROW 12
#define PARTIALS 4 /* fixed partial sums of the weight gradient (thread-count independent) */
#define AVX512 __attribute__((target("avx512f")))
#define INLINE inline __attribute__((always_inline))

/* AT (2x6), G (6x5) and BT (6x6) for the points 0, 1, -1, 2, -2, infinity */
static const double G5[6][5] = {{1.0 / 4, 0, 0, 0, 0},
                                {-1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6},
                                {-1.0 / 6, 1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6},
                                {1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 3, 2.0 / 3},
                                {1.0 / 24, -1.0 / 12, 1.0 / 6, -1.0 / 3, 2.0 / 3},
                                {0, 0, 0, 0, 1}};

bool dc__cpu_wino5_fits(const dc_conv2d_geom *g) {
  return g->kh == 5 && g->kw == 5 && g->stride[0] == 1 && g->stride[1] == 1 &&
         g->dilation[0] == 1 && g->dilation[1] == 1 && g->groups == 1 && g->c % V16 == 0 &&
         g->k % V16 == 0 && g->pad_l[0] <= 4 && g->pad_l[1] <= 4 && g->pad_r[0] <= 4 &&
         g->pad_r[1] <= 4 && g->oh >= 1 && g->ow >= 1 && __builtin_cpu_supports("avx512f");
}

/* ---- the transforms, 16 channels per vector ---- */

/* out[i * s] = (BT d)[i] for d[i * s], i < 6 */
AVX512 static INLINE void bt6(__m512 *o, int os, const __m512 *d, int ds) {
  __m512 d0 = d[0], d1 = d[ds], d2 = d[2 * ds], d3 = d[3 * ds], d4 = d[4 * ds], d5 = d[5 * ds];
  __m512 four = _mm512_set1_ps(4), five = _mm512_set1_ps(5), two = _mm512_set1_ps(2);
  __m512 t1 = _mm512_fnmadd_ps(four, d2, d4);            /* d4 - 4 d2 */
  __m512 t2 = _mm512_fnmadd_ps(four, d1, d3);            /* d3 - 4 d1 */
  __m512 t3 = _mm512_sub_ps(d4, d2);                     /* d4 - d2 */
  __m512 t4 = _mm512_mul_ps(two, _mm512_sub_ps(d3, d1)); /* 2 (d3 - d1) */
  o[0] = _mm512_fnmadd_ps(five, d2, _mm512_fmadd_ps(four, d0, d4));
  o[os] = _mm512_add_ps(t1, t2);
  o[2 * os] = _mm512_sub_ps(t1, t2);
  o[3 * os] = _mm512_add_ps(t3, t4);
  o[4 * os] = _mm512_sub_ps(t3, t4);
  o[5 * os] = _mm512_fnmadd_ps(five, d3, _mm512_fmadd_ps(four, d1, d5));
}

/* out[i * s] = (AT m)[i] for m[j * s], i < 2, j < 6 */
AVX512 static INLINE void at2(__m512 *o, int os, const __m512 *m, int ms) {
  __m512 m0 = m[0], m1 = m[ms], m2 = m[2 * ms], m3 = m[3 * ms], m4 = m[4 * ms], m5 = m[5 * ms];
  __m512 s12 = _mm512_add_ps(m1, m2), s34 = _mm512_add_ps(m3, m4);
  __m512 d12 = _mm512_sub_ps(m1, m2), d34 = _mm512_sub_ps(m3, m4);
  o[0] = _mm512_add_ps(_mm512_add_ps(m0, s12), s34);
  o[os] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(2), d34, d12), m5);
}

/* out[j * s] = (AT^T dy)[j] for dy[a * s], a < 2, j < 6 */
AVX512 static INLINE void a6(__m512 *o, int os, const __m512 *dy, int ds) {
  __m512 a = dy[0], b = dy[ds], two = _mm512_set1_ps(2);
  o[0] = a;
  o[os] = _mm512_add_ps(a, b);
  o[2 * os] = _mm512_sub_ps(a, b);
  o[3 * os] = _mm512_fmadd_ps(two, b, a);
  o[4 * os] = _mm512_fnmadd_ps(two, b, a);
  o[5 * os] = b;
}

/* U[e][ci][co] = (G f G^T)[e] for the 5x5 filter f of each (ci, co) pair; flip: f is w's
 * kernel rotated by 180 degrees with w's in and out channels swapped (backward data).
 * w [K][C][5][5]; forward: ci = c, co = k; flip: ci = k, co = c. 16 values of co per vector
 * (gathered from w). */
/* lane l of a vector gathered at stride: l * stride */
AVX512 static inline __m512i lanes_at(int64_t stride) {
  return _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                            _mm512_set1_epi32((int)stride));
}

/* One (ci, block of 16 co) of filter_transform (vector code out of the OpenMP region: clang's
 * outlined regions do not inherit the target attribute) */
AVX512 static void filter_one(float *U, const float *w, int64_t K, int64_t C, bool flip,
                              int64_t it) {
  const int64_t CI = flip ? K : C, CO = flip ? C : K;
  const __m512i lane = lanes_at(flip ? 25 : C * 25); /* lane l of the co block */
  {
    int64_t ci = it / (CO / V16), co0 = (it % (CO / V16)) * V16;
    const float *base = w + (flip ? (ci * C + co0) : (co0 * C + ci)) * 25;
    __m512 f[25], t[30];
    for (int a = 0; a < 5; a++)
      for (int j = 0; j < 5; j++) {
        int off = flip ? (4 - a) * 5 + 4 - j : a * 5 + j;
        f[a * 5 + j] = _mm512_i32gather_ps(_mm512_add_epi32(lane, _mm512_set1_epi32(off)), base, 4);
      }
    for (int i = 0; i < 6; i++) /* t = G f [6][5] */
      for (int j = 0; j < 5; j++) {
        __m512 acc = _mm512_setzero_ps();
        for (int a = 0; a < 5; a++)
          if (G5[i][a] != 0)
            acc = _mm512_fmadd_ps(_mm512_set1_ps((float)G5[i][a]), f[a * 5 + j], acc);
        t[i * 5 + j] = acc;
      }
    for (int i = 0; i < 6; i++) /* U = t G^T [6][6] */
      for (int j = 0; j < 6; j++) {
        __m512 acc = _mm512_setzero_ps();
        for (int b = 0; b < 5; b++)
          if (G5[j][b] != 0)
            acc = _mm512_fmadd_ps(_mm512_set1_ps((float)G5[j][b]), t[i * 5 + b], acc);
        _mm512_storeu_ps(U + ((i * 6 + j) * CI + ci) * CO + co0, acc);
      }
  }
}

static void filter_transform(float *U, const float *w, int64_t K, int64_t C, bool flip) {
  const int64_t CI = flip ? K : C, CO = flip ? C : K;
#pragma omp parallel for schedule(static) if (K * C >= 1024)
  for (int64_t it = 0; it < CI * (CO / V16); it++) filter_one(U, w, K, C, flip, it);
}

/* ---- tiles ---- */

typedef struct tiling {
  int64_t n, cin, cout, h, w, oh, ow; /* input [N, Cin/16, H, W, 16], output [.., OH, OW, ..] */
  int64_t pt, pl;                     /* top / left padding of the input */
  int64_t th, tw, tiles, blocks;      /* tile grid per image, tiles in all, blocks of TB */
  int64_t tb;                         /* TB: tiles per block */
  int64_t ph, pw; /* the padded copy the tiles read: [N, Cin/16, 2 TH + 4, 2 TW + 4, 16] */
} tiling;

static tiling tiling_of(int64_t n, int64_t cin, int64_t cout, int64_t h, int64_t w, int64_t oh,
                        int64_t ow, int64_t pt, int64_t pl, int64_t tb) {
  int64_t th = (oh + 1) / 2, tw = (ow + 1) / 2, tiles = n * th * tw;
  return (tiling){
      n,  cin,        cout,      h, w, oh, ow, pt, pl, th, tw, tiles, (tiles + tb - 1) / tb,
      tb, 2 * th + 4, 2 * tw + 4};
}

/* The input as the tiles read it, zero-padded on every side: xp [N, Cin/16, PH, PW, 16] with
 * the image at rows pt.., columns pl... src is NCHW [N, Cin, H, W] (nchw) or blocked. NULL when
 * out of memory (then an error is set). */
AVX512 static void pad_one(float *xp, const float *src, bool nchw, const tiling *tl, int64_t it);
static float *padded_input(const float *src, bool nchw, const tiling *tl) {
  const int64_t CB = tl->cin / V16, PH = tl->ph, PW = tl->pw;
  float *xp = dc__cpu_ws_get((size_t)(tl->n * CB * PH * PW * V16) * sizeof(float));
  if (!xp) {
    dc__errs(DC_ERR_NOMEM, "conv2d: out of memory for Winograd buffers");
    return NULL;
  }
#pragma omp parallel for schedule(static) if (tl->n * CB * PH * PW * V16 >= DC__PAR_MIN)
  for (int64_t it = 0; it < tl->n * CB; it++) pad_one(xp, src, nchw, tl, it);
  return xp;
}

/* One (image, channel block) plane of padded_input */
AVX512 static void pad_one(float *xp, const float *src, bool nchw, const tiling *tl, int64_t it) {
  const int64_t H = tl->h, W = tl->w, PH = tl->ph, PW = tl->pw;
  { /* it = n * CB + cb */
    float *dst = xp + it * PH * PW * V16;
    for (int64_t r = 0; r < PH; r++) {
      int64_t yy = r - tl->pt;
      float *row = dst + r * PW * V16;
      if (yy < 0 || yy >= H) {
        memset(row, 0, (size_t)(PW * V16) * sizeof(float));
        continue;
      }
      for (int64_t c = 0; c < tl->pl; c++) _mm512_storeu_ps(row + c * V16, _mm512_setzero_ps());
      for (int64_t c = tl->pl + W; c < PW; c++)
        _mm512_storeu_ps(row + c * V16, _mm512_setzero_ps());
      float *img = row + tl->pl * V16; /* the image's W pixels of this row */
      if (nchw) { /* 16 channels of a pixel lie H * W apart: 16x16 transposes */
        const float *px = src + (it * V16 * H + yy) * W;
        int64_t xx = 0;
        for (; xx + V16 <= W; xx += V16) dc__copy_transposed16(img + xx * V16, V16, px + xx, H * W);
        for (; xx < W; xx++)
          for (int l = 0; l < V16; l++) img[xx * V16 + l] = px[l * H * W + xx];
      } else {
        memcpy(img, src + (it * H + yy) * W * V16, (size_t)(W * V16) * sizeof(float));
      }
    }
  }
}

/* Vb[r][e][*] for the tiles t0 .. t0 + TB - 1 (zeros past the last): the input transform of
 * each 16-channel block of the 6x6 input patch of tile t, read from the padded copy xp. The
 * column transforms come first, for a whole row of tiles at once (colt [PW][6], each input
 * column serves up to 3 tiles), then each tile's 6 row transforms. */
AVX512 static void input_block(float *Vb, __m512 *colt, const float *xp, const tiling *tl,
                               int64_t t0) {
  const int64_t C = tl->cin, PW = tl->pw, plane_size = tl->ph * PW * V16;
  for (int64_t cb = 0; cb < C / V16; cb++) {
    int64_t strip = -1; /* the (image, tile row) colt holds */
    for (int64_t r = 0; r < tl->tb; r++) {
      int64_t t = t0 + r;
      float *dst = Vb + r * 36 * C + cb * V16;
      if (t >= tl->tiles) {
        for (int e = 0; e < 36; e++) _mm512_storeu_ps(dst + e * C, _mm512_setzero_ps());
        continue;
      }
      int64_t row = t / tl->tw, n = row / tl->th, ty = row % tl->th, tx = t % tl->tw;
      if (row != strip) { /* BT applied to every column of this row of tiles' 6 input rows */
        const float *p0 = xp + (n * (C / V16) + cb) * plane_size + 2 * ty * PW * V16;
        for (int64_t x = 0; x < PW; x++) {
          __m512 d[6];
          for (int i = 0; i < 6; i++) d[i] = _mm512_loadu_ps(p0 + (i * PW + x) * V16);
          bt6(colt + x * 6, 1, d, 1);
        }
        strip = row;
      }
      const __m512 *c0 = colt + 2 * tx * 6;
      for (int i = 0; i < 6; i++) { /* row i of the tile: BT over its 6 columns */
        __m512 o[6];
        bt6(o, 1, c0 + i, 6);
        for (int j = 0; j < 6; j++) _mm512_storeu_ps(dst + (i * 6 + j) * C, o[j]);
      }
    }
  }
}

/* y tiles from Mb[e][r][*]: y = AT M AT^T (+ bias), the 2x2 outputs inside the image */
AVX512 static void output_block(float *y, const float *Mb, const float *bias, const tiling *tl,
                                int64_t t0) {
  const int64_t K = tl->cout, OHW = tl->oh * tl->ow;
  for (int64_t r = 0; r < tl->tb && t0 + r < tl->tiles; r++) {
    int64_t t = t0 + r;
    int64_t n = t / (tl->th * tl->tw), ty = (t / tl->tw) % tl->th, tx = t % tl->tw;
    for (int64_t kb = 0; kb < K / V16; kb++) {
      __m512 m[36], tmp[12], o[4];
      for (int e = 0; e < 36; e++) m[e] = _mm512_loadu_ps(Mb + (r * 36 + e) * K + kb * V16);
      for (int j = 0; j < 6; j++) at2(tmp + j, 6, m + j, 6); /* columns: tmp [2][6] */
      for (int i = 0; i < 2; i++) at2(o + i * 2, 1, tmp + i * 6, 1);
      __m512 bv = bias ? _mm512_loadu_ps(bias + kb * V16) : _mm512_setzero_ps();
      float *plane = y + ((n * (K / V16) + kb) * OHW) * V16;
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
          int64_t yy = 2 * ty + i, xx = 2 * tx + j;
          if (yy < tl->oh && xx < tl->ow)
            _mm512_storeu_ps(plane + (yy * tl->ow + xx) * V16, _mm512_add_ps(o[i * 2 + j], bv));
        }
    }
  }
}

/* Zb[e][r][*] = (AT^T dy AT)[e] of the 2x2 gradient tile of tile t0 + r (zeros outside) */
AVX512 static void grad_block(float *Zb, const float *gy, const tiling *tl, int64_t t0) {
  const int64_t K = tl->cout, OHW = tl->oh * tl->ow;
  for (int64_t r = 0; r < tl->tb; r++) {
    int64_t t = t0 + r;
    if (t >= tl->tiles) {
      for (int e = 0; e < 36; e++) memset(Zb + (r * 36 + e) * K, 0, (size_t)K * sizeof(float));
      continue;
    }
    int64_t n = t / (tl->th * tl->tw), ty = (t / tl->tw) % tl->th, tx = t % tl->tw;
    for (int64_t kb = 0; kb < K / V16; kb++) {
      const float *plane = gy + ((n * (K / V16) + kb) * OHW) * V16;
      __m512 d[4], tmp[12], z[36];
      for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
          int64_t yy = 2 * ty + i, xx = 2 * tx + j;
          d[i * 2 + j] = yy < tl->oh && xx < tl->ow
                             ? _mm512_loadu_ps(plane + (yy * tl->ow + xx) * V16)
                             : _mm512_setzero_ps();
        }
      for (int j = 0; j < 2; j++) a6(tmp + j, 2, d + j, 2);         /* columns: tmp [6][2] */
      for (int i = 0; i < 6; i++) a6(z + i * 6, 1, tmp + i * 2, 1); /* rows */
      for (int e = 0; e < 36; e++) _mm512_storeu_ps(Zb + (r * 36 + e) * K + kb * V16, z[e]);
    }
  }
}

/* ---- the products ---- */

/* The products' register tile: C[R rows][KV vectors] = (first) or += the sum over j < n of
 * A(i, j) B[j][KV vectors], with A(i, j) = A[i * ai + j * aj] (R * KV accumulators and KV
 * vectors of B in the 32 registers) */
AVX512 static INLINE void gemm_tile(float *C, int64_t ldc, const float *A, int64_t ai, int64_t aj,
                                    const float *B, int64_t ldb, int64_t n, const int R,
                                    const int KV, bool first) {
  __m512 acc[16][4];
  for (int i = 0; i < R; i++)
    for (int v = 0; v < KV; v++)
      acc[i][v] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(C + i * ldc + v * V16);
  for (int64_t j = 0; j < n; j++) {
    __m512 b[4];
    for (int v = 0; v < KV; v++) b[v] = _mm512_loadu_ps(B + j * ldb + v * V16);
    for (int i = 0; i < R; i++) {
      __m512 a = _mm512_set1_ps(A[i * ai + j * aj]);
      for (int v = 0; v < KV; v++) acc[i][v] = _mm512_fmadd_ps(a, b[v], acc[i][v]);
    }
  }
  for (int i = 0; i < R; i++)
    for (int v = 0; v < KV; v++) _mm512_storeu_ps(C + i * ldc + v * V16, acc[i][v]);
}

/* Mb[.][e] = Vb[.][e] . U[e] for every element e: [TB][cin] . [cin][cout] */
AVX512 static void block_products(float *Mb, const float *Vb, const float *U, int64_t cin,
                                  int64_t cout, int64_t tb) {
  const int64_t lda = 36 * cin, ldc = 36 * cout;
  for (int e = 0; e < 36; e++) {
    const float *A = Vb + e * cin, *B = U + e * cin * cout;
    float *Cm = Mb + e * cout;
    int64_t k = 0;
    for (; k + 64 <= cout; k += 64)
      for (int r = 0; r < tb; r += 6)
        gemm_tile(Cm + r * ldc + k, ldc, A + r * lda, lda, 1, B + k, cout, cin, 6, 4, true);
    for (; k + 32 <= cout; k += 32)
      for (int r = 0; r < tb; r += 12)
        gemm_tile(Cm + r * ldc + k, ldc, A + r * lda, lda, 1, B + k, cout, cin, 12, 2, true);
    for (; k < cout; k += 16)
      for (int r = 0; r < tb; r += 12)
        gemm_tile(Cm + r * ldc + k, ldc, A + r * lda, lda, 1, B + k, cout, cin, 12, 1, true);
  }
}

/* dU[e] += (first: =) Vb[.][e]^T . Zb[.][e] for every element e: [cin][TB] . [TB][cout] */
AVX512 static void block_weight_products(float *dU, const float *Vb, const float *Zb, int64_t cin,
                                         int64_t cout, int64_t tb, bool first) {
  const int64_t lda = 36 * cin, ldz = 36 * cout;
  for (int e = 0; e < 36; e++) {
    const float *A = Vb + e * cin, *Z = Zb + e * cout;
    float *D = dU + e * cin * cout;
    /* rows of c per call: as many as the 29 registers left after the KV vectors of Z allow
     * (6 x 4, 12 x 2, 16 x 1 accumulators), then 4-row tails (cin is a multiple of 16) */
    int64_t k = 0;
    for (; k + 64 <= cout; k += 64) {
      int64_t c = 0;
      for (; c + 6 <= cin; c += 6)
        gemm_tile(D + c * cout + k, cout, A + c, 1, lda, Z + k, ldz, tb, 6, 4, first);
      for (; c < cin; c += 2)
        gemm_tile(D + c * cout + k, cout, A + c, 1, lda, Z + k, ldz, tb, 2, 4, first);
    }
    for (; k + 32 <= cout; k += 32) {
      int64_t c = 0;
      for (; c + 12 <= cin; c += 12)
        gemm_tile(D + c * cout + k, cout, A + c, 1, lda, Z + k, ldz, tb, 12, 2, first);
      for (; c < cin; c += 4)
        gemm_tile(D + c * cout + k, cout, A + c, 1, lda, Z + k, ldz, tb, 4, 2, first);
    }
    for (; k < cout; k += 16)
      for (int64_t c = 0; c < cin; c += 16)
        gemm_tile(D + c * cout + k, cout, A + c, 1, lda, Z + k, ldz, tb, 16, 1, first);
  }
}

/* ---- the passes ---- */

/* gw for one (c, block of 16 k): G^T (the partials' sum) G, 16 values of k per vector
 * (scattered into gw [K][C][5][5]) */
AVX512 static void weights_one(float *gw, const float *dU, int64_t C, int64_t K, int64_t it) {
  const int64_t CK = C * K;
  const __m512i lane = lanes_at(C * 25);
  int64_t c = it / (K / V16), k0 = (it % (K / V16)) * V16;
  __m512 u[36], t[30];
  for (int e = 0; e < 36; e++) {
    __m512 s = _mm512_loadu_ps(dU + (size_t)e * CK + c * K + k0);
    for (int p = 1; p < PARTIALS; p++)
      s = _mm512_add_ps(s, _mm512_loadu_ps(dU + ((size_t)p * 36 + e) * CK + c * K + k0));
    u[e] = s;
  }
  for (int a = 0; a < 5; a++) /* t = G^T u [5][6] */
    for (int j = 0; j < 6; j++) {
      __m512 acc = _mm512_setzero_ps();
      for (int i = 0; i < 6; i++)
        if (G5[i][a] != 0)
          acc = _mm512_fmadd_ps(_mm512_set1_ps((float)G5[i][a]), u[i * 6 + j], acc);
      t[a * 6 + j] = acc;
    }
  float *base = gw + (k0 * C + c) * 25;
  for (int a = 0; a < 5; a++) /* gw = t G [5][5] */
    for (int bb = 0; bb < 5; bb++) {
      __m512 acc = _mm512_setzero_ps();
      for (int j = 0; j < 6; j++)
        if (G5[j][bb] != 0)
          acc = _mm512_fmadd_ps(_mm512_set1_ps((float)G5[j][bb]), t[a * 6 + j], acc);
      _mm512_i32scatter_ps(base, _mm512_add_epi32(lane, _mm512_set1_epi32(a * 5 + bb)), acc, 4);
    }
}

/* out[l] = sum over the P positions of plane [P][16], lane l (float lanes, then double) */
AVX512 static void plane_sums(double *out, const float *plane, int64_t P) {
  __m512 s = _mm512_setzero_ps();
  for (int64_t p = 0; p < P; p++) s = _mm512_add_ps(s, _mm512_loadu_ps(plane + p * V16));
  float l[V16];
  _mm512_storeu_ps(l, s);
  for (int j = 0; j < V16; j++) out[j] = l[j];
}

/* tiles per block of the forward and backward-data products */
static int64_t conv_tb(const dc_conv2d_geom *g) { return g->c + g->k <= 64 ? TB_NARROW : TB_WIDE; }

/* out = conv(in) with the transformed filter U [36][cin][cout] (+ bias); in is NCHW (nchw) or
 * blocked */
AVX512 static int wino_conv(float *out, const float *in, bool nchw, const float *U,
                            const float *bias, const tiling *tl) {
  int nt = omp_get_max_threads();
  size_t per = (size_t)(36 * tl->tb) * (size_t)(tl->cin + tl->cout) + (size_t)(6 * tl->pw * V16);
  float *xp = padded_input(in, nchw, tl);
  float *scratch = xp ? dc__cpu_ws_get((size_t)nt * per * sizeof(float)) : NULL;
  if (!scratch) {
    dc__cpu_ws_put(xp);
    return xp ? dc__errs(DC_ERR_NOMEM, "conv2d: out of memory for Winograd buffers") : DC_ERR_NOMEM;
  }
#pragma omp parallel num_threads(nt) if (tl->blocks > 1)
  {
    float *Vb = scratch + (size_t)omp_get_thread_num() * per, *Mb = Vb + 36 * tl->tb * tl->cin;
    __m512 *colt = (__m512 *)(Mb + 36 * tl->tb * tl->cout);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < tl->blocks; b++) {
      input_block(Vb, colt, xp, tl, b * tl->tb);
      block_products(Mb, Vb, U, tl->cin, tl->cout, tl->tb);
      output_block(out, Mb, bias, tl, b * tl->tb);
    }
  }
  dc__cpu_ws_put(scratch);
  dc__cpu_ws_put(xp);
  return DC_OK;
}

int dc__cpu_wino5_forward(float *y, const float *x, const float *w, const float *b,
                          const dc_conv2d_geom *g) {
  float *U = dc__cpu_ws_get((size_t)36 * g->c * g->k * sizeof(float));
  if (!U) return dc__errs(DC_ERR_NOMEM, "conv2d: out of memory for Winograd buffers");
  filter_transform(U, w, g->k, g->c, false);
  tiling tl =
      tiling_of(g->n, g->c, g->k, g->h, g->w, g->oh, g->ow, g->pad_l[0], g->pad_l[1], conv_tb(g));
  int rc = wino_conv(y, x, true, U, b, &tl);
  dc__cpu_ws_put(U);
  return rc;
}

int dc__cpu_wino5_backward_data(float *gx, const float *gy, const float *w,
                                const dc_conv2d_geom *g) {
  float *U = dc__cpu_ws_get((size_t)36 * g->c * g->k * sizeof(float));
  if (!U) return dc__errs(DC_ERR_NOMEM, "conv2d: out of memory for Winograd buffers");
  filter_transform(U, w, g->k, g->c, true);
  /* gx[h] = sum_i gy[h + pad - i] w[i] = sum_i' gy[h - (4 - pad) + i'] w[4 - i'] */
  tiling tl = tiling_of(g->n, g->k, g->c, g->oh, g->ow, g->h, g->w, 4 - g->pad_l[0],
                        4 - g->pad_l[1], conv_tb(g));
  int rc = wino_conv(gx, gy, false, U, NULL, &tl);
  dc__cpu_ws_put(U);
  return rc;
}

AVX512 int dc__cpu_wino5_backward_weights(float *gw, float *gb, const float *x, const float *gy,
                                          const dc_conv2d_geom *g) {
  tiling tl =
      tiling_of(g->n, g->c, g->k, g->h, g->w, g->oh, g->ow, g->pad_l[0], g->pad_l[1], TB_WIDE);
  const int64_t C = g->c, K = g->k, CK = C * K;
  int nt = omp_get_max_threads();
  size_t per = (size_t)(36 * tl.tb) * (size_t)(C + K) + (size_t)(6 * tl.pw * V16);
  float *scratch = dc__cpu_ws_get((size_t)nt * per * sizeof(float));
  float *dU = dc__cpu_ws_get((size_t)PARTIALS * 36 * CK * sizeof(float));
  float *xp = scratch && dU ? padded_input(x, true, &tl) : NULL;
  if (!xp) {
    dc__cpu_ws_put(scratch), dc__cpu_ws_put(dU);
    return scratch && dU ? DC_ERR_NOMEM
                         : dc__errs(DC_ERR_NOMEM, "conv2d: out of memory for Winograd buffers");
  }
  /* partial p sums the blocks [p * blocks / P, (p + 1) * blocks / P) in order; its first block
   * writes it (an empty one is zeroed) */
#pragma omp parallel num_threads(nt)
  {
    float *Vb = scratch + (size_t)omp_get_thread_num() * per, *Zb = Vb + 36 * tl.tb * C;
    __m512 *colt = (__m512 *)(Zb + 36 * tl.tb * K);
#pragma omp for schedule(static)
    for (int p = 0; p < PARTIALS; p++) {
      int64_t b0 = p * tl.blocks / PARTIALS, b1 = (p + 1) * tl.blocks / PARTIALS;
      if (b0 == b1) memset(dU + (size_t)p * 36 * CK, 0, (size_t)36 * CK * sizeof(float));
      for (int64_t b = b0; b < b1; b++) {
        input_block(Vb, colt, xp, &tl, b * tl.tb);
        grad_block(Zb, gy, &tl, b * tl.tb);
        block_weight_products(dU + (size_t)p * 36 * CK, Vb, Zb, C, K, tl.tb, b == b0);
      }
    }
  }
  /* gw[k][c] = G^T (sum of the partials)[c][k] G */
#pragma omp parallel for schedule(static) if (CK >= 1024)
  for (int64_t it = 0; it < C * (K / V16); it++) weights_one(gw, dU, C, K, it);
  if (gb) { /* the bias gradient: gy summed per channel, per image in float, then in order */
    const int64_t KB = K / V16, OHW = g->oh * g->ow;
    double *acc = dc__cpu_ws_get((size_t)(g->n * K) * sizeof(double)); /* [N][K] */
    if (!acc) {
      dc__cpu_ws_put(scratch), dc__cpu_ws_put(dU), dc__cpu_ws_put(xp);
      return dc__errs(DC_ERR_NOMEM, "conv2d: out of memory for Winograd buffers");
    }
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < g->n * KB; it++) plane_sums(acc + it * V16, gy + it * OHW * V16, OHW);
    for (int64_t k = 0; k < K; k++) {
      double s = 0;
      for (int64_t n = 0; n < g->n; n++) s += acc[(n * KB + k / V16) * V16 + k % V16];
      gb[k] = (float)s;
    }
    dc__cpu_ws_put(acc);
  }
  dc__cpu_ws_put(scratch), dc__cpu_ws_put(dU), dc__cpu_ws_put(xp);
  return DC_OK;
}

#else /* no AVX-512 kernels */
bool dc__cpu_wino5_fits(const dc_conv2d_geom *g) {
  (void)g;
  return false;
}
int dc__cpu_wino5_forward(float *y, const float *x, const float *w, const float *b,
                          const dc_conv2d_geom *g) {
  (void)y, (void)x, (void)w, (void)b, (void)g;
  return DC_ERR_UNSUPPORTED;
}
int dc__cpu_wino5_backward_data(float *gx, const float *gy, const float *w,
                                const dc_conv2d_geom *g) {
  (void)gx, (void)gy, (void)w, (void)g;
  return DC_ERR_UNSUPPORTED;
}
int dc__cpu_wino5_backward_weights(float *gw, float *gb, const float *x, const float *gy,
                                   const dc_conv2d_geom *g) {
  (void)gw, (void)gb, (void)x, (void)gy, (void)g;
  return DC_ERR_UNSUPPORTED;
}
#endif
