/* CUDA class-index losses with the CPU's formulas (cpu/nn/xent.c): cross-entropy as one fused
 * log-softmax + NLL pass per row (its backward is softmax minus the smoothed, weighted one-hot
 * target), NLL on log-probabilities, and the multi-class hinge loss. The per-row arithmetic is
 * loss-math.h's, which tests/unit/test_cuda_math.c runs on the host. Targets are checked on the
 * device first: a bad one is the CPU's error naming the label, its position and C, and leaves
 * the outputs untouched. Reduced sums are in double without atomics (a fixed tree per block, then
 * the blocks' partials in order: blocksum.cuh). The forward reads the summed target weights back
 * (wsum), so it synchronises. Shapes: x, gx [N, C, I], R = N * I rows; target int64 [R]; weight
 * [C]; out, gout, lse [R] or 0-d; multi-margin x, gx [N, C]. */
#include <stdio.h>

#include "blocksum.cuh"
#include "loss-math.h"

#define XENT_MAX_BLOCKS 1024

static unsigned red_blocks(int64_t n) {
  unsigned b = dc__cu_blocks(n);
  return b > XENT_MAX_BLOCKS ? XENT_MAX_BLOCKS : b;
}

/* ---- target check ---- */

/* *first = the smallest position r of a bad target (left at INT64_MAX when none) */
__global__ void target_check_k(const int64_t *t, int64_t n, int64_t C, bool has_ignore,
                               int64_t ignore, unsigned long long *first) {
  DC__CU_FOR(r, n) {
    if (!dc__cuxent_target_ok(t[r], C, has_ignore, ignore)) atomicMin(first, (unsigned long long)r);
  }
}

/* Position of flat index r in a tensor of t's shape, as "[n, i, j]". */
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

/* every target in [0, classes) or the ignore_index, else the CPU's error for the first bad one */
static int check_targets(const char *op, const dc_tensor *target, int64_t classes, bool has_ignore,
                         int64_t ignore) {
  int64_t n = dc_numel(target);
  if (n == 0) return DC_OK;
  unsigned long long *first = (unsigned long long *)dc__cuda_mem.alloc(sizeof *first);
  if (!first) return dc__errs(DC_ERR_NOMEM, "%s: no device memory for the target check", op);
  unsigned long long none = (unsigned long long)INT64_MAX, h = none;
  const int64_t *pt = (const int64_t *)dc__cuda_ptr(target);
  int rc = dc__cuda_mem.from_host(first, &none, sizeof none);
  if (rc == DC_OK) {
    target_check_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
        pt, n, classes, has_ignore, ignore, first);
    rc = dc__cuda_launched("target check kernel");
  }
  if (rc == DC_OK) rc = dc__cuda_mem.to_host(&h, first, sizeof h);
  dc__cuda_mem.free(first);
  if (rc != DC_OK || h == none) return rc;
  int64_t t = 0;
  rc = dc__cuda_mem.to_host(&t, pt + h, sizeof t);
  if (rc != DC_OK) return rc;
  char pos[128];
  index_str(target, (int64_t)h, pos, sizeof pos);
  return dc__errs(DC_ERR_ARG,
                  "%s: target label %lld at position %s is out of range for %lld "
                  "classes (labels must be in 0..%lld%s); check the labels or the number of "
                  "classes of the last layer",
                  op, (long long)t, target->ndim ? pos : "[] (0-d target)", (long long)classes,
                  (long long)classes - 1, has_ignore ? " or the ignore_index" : "");
}

/* ---- cross-entropy / NLL ---- */

/* one thread per row; part[block * 3 + k]: the block's sums of the NLL terms, the smoothing
 * terms and the target weights */
__global__ void xent_forward_k(dc__cuxent a, double *part) {
  __shared__ double sh[3 * DC__CU_THREADS];
  double s[3] = {0.0, 0.0, 0.0};
  DC__CU_FOR(r, a.R) dc__cuxent_row_forward(&a, r, s);
  dc__cu_block_sum<3>(s, sh);
  if (threadIdx.x == 0)
    for (int k = 0; k < 3; k++) part[blockIdx.x * 3 + k] = s[k];
}

/* one thread: the reduced loss from the three sums */
__global__ void xent_total_k(dc__cuxent a, const double *sums) {
  if (threadIdx.x == 0 && blockIdx.x == 0) dc__hd_st(a.out, 0, a.f64, dc__cuxent_total(&a, sums));
}

__global__ void xent_backward_k(dc__cuxent a) { DC__CU_FOR(r, a.R) dc__cuxent_row_backward(&a, r); }

static void xent_args(dc__cuxent *a, const dc_tensor *x, const dc_tensor *target,
                      const dc_tensor *weight, const dc_xent_params *p) {
  memset(a, 0, sizeof *a);
  a->R = p->rows;
  a->C = p->classes;
  a->I = p->inner;
  a->ignore = p->ignore_index;
  a->eps = p->smoothing;
  a->log_softmax = p->log_softmax;
  a->reduce = p->reduction != DC_REDUCTION_NONE;
  a->mean = p->reduction == DC_REDUCTION_MEAN;
  a->f64 = x->dtype == DC_F64;
  a->x = dc__cuda_ptr(x);
  a->w = weight ? dc__cuda_ptr(weight) : NULL;
  a->t = (const int64_t *)dc__cuda_ptr(target);
}

extern "C" int dc__cuda_xent_forward(dc_tensor *out, dc_tensor *lse, double wsum[2],
                                     const dc_tensor *x, const dc_tensor *target,
                                     const dc_tensor *weight, const dc_xent_params *p) {
  int rc = check_targets(p->log_softmax ? "cross_entropy" : "nll_loss", target, p->classes, true,
                         p->ignore_index);
  if (rc != DC_OK) return rc;
  dc__cuxent a;
  xent_args(&a, x, target, weight, p);
  a.out = dc__cuda_ptr(out);
  a.lse = lse ? dc__cuda_ptr(lse) : NULL;
  unsigned nb = a.R > 0 ? red_blocks(a.R) : 0;
  /* part [nb, 3], then the three totals */
  double *part = (double *)dc__cuda_mem.alloc(sizeof(double) * 3 * (nb + 1));
  if (!part) return dc__errs(DC_ERR_NOMEM, "cross_entropy: no device memory for the row sums");
  double *sums = part + 3 * nb, h[3] = {0, 0, 0};
  cudaStream_t s = dc__cuda_stream();
  if (nb) xent_forward_k<<<nb, DC__CU_THREADS, 0, s>>>(a, part);
  dc__cu_sum_parts_k<3><<<1, DC__CU_THREADS, 0, s>>>(sums, part, (int64_t)nb);
  if (a.reduce) xent_total_k<<<1, 1, 0, s>>>(a, sums);
  rc = dc__cuda_launched("cross_entropy kernel");
  if (rc == DC_OK) rc = dc__cuda_mem.to_host(h, sums, sizeof h);
  dc__cuda_mem.free(part);
  if (rc != DC_OK) return rc;
  wsum[0] = h[2]; /* MEAN: both terms over the summed target weights, as the CPU */
  wsum[1] = h[2];
  return DC_OK;
}

extern "C" int dc__cuda_xent_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                                      const dc_tensor *lse, const dc_tensor *target,
                                      const dc_tensor *weight, const double wsum[2],
                                      const dc_xent_params *p) {
  dc__cuxent a;
  xent_args(&a, x, target, weight, p);
  a.gout = dc__cuda_ptr(gout);
  a.lse = lse ? dc__cuda_ptr(lse) : NULL;
  a.gx = dc__cuda_ptr(gx);
  a.wsum[0] = wsum[0];
  a.wsum[1] = wsum[1];
  if (a.R == 0) return DC_OK;
  xent_backward_k<<<dc__cu_blocks(a.R), DC__CU_THREADS, 0, dc__cuda_stream()>>>(a);
  return dc__cuda_launched("cross_entropy backward kernel");
}

/* ---- multi-class hinge (MultiMarginLoss) ---- */

/* one thread per row; part[block]: the block's sum of the row losses (reduced) */
__global__ void mm_forward_k(dc__cumm a, double *part) {
  __shared__ double sh[DC__CU_THREADS];
  double s[1] = {0.0};
  DC__CU_FOR(n, a.N) s[0] += dc__cumm_row_forward(&a, n);
  if (!a.reduce) return;
  dc__cu_block_sum<1>(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s[0];
}

/* one thread: out[0] = sums[0] * scale */
__global__ void mm_total_k(dc__cumm a, const double *sums) {
  if (threadIdx.x == 0 && blockIdx.x == 0) dc__hd_st(a.out, 0, a.f64, sums[0] * a.scale);
}

__global__ void mm_backward_k(dc__cumm a) { DC__CU_FOR(n, a.N) dc__cumm_row_backward(&a, n); }

static void mm_args(dc__cumm *a, const dc_tensor *x, const dc_tensor *target,
                    const dc_tensor *weight, int p, double margin, double scale) {
  memset(a, 0, sizeof *a);
  a->N = x->shape[0];
  a->C = x->shape[1];
  a->p = p;
  a->margin = margin;
  a->scale = scale;
  a->f64 = x->dtype == DC_F64;
  a->x = dc__cuda_ptr(x);
  a->w = weight ? dc__cuda_ptr(weight) : NULL;
  a->t = (const int64_t *)dc__cuda_ptr(target);
}

extern "C" int dc__cuda_multi_margin_forward(dc_tensor *out, const dc_tensor *x,
                                             const dc_tensor *target, const dc_tensor *weight,
                                             int p, double margin, bool reduce, double scale) {
  int rc = check_targets("multi_margin_loss", target, x->shape[1], false, 0);
  if (rc != DC_OK) return rc;
  dc__cumm a;
  mm_args(&a, x, target, weight, p, margin, scale);
  a.reduce = reduce;
  a.out = dc__cuda_ptr(out);
  cudaStream_t s = dc__cuda_stream();
  if (!reduce) {
    if (a.N == 0) return DC_OK;
    mm_forward_k<<<dc__cu_blocks(a.N), DC__CU_THREADS, 0, s>>>(a, NULL);
    return dc__cuda_launched("multi_margin_loss kernel");
  }
  unsigned nb = a.N > 0 ? red_blocks(a.N) : 0;
  double *part = (double *)dc__cuda_mem.alloc(sizeof(double) * (nb + 1));
  if (!part) return dc__errs(DC_ERR_NOMEM, "multi_margin_loss: no device memory for the row sums");
  double *sums = part + nb;
  if (nb) mm_forward_k<<<nb, DC__CU_THREADS, 0, s>>>(a, part);
  dc__cu_sum_parts_k<1><<<1, DC__CU_THREADS, 0, s>>>(sums, part, (int64_t)nb);
  mm_total_k<<<1, 1, 0, s>>>(a, sums);
  dc__cuda_mem.free(part); /* one stream: a later user of the block runs after these kernels */
  return dc__cuda_launched("multi_margin_loss kernel");
}

extern "C" int dc__cuda_multi_margin_backward(dc_tensor *gx, const dc_tensor *gout,
                                              const dc_tensor *x, const dc_tensor *target,
                                              const dc_tensor *weight, int p, double margin,
                                              double scale) {
  dc__cumm a;
  mm_args(&a, x, target, weight, p, margin, scale);
  a.per_row = gout->ndim > 0;
  a.gout = dc__cuda_ptr(gout);
  a.gx = dc__cuda_ptr(gx);
  if (a.N == 0) return DC_OK;
  mm_backward_k<<<dc__cu_blocks(a.N), DC__CU_THREADS, 0, dc__cuda_stream()>>>(a);
  return dc__cuda_launched("multi_margin_loss backward kernel");
}
