/* Tensor ops with NumPy/PyTorch broadcasting. Each returns a new tensor (NULL + dc_last_error()
 * on bad input; a NULL argument gives NULL, so a chain is checked once at its end). Ops on
 * tensors that require grad record a graph node when grad mode is on (see autograd.h).
 * Binary ops promote dtypes like PyTorch (int < float32 < float64). */
#ifndef DEEPC_OPS_H
#define DEEPC_OPS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A list of dims for reductions: dc_sum(x, DC_DIMS(0, 2), true). Zero dims means all. */
#define DC_DIMS(...) ((const int[]){__VA_ARGS__}), DC__NARG(__VA_ARGS__)
#define DC_NO_DIMS NULL, 0

/* ---- elementwise, binary (broadcasting) ---- */
DC_API dc_tensor *dc_add(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_sub(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_mul(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_div(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_pow(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_maximum(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_minimum(dc_tensor *a, dc_tensor *b);
/* a + alpha * b (PyTorch's torch.add(a, b, alpha=...)). */
DC_API dc_tensor *dc_add_scaled(dc_tensor *a, dc_tensor *b, double alpha);

/* with a scalar */
DC_API dc_tensor *dc_add_scalar(dc_tensor *a, double s);
DC_API dc_tensor *dc_sub_scalar(dc_tensor *a, double s);
DC_API dc_tensor *dc_rsub_scalar(dc_tensor *a, double s); /* s - a */
DC_API dc_tensor *dc_mul_scalar(dc_tensor *a, double s);
DC_API dc_tensor *dc_div_scalar(dc_tensor *a, double s);
DC_API dc_tensor *dc_pow_scalar(dc_tensor *a, double exponent);

/* comparisons: bool result, not differentiable */
DC_API dc_tensor *dc_eq(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_ne(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_lt(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_le(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_gt(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_ge(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_gt_scalar(dc_tensor *a, double s);
DC_API dc_tensor *dc_lt_scalar(dc_tensor *a, double s);
DC_API dc_tensor *dc_eq_scalar(dc_tensor *a, double s);
/* cond ? a : b, cond bool (or nonzero), broadcasting all three */
DC_API dc_tensor *dc_where(dc_tensor *cond, dc_tensor *a, dc_tensor *b);

/* ---- elementwise, unary ---- */
DC_API dc_tensor *dc_neg(dc_tensor *x);
DC_API dc_tensor *dc_abs(dc_tensor *x);
DC_API dc_tensor *dc_sign(dc_tensor *x);
DC_API dc_tensor *dc_exp(dc_tensor *x);
DC_API dc_tensor *dc_log(dc_tensor *x);
DC_API dc_tensor *dc_sqrt(dc_tensor *x);
DC_API dc_tensor *dc_rsqrt(dc_tensor *x);
DC_API dc_tensor *dc_square(dc_tensor *x);
DC_API dc_tensor *dc_reciprocal(dc_tensor *x);
DC_API dc_tensor *dc_clamp(dc_tensor *x, double lo, double hi); /* +-INFINITY for no bound */
DC_API dc_tensor *dc_sigmoid(dc_tensor *x);
DC_API dc_tensor *dc_tanh(dc_tensor *x);
DC_API dc_tensor *dc_relu(dc_tensor *x);
DC_API dc_tensor *dc_leaky_relu(dc_tensor *x, double negative_slope);
DC_API dc_tensor *dc_elu(dc_tensor *x, double alpha);
DC_API dc_tensor *dc_selu(dc_tensor *x);
DC_API dc_tensor *dc_gelu(dc_tensor *x, bool tanh_approximation);
DC_API dc_tensor *dc_softplus(dc_tensor *x, double beta, double threshold);
DC_API dc_tensor *dc_erf(dc_tensor *x); /* Gauss error function (float types) */

/* ---- reductions over dims (ndims == 0: all dims) ---- */
DC_API dc_tensor *dc_sum(dc_tensor *x, const int *dims, int ndims, bool keepdim);
DC_API dc_tensor *dc_mean(dc_tensor *x, const int *dims, int ndims, bool keepdim);
DC_API dc_tensor *dc_amax(dc_tensor *x, const int *dims, int ndims, bool keepdim);
DC_API dc_tensor *dc_amin(dc_tensor *x, const int *dims, int ndims, bool keepdim);
DC_API dc_tensor *dc_logsumexp(dc_tensor *x, const int *dims, int ndims, bool keepdim);
/* correction: 1 = unbiased (PyTorch's default), 0 = population */
DC_API dc_tensor *dc_var(dc_tensor *x, const int *dims, int ndims, int correction, bool keepdim);
DC_API dc_tensor *dc_std(dc_tensor *x, const int *dims, int ndims, int correction, bool keepdim);
DC_API dc_tensor *dc_sum_all(dc_tensor *x);  /* 0-d */
DC_API dc_tensor *dc_mean_all(dc_tensor *x); /* 0-d */
/* max/min along one dim with indices (int64; ties: first index), like torch.max(x, dim) */
DC_API dc_tensor *dc_max_dim(dc_tensor *x, int dim, bool keepdim, dc_tensor **indices);
DC_API dc_tensor *dc_min_dim(dc_tensor *x, int dim, bool keepdim, dc_tensor **indices);
DC_API dc_tensor *dc_max(dc_tensor *x); /* 0-d, over all elements */
DC_API dc_tensor *dc_min(dc_tensor *x);
DC_API dc_tensor *dc_argmax(dc_tensor *x, int dim, bool keepdim); /* dim = DC_ALL_DIMS: flat */
DC_API dc_tensor *dc_argmin(dc_tensor *x, int dim, bool keepdim);

/* ---- linear algebra (oneDNN GEMM on CPU) ---- */
/* 1-D/2-D/batched with broadcasting of batch dims, like torch.matmul */
DC_API dc_tensor *dc_matmul(dc_tensor *a, dc_tensor *b);
DC_API dc_tensor *dc_bmm(dc_tensor *a, dc_tensor *b); /* [B,M,K] x [B,K,N] */
/* x W^T + b, x [*, K], W [N, K], b [N] or NULL: PyTorch's F.linear */
DC_API dc_tensor *dc_linear(dc_tensor *x, dc_tensor *w, dc_tensor *b);

/* ---- softmax family ---- */
DC_API dc_tensor *dc_softmax(dc_tensor *x, int dim);
DC_API dc_tensor *dc_log_softmax(dc_tensor *x, int dim);

/* ---- indexing ---- */
DC_API dc_tensor *dc_gather(dc_tensor *x, int dim, dc_tensor *index);
/* out = x with src added at index along dim (out-of-place scatter_add) */
DC_API dc_tensor *dc_scatter_add(dc_tensor *x, int dim, dc_tensor *index, dc_tensor *src);
DC_API dc_tensor *dc_index_select(dc_tensor *x, int dim, dc_tensor *index);
DC_API dc_tensor *dc_one_hot(dc_tensor *labels, int64_t num_classes); /* int64 result */
DC_API dc_tensor *dc_cat(dc_tensor *const *ts, int n, int dim);
DC_API dc_tensor *dc_stack(dc_tensor *const *ts, int n, int dim);

#ifdef __cplusplus
}
#endif
#endif
