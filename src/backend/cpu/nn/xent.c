/* CPU kernels for the class-index losses: cross-entropy as one fused log-softmax + NLL pass (its
 * backward is softmax minus the (smoothed, weighted) one-hot target, scaled), NLL on
 * log-probabilities, and the multi-class hinge loss (MultiMarginLoss). Targets are checked here,
 * once, before any arithmetic. Reductions sum fixed blocks of rows in order.
 * Shapes: x [N, C, I] (I: the product of extra dims, 1 for [N, C]); R = N * I rows, row r = (n, i)
 * holds the C values x[n, :, i]; target int64 [R]; weight [C]; out/gout [R] or 0-d; lse [R]: each
 * row's log(sum(exp(x - max))) (0 where max is infinite), which the backward takes with the max. */
#include "nn-cpu.h"

#include <math.h>
#include <stdio.h>

#define ROW_BLOCK 256

/* Position of flat index r in a tensor of shape s, as "[n, i, j]". */
static void index_str(const dc_tensor *t, int64_t r, char *buf, size_t n) {
  int64_t idx[DC_MAX_DIMS];
  for (int d = t->ndim - 1; d >= 0; d--) {
    idx[d] = t->shape[d] ? r % t->shape[d] : 0;
    r = t->shape[d] ? r / t->shape[d] : 0;
  }
  size_t k = (size_t)snprintf(buf, n, "[");
  for (int d = 0; d < t->ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)idx[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
}

static int check_targets(const char *op, const dc_tensor *target, int64_t classes, bool has_ignore,
                         int64_t ignore) {
  const int64_t *pt = dc_data(target);
  int64_t n = dc_numel(target);
  for (int64_t r = 0; r < n; r++) {
    int64_t t = pt[r];
    if ((has_ignore && t == ignore) || (t >= 0 && t < classes)) continue;
    char pos[128];
    index_str(target, r, pos, sizeof pos);
    return dc__errs(DC_ERR_ARG,
                    "%s: target label %lld at position %s is out of range for %lld "
                    "classes (labels must be in 0..%lld%s); check the labels or the number of "
                    "classes of the last layer",
                    op, (long long)t, target->ndim ? pos : "[] (0-d target)", (long long)classes,
                    (long long)classes - 1, has_ignore ? " or the ignore_index" : "");
  }
  return DC_OK;
}

/* ---- cross-entropy / NLL ---- */

/* The largest of the C values of row base (NaN if one is NaN). The log-softmax is taken as
 * (x - max) - log(sum(exp(x - max))), never as x - (max + log(sum)): at |max| = 1e30 the sum's
 * log would vanish into max, and the probabilities would not add up to 1. */
static double row_max(const void *px, int64_t base, int64_t C, int64_t I, bool f64) {
  double mx = -INFINITY;
  for (int64_t c = 0; c < C; c++) {
    double v = dc__nn_ld(px, base + c * I, f64);
    if (v > mx || isnan(v)) mx = v;
  }
  return mx;
}

int dc__cpu_xent_forward(dc_tensor *out, dc_tensor *lse, double wsum[2], const dc_tensor *x,
                         const dc_tensor *target, const dc_tensor *weight,
                         const dc_xent_params *p) {
  int rc = check_targets(p->log_softmax ? "cross_entropy" : "nll_loss", target, p->classes, true,
                         p->ignore_index);
  if (rc != DC_OK) return rc;
  bool f64 = x->dtype == DC_F64, reduce = p->reduction != DC_REDUCTION_NONE;
  const void *px = dc_data(x), *pw = weight ? dc_data(weight) : NULL;
  const int64_t *pt = dc_data(target);
  void *po = dc_data(out), *pl = lse ? dc_data(lse) : NULL;
  int64_t R = p->rows, C = p->classes, I = p->inner, nb = (R + ROW_BLOCK - 1) / ROW_BLOCK;
  double eps = p->smoothing;
  double *part = dc__calloc((size_t)(nb > 0 ? nb : 1) * 3, sizeof *part); /* sum a, sum s, sum w */
  if (!part) return dc_last_status();
#pragma omp parallel for schedule(static) if (R * C >= DC__PAR_MIN)
  for (int64_t b = 0; b < nb; b++) {
    double sa = 0, ss = 0, sw = 0;
    int64_t end = (b + 1) * ROW_BLOCK < R ? (b + 1) * ROW_BLOCK : R;
    for (int64_t r = b * ROW_BLOCK; r < end; r++) {
      int64_t base = (r / I) * C * I + r % I;
      double mx = 0, ls = 0; /* log-probability of class c: (x[c] - mx) - ls */
      if (p->log_softmax) {
        mx = row_max(px, base, C, I, f64);
        double se = 0;
        for (int64_t c = 0; c < C; c++) se += exp(dc__nn_ld(px, base + c * I, f64) - mx);
        ls = isinf(mx) ? 0 : log(se);
        dc__nn_st(pl, r, f64, ls);
      }
      int64_t t = pt[r];
      double row = 0;
      if (t != p->ignore_index) {
        double wt = pw ? dc__nn_ld(pw, t, f64) : 1.0;
        double a = -wt * ((dc__nn_ld(px, base + t * I, f64) - mx) - ls), s = 0;
        if (eps > 0)
          for (int64_t c = 0; c < C; c++)
            s -=
                (pw ? dc__nn_ld(pw, c, f64) : 1.0) * ((dc__nn_ld(px, base + c * I, f64) - mx) - ls);
        sa += a;
        ss += s;
        sw += wt;
        row = (1 - eps) * a + eps / (double)C * s;
      }
      if (!reduce) dc__nn_st(po, r, f64, row);
    }
    part[3 * b] = sa;
    part[3 * b + 1] = ss;
    part[3 * b + 2] = sw;
  }
  double sa = 0, ss = 0, sw = 0;
  for (int64_t b = 0; b < nb; b++) {
    sa += part[3 * b];
    ss += part[3 * b + 1];
    sw += part[3 * b + 2];
  }
  dc__free(part);
  /* MEAN: both terms over the summed weights of the non-ignored targets (their count when
   * unweighted), as PyTorch 1.13 */
  wsum[0] = sw;
  wsum[1] = sw;
  if (p->reduction == DC_REDUCTION_MEAN)
    dc__nn_st(po, 0, f64,
              (1 - eps) * sa / wsum[0] + (eps > 0 ? eps / (double)C * ss / wsum[1] : 0.0));
  else if (reduce)
    dc__nn_st(po, 0, f64, (1 - eps) * sa + eps / (double)C * ss);
  return DC_OK;
}

int dc__cpu_xent_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                          const dc_tensor *lse, const dc_tensor *target, const dc_tensor *weight,
                          const double wsum[2], const dc_xent_params *p) {
  bool f64 = x->dtype == DC_F64, reduce = p->reduction != DC_REDUCTION_NONE;
  const void *px = dc_data(x), *pw = weight ? dc_data(weight) : NULL, *pg = dc_data(gout);
  const void *pl = lse ? dc_data(lse) : NULL;
  const int64_t *pt = dc_data(target);
  void *pgx = dc_data(gx);
  int64_t R = p->rows, C = p->classes, I = p->inner;
  double eps = p->smoothing, W = 0;
  for (int64_t c = 0; c < C; c++) W += pw ? dc__nn_ld(pw, c, f64) : 1.0;
  double g0 = reduce ? dc__nn_ld(pg, 0, f64) : 0.0;
  bool mean = p->reduction == DC_REDUCTION_MEAN;
  double d1 = mean ? wsum[0] : 1.0, d2 = mean ? wsum[1] : 1.0;
#pragma omp parallel for schedule(static) if (R * C >= DC__PAR_MIN)
  for (int64_t r = 0; r < R; r++) {
    int64_t base = (r / I) * C * I + r % I, t = pt[r];
    if (t == p->ignore_index) {
      for (int64_t c = 0; c < C; c++) dc__nn_st(pgx, base + c * I, f64, 0.0);
      continue;
    }
    double g = reduce ? g0 : dc__nn_ld(pg, r, f64);
    double wt = pw ? dc__nn_ld(pw, t, f64) : 1.0;
    double c1 = (1 - eps) * g / d1 * wt, c2 = eps / (double)C * g / d2;
    if (!p->log_softmax) { /* NLL: d/dx[t] = -w[t] */
      for (int64_t c = 0; c < C; c++) dc__nn_st(pgx, base + c * I, f64, c == t ? -c1 : 0.0);
      continue;
    }
    double mx = row_max(px, base, C, I, f64), ls = dc__nn_ld(pl, r, f64);
    for (int64_t c = 0; c < C; c++) {
      double pc = exp((dc__nn_ld(px, base + c * I, f64) - mx) - ls);
      double v = c1 * (pc - (c == t)) + c2 * (pc * W - (pw ? dc__nn_ld(pw, c, f64) : 1.0));
      dc__nn_st(pgx, base + c * I, f64, v);
    }
  }
  return DC_OK;
}

/* ---- multi-class hinge: loss_n = sum over i != y of w[y] max(0, margin - x[y] + x[i])^p / C ----
 */

int dc__cpu_multi_margin_forward(dc_tensor *out, const dc_tensor *x, const dc_tensor *target,
                                 const dc_tensor *weight, int p, double margin, bool reduce,
                                 double scale) {
  int64_t N = x->shape[0], C = x->shape[1];
  int rc = check_targets("multi_margin_loss", target, C, false, 0);
  if (rc != DC_OK) return rc;
  bool f64 = x->dtype == DC_F64;
  const void *px = dc_data(x), *pw = weight ? dc_data(weight) : NULL;
  const int64_t *pt = dc_data(target);
  void *po = dc_data(out);
  int64_t nb = (N + ROW_BLOCK - 1) / ROW_BLOCK;
  double *part = dc__calloc((size_t)(nb > 0 ? nb : 1), sizeof *part);
  if (!part) return dc_last_status();
#pragma omp parallel for schedule(static) if (N * C >= DC__PAR_MIN)
  for (int64_t b = 0; b < nb; b++) {
    double acc = 0;
    int64_t end = (b + 1) * ROW_BLOCK < N ? (b + 1) * ROW_BLOCK : N;
    for (int64_t n = b * ROW_BLOCK; n < end; n++) {
      int64_t y = pt[n];
      double xy = dc__nn_ld(px, n * C + y, f64), s = 0;
      for (int64_t i = 0; i < C; i++) {
        if (i == y) continue;
        double z = margin - xy + dc__nn_ld(px, n * C + i, f64);
        if (z > 0) s += (p == 1 ? z : z * z) * (pw ? dc__nn_ld(pw, y, f64) : 1.0);
      }
      s /= (double)C;
      if (reduce)
        acc += s;
      else
        dc__nn_st(po, n, f64, s);
    }
    part[b] = acc;
  }
  if (reduce) {
    double s = 0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    dc__nn_st(po, 0, f64, s * scale);
  }
  dc__free(part);
  return DC_OK;
}

int dc__cpu_multi_margin_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                                  const dc_tensor *target, const dc_tensor *weight, int p,
                                  double margin, double scale) {
  int64_t N = x->shape[0], C = x->shape[1];
  bool f64 = x->dtype == DC_F64, per_row = gout->ndim > 0;
  const void *px = dc_data(x), *pw = weight ? dc_data(weight) : NULL, *pg = dc_data(gout);
  const int64_t *pt = dc_data(target);
  void *pgx = dc_data(gx);
  double g0 = per_row ? 0 : dc__nn_ld(pg, 0, f64);
#pragma omp parallel for schedule(static) if (N * C >= DC__PAR_MIN)
  for (int64_t n = 0; n < N; n++) {
    int64_t y = pt[n];
    double g = (per_row ? dc__nn_ld(pg, n, f64) : g0) * scale / (double)C;
    if (pw) g *= dc__nn_ld(pw, y, f64);
    double xy = dc__nn_ld(px, n * C + y, f64), gy = 0;
    for (int64_t i = 0; i < C; i++) {
      if (i == y) continue;
      double z = margin - xy + dc__nn_ld(px, n * C + i, f64);
      double h = z > 0 ? (p == 1 ? g : 2 * g * z) : 0.0;
      gy -= h;
      dc__nn_st(pgx, n * C + i, f64, h);
    }
    dc__nn_st(pgx, n * C + y, f64, gy);
  }
  return DC_OK;
}
