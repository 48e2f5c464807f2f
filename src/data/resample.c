/* Bilinear resampling for Resize / RandomResizedCrop, written to reproduce the references bit
 * for bit where possible: PIL's ImagingResample (separable triangle filter widened when
 * shrinking, 22-bit fixed point, horizontal pass first) for uint8 [H, W, C] images, and
 * torch.nn.functional.interpolate(mode="bilinear", align_corners=False) with and without
 * antialias for float [P, H, W] planes. */
#include "data-impl.h"

#include <math.h>
#include <string.h>

#define PIL_PRECISION_BITS (32 - 8 - 2)
/* Hot loops get AVX-512 / AVX2 versions picked at run time. */
#define DC__DATA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

static double triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* PIL's precompute_coeffs for the bilinear filter: per output index, the first input index
 * (bounds[2i]), the tap count (bounds[2i+1]) and ksize weights (kk). Returns ksize. */
static int pil_coeffs(int64_t in, int64_t out, int64_t *bounds, double *kk) {
  double scale = (double)in / (double)out;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 1.0 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  for (int64_t xx = 0; xx < out; xx++) {
    double center = ((double)xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
    int64_t xmin = (int64_t)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int64_t xmax = (int64_t)(center + support + 0.5);
    if (xmax > in) xmax = in;
    xmax -= xmin;
    double *k = kk + xx * ksize;
    int64_t x = 0;
    for (; x < xmax; x++) {
      double w = triangle(((double)(x + xmin) - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; x++)
      if (ww != 0.0) k[x] /= ww;
    for (; x < ksize; x++) k[x] = 0;
    bounds[2 * xx] = xmin;
    bounds[2 * xx + 1] = xmax;
  }
  return ksize;
}

/* Number of taps a resize from in to out needs per output (PIL's ksize). */
static int pil_ksize(int64_t in, int64_t out) {
  double scale = (double)in / (double)out;
  return (int)ceil(scale < 1.0 ? 1.0 : scale) * 2 + 1;
}

static void pil_fixed(const double *kk, int32_t *ik, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    ik[i] = (int32_t)(kk[i] < 0 ? -0.5 + kk[i] * (1 << PIL_PRECISION_BITS)
                                : 0.5 + kk[i] * (1 << PIL_PRECISION_BITS));
}

static inline uint8_t pil_clip8(int32_t v) {
  if (v >= (1 << PIL_PRECISION_BITS << 8)) return 255;
  if (v <= 0) return 0;
  return (uint8_t)(v >> PIL_PRECISION_BITS);
}

/* Carves aligned pieces out of one scratch buffer. */
static void *carve(uint8_t **at, size_t bytes) {
  void *p = *at;
  *at += (bytes + 63) & ~(size_t)63;
  return p;
}

/* Horizontal pass of PIL's resample over rows [y0, y1) of in [H, W, C] into mid [y1-y0, nx, C],
 * output columns [x0, x0+nx) of the resized width. */
DC__DATA_CLONES static void pil_horizontal(const uint8_t *in, int64_t w, int64_t c, int64_t y0,
                                           int64_t y1, uint8_t *mid, int64_t x0, int64_t nx,
                                           const int64_t *bh, const int32_t *ik, int ks) {
  const int32_t half = 1 << (PIL_PRECISION_BITS - 1);
  for (int64_t y = y0; y < y1; y++) {
    const uint8_t *row = in + y * w * c;
    uint8_t *o = mid + (y - y0) * nx * c;
    for (int64_t xx = 0; xx < nx; xx++) {
      int64_t xmin = bh[2 * (x0 + xx)], xn = bh[2 * (x0 + xx) + 1];
      const int32_t *k = ik + (x0 + xx) * ks;
      const uint8_t *p = row + xmin * c;
      if (c == 3) {
        int32_t s0 = half, s1 = half, s2 = half;
        for (int64_t x = 0; x < xn; x++) {
          s0 += p[3 * x] * k[x];
          s1 += p[3 * x + 1] * k[x];
          s2 += p[3 * x + 2] * k[x];
        }
        o[3 * xx] = pil_clip8(s0);
        o[3 * xx + 1] = pil_clip8(s1);
        o[3 * xx + 2] = pil_clip8(s2);
      } else {
        for (int64_t ch = 0; ch < c; ch++) {
          int32_t ss = half;
          for (int64_t x = 0; x < xn; x++) ss += p[x * c + ch] * k[x];
          o[xx * c + ch] = pil_clip8(ss);
        }
      }
    }
  }
}

/* Vertical pass: output rows [r0, r0+nr) from src rows (src row 0 = input row sy0), each row n
 * values, accumulating row by row into acc [n] so the inner loop runs along memory. */
DC__DATA_CLONES static void pil_vertical(const uint8_t *src, int64_t sy0, int64_t n, uint8_t *out,
                                         int64_t r0, int64_t nr, const int64_t *bv,
                                         const int32_t *ik, int ks, int32_t *acc) {
  for (int64_t yy = 0; yy < nr; yy++) {
    int64_t ymin = bv[2 * (r0 + yy)] - sy0, yn = bv[2 * (r0 + yy) + 1];
    const int32_t *k = ik + (r0 + yy) * ks;
    for (int64_t i = 0; i < n; i++) acc[i] = 1 << (PIL_PRECISION_BITS - 1);
    for (int64_t j = 0; j < yn; j++) {
      const uint8_t *row = src + (ymin + j) * n;
      int32_t kj = k[j];
      for (int64_t i = 0; i < n; i++) acc[i] += row[i] * kj;
    }
    uint8_t *o = out + yy * n;
    for (int64_t i = 0; i < n; i++) o[i] = pil_clip8(acc[i]);
  }
}

int dc__resize_pil_u8(const uint8_t *in, int64_t h, int64_t w, int64_t c, uint8_t *out, int64_t oh,
                      int64_t ow, const int64_t *win, dc__arr *tmp) {
  if (h <= 0 || w <= 0 || oh <= 0 || ow <= 0)
    return dc__errs(DC_ERR_ARG, "resize: cannot resize %lldx%lld to %lldx%lld", (long long)h,
                    (long long)w, (long long)oh, (long long)ow);
  /* the output window [wy, wy+wh) x [wx, wx+ww) of the oh x ow result */
  int64_t wy = win ? win[0] : 0, wx = win ? win[1] : 0, wh = win ? win[2] : oh,
          ww = win ? win[3] : ow;
  int kh = pil_ksize(w, ow), kv = pil_ksize(h, oh);
  size_t need = (size_t)(ow * kh) * (sizeof(double) + 4) +
                (size_t)(oh * kv) * (sizeof(double) + 4) + (size_t)(ow + oh) * 2 * sizeof(int64_t) +
                (size_t)(h * ww * c) + (size_t)(ww * c) * sizeof(int32_t) + 8 * 64;
  if (!dc__arr_reserve(tmp, need)) return DC_ERR_NOMEM;
  uint8_t *at = tmp->data;
  double *kkh = carve(&at, sizeof(double) * (size_t)(ow * kh));
  double *kkv = carve(&at, sizeof(double) * (size_t)(oh * kv));
  int32_t *ikh = carve(&at, 4 * (size_t)(ow * kh));
  int32_t *ikv = carve(&at, 4 * (size_t)(oh * kv));
  int64_t *bh = carve(&at, sizeof(int64_t) * 2 * (size_t)ow);
  int64_t *bv = carve(&at, sizeof(int64_t) * 2 * (size_t)oh);
  uint8_t *mid = carve(&at, (size_t)(h * ww * c));
  int32_t *acc = carve(&at, sizeof(int32_t) * (size_t)(ww * c));
  pil_coeffs(w, ow, bh, kkh);
  pil_coeffs(h, oh, bv, kkv);
  pil_fixed(kkh, ikh, ow * kh);
  pil_fixed(kkv, ikv, oh * kv);
  bool need_h = ow != w, need_v = oh != h;
  /* input rows the vertical pass reads (all output rows of the window when it is skipped) */
  int64_t y0 = need_v ? bv[2 * wy] : wy;
  int64_t y1 = need_v ? bv[2 * (wy + wh - 1)] + bv[2 * (wy + wh - 1) + 1] : wy + wh;
  if (need_h) {
    pil_horizontal(in, w, c, y0, y1, mid, wx, ww, bh, ikh, kh);
  } else { /* columns [wx, wx+ww) of the needed rows */
    for (int64_t y = y0; y < y1; y++)
      memcpy(mid + (y - y0) * ww * c, in + (y * w + wx) * c, (size_t)(ww * c));
  }
  if (!need_v) {
    memcpy(out, mid, (size_t)(wh * ww * c));
    return DC_OK;
  }
  pil_vertical(mid, y0, ww * c, out, wy, wh, bv, ikv, kv, acc);
  return DC_OK;
}

/* ---- float planes, torch's interpolate ---- */

/* torch's compute_indices_weights_aa in float: per output, first index, tap count, weights. */
static int aa_coeffs(int64_t in, int64_t out, int64_t *bounds, float *kk) {
  float scale = (float)in / (float)out;
  float support = scale >= 1.0f ? scale : 1.0f;
  int ksize = (int)ceilf(support) * 2 + 1;
  float invscale = scale >= 1.0f ? 1.0f / scale : 1.0f;
  for (int64_t i = 0; i < out; i++) {
    float center = scale * ((float)i + 0.5f), total = 0.0f;
    int64_t xmin = (int64_t)(center - support + 0.5f);
    if (xmin < 0) xmin = 0;
    int64_t xe = (int64_t)(center + support + 0.5f);
    int64_t xn = (xe < in ? xe : in) - xmin;
    float *k = kk + i * ksize;
    int64_t j = 0;
    for (; j < xn; j++) {
      float x = ((float)(j + xmin) - center + 0.5f) * invscale;
      float wv = x < 0 ? -x : x;
      wv = wv < 1.0f ? 1.0f - wv : 0.0f;
      k[j] = wv;
      total += wv;
    }
    for (j = 0; j < xn; j++)
      if (total != 0.0f) k[j] /= total;
    for (; j < ksize; j++) k[j] = 0;
    bounds[2 * i] = xmin;
    bounds[2 * i + 1] = xn;
  }
  return ksize;
}

/* torch's compute_indices_weights_linear: index, +1 offset (0 at the edge), two weights. */
static void lin_coeffs(int64_t in, int64_t out, int64_t *i0, int64_t *off, float *l0, float *l1) {
  float scale = (float)in / (float)out;
  for (int64_t i = 0; i < out; i++) {
    float r = scale * ((float)i + 0.5f) - 0.5f;
    if (r < 0) r = 0;
    int64_t k = (int64_t)r;
    i0[i] = k;
    off[i] = k < in - 1 ? 1 : 0;
    l1[i] = r - (float)k;
    l0[i] = 1.0f - l1[i];
  }
}

int dc__resize_f32(const float *in, int64_t p, int64_t h, int64_t w, float *out, int64_t oh,
                   int64_t ow, bool aa, dc__arr *tmp) {
  if (h <= 0 || w <= 0 || oh <= 0 || ow <= 0)
    return dc__errs(DC_ERR_ARG, "resize: cannot resize %lldx%lld to %lldx%lld", (long long)h,
                    (long long)w, (long long)oh, (long long)ow);
  if (!aa) {
    size_t need = (size_t)(ow + oh) * (2 * sizeof(int64_t) + 2 * sizeof(float)) + 8 * 64;
    if (!dc__arr_reserve(tmp, need)) return DC_ERR_NOMEM;
    uint8_t *at = tmp->data;
    int64_t *xi = carve(&at, sizeof(int64_t) * (size_t)ow),
            *xo = carve(&at, sizeof(int64_t) * (size_t)ow);
    int64_t *yi = carve(&at, sizeof(int64_t) * (size_t)oh),
            *yo = carve(&at, sizeof(int64_t) * (size_t)oh);
    float *xl0 = carve(&at, sizeof(float) * (size_t)ow),
          *xl1 = carve(&at, sizeof(float) * (size_t)ow);
    float *yl0 = carve(&at, sizeof(float) * (size_t)oh),
          *yl1 = carve(&at, sizeof(float) * (size_t)oh);
    lin_coeffs(w, ow, xi, xo, xl0, xl1);
    lin_coeffs(h, oh, yi, yo, yl0, yl1);
    for (int64_t c = 0; c < p; c++) {
      const float *src = in + c * h * w;
      float *dst = out + c * oh * ow;
      for (int64_t y = 0; y < oh; y++) {
        const float *r0 = src + yi[y] * w, *r1 = r0 + yo[y] * w;
        float h0 = yl0[y], h1 = yl1[y];
        for (int64_t x = 0; x < ow; x++) {
          int64_t a = xi[x], b = xi[x] + xo[x];
          float t0 = r0[a] * xl0[x] + r0[b] * xl1[x];
          float t1 = r1[a] * xl0[x] + r1[b] * xl1[x];
          dst[y * ow + x] = t0 * h0 + t1 * h1;
        }
      }
    }
    return DC_OK;
  }
  bool need_h = ow != w, need_v = oh != h;
  int kh = (int)ceilf((float)w / (float)ow >= 1.0f ? (float)w / (float)ow : 1.0f) * 2 + 1;
  int kv = (int)ceilf((float)h / (float)oh >= 1.0f ? (float)h / (float)oh : 1.0f) * 2 + 1;
  size_t need = (size_t)(ow * kh + oh * kv) * sizeof(float) +
                (size_t)(ow + oh) * 2 * sizeof(int64_t) + (size_t)(p * h * ow) * sizeof(float) +
                6 * 64;
  if (!dc__arr_reserve(tmp, need)) return DC_ERR_NOMEM;
  uint8_t *at = tmp->data;
  float *kkh = carve(&at, sizeof(float) * (size_t)(ow * kh));
  float *kkv = carve(&at, sizeof(float) * (size_t)(oh * kv));
  int64_t *bh = carve(&at, sizeof(int64_t) * 2 * (size_t)ow);
  int64_t *bv = carve(&at, sizeof(int64_t) * 2 * (size_t)oh);
  float *mid = carve(&at, sizeof(float) * (size_t)(p * h * ow));
  aa_coeffs(w, ow, bh, kkh);
  aa_coeffs(h, oh, bv, kkv);
  const float *src = in;
  if (need_h) {
    for (int64_t r = 0; r < p * h; r++) {
      const float *row = in + r * w;
      float *o = mid + r * ow;
      for (int64_t x = 0; x < ow; x++) {
        const float *k = kkh + x * kh;
        const float *s = row + bh[2 * x];
        float t = s[0] * k[0];
        for (int64_t j = 1; j < bh[2 * x + 1]; j++) t += s[j] * k[j];
        o[x] = t;
      }
    }
    src = mid;
  }
  int64_t sw = need_h ? ow : w;
  if (!need_v) {
    memcpy(out, src, sizeof(float) * (size_t)(p * oh * ow));
    return DC_OK;
  }
  for (int64_t c = 0; c < p; c++) {
    const float *plane = src + c * h * sw;
    float *dst = out + c * oh * ow;
    for (int64_t y = 0; y < oh; y++) {
      const float *k = kkv + y * kv;
      const float *s = plane + bv[2 * y] * sw;
      float *o = dst + y * ow;
      for (int64_t x = 0; x < ow; x++) o[x] = s[x] * k[0];
      for (int64_t j = 1; j < bv[2 * y + 1]; j++)
        for (int64_t x = 0; x < ow; x++) o[x] += s[j * sw + x] * k[j];
    }
  }
  return DC_OK;
}
