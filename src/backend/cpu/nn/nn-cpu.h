/* Internal to the CPU nn kernels (src/backend/cpu/nn): the entry points each file defines, which
 * table.c collects into dc__cpu_nn, plus the reference convolution used as the test oracle and
 * the float64 path, and reusable scratch buffers for oneDNN's blocked layouts.
 * Shapes as in nn-kernels.h. */
#ifndef DC_NN_CPU_H
#define DC_NN_CPU_H

#include "../../nn-kernels.h"
#include "../cpu-impl.h"

/* ---- convolution (conv_ref.c: direct loops, float32/float64, double accumulation) ---- */
int dc__cpu_conv2d_ref_forward(dc_tensor *y, const dc_tensor *x, const dc_tensor *w,
                               const dc_tensor *b, const dc_conv2d_geom *g);
int dc__cpu_conv2d_ref_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                                const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g);
/* conv_dnnl.c: float32 through oneDNN primitives (cached per geometry); DC_ERR_UNSUPPORTED (no
 * message) when oneDNN has no implementation, so the caller falls back to the reference. */
int dc__cpu_conv2d_dnnl_forward(dc_tensor *y, const dc_tensor *x, const dc_tensor *w,
                                const dc_tensor *b, const dc_conv2d_geom *g);
int dc__cpu_conv2d_dnnl_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                                 const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g);
/* The fused conv block's convolution (conv_block.c): the forward writes y, and the backward
 * reads gy, in the primitives' own blocked layout aBcd16b ([N][K/16][OH][OW][16]).
 * blocked_plan: DC_OK and the bytes of that buffer when forward, backward-data and
 * backward-weights all use aBcd16b for it, else DC_ERR_UNSUPPORTED (no message). */
int dc__cpu_conv2d_dnnl_blocked_plan(const dc_conv2d_geom *g, bool has_bias, size_t *bytes);
int dc__cpu_conv2d_dnnl_forward_blocked(void *y, const dc_tensor *x, const dc_tensor *w,
                                        const dc_tensor *b, const dc_conv2d_geom *g);
int dc__cpu_conv2d_dnnl_backward_blocked(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb,
                                         const void *gy, const dc_tensor *x, const dc_tensor *w,
                                         const dc_conv2d_geom *g);
/* Number of oneDNN primitive sets created so far (tests check that the cache hits). */
int64_t dc__cpu_conv2d_dnnl_created(void);

/* ---- scratch buffers (workspace.c): reused across calls so large blocked copies do not pay
 * for fresh pages every step; 2 MiB-aligned with transparent huge pages when large ---- */
void *dc__cpu_ws_get(size_t nbytes);
void dc__cpu_ws_put(void *p);
/* Called by kernels on a large output they are about to write for the first time: first-touch
 * page faults of fresh 4 KiB pages dominate memory-bound kernels, so ask for huge pages. */
void dc__cpu_nn_hint_output(void *p, size_t nbytes);
/* The hint for a whole tensor (NULL is ignored). */
static inline void dc__cpu_nn_hint_tensor(const dc_tensor *t) {
  if (t) dc__cpu_nn_hint_output(dc_data(t), (size_t)dc_numel(t) * dc_dtype_size(t->dtype));
}

/* ---- pooling (pool.c) ---- */
/* Tests set this to run the portable 2x2 max-pool kernel instead of the AVX-512 one. */
extern bool dc__cpu_pool_scalar;
int dc__cpu_max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                               const dc_pool2d_geom *g);
int dc__cpu_max_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *idx,
                                const dc_pool2d_geom *g);
int dc__cpu_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g);
int dc__cpu_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_pool2d_geom *g);
int dc__cpu_adaptive_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g);
int dc__cpu_adaptive_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy,
                                         const dc_pool2d_geom *g);
int dc__cpu_adaptive_max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                                        const dc_pool2d_geom *g);

/* ---- batch norm (batchnorm.c) ---- */
int dc__cpu_batch_norm_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                               const dc_tensor *x, const dc_tensor *weight, const dc_tensor *bias,
                               dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                               double momentum, double eps);
int dc__cpu_batch_norm_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                                const dc_tensor *x, const dc_tensor *weight, const dc_tensor *mean,
                                const dc_tensor *invstd, bool batch_stats);
/* Batch norm followed by ReLU (the optional fused entries of nn-kernels.h). */
int dc__cpu_batch_norm_relu_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                                    const dc_tensor *x, const dc_tensor *weight,
                                    const dc_tensor *bias, dc_tensor *running_mean,
                                    dc_tensor *running_var, bool batch_stats, double momentum,
                                    double eps);
int dc__cpu_batch_norm_relu_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb,
                                     const dc_tensor *gy, const dc_tensor *y, const dc_tensor *x,
                                     const dc_tensor *weight, const dc_tensor *mean,
                                     const dc_tensor *invstd, bool batch_stats);

/* Winograd F(2x2, 5x5) on the 16-channel blocked layout (wino5.c): x [N, C, H, W] (NCHW),
 * gx [N, C/16, H, W, 16], y, gy [N, K/16, OH, OW, 16], w, gw [K, C, 5, 5], b, gb [K] (NULL: none).
 * fits: the layer is 5x5, stride 1, undilated, ungrouped, C and K multiples of 16, padding <= 4, on
 * AVX-512. */
bool dc__cpu_wino5_fits(const dc_conv2d_geom *g);
int dc__cpu_wino5_forward(float *y, const float *x, const float *w, const float *b,
                          const dc_conv2d_geom *g);
int dc__cpu_wino5_backward_data(float *gx, const float *gy, const float *w,
                                const dc_conv2d_geom *g);
int dc__cpu_wino5_backward_weights(float *gw, float *gb, const float *x, const float *gy,
                                   const dc_conv2d_geom *g);

/* ---- conv2d -> batch norm -> ReLU -> 2x2 max pooling in one op (conv_block.c) ---- */
int dc__cpu_conv_block_plan(const dc_conv2d_geom *g, bool has_bias, size_t *bytes);
int dc__cpu_conv_block_forward(dc_tensor *y, dc_tensor *yc, dc_tensor *idx, dc_tensor *stats,
                               const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                               const dc_tensor *bn_w, const dc_tensor *bn_b,
                               dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                               double momentum, double eps, const dc_conv2d_geom *g, int mode);
int dc__cpu_conv_block_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, dc_tensor *gbn_w,
                                dc_tensor *gbn_b, const dc_tensor *gy, const dc_tensor *x,
                                const dc_tensor *w, const dc_tensor *yc, const dc_tensor *idx,
                                const dc_tensor *bn_w, const dc_tensor *bn_b,
                                const dc_tensor *stats, bool batch_stats, const dc_conv2d_geom *g,
                                int mode);

/* ---- dropout, hardtanh, losses (loss.c, xent.c) ---- */
int dc__cpu_dropout_mask(dc_tensor *mask, double p);
int dc__cpu_apply_mask(dc_tensor *y, const dc_tensor *x, const dc_tensor *mask, int64_t inner);
int dc__cpu_hardtanh_forward(dc_tensor *y, const dc_tensor *x, double lo, double hi);
int dc__cpu_hardtanh_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *x, double lo,
                              double hi);
int dc__cpu_pointwise_loss_forward(dc_pwloss_op op, dc_tensor *out, const dc_tensor *x,
                                   const dc_tensor *t, const dc_tensor *weight,
                                   const dc_tensor *pos_weight, double p, bool reduce,
                                   double scale);
int dc__cpu_pointwise_loss_backward(dc_pwloss_op op, dc_tensor *gx, dc_tensor *gt,
                                    const dc_tensor *gout, const dc_tensor *x, const dc_tensor *t,
                                    const dc_tensor *weight, const dc_tensor *pos_weight, double p,
                                    double scale);
int dc__cpu_xent_forward(dc_tensor *out, dc_tensor *lse, double wsum[2], const dc_tensor *x,
                         const dc_tensor *target, const dc_tensor *weight, const dc_xent_params *p);
int dc__cpu_xent_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                          const dc_tensor *lse, const dc_tensor *target, const dc_tensor *weight,
                          const double wsum[2], const dc_xent_params *p);
int dc__cpu_multi_margin_forward(dc_tensor *out, const dc_tensor *x, const dc_tensor *target,
                                 const dc_tensor *weight, int p, double margin, bool reduce,
                                 double scale);
int dc__cpu_multi_margin_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                                  const dc_tensor *target, const dc_tensor *weight, int p,
                                  double margin, double scale);

/* Element i of a contiguous float32/float64 tensor as double, and the store back. */
static inline double dc__nn_ld(const void *base, int64_t i, bool f64) {
  return f64 ? ((const double *)base)[i] : (double)((const float *)base)[i];
}
static inline void dc__nn_st(void *base, int64_t i, bool f64, double v) {
  if (f64)
    ((double *)base)[i] = v;
  else
    ((float *)base)[i] = (float)v;
}

/* t[c] of a float32/float64 [C] tensor, or dflt when t is NULL */
static inline double dc__nn_ld_opt(const dc_tensor *t, int64_t c, double dflt) {
  return t ? dc__nn_ld(dc_data(t), c, t->dtype == DC_F64) : dflt;
}

/* ---- batch-norm arithmetic per channel (batchnorm.c, conv_block.c: the same doubles) ---- */
/* mean and biased variance of M values from s1 = sum(x - shift), s2 = sum((x - shift)^2); the
 * running statistics of channel c (when given) move by momentum, the variance unbiased */
static inline void dc__bn_moments(double shift, double s1, double s2, double M, int64_t c,
                                  dc_tensor *running_mean, dc_tensor *running_var, double momentum,
                                  double *mean, double *var) {
  double d = s1 / M;
  *mean = shift + d;
  *var = s2 / M - d * d;
  if (*var < 0) *var = 0;
  if (running_mean)
    dc__nn_st(dc_data(running_mean), c, running_mean->dtype == DC_F64,
              (1 - momentum) * dc__nn_ld_opt(running_mean, c, 0) + momentum * *mean);
  if (running_var) {
    double unbiased = M > 1 ? *var * M / (M - 1) : *var;
    dc__nn_st(dc_data(running_var), c, running_var->dtype == DC_F64,
              (1 - momentum) * dc__nn_ld_opt(running_var, c, 1) + momentum * unbiased);
  }
}

/* The backward's per-channel terms from the forward's mean m and 1/std is, the weight w and
 * the sums sdy = sum(dy), sdyx = sum(dy * (x - m)) over M values: gx = dy * k + x * a + b, that
 * is (dy - gmean - (x - m) * proj) * k; training mode (batch_stats) only has gmean and proj. */
typedef struct dc__bn_grad {
  double k, a, b, proj, gmean;
} dc__bn_grad;
static inline dc__bn_grad dc__bn_grad_of(double w, double m, double is, double sdy, double sdyx,
                                         double M, bool batch_stats) {
  dc__bn_grad r = {.k = w * is};
  if (batch_stats && M > 0) {
    r.proj = sdyx * is * is / M;
    r.gmean = sdy / M;
    r.a = -r.proj * r.k;
    r.b = (m * r.proj - r.gmean) * r.k;
  }
  return r;
}

/* Deterministic sums: work is cut into blocks of this many elements whose partial sums are
 * combined in block order, whatever the thread count. */
#define DC__NN_BLOCK 8192

#endif
