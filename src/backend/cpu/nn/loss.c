/* CPU kernels for dropout masks, hardtanh and the pointwise losses (MSE, L1, smooth L1, BCE on
 * probabilities and on logits, hinge), forward and backward. Losses compute in double; reduced
 * losses sum fixed blocks in block order, so results do not depend on the thread count.
 * Shapes: E elements; x, t, weight, pos_weight, gx, gt [E]; out and gout [E] or 0-d. */
#include "nn-cpu.h"

#include "../../pwloss-math.h"

#include <math.h>

/* ---- dropout ---- */

int dc__cpu_dropout_mask(dc_tensor *mask, double p) {
  bool f64 = mask->dtype == DC_F64;
  void *pm = dc_data(mask);
  int64_t n = dc_numel(mask);
  double keep = 1.0 - p, scale = keep > 0 ? 1.0 / keep : 0.0;
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
  for (int64_t i = 0; i < n; i++) dc__nn_st(pm, i, f64, dc__nn_ld(pm, i, f64) < keep ? scale : 0.0);
  return DC_OK;
}

int dc__cpu_apply_mask(dc_tensor *y, const dc_tensor *x, const dc_tensor *mask, int64_t inner) {
  dc__cpu_nn_hint_tensor(y);
  int64_t n = dc_numel(y);
  if (x->dtype == DC_F32) {
    float *py = dc_data(y);
    const float *px = dc_data(x), *pm = dc_data(mask);
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
    for (int64_t i = 0; i < n; i++) py[i] = px[i] * pm[inner == 1 ? i : i / inner];
  } else {
    double *py = dc_data(y);
    const double *px = dc_data(x), *pm = dc_data(mask);
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
    for (int64_t i = 0; i < n; i++) py[i] = px[i] * pm[inner == 1 ? i : i / inner];
  }
  return DC_OK;
}

/* ---- hardtanh: y = clamp(x, lo, hi); gx = gy where lo < x < hi, else 0 ---- */

int dc__cpu_hardtanh_forward(dc_tensor *y, const dc_tensor *x, double lo, double hi) {
  bool f64 = x->dtype == DC_F64;
  const void *px = dc_data(x);
  void *py = dc_data(y);
  int64_t n = dc_numel(x);
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    double v = dc__nn_ld(px, i, f64);
    dc__nn_st(py, i, f64, v < lo ? lo : v > hi ? hi : v); /* NaN passes through */
  }
  return DC_OK;
}

int dc__cpu_hardtanh_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *x, double lo,
                              double hi) {
  bool f64 = x->dtype == DC_F64;
  const void *px = dc_data(x), *pgy = dc_data(gy);
  void *pgx = dc_data(gx);
  int64_t n = dc_numel(x);
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    double v = dc__nn_ld(px, i, f64);
    dc__nn_st(pgx, i, f64, v > lo && v < hi ? dc__nn_ld(pgy, i, f64) : 0.0); /* NaN: 0 */
  }
  return DC_OK;
}

/* ---- pointwise losses ---- */

int dc__cpu_pointwise_loss_forward(dc_pwloss_op op, dc_tensor *out, const dc_tensor *x,
                                   const dc_tensor *t, const dc_tensor *weight,
                                   const dc_tensor *pos_weight, double p, bool reduce,
                                   double scale) {
  bool f64 = x->dtype == DC_F64;
  const void *px = dc_data(x), *pt = dc_data(t);
  const void *pwt = weight ? dc_data(weight) : NULL, *ppw = pos_weight ? dc_data(pos_weight) : NULL;
  void *po = dc_data(out);
  int64_t n = dc_numel(x), nb = (n + DC__NN_BLOCK - 1) / DC__NN_BLOCK;
  for (int64_t i = 0; op == DC_PWLOSS_BCE && i < n; i++) {
    double v = dc__nn_ld(px, i, f64);
    if (!(v >= 0 && v <= 1))
      return dc__errs(DC_ERR_ARG,
                      "binary_cross_entropy: all elements of input should be between 0 "
                      "and 1, got %g at flat index %lld; apply dc_sigmoid first, or use "
                      "dc_binary_cross_entropy_with_logits on logits",
                      v, (long long)i);
  }
  double one = 0, *part = nb > 1 ? dc__calloc((size_t)nb, sizeof *part) : &one;
  if (!part) return dc_last_status();
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
  for (int64_t b = 0; b < nb; b++) {
    double acc = 0;
    int64_t end = (b + 1) * DC__NN_BLOCK < n ? (b + 1) * DC__NN_BLOCK : n;
    for (int64_t i = b * DC__NN_BLOCK; i < end; i++) {
      double l = dc__pwloss_value(op, dc__nn_ld(px, i, f64), dc__nn_ld(pt, i, f64), p,
                                  ppw ? dc__nn_ld(ppw, i, f64) : NAN);
      if (pwt) l *= dc__nn_ld(pwt, i, f64);
      if (reduce)
        acc += l;
      else
        dc__nn_st(po, i, f64, l);
    }
    part[b] = acc;
  }
  if (reduce) {
    double s = 0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    dc__nn_st(po, 0, f64, s * scale);
  }
  if (part != &one) dc__free(part);
  return DC_OK;
}

int dc__cpu_pointwise_loss_backward(dc_pwloss_op op, dc_tensor *gx, dc_tensor *gt,
                                    const dc_tensor *gout, const dc_tensor *x, const dc_tensor *t,
                                    const dc_tensor *weight, const dc_tensor *pos_weight, double p,
                                    double scale) {
  bool f64 = x->dtype == DC_F64, per_elem = dc_numel(gout) == dc_numel(x) && gout->ndim > 0;
  const void *px = dc_data(x), *pt = dc_data(t), *pg = dc_data(gout);
  const void *pwt = weight ? dc_data(weight) : NULL, *ppw = pos_weight ? dc_data(pos_weight) : NULL;
  void *pgx = gx ? dc_data(gx) : NULL, *pgt = gt ? dc_data(gt) : NULL;
  int64_t n = dc_numel(x);
  double g0 = per_elem ? 0 : dc__nn_ld(pg, 0, f64);
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    double dx, dt, g = (per_elem ? dc__nn_ld(pg, i, f64) : g0) * scale;
    dc__pwloss_grad(op, dc__nn_ld(px, i, f64), dc__nn_ld(pt, i, f64), p,
                    ppw ? dc__nn_ld(ppw, i, f64) : NAN, &dx, &dt);
    if (pwt) g *= dc__nn_ld(pwt, i, f64);
    if (pgx) dc__nn_st(pgx, i, f64, dx * g);
    if (pgt) dc__nn_st(pgt, i, f64, dt * g);
  }
  return DC_OK;
}
