/* CUDA pointwise losses (MSE, L1, smooth L1, BCE on probabilities and on logits, hinge), forward
 * and backward, with the CPU's formulas (cpu/nn/loss.c) in double: the per-element arithmetic is
 * loss-math.h's, which tests/unit/test_cuda_math.c runs on the host. A reduced loss is summed in
 * double without atomics: each block's threads in a fixed tree, then the blocks' partials in
 * order by one block (blocksum.cuh). BCE checks its input on the device first and names the
 * first bad element as the CPU does (that check synchronises). Shapes: E elements; x, t,
 * weight, pos_weight, gx, gt [E]; out and gout [E] or 0-d. */
#include "blocksum.cuh"
#include "loss-math.h"

#define PW_MAX_BLOCKS 1024

static unsigned red_blocks(int64_t n) {
  unsigned b = dc__cu_blocks(n);
  return b > PW_MAX_BLOCKS ? PW_MAX_BLOCKS : b;
}

/* *first = the smallest i whose input is bad (left at INT64_MAX when none) */
__global__ void pw_check_k(dc__cupw a, unsigned long long *first) {
  DC__CU_FOR(i, a.n) {
    if (dc__cupw_bad_input(&a, i)) atomicMin(first, (unsigned long long)i);
  }
}

/* unreduced: out[i]; reduced: part[block] = the block's sum */
__global__ void pw_forward_k(dc__cupw a, double *part) {
  __shared__ double sh[DC__CU_THREADS];
  double s[1] = {0.0};
  DC__CU_FOR(i, a.n) s[0] += dc__cupw_loss_elem(&a, i);
  if (!a.reduce) return;
  dc__cu_block_sum<1>(s, sh);
  if (threadIdx.x == 0) part[blockIdx.x] = s[0];
}

/* one block: out[0] = the sum of part[0..nb) times scale */
__global__ void sum_store_k(void *out, bool f64, const double *part, int64_t nb, double scale) {
  __shared__ double sh[DC__CU_THREADS];
  double s[1] = {0.0};
  for (int64_t b = threadIdx.x; b < nb; b += blockDim.x) s[0] += part[b];
  dc__cu_block_sum<1>(s, sh);
  if (threadIdx.x == 0) dc__hd_st(out, 0, f64, s[0] * scale);
}

__global__ void pw_backward_k(dc__cupw a) { DC__CU_FOR(i, a.n) dc__cupw_grad_elem(&a, i); }

static void pw_args(dc__cupw *a, dc_pwloss_op op, const dc_tensor *x, const dc_tensor *t,
                    const dc_tensor *weight, const dc_tensor *pos_weight, double p) {
  memset(a, 0, sizeof *a);
  a->op = op;
  a->f64 = x->dtype == DC_F64;
  a->n = dc_numel(x);
  a->p = p;
  a->x = dc__cuda_ptr(x);
  a->t = dc__cuda_ptr(t);
  a->w = weight ? dc__cuda_ptr(weight) : NULL;
  a->pw = pos_weight ? dc__cuda_ptr(pos_weight) : NULL;
}

/* BCE: every input in [0, 1], else the CPU's error naming the first bad one (out untouched) */
static int bce_check(const dc__cupw *a) {
  unsigned long long *first = (unsigned long long *)dc__cuda_mem.alloc(sizeof *first);
  if (!first) return dc__errs(DC_ERR_NOMEM, "binary_cross_entropy: no device memory for the check");
  unsigned long long none = (unsigned long long)INT64_MAX, h = none;
  int rc = dc__cuda_mem.from_host(first, &none, sizeof none);
  if (rc == DC_OK) {
    pw_check_k<<<dc__cu_blocks(a->n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(*a, first);
    rc = dc__cuda_launched("binary_cross_entropy check kernel");
  }
  if (rc == DC_OK) rc = dc__cuda_mem.to_host(&h, first, sizeof h);
  dc__cuda_mem.free(first);
  if (rc != DC_OK || h == none) return rc;
  size_t z = a->f64 ? sizeof(double) : sizeof(float);
  union {
    double d;
    float f;
  } v;
  rc = dc__cuda_mem.to_host(&v, (const char *)a->x + h * z, z);
  if (rc != DC_OK) return rc;
  return dc__errs(DC_ERR_ARG,
                  "binary_cross_entropy: all elements of input should be between 0 "
                  "and 1, got %g at flat index %lld; apply dc_sigmoid first, or use "
                  "dc_binary_cross_entropy_with_logits on logits",
                  a->f64 ? v.d : (double)v.f, (long long)h);
}

extern "C" int dc__cuda_pointwise_loss_forward(dc_pwloss_op op, dc_tensor *out, const dc_tensor *x,
                                               const dc_tensor *t, const dc_tensor *weight,
                                               const dc_tensor *pos_weight, double p, bool reduce,
                                               double scale) {
  dc__cupw a;
  pw_args(&a, op, x, t, weight, pos_weight, p);
  a.reduce = reduce;
  a.out = dc__cuda_ptr(out);
  if (op == DC_PWLOSS_BCE && a.n > 0) {
    int rc = bce_check(&a);
    if (rc != DC_OK) return rc;
  }
  cudaStream_t s = dc__cuda_stream();
  if (!reduce) {
    if (a.n == 0) return DC_OK;
    pw_forward_k<<<dc__cu_blocks(a.n), DC__CU_THREADS, 0, s>>>(a, NULL);
    return dc__cuda_launched("pointwise loss kernel");
  }
  unsigned nb = a.n > 0 ? red_blocks(a.n) : 0;
  double *part = (double *)dc__cuda_mem.alloc(sizeof(double) * (nb ? nb : 1));
  if (!part) return dc__errs(DC_ERR_NOMEM, "pointwise loss: no device memory for the block sums");
  if (nb) pw_forward_k<<<nb, DC__CU_THREADS, 0, s>>>(a, part);
  sum_store_k<<<1, DC__CU_THREADS, 0, s>>>(a.out, a.f64, part, (int64_t)nb, scale);
  dc__cuda_mem.free(part); /* one stream: a later user of the block runs after these kernels */
  return dc__cuda_launched("pointwise loss kernel");
}

extern "C" int dc__cuda_pointwise_loss_backward(dc_pwloss_op op, dc_tensor *gx, dc_tensor *gt,
                                                const dc_tensor *gout, const dc_tensor *x,
                                                const dc_tensor *t, const dc_tensor *weight,
                                                const dc_tensor *pos_weight, double p,
                                                double scale) {
  dc__cupw a;
  pw_args(&a, op, x, t, weight, pos_weight, p);
  a.scale = scale;
  a.per_elem = dc_numel(gout) == dc_numel(x) && gout->ndim > 0;
  a.gout = dc__cuda_ptr(gout);
  a.gx = gx ? dc__cuda_ptr(gx) : NULL;
  a.gt = gt ? dc__cuda_ptr(gt) : NULL;
  if (a.n == 0 || (!gx && !gt)) return DC_OK;
  pw_backward_k<<<dc__cu_blocks(a.n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(a);
  return dc__cuda_launched("pointwise loss backward kernel");
}
