/* CPU kernels for gradient clipping: per-buffer p-norms (partials per fixed chunk, combined in
 * chunk order, so the norm does not depend on the thread count), scaling and clamping, each one
 * threaded pass over every gradient. The rules of torch.nn.utils live in src/optim/clip.c. */
#pragma GCC optimize("fp-contract=off")

#include "cpu-optim.h"

#include <math.h>

#define DC__OPTK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

#define T float
#define FN(name) name##_f32
#include "clip-body.h"
#undef T
#undef FN

#define T double
#define FN(name) name##_f64
#include "clip-body.h"
#undef T
#undef FN

/* How partials of one buffer combine. */
typedef enum norm_kind { NORM_L2, NORM_L1, NORM_INF, NORM_NEGINF, NORM_L0, NORM_P } norm_kind;

static norm_kind kind_of(double p) {
  if (p == 2) return NORM_L2;
  if (p == 1) return NORM_L1;
  if (p == INFINITY) return NORM_INF;
  if (p == -INFINITY) return NORM_NEGINF;
  if (p == 0) return NORM_L0;
  return NORM_P;
}

static double partial(const dc_optk_buf *b, int64_t off, int64_t n, norm_kind k, double p) {
  if (b->dtype == DC_F32) {
    const float *x = (const float *)b->data + off;
    switch (k) {
    case NORM_L2:
      return sumsq_f32(x, n);
    case NORM_L1:
      return sumabs_f32(x, n);
    case NORM_INF:
      return extreme_abs_f32(x, n, true);
    case NORM_NEGINF:
      return extreme_abs_f32(x, n, false);
    case NORM_L0:
      return count_nonzero_f32(x, n);
    case NORM_P:
      return sumpow_f32(x, n, p);
    }
  }
  const double *x = (const double *)b->data + off;
  switch (k) {
  case NORM_L2:
    return sumsq_f64(x, n);
  case NORM_L1:
    return sumabs_f64(x, n);
  case NORM_INF:
    return extreme_abs_f64(x, n, true);
  case NORM_NEGINF:
    return extreme_abs_f64(x, n, false);
  case NORM_L0:
    return count_nonzero_f64(x, n);
  case NORM_P:
    return sumpow_f64(x, n, p);
  }
  return NAN;
}

/* acc (partials so far) combined with the next partial v */
static double combine(double acc, double v, norm_kind k) {
  if (k == NORM_INF || k == NORM_NEGINF) {
    if (acc != acc || v != v) return NAN;
    return (k == NORM_INF ? v > acc : v < acc) ? v : acc;
  }
  return acc + v;
}

static int plan(const dc_optk_buf *bufs, int nbufs, int64_t **first, int64_t *nchunks,
                int64_t *total) {
  int64_t *sizes = dc__malloc(sizeof *sizes * (size_t)(nbufs > 0 ? nbufs : 1));
  if (!sizes) return DC_ERR_NOMEM;
  for (int k = 0; k < nbufs; k++) sizes[k] = bufs[k].n;
  bool ok = dc__optk_plan_chunks(sizes, nbufs, first, nchunks, total);
  dc__free(sizes);
  return ok ? DC_OK : DC_ERR_NOMEM;
}

static int64_t chunk_len(const dc_optk_buf *b, int64_t off) {
  return b->n - off < DC__OPTK_CHUNK ? b->n - off : DC__OPTK_CHUNK;
}

int dc__cpu_optk_norms(const dc_optk_buf *bufs, int nbufs, double p, double *norms) {
  if (nbufs <= 0) return DC_OK;
  int64_t *first, nchunks, total;
  int rc = plan(bufs, nbufs, &first, &nchunks, &total);
  if (rc != DC_OK) return rc;
  double *part = dc__malloc(sizeof *part * (size_t)(nchunks > 0 ? nchunks : 1));
  if (!part) {
    dc__free(first);
    return DC_ERR_NOMEM;
  }
  norm_kind k = kind_of(p);
#pragma omp parallel for schedule(static) if (total >= DC__PAR_MIN)
  for (int64_t c = 0; c < nchunks; c++) {
    int b = dc__optk_chunk_owner(first, nbufs, c);
    int64_t off = (c - first[b]) * DC__OPTK_CHUNK;
    part[c] = partial(&bufs[b], off, chunk_len(&bufs[b], off), k, p);
  }
  for (int b = 0; b < nbufs; b++) {
    double acc = k == NORM_NEGINF ? INFINITY : 0.0;
    for (int64_t c = first[b]; c < first[b + 1]; c++) acc = combine(acc, part[c], k);
    if (k == NORM_L2)
      acc = sqrt(acc);
    else if (k == NORM_P)
      acc = pow(acc, 1.0 / p);
    norms[b] = acc;
  }
  dc__free(part);
  dc__free(first);
  return DC_OK;
}

/* One threaded pass over every buffer: scale (is_scale) or clamp to [lo, hi]. */
static int inplace_pass(const dc_optk_buf *bufs, int nbufs, bool is_scale, double a, double b) {
  if (nbufs <= 0) return DC_OK;
  int64_t *first, nchunks, total;
  int rc = plan(bufs, nbufs, &first, &nchunks, &total);
  if (rc != DC_OK) return rc;
#pragma omp parallel for schedule(static) if (total >= DC__PAR_MIN)
  for (int64_t c = 0; c < nchunks; c++) {
    int k = dc__optk_chunk_owner(first, nbufs, c);
    const dc_optk_buf *bf = &bufs[k];
    int64_t off = (c - first[k]) * DC__OPTK_CHUNK, n = chunk_len(bf, off);
    if (bf->dtype == DC_F32) {
      float *x = (float *)bf->data + off;
      if (is_scale)
        scale_f32(x, n, a);
      else
        clamp_f32(x, n, a, b);
    } else {
      double *x = (double *)bf->data + off;
      if (is_scale)
        scale_f64(x, n, a);
      else
        clamp_f64(x, n, a, b);
    }
  }
  dc__free(first);
  return DC_OK;
}

int dc__cpu_optk_scale(const dc_optk_buf *bufs, int nbufs, double coef) {
  return inplace_pass(bufs, nbufs, true, coef, 0);
}

int dc__cpu_optk_clamp(const dc_optk_buf *bufs, int nbufs, double lo, double hi) {
  return inplace_pass(bufs, nbufs, false, lo, hi);
}
