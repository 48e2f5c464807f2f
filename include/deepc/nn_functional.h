/* Functional neural-network ops (PyTorch's torch.nn.functional): convolution, pooling, batch
 * norm, dropout and losses, each differentiable. Layers (nn.h) are thin modules over these.
 * Shapes: N batch, C/Cin channels, K/Cout filters, H/W height/width, kH/kW kernel size. */
#ifndef DEEPC_NN_FUNCTIONAL_H
#define DEEPC_NN_FUNCTIONAL_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dc_reduction { DC_REDUCTION_MEAN = 0, DC_REDUCTION_SUM, DC_REDUCTION_NONE } dc_reduction;

/* ---- convolution ---- */
typedef struct dc_conv2d_opts {
  int stride[2];   /* 0 = 1 */
  int padding[2];  /* ignored when same_padding */
  int dilation[2]; /* 0 = 1 */
  int groups;      /* 0 = 1 */
  bool same_padding; /* PyTorch's padding="same" (stride must be 1) */
} dc_conv2d_opts;
/* x [N, Cin, H, W], w [Cout, Cin/groups, kH, kW], b [Cout] or NULL -> [N, Cout, Ho, Wo] */
DC_API dc_tensor *dc_conv2d_opt(dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_conv2d_opts o);
#define dc_conv2d_f(x, w, b, ...) dc_conv2d_opt((x), (w), (b), (dc_conv2d_opts){__VA_ARGS__})
/* Output size of one spatial dim, or -1 if the kernel does not fit. */
DC_API int64_t dc_conv_out_size(int64_t in, int k, int stride, int pad, int dilation, bool ceil_mode);

/* ---- pooling ---- */
typedef struct dc_pool2d_opts {
  int kernel[2];
  int stride[2];   /* 0 = kernel (PyTorch's default) */
  int padding[2];
  int dilation[2]; /* max pooling only; 0 = 1 */
  bool ceil_mode;
  bool count_include_pad_false; /* avg pooling: exclude padding from the divisor */
} dc_pool2d_opts;
/* x [N, C, H, W] (or [C, H, W]) -> [N, C, Ho, Wo] */
DC_API dc_tensor *dc_max_pool2d_opt(dc_tensor *x, dc_pool2d_opts o);
DC_API dc_tensor *dc_avg_pool2d_opt(dc_tensor *x, dc_pool2d_opts o);
#define dc_max_pool2d_f(x, ...) dc_max_pool2d_opt((x), (dc_pool2d_opts){__VA_ARGS__})
#define dc_avg_pool2d_f(x, ...) dc_avg_pool2d_opt((x), (dc_pool2d_opts){__VA_ARGS__})
DC_API dc_tensor *dc_adaptive_avg_pool2d(dc_tensor *x, int64_t out_h, int64_t out_w);
DC_API dc_tensor *dc_adaptive_max_pool2d(dc_tensor *x, int64_t out_h, int64_t out_w);

/* ---- normalisation ---- */
/* x [N, C] or [N, C, L] or [N, C, H, W]; weight/bias [C] or NULL; running_mean/var [C] or NULL.
 * training: normalise with batch statistics (biased var) and update running stats in place with
 * momentum (unbiased var), as PyTorch; else use running stats. */
DC_API dc_tensor *dc_batch_norm(dc_tensor *x, dc_tensor *running_mean, dc_tensor *running_var,
                                dc_tensor *weight, dc_tensor *bias, bool training,
                                double momentum, double eps);

/* ---- dropout ---- */
/* Inverted dropout: zero with probability p, scale survivors by 1/(1-p); identity when !training. */
DC_API dc_tensor *dc_dropout(dc_tensor *x, double p, bool training);
/* Zeroes whole channels of [N, C, H, W]. */
DC_API dc_tensor *dc_dropout2d(dc_tensor *x, double p, bool training);

/* ---- activations not in ops.h ---- */
DC_API dc_tensor *dc_hardtanh(dc_tensor *x, double min_val, double max_val);

/* ---- losses (input first, target second, like PyTorch) ---- */
DC_API dc_tensor *dc_mse_loss(dc_tensor *input, dc_tensor *target, dc_reduction r);
DC_API dc_tensor *dc_l1_loss(dc_tensor *input, dc_tensor *target, dc_reduction r);
DC_API dc_tensor *dc_smooth_l1_loss(dc_tensor *input, dc_tensor *target, dc_reduction r, double beta);
/* input: probabilities in [0, 1]; weight: per-element rescaling or NULL */
DC_API dc_tensor *dc_binary_cross_entropy(dc_tensor *input, dc_tensor *target, dc_tensor *weight,
                                          dc_reduction r);
/* logistic loss on logits; pos_weight [C] or NULL */
DC_API dc_tensor *dc_binary_cross_entropy_with_logits(dc_tensor *input, dc_tensor *target,
                                                      dc_tensor *weight, dc_tensor *pos_weight,
                                                      dc_reduction r);
/* SVM hinge loss for labels in {-1, +1}: mean(max(0, margin - y * x)) */
DC_API dc_tensor *dc_hinge_loss(dc_tensor *input, dc_tensor *target, double margin, dc_reduction r);
typedef struct dc_multi_margin_opts {
  int p;          /* 1 or 2 (0 = 1) */
  double margin;  /* 0 = 1.0 */
  dc_tensor *weight; /* [C] or NULL */
  dc_reduction reduction;
} dc_multi_margin_opts;
/* input [N, C] scores, target [N] int64 class indices */
DC_API dc_tensor *dc_multi_margin_loss_opt(dc_tensor *input, dc_tensor *target, dc_multi_margin_opts o);
typedef struct dc_cross_entropy_opts {
  dc_tensor *weight;      /* [C] class weights or NULL */
  int64_t ignore_index;   /* set has_ignore_index to use it (PyTorch's default -100) */
  bool has_ignore_index;
  double label_smoothing; /* in [0, 1] */
  dc_reduction reduction;
} dc_cross_entropy_opts;
/* input [N, C] (or [N, C, d1...]) logits, target [N] int64 class indices */
DC_API dc_tensor *dc_cross_entropy_opt(dc_tensor *input, dc_tensor *target, dc_cross_entropy_opts o);
#define dc_cross_entropy(input, target, ...) \
  dc_cross_entropy_opt((input), (target), (dc_cross_entropy_opts){__VA_ARGS__})
/* input [N, C] log-probabilities, target [N] int64 */
DC_API dc_tensor *dc_nll_loss_opt(dc_tensor *input, dc_tensor *target, dc_cross_entropy_opts o);

#ifdef __cplusplus
}
#endif
#endif
