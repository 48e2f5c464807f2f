/* Direct (naive) 2-D convolution, forward and backward, for float32, float64 and bfloat16 with
 * double accumulation (each output rounded once): the test oracle for the oneDNN path and the
 * kernel behind float64 gradcheck. Every output element is a gather (no scatter), so threads never
 * write the same element. Shapes: x [N, C, H, W], w [K, C/G, kH, kW], b [K], y [N, K, OH, OW] (see
 * nn-kernels.h). */
#include "nn-cpu.h"

static inline double ref_ld(const void *base, int64_t i, dc_dtype dt) {
  return dt == DC_BF16 ? (double)dc__bf16_to_f32(((const uint16_t *)base)[i])
                       : dc__nn_ld(base, i, dt == DC_F64);
}
static inline void ref_st(void *base, int64_t i, dc_dtype dt, double v) {
  if (dt == DC_BF16)
    ((uint16_t *)base)[i] = dc__f32_to_bf16((float)v);
  else
    dc__nn_st(base, i, dt == DC_F64, v);
}

static int64_t ref_work(const dc_conv2d_geom *g) {
  return g->n * g->k * g->oh * g->ow * (g->c / g->groups) * g->kh * g->kw;
}

int dc__cpu_conv2d_ref_forward(dc_tensor *y, const dc_tensor *x, const dc_tensor *w,
                               const dc_tensor *b, const dc_conv2d_geom *g) {
  dc_dtype dt = x->dtype;
  const void *px = dc_data(x), *pw = dc_data(w), *pb = b ? dc_data(b) : NULL;
  void *py = dc_data(y);
  int64_t cg = g->c / g->groups, kg = g->k / g->groups;
#pragma omp parallel for schedule(static) if (ref_work(g) >= DC__PAR_MIN)
  for (int64_t nk = 0; nk < g->n * g->k; nk++) {
    int64_t n = nk / g->k, k = nk % g->k, c0 = (k / kg) * cg;
    for (int64_t oh = 0; oh < g->oh; oh++)
      for (int64_t ow = 0; ow < g->ow; ow++) {
        double acc = pb ? ref_ld(pb, k, dt) : 0.0;
        for (int64_t c = 0; c < cg; c++)
          for (int64_t r = 0; r < g->kh; r++) {
            int64_t ih = oh * g->stride[0] - g->pad_l[0] + r * g->dilation[0];
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t s = 0; s < g->kw; s++) {
              int64_t iw = ow * g->stride[1] - g->pad_l[1] + s * g->dilation[1];
              if (iw < 0 || iw >= g->w) continue;
              acc += ref_ld(px, ((n * g->c + c0 + c) * g->h + ih) * g->w + iw, dt) *
                     ref_ld(pw, ((k * cg + c) * g->kh + r) * g->kw + s, dt);
            }
          }
        ref_st(py, (nk * g->oh + oh) * g->ow + ow, dt, acc);
      }
  }
  return DC_OK;
}

/* gx[n, c, ih, iw] = sum over k in c's group, r, s with ih = oh*sh - pad + r*dh of gy * w */
static void ref_backward_data(void *pgx, const void *pgy, const void *pw, const dc_conv2d_geom *g,
                              dc_dtype dt) {
  int64_t cg = g->c / g->groups, kg = g->k / g->groups;
#pragma omp parallel for schedule(static) if (ref_work(g) >= DC__PAR_MIN)
  for (int64_t nc = 0; nc < g->n * g->c; nc++) {
    int64_t n = nc / g->c, ci = nc % g->c, grp = ci / cg, c = ci % cg;
    for (int64_t ih = 0; ih < g->h; ih++)
      for (int64_t iw = 0; iw < g->w; iw++) {
        double acc = 0.0;
        for (int64_t r = 0; r < g->kh; r++) {
          int64_t th = ih + g->pad_l[0] - r * g->dilation[0];
          if (th < 0 || th % g->stride[0]) continue;
          int64_t oh = th / g->stride[0];
          if (oh >= g->oh) continue;
          for (int64_t s = 0; s < g->kw; s++) {
            int64_t tw = iw + g->pad_l[1] - s * g->dilation[1];
            if (tw < 0 || tw % g->stride[1]) continue;
            int64_t ow = tw / g->stride[1];
            if (ow >= g->ow) continue;
            for (int64_t k = grp * kg; k < (grp + 1) * kg; k++)
              acc += ref_ld(pgy, ((n * g->k + k) * g->oh + oh) * g->ow + ow, dt) *
                     ref_ld(pw, ((k * cg + c) * g->kh + r) * g->kw + s, dt);
          }
        }
        ref_st(pgx, (nc * g->h + ih) * g->w + iw, dt, acc);
      }
  }
}

/* gw[k, c, r, s] = sum over n, oh, ow of gy[n, k, oh, ow] * x[n, c', ih, iw] */
static void ref_backward_weights(void *pgw, const void *pgy, const void *px,
                                 const dc_conv2d_geom *g, dc_dtype dt) {
  int64_t cg = g->c / g->groups, kg = g->k / g->groups;
#pragma omp parallel for schedule(static) if (ref_work(g) >= DC__PAR_MIN)
  for (int64_t kc = 0; kc < g->k * cg; kc++) {
    int64_t k = kc / cg, c = kc % cg, ci = (k / kg) * cg + c;
    for (int64_t r = 0; r < g->kh; r++)
      for (int64_t s = 0; s < g->kw; s++) {
        double acc = 0.0;
        for (int64_t n = 0; n < g->n; n++)
          for (int64_t oh = 0; oh < g->oh; oh++) {
            int64_t ih = oh * g->stride[0] - g->pad_l[0] + r * g->dilation[0];
            if (ih < 0 || ih >= g->h) continue;
            for (int64_t ow = 0; ow < g->ow; ow++) {
              int64_t iw = ow * g->stride[1] - g->pad_l[1] + s * g->dilation[1];
              if (iw < 0 || iw >= g->w) continue;
              acc += ref_ld(pgy, ((n * g->k + k) * g->oh + oh) * g->ow + ow, dt) *
                     ref_ld(px, ((n * g->c + ci) * g->h + ih) * g->w + iw, dt);
            }
          }
        ref_st(pgw, (kc * g->kh + r) * g->kw + s, dt, acc);
      }
  }
}

/* gb[k] = sum over n, oh, ow of gy[n, k, oh, ow] */
static void ref_backward_bias(void *pgb, const void *pgy, const dc_conv2d_geom *g, dc_dtype dt) {
  int64_t plane = g->oh * g->ow;
  for (int64_t k = 0; k < g->k; k++) {
    double acc = 0.0;
    for (int64_t n = 0; n < g->n; n++)
      for (int64_t i = 0; i < plane; i++) acc += ref_ld(pgy, (n * g->k + k) * plane + i, dt);
    ref_st(pgb, k, dt, acc);
  }
}

int dc__cpu_conv2d_ref_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                                const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g) {
  dc_dtype dt = gy->dtype;
  if (gx) ref_backward_data(dc_data(gx), dc_data(gy), dc_data(w), g, dt);
  if (gw) ref_backward_weights(dc_data(gw), dc_data(gy), dc_data(x), g, dt);
  if (gb) ref_backward_bias(dc_data(gb), dc_data(gy), g, dt);
  return DC_OK;
}
