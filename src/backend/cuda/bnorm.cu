/* CUDA batch norm, forward and backward, alone or fused with the ReLU after it (the optional
 * batch_norm_relu entries, DC_CAP_BATCH_NORM_RELU), with the CPU's formulas (cpu/nn/batchnorm.c):
 * shifted sums and the affine y = (x - mean) * a + b, accumulation in double. One block per
 * channel: its threads stride over the channel's N*S values, their double partials are summed in
 * a fixed tree (blocksum.cuh), then the same block normalises (or writes gx). The per-value and
 * per-channel arithmetic is bnorm-math.h's, which tests/unit/test_cuda_math.c runs on the host.
 * Shapes: x, y, gx, gy [N, C, S]; weight, bias, running stats, mean, invstd, gw, gb [C]. */
#include "blocksum.cuh"
#include "bnorm-math.h"

__global__ void bn_forward_k(dc__cubn b) {
  __shared__ double sh[2 * DC__CU_THREADS];
  int64_t M = b.N * b.S;
  for (int64_t c = blockIdx.x; c < b.C; c += gridDim.x) {
    double shift = dc__cubn_shift(&b, c), s[2] = {0.0, 0.0};
    if (b.batch_stats) {
      for (int64_t i = threadIdx.x; i < M; i += blockDim.x)
        dc__cubn_stat_elem(&b, c, i, shift, &s[0], &s[1]);
      dc__cu_block_sum<2>(s, sh);
    }
    double mean, var;
    dc__cubn_stats(&b, c, shift, s[0], s[1], &mean, &var);
    /* batch_stats: only this thread reads the running stats; eval: nobody writes them */
    if (threadIdx.x == 0) dc__cubn_store(&b, c, mean, var);
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) dc__cubn_affine_elem(&b, c, i, mean, var);
  }
}

__global__ void bn_backward_k(dc__cubn b, bool need_sums) {
  __shared__ double sh[2 * DC__CU_THREADS];
  int64_t M = b.N * b.S;
  for (int64_t c = blockIdx.x; c < b.C; c += gridDim.x) {
    double s[2] = {0.0, 0.0};
    if (need_sums) {
      double m = dc__hd_ld(b.mean, c, b.f64);
      for (int64_t i = threadIdx.x; i < M; i += blockDim.x)
        dc__cubn_dot_elem(&b, c, i, m, &s[0], &s[1]);
      dc__cu_block_sum<2>(s, sh);
    }
    if (threadIdx.x == 0) dc__cubn_store_grads(&b, c, s[0], s[1]);
    if (!b.gx) continue;
    dc__cubn_grad g = dc__cubn_grad_of(&b, c, s[0], s[1]);
    for (int64_t i = threadIdx.x; i < M; i += blockDim.x) dc__cubn_grad_elem(&b, c, i, &g);
  }
}

static void *ptr_or_null(const dc_tensor *t) { return t ? (void *)dc__cuda_ptr(t) : NULL; }

/* the geometry of x [N, C, *] as [N, C, S] */
static void bn_geom(dc__cubn *b, const dc_tensor *x) {
  memset(b, 0, sizeof *b);
  b->N = x->shape[0];
  b->C = x->shape[1];
  b->S = dc_numel(x) / (b->N * b->C > 0 ? b->N * b->C : 1);
  b->f64 = x->dtype == DC_F64;
  b->x = dc__cuda_ptr(x);
}

static unsigned bn_blocks(int64_t C) { return (unsigned)(C < (1 << 16) ? C : (1 << 16)); }

static int bn_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                      const dc_tensor *x, const dc_tensor *weight, const dc_tensor *bias,
                      dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                      double momentum, double eps, bool relu) {
  DC__CHECK(dc_is_contiguous(x) && dc_is_contiguous(y), DC_ERR_STATE);
  dc__cubn b;
  bn_geom(&b, x);
  b.rm_f64 = running_mean && running_mean->dtype == DC_F64;
  b.rv_f64 = running_var && running_var->dtype == DC_F64;
  b.batch_stats = batch_stats;
  b.relu = relu;
  b.momentum = momentum;
  b.eps = eps;
  b.weight = ptr_or_null(weight);
  b.bias = ptr_or_null(bias);
  b.y = dc__cuda_ptr(y);
  b.mean = dc__cuda_ptr(save_mean);
  b.invstd = dc__cuda_ptr(save_invstd);
  b.rmean = ptr_or_null(running_mean);
  b.rvar = ptr_or_null(running_var);
  if (b.C == 0) return DC_OK;
  bn_forward_k<<<bn_blocks(b.C), DC__CU_THREADS, 0, dc__cuda_stream()>>>(b);
  int rc = dc__cuda_launched(relu ? "batch_norm_relu kernel" : "batch_norm kernel");
  if (running_mean) running_mean->storage->version++;
  if (running_var) running_var->storage->version++;
  return rc;
}

/* yr: the fused forward's output (its ReLU masks gy), or NULL */
static int bn_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                       const dc_tensor *yr, const dc_tensor *x, const dc_tensor *weight,
                       const dc_tensor *mean, const dc_tensor *invstd, bool batch_stats) {
  DC__CHECK(dc_is_contiguous(x) && dc_is_contiguous(gy), DC_ERR_STATE);
  dc__cubn b;
  bn_geom(&b, x);
  b.batch_stats = batch_stats;
  b.weight = ptr_or_null(weight);
  b.gy = dc__cuda_ptr(gy);
  b.yr = ptr_or_null(yr);
  b.mean = (void *)dc__cuda_ptr(mean);
  b.invstd = (void *)dc__cuda_ptr(invstd);
  b.gx = ptr_or_null(gx);
  b.gw = ptr_or_null(gw);
  b.gb = ptr_or_null(gb);
  if (b.C == 0) return DC_OK;
  bool need_sums = gw || gb || (gx && batch_stats);
  bn_backward_k<<<bn_blocks(b.C), DC__CU_THREADS, 0, dc__cuda_stream()>>>(b, need_sums);
  return dc__cuda_launched(yr ? "batch_norm_relu backward kernel" : "batch_norm backward kernel");
}

extern "C" int dc__cuda_batch_norm_forward(dc_tensor *y, dc_tensor *save_mean,
                                           dc_tensor *save_invstd, const dc_tensor *x,
                                           const dc_tensor *weight, const dc_tensor *bias,
                                           dc_tensor *running_mean, dc_tensor *running_var,
                                           bool batch_stats, double momentum, double eps) {
  return bn_forward(y, save_mean, save_invstd, x, weight, bias, running_mean, running_var,
                    batch_stats, momentum, eps, false);
}

extern "C" int dc__cuda_batch_norm_relu_forward(dc_tensor *y, dc_tensor *save_mean,
                                                dc_tensor *save_invstd, const dc_tensor *x,
                                                const dc_tensor *weight, const dc_tensor *bias,
                                                dc_tensor *running_mean, dc_tensor *running_var,
                                                bool batch_stats, double momentum, double eps) {
  return bn_forward(y, save_mean, save_invstd, x, weight, bias, running_mean, running_var,
                    batch_stats, momentum, eps, true);
}

extern "C" int dc__cuda_batch_norm_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb,
                                            const dc_tensor *gy, const dc_tensor *x,
                                            const dc_tensor *weight, const dc_tensor *mean,
                                            const dc_tensor *invstd, bool batch_stats) {
  return bn_backward(gx, gw, gb, gy, NULL, x, weight, mean, invstd, batch_stats);
}

extern "C" int dc__cuda_batch_norm_relu_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb,
                                                 const dc_tensor *gy, const dc_tensor *y,
                                                 const dc_tensor *x, const dc_tensor *weight,
                                                 const dc_tensor *mean, const dc_tensor *invstd,
                                                 bool batch_stats) {
  return bn_backward(gx, gw, gb, gy, y, x, weight, mean, invstd, batch_stats);
}
