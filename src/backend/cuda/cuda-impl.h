/* Internal to the CUDA backend (src/backend/cuda, docs/cuda.md): the process's stream, error
 * conversion, the kernel entries each family file defines and table.c collects. Included by the
 * .c files and, inside extern "C", by the .cu files; device-side helpers are in kern.cuh. */
#ifndef DC_CUDA_IMPL_H
#define DC_CUDA_IMPL_H

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../backend.h"
#include "../nn-kernels.h"
#include "../optim-kernels.h"

/* ---- runtime (memory.c, register.c) ---- */
/* Installs the table when a GPU answers; else records why cuda is absent (the registry's
 * builtin registration calls it). */
const dc_backend *dc__cuda_probe(void);
/* The one stream every kernel and transfer of this process is queued on (made at registration). */
cudaStream_t dc__cuda_stream(void);
/* DC_ERR_BACKEND naming what failed and CUDA's error; DC_OK for cudaSuccess. Clears CUDA's
 * sticky last error where it can be cleared. */
int dc__cuda_fail(cudaError_t e, const char *what);
/* After a kernel launch: the launch error, if any, as dc__cuda_fail(what). */
int dc__cuda_launched(const char *what);
/* DC_ERR_UNSUPPORTED for an entry not written yet: "<op>: not yet on cuda ..." */
int dc__cuda_unsupported(const char *op);
/* Device pointer of element 0 of t (storage data + offset). */
static inline char *dc__cuda_ptr(const dc_tensor *t) {
  return (char *)t->storage->data + (size_t)t->offset * dc_dtype_size(t->dtype);
}

/* The caching allocator's counters (memory.c), for tests and docs/cuda.md: cudaMalloc calls
 * made, bytes held by cudaMalloc now and at most (since dc_device_memory_reset_peak), bytes of
 * those in the free lists now; asynchronous host copies queued (from_host_async). The public
 * view is dc_device_memory_stats. */
typedef struct dc__cuda_mem_stats {
  int64_t device_mallocs, held_bytes, peak_held_bytes, cached_bytes, async_copies;
} dc__cuda_mem_stats;
void dc__cuda_mem_stats_get(dc__cuda_mem_stats *s);
/* Returns every cached (free) block to the driver (cudaFree). */
int dc__cuda_empty_cache(void);
extern const dc_device_mem dc__cuda_mem;

/* Whether float32 products may use TF32 tensor cores: core's public switch (dc_allow_tf32; off
 * unless DEEPC_ALLOW_TF32=1 or dc_set_allow_tf32, like PyTorch's allow_tf32 default). */
bool dc__cuda_allow_tf32(void);
void dc__cuda_set_allow_tf32(bool on);

/* ---- kernel entries, one family per file ---- */
/* ew.cu */
int dc__cuda_copy(dc_tensor *dst, const dc_tensor *src);
int dc__cuda_fill(dc_tensor *t, double value);
int dc__cuda_unary(dc_unary_op op, dc_tensor *out, const dc_tensor *x, const double *p);
int dc__cuda_binary(dc_binary_op op, dc_tensor *out, const dc_tensor *a, const dc_tensor *b);
int dc__cuda_where(dc_tensor *out, const dc_tensor *c, const dc_tensor *a, const dc_tensor *b);
int dc__cuda_axpy(dc_tensor *out, const dc_tensor *a, double alpha, const dc_tensor *b);
/* reduce.cu */
int dc__cuda_reduce(dc_reduce_op op, dc_tensor *out, const dc_tensor *x, uint32_t dim_mask);
int dc__cuda_arg_reduce(bool is_max, dc_tensor *values, dc_tensor *indices, const dc_tensor *x,
                        int dim);
int dc__cuda_softmax(dc_tensor *out, const dc_tensor *x, int dim, bool log);
/* linalg.c (cuBLAS) */
int dc__cuda_gemm_batched(dc_tensor *out, const dc_tensor *a, const dc_tensor *b, bool ta, bool tb,
                          float alpha, float beta);
/* One GEMM operand as cuBLAS sees it (linalg.c, also used by linear.c): op(t)'s logical rows x
 * cols (row-major view, tr: the last two dims transposed) with element strides; tmp holds a
 * contiguous device copy when t had neither a unit row nor a unit column stride (caller frees). */
typedef struct dc__cuda_mat {
  const char *data;
  int64_t batch, sb; /* batch count (1 or B) and stride, elements (0: broadcast) */
  int64_t rows, cols, sr, sc;
  dc_tensor *tmp;
} dc__cuda_mat;
int dc__cuda_blas_operand(const dc_tensor *t, bool tr, dc__cuda_mat *m);
/* The column-major view of m as an operand of out^T = B^T A^T: true when it must be transposed
 * (CUBLAS_OP_T), false for CUBLAS_OP_N; *ld its leading dimension. */
bool dc__cuda_blas_col_major(const dc__cuda_mat *m, int64_t *ld);
/* linear.c (cuBLASLt): out [M, N] = x [M, K] . w [N, K]^T + bias [N] in one product */
int dc__cuda_linear(dc_tensor *out, const dc_tensor *x, const dc_tensor *w, const dc_tensor *bias);
/* index.cu */
int dc__cuda_gather(dc_tensor *out, const dc_tensor *x, int dim, const dc_tensor *index);
int dc__cuda_scatter_add(dc_tensor *out, int dim, const dc_tensor *index, const dc_tensor *src);
int dc__cuda_index_select(dc_tensor *out, const dc_tensor *x, int dim, const dc_tensor *index);
int dc__cuda_index_add(dc_tensor *out, int dim, const dc_tensor *index, const dc_tensor *src);
/* random.cu */
int dc__cuda_uniform(dc_tensor *t, uint64_t seed, uint64_t counter, double a, double b);
int dc__cuda_normal(dc_tensor *t, uint64_t seed, uint64_t counter, double mean, double std);
/* nn.cu: dropout masks and hardtanh (nn.c collects the nn table) */
int dc__cuda_dropout_mask(dc_tensor *mask, double p);
int dc__cuda_apply_mask(dc_tensor *y, const dc_tensor *x, const dc_tensor *mask, int64_t inner);
int dc__cuda_hardtanh_forward(dc_tensor *y, const dc_tensor *x, double lo, double hi);
int dc__cuda_hardtanh_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *x, double lo,
                               double hi);
/* bnorm.cu: batch norm, alone and fused with the ReLU after it */
int dc__cuda_batch_norm_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                                const dc_tensor *x, const dc_tensor *weight, const dc_tensor *bias,
                                dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                                double momentum, double eps);
int dc__cuda_batch_norm_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                                 const dc_tensor *x, const dc_tensor *weight, const dc_tensor *mean,
                                 const dc_tensor *invstd, bool batch_stats);
int dc__cuda_batch_norm_relu_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                                     const dc_tensor *x, const dc_tensor *weight,
                                     const dc_tensor *bias, dc_tensor *running_mean,
                                     dc_tensor *running_var, bool batch_stats, double momentum,
                                     double eps);
int dc__cuda_batch_norm_relu_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb,
                                      const dc_tensor *gy, const dc_tensor *y, const dc_tensor *x,
                                      const dc_tensor *weight, const dc_tensor *mean,
                                      const dc_tensor *invstd, bool batch_stats);
/* loss.cu: the pointwise losses */
int dc__cuda_pointwise_loss_forward(dc_pwloss_op op, dc_tensor *out, const dc_tensor *x,
                                    const dc_tensor *t, const dc_tensor *weight,
                                    const dc_tensor *pos_weight, double p, bool reduce,
                                    double scale);
int dc__cuda_pointwise_loss_backward(dc_pwloss_op op, dc_tensor *gx, dc_tensor *gt,
                                     const dc_tensor *gout, const dc_tensor *x, const dc_tensor *t,
                                     const dc_tensor *weight, const dc_tensor *pos_weight, double p,
                                     double scale);
/* xent.cu: cross-entropy / NLL and the multi-class hinge loss */
int dc__cuda_xent_forward(dc_tensor *out, dc_tensor *lse, double wsum[2], const dc_tensor *x,
                          const dc_tensor *target, const dc_tensor *weight,
                          const dc_xent_params *p);
int dc__cuda_xent_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                           const dc_tensor *lse, const dc_tensor *target, const dc_tensor *weight,
                           const double wsum[2], const dc_xent_params *p);
int dc__cuda_multi_margin_forward(dc_tensor *out, const dc_tensor *x, const dc_tensor *target,
                                  const dc_tensor *weight, int p, double margin, bool reduce,
                                  double scale);
int dc__cuda_multi_margin_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                                   const dc_tensor *target, const dc_tensor *weight, int p,
                                   double margin, double scale);

/* conv.c (cuDNN) and conv.cu (its padding, crop and bias kernels) */
int dc__cuda_conv2d_forward(dc_tensor *y, const dc_tensor *x, const dc_tensor *w,
                            const dc_tensor *b, const dc_conv2d_geom *g);
int dc__cuda_conv2d_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                             const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g);
/* xp [N, C, H + pad_l[0] + pad_r[0], W + pad_l[1] + pad_r[1]] = x zero-padded; gx = its crop */
int dc__cuda_conv_pad(dc_tensor *xp, const dc_tensor *x, const dc_conv2d_geom *g);
int dc__cuda_conv_crop(dc_tensor *gx, const dc_tensor *gxp, const dc_conv2d_geom *g);
/* y [N, K, OH, OW] += b [K] (float32, float64) */
int dc__cuda_conv_bias_add(dc_tensor *y, const dc_tensor *b, const dc_conv2d_geom *g);
/* y [N, K, OH, OW] = b [K] broadcast (any dtype, bit for bit) */
int dc__cuda_conv_bias_fill(dc_tensor *y, const dc_tensor *b, const dc_conv2d_geom *g);
/* gb [K] = gy [N, K, OH, OW] summed over N, OH, OW: bfloat16, double sums, rounded once */
int dc__cuda_conv_bias_grad_bf16(dc_tensor *gb, const dc_tensor *gy, const dc_conv2d_geom *g);
/* conv_block.c: conv -> batch norm [-> ReLU [-> 2x2 max pooling]] (DC_CAP_CONV_BLOCK) */
int dc__cuda_conv_block_plan(const dc_conv2d_geom *g, bool has_bias, size_t *bytes);
int dc__cuda_conv_block_forward(dc_tensor *y, dc_tensor *yc, dc_tensor *idx, dc_tensor *stats,
                                const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                                const dc_tensor *bn_w, const dc_tensor *bn_b,
                                dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                                double momentum, double eps, const dc_conv2d_geom *g, int mode);
int dc__cuda_conv_block_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, dc_tensor *gbn_w,
                                 dc_tensor *gbn_b, const dc_tensor *gy, const dc_tensor *x,
                                 const dc_tensor *w, const dc_tensor *yc, const dc_tensor *idx,
                                 const dc_tensor *bn_w, const dc_tensor *bn_b,
                                 const dc_tensor *stats, bool batch_stats, const dc_conv2d_geom *g,
                                 int mode);
/* conv_block.cu: mask [N*K*OH*OW] = whether the ReLU passes a gradient at r (its output) */
int dc__cuda_cb_mask(uint8_t *mask, const dc_tensor *r);
/* gz = mask ? src : 0 (src may be gz) */
int dc__cuda_cb_apply_mask(dc_tensor *gz, const dc_tensor *src, const uint8_t *mask);
/* idx8 (uint8 window positions) from idx32 (int32 plane indices) when to8, else the reverse;
 * both [N*K, OH/2, OW/2] */
int dc__cuda_cb_idx(dc_tensor *idx8, dc_tensor *idx32, const dc_conv2d_geom *g, bool to8);
/* stats [4, K] rows 2, 3 = invstd * bn_w, bn_b - mean * a from rows 0, 1 */
int dc__cuda_cb_affine(dc_tensor *stats, const dc_tensor *bn_w, const dc_tensor *bn_b, int64_t k);
/* pool.cu (per-element math in pool-math.h) */
int dc__cuda_max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                                const dc_pool2d_geom *g);
int dc__cuda_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g);
int dc__cuda_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_pool2d_geom *g);
int dc__cuda_adaptive_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g);
int dc__cuda_adaptive_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy,
                                          const dc_pool2d_geom *g);
int dc__cuda_adaptive_max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                                         const dc_pool2d_geom *g);
int dc__cuda_max_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *idx,
                                 const dc_pool2d_geom *g);

/* The tables (table.c, nn.c). */
extern const dc_elementwise_kernels dc__cuda_ew;
extern const dc_reduce_kernels dc__cuda_red;
extern const dc_linalg_kernels dc__cuda_linalg;
extern const dc_index_kernels dc__cuda_index;
extern const dc_random_kernels dc__cuda_rand;
extern const struct dc_nn_kernels dc__cuda_nn;
extern const dc_backend dc__cuda_backend;
/* optim.cu: the fused multi-tensor step, its reference loop and the clipping passes */
extern const struct dc_optim_kernels dc__cuda_optim;

#ifdef __cplusplus
}
#endif

#endif
