/* CPU reductions (sum, mean, max, min, logsumexp over a dim mask), arg-max/min along one dim and
 * softmax/log-softmax. Accumulation is in double; work splits over fixed blocks so the result
 * never depends on the thread count. x is made contiguous by the caller (src/ops/reduce.c). */
#include "cpu-impl.h"

#include <math.h>
#include <string.h>

/* Alternating groups of kept (K) and reduced (R) dims of a contiguous x. */
typedef struct groups {
  int n;
  int64_t size[DC_MAX_DIMS];
  int64_t xstride[DC_MAX_DIMS]; /* elements of x per step of this group */
  int64_t mstride[DC_MAX_DIMS]; /* accumulator elements per step (0 for R groups) */
  bool reduced[DC_MAX_DIMS];
} groups;

static void make_groups(const dc_tensor *x, uint32_t mask, groups *g) {
  g->n = 0;
  for (int d = 0; d < x->ndim; d++) {
    if (x->shape[d] == 1) continue;
    bool r = (mask >> d) & 1u;
    if (g->n > 0 && g->reduced[g->n - 1] == r) {
      g->size[g->n - 1] *= x->shape[d];
    } else {
      g->reduced[g->n] = r;
      g->size[g->n++] = x->shape[d];
    }
  }
  if (g->n == 0) {
    g->size[0] = 1;
    g->reduced[0] = true;
    g->n = 1;
  }
  int64_t xs = 1, ms = 1;
  for (int k = g->n - 1; k >= 0; k--) {
    g->xstride[k] = xs;
    xs *= g->size[k];
    g->mstride[k] = g->reduced[k] ? 0 : ms;
    if (!g->reduced[k]) ms *= g->size[k];
  }
}

typedef struct red_ctx {
  dc_reduce_op op;
  dc_dtype dt;
  const void *x;
  double *acc;      /* [M] accumulators */
  const double *mx; /* [M] maxima for logsumexp's second pass */
  const groups *g;
} red_ctx;

static inline double ld(const red_ctx *c, int64_t i) {
  return c->dt == DC_F32 ? (double)((const float *)c->x)[i] : ((const double *)c->x)[i];
}

static inline double combine(dc_reduce_op op, double a, double v, double m) {
  switch (op) {
  case DC_RED_SUM:
  case DC_RED_MEAN:
    return a + v;
  case DC_RED_MAX:
    return (v > a || isnan(v)) ? v : a;
  case DC_RED_MIN:
    return (v < a || isnan(v)) ? v : a;
  case DC_RED_LOGSUMEXP:
    return a + exp(v - m);
  case DC_REDUCE_COUNT:
    break;
  }
  return a;
}

/* Sum of a contiguous run, 4 partial lanes (vectorisable, deterministic). */
__attribute__((target_clones("avx512f", "avx2", "default"))) static double
sum_run_f32(const float *p, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (; i < n; i++) s0 += p[i];
  return (s0 + s1) + (s2 + s3);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
add_row_f32(double *acc, const float *p, int64_t n) {
  for (int64_t i = 0; i < n; i++) acc[i] += p[i];
}

static void visit(const red_ctx *c, int k, int64_t xoff, int64_t moff) {
  const groups *g = c->g;
  int64_t n = g->size[k];
  if (k < g->n - 1) {
    for (int64_t i = 0; i < n; i++)
      visit(c, k + 1, xoff + i * g->xstride[k], moff + i * g->mstride[k]);
    return;
  }
  bool sum = c->op == DC_RED_SUM || c->op == DC_RED_MEAN;
  if (g->reduced[k]) {
    double *a = &c->acc[moff];
    if (sum && c->dt == DC_F32) {
      *a += sum_run_f32((const float *)c->x + xoff, n);
      return;
    }
    double m = c->mx ? c->mx[moff] : 0.0, v = *a;
    for (int64_t i = 0; i < n; i++) v = combine(c->op, v, ld(c, xoff + i), m);
    *a = v;
  } else {
    if (sum && c->dt == DC_F32) {
      add_row_f32(&c->acc[moff], (const float *)c->x + xoff, n);
      return;
    }
    for (int64_t i = 0; i < n; i++)
      c->acc[moff + i] =
          combine(c->op, c->acc[moff + i], ld(c, xoff + i), c->mx ? c->mx[moff + i] : 0.0);
  }
}

#define DC__RED_BLOCK 65536

/* One pass of op into acc [M] (acc initialised by the caller). */
static void reduce_pass(red_ctx *c, int64_t M) {
  const groups *g = c->g;
  int64_t total = 1;
  for (int k = 0; k < g->n; k++) total *= g->size[k];
  if (!g->reduced[0] && g->n > 1) { /* outermost group kept: split it across threads */
#pragma omp parallel for schedule(static) if (total >= DC__PAR_MIN && g->size[0] > 1)
    for (int64_t i = 0; i < g->size[0]; i++) visit(c, 1, i * g->xstride[0], i * g->mstride[0]);
    return;
  }
  if (g->n == 1 && g->reduced[0] && total >= 2 * DC__RED_BLOCK) {
    /* full reduction of a large run: fixed blocks, partials combined in block order */
    int64_t nb = (total + DC__RED_BLOCK - 1) / DC__RED_BLOCK;
    double *part = dc__malloc(sizeof(double) * (size_t)nb);
    if (part) {
      double init = c->acc[0];
#pragma omp parallel for schedule(static)
      for (int64_t b = 0; b < nb; b++) {
        int64_t s = b * DC__RED_BLOCK, e = s + DC__RED_BLOCK < total ? s + DC__RED_BLOCK : total;
        red_ctx cc = *c;
        groups gg = *g;
        double a = (c->op == DC_RED_MAX || c->op == DC_RED_MIN) ? init : 0.0;
        gg.size[0] = e - s;
        cc.g = &gg;
        cc.acc = &a;
        visit(&cc, 0, s, 0);
        part[b] = a;
      }
      bool extremum = c->op == DC_RED_MAX || c->op == DC_RED_MIN;
      double a = init;
      for (int64_t b = 0; b < nb; b++) a = extremum ? combine(c->op, a, part[b], 0) : a + part[b];
      c->acc[0] = a;
      dc__free(part);
      return;
    }
    dc_clear_error(); /* fall back to one thread */
  }
  (void)M;
  visit(c, 0, 0, 0);
}

static int cpu_reduce(dc_reduce_op op, dc_tensor *out, const dc_tensor *x, uint32_t mask) {
  DC__CHECK(dc_is_contiguous(x) && dc_is_contiguous(out), DC_ERR_STATE);
  if (x->dtype != DC_F32 && x->dtype != DC_F64)
    return dc__errs(DC_ERR_ARG, "reduce: dtype %s not supported by the CPU kernel",
                    dc_dtype_name(x->dtype));
  groups g;
  make_groups(x, mask, &g);
  int64_t M = dc_numel(out), R = 1;
  for (int d = 0; d < x->ndim; d++)
    if ((mask >> d) & 1u) R *= x->shape[d];
  double *acc = dc__malloc(sizeof(double) * (size_t)(M > 0 ? M : 1));
  if (!acc) return DC_ERR_NOMEM;
  const void *xp = (const char *)x->storage->data + (size_t)x->offset * dc_dtype_size(x->dtype);
  red_ctx c = {.op = op, .dt = x->dtype, .x = xp, .acc = acc, .g = &g};
  double *mx = NULL;
  if (dc_numel(x) > 0) {
    if (op == DC_RED_LOGSUMEXP) {
      mx = dc__malloc(sizeof(double) * (size_t)M);
      if (!mx) {
        dc__free(acc);
        return DC_ERR_NOMEM;
      }
      for (int64_t m = 0; m < M; m++) mx[m] = -INFINITY;
      c.op = DC_RED_MAX;
      c.acc = mx;
      reduce_pass(&c, M);
      for (int64_t m = 0; m < M; m++)
        if (!isfinite(mx[m])) mx[m] = isnan(mx[m]) ? mx[m] : 0.0; /* all -inf or +inf rows */
      c.op = DC_RED_LOGSUMEXP;
      c.acc = acc;
      c.mx = mx;
    }
    double init = op == DC_RED_MAX ? -INFINITY : op == DC_RED_MIN ? INFINITY : 0.0;
    for (int64_t m = 0; m < M; m++) acc[m] = init;
    reduce_pass(&c, M);
  } else {
    for (int64_t m = 0; m < M; m++) acc[m] = 0.0;
  }
  char *o = (char *)out->storage->data + (size_t)out->offset * dc_dtype_size(out->dtype);
  for (int64_t m = 0; m < M; m++) {
    double v = acc[m];
    if (op == DC_RED_MEAN) v = R > 0 ? v / (double)R : NAN;
    if (op == DC_RED_LOGSUMEXP) v = R > 0 ? mx[m] + log(v) : -INFINITY;
    if (out->dtype == DC_F32)
      ((float *)o)[m] = (float)v;
    else
      ((double *)o)[m] = v;
  }
  dc__free(mx);
  dc__free(acc);
  return DC_OK;
}

/* x contiguous [O, D, I]; values [O, I] (x's dtype), indices [O, I] int64 */
static int cpu_arg_reduce(bool is_max, dc_tensor *values, dc_tensor *indices, const dc_tensor *x,
                          int dim) {
  DC__CHECK(dc_is_contiguous(x), DC_ERR_STATE);
  int64_t O = 1, D = x->shape[dim], I = 1;
  for (int d = 0; d < dim; d++) O *= x->shape[d];
  for (int d = dim + 1; d < x->ndim; d++) I *= x->shape[d];
  const char *xp = (const char *)x->storage->data + (size_t)x->offset * dc_dtype_size(x->dtype);
  int64_t *ip = indices ? (int64_t *)indices->storage->data + indices->offset : NULL;
  char *vp =
      values ? (char *)values->storage->data + (size_t)values->offset * dc_dtype_size(values->dtype)
             : NULL;
  size_t z = dc_dtype_size(x->dtype);
#pragma omp parallel for schedule(static) if (O * I * D >= DC__PAR_MIN)
  for (int64_t oi = 0; oi < O * I; oi++) {
    int64_t o = oi / I, i = oi % I, best_k = 0;
    double best = dc__load(xp + (size_t)(o * D * I + i) * z, x->dtype);
    for (int64_t k = 1; k < D && !isnan(best); k++) {
      double v = dc__load(xp + (size_t)(o * D * I + k * I + i) * z, x->dtype);
      if (isnan(v) || (is_max ? v > best : v < best)) {
        best = v;
        best_k = k;
      }
    }
    if (ip) ip[oi] = best_k;
    if (vp) dc__store(vp + (size_t)oi * dc_dtype_size(values->dtype), values->dtype, best);
  }
  return DC_OK;
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
softmax_row_f32(float *y, const float *x, int64_t n, bool lg) {
  float m = -INFINITY;
  for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
  if (isinf(m) && m < 0) m = 0; /* all -inf: keep exp finite */
  double s = 0;
  for (int64_t i = 0; i < n; i++) {
    float e = expf(x[i] - m);
    if (!lg) y[i] = e;
    s += e;
  }
  if (lg) {
    float l = m + (float)log(s);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] - l;
  } else {
    float inv = (float)(1.0 / s);
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
  }
}

/* x, out contiguous [O, D, I]; softmax over D */
static int cpu_softmax(dc_tensor *out, const dc_tensor *x, int dim, bool lg) {
  DC__CHECK(dc_is_contiguous(x) && dc_is_contiguous(out), DC_ERR_STATE);
  int64_t O = 1, D = x->shape[dim], I = 1;
  for (int d = 0; d < dim; d++) O *= x->shape[d];
  for (int d = dim + 1; d < x->ndim; d++) I *= x->shape[d];
  size_t z = dc_dtype_size(x->dtype);
  const char *xp = (const char *)x->storage->data + (size_t)x->offset * z;
  char *yp = (char *)out->storage->data + (size_t)out->offset * z;
  if (I == 1 && x->dtype == DC_F32) {
#pragma omp parallel for schedule(static) if (O * D >= DC__PAR_MIN)
    for (int64_t o = 0; o < O; o++)
      softmax_row_f32((float *)yp + o * D, (const float *)xp + o * D, D, lg);
    return DC_OK;
  }
#pragma omp parallel for schedule(static) if (O * I * D >= DC__PAR_MIN)
  for (int64_t oi = 0; oi < O * I; oi++) {
    int64_t o = oi / I, i = oi % I, base = o * D * I + i;
    double m = -INFINITY, s = 0;
    for (int64_t k = 0; k < D; k++) {
      double v = dc__load(xp + (size_t)(base + k * I) * z, x->dtype);
      m = v > m ? v : m;
    }
    if (isinf(m) && m < 0) m = 0;
    for (int64_t k = 0; k < D; k++)
      s += exp(dc__load(xp + (size_t)(base + k * I) * z, x->dtype) - m);
    double l = m + log(s);
    for (int64_t k = 0; k < D; k++) {
      double v = dc__load(xp + (size_t)(base + k * I) * z, x->dtype);
      dc__store(yp + (size_t)(base + k * I) * z, x->dtype, lg ? v - l : exp(v - l));
    }
  }
  return DC_OK;
}

const dc_reduce_kernels dc__cpu_red = {
    .reduce = cpu_reduce,
    .arg_reduce = cpu_arg_reduce,
    .softmax = cpu_softmax,
};
