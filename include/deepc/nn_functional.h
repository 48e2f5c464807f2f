/* Functional neural-network ops (PyTorch's torch.nn.functional): convolution, pooling, batch
 * norm, dropout and losses, each differentiable. Layers (nn.h) are thin modules over these.
 * Inputs may be float32 or float64 (float64 runs on reference kernels, for gradcheck). Backward
 * passes are fused kernels, so a backward with create_graph through these ops fails with
 * DC_ERR_UNSUPPORTED (dropout and hardtanh excepted).
 * Shapes: N batch, C/Cin channels, K/Cout filters, H/W height/width, kH/kW kernel size. */
#ifndef DEEPC_NN_FUNCTIONAL_H
#define DEEPC_NN_FUNCTIONAL_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- convolution ---- */
/* Pairs are (height, width). stride, dilation and kernel sizes: 0 means the default and a single
 * value (.stride = {2}) applies to both dims, like PyTorch's int argument; padding takes both. */
typedef struct dc_conv2d_opts {
  int stride[2];     /* 0 = 1 */
  int padding[2];    /* zero padding on both sides; ignored when same_padding */
  int dilation[2];   /* 0 = 1 */
  int groups;        /* 0 = 1; Cin and Cout must both be divisible by it */
  bool same_padding; /* PyTorch's padding="same": output size = input size (stride must be 1);
                      * an odd total padding puts the extra row/column at the bottom/right */
} dc_conv2d_opts;
/* x [N, Cin, H, W] (or [Cin, H, W]), w [Cout, Cin/groups, kH, kW], b [Cout] or NULL
 * -> [N, Cout, Ho, Wo] with Ho = (H + 2*pad - dilation*(kH-1) - 1) / stride + 1.
 * float32 runs on oneDNN, float64 on a direct reference kernel (for gradcheck). */
DC_API dc_tensor *dc_conv2d_opt(dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_conv2d_opts o);
#define dc_conv2d_f(x, w, b, ...) dc_conv2d_opt((x), (w), (b), (dc_conv2d_opts){__VA_ARGS__})
/* How float32 convolutions run on the CPU (oneDNN). Winograd F(4x4, 3x3) does about 2.25x fewer
 * multiplications on 3x3 stride-1 layers and is 1.5-3x faster there, with slightly larger
 * rounding error (a few float32 ulps of the output's scale; docs/performance.md).
 * DC_CONV_ALGO_AUTO (the default): Winograd on 3x3, stride 1, undilated, ungrouped layers with
 *   at least 16 input and 16 output channels, an output of at least 4x4 and at least 64 output
 *   tiles of 4x4 in the batch (where it measured faster); direct convolution elsewhere.
 * DC_CONV_ALGO_DIRECT: always direct, as PyTorch computes on the CPU.
 * DC_CONV_ALGO_WINOGRAD: Winograd on every 3x3 stride-1 undilated ungrouped layer.
 * Results do not depend on the thread count in any mode. Process-wide; the first value comes
 * from $DEEPC_CONV_ALGO (auto, direct or winograd). A layer keeps the mode its forward ran with
 * for its backward. dc_set_conv_algo returns the previous mode. */
typedef enum dc_conv_algo {
  DC_CONV_ALGO_AUTO = 0,
  DC_CONV_ALGO_DIRECT = 1,
  DC_CONV_ALGO_WINOGRAD = 2,
} dc_conv_algo;
DC_API dc_conv_algo dc_set_conv_algo(dc_conv_algo a);
DC_API dc_conv_algo dc_get_conv_algo(void);
/* "auto", "direct", "winograd" -> the mode; -1 for anything else. dc_conv_algo_name: the
 * reverse (NULL for a value outside the enum). */
DC_API int dc_conv_algo_parse(const char *name);
DC_API const char *dc_conv_algo_name(dc_conv_algo a);

/* Output size of one spatial dim, PyTorch's rule (ceil_mode: a last window must start inside the
 * input or its left padding), or -1 if the kernel does not fit or an argument is invalid. */
DC_API int64_t dc_conv_out_size(int64_t in, int k, int stride, int pad, int dilation,
                                bool ceil_mode);

/* ---- pooling ---- */
typedef struct dc_pool2d_opts {
  int kernel[2];   /* a single value applies to both dims */
  int stride[2];   /* 0 = kernel (PyTorch's default); a single value applies to both dims */
  int padding[2];  /* implicit padding (-inf for max, 0 for avg); at most half the kernel */
  int dilation[2]; /* max pooling only; 0 = 1 */
  bool ceil_mode;
  bool exclude_pad;     /* avg pooling: PyTorch's count_include_pad=False (divide by the number
                         * of input elements in the window, not counting padding) */
  int divisor_override; /* avg pooling: divide by this instead (0 = off) */
} dc_pool2d_opts;
/* x [N, C, H, W] (or [C, H, W]) -> [N, C, Ho, Wo] (Ho as dc_conv_out_size). Max pooling routes
 * the gradient to the first maximum of each window (NaN counts as a maximum), like PyTorch. */
DC_API dc_tensor *dc_max_pool2d_opt(dc_tensor *x, dc_pool2d_opts o);
DC_API dc_tensor *dc_avg_pool2d_opt(dc_tensor *x, dc_pool2d_opts o);
#define dc_max_pool2d_f(x, ...) dc_max_pool2d_opt((x), (dc_pool2d_opts){__VA_ARGS__})
#define dc_avg_pool2d_f(x, ...) dc_avg_pool2d_opt((x), (dc_pool2d_opts){__VA_ARGS__})
/* Output window o of an input of size I spans [floor(o*I/O), ceil((o+1)*I/O)) (PyTorch's rule). */
DC_API dc_tensor *dc_adaptive_avg_pool2d(dc_tensor *x, int64_t out_h, int64_t out_w);
DC_API dc_tensor *dc_adaptive_max_pool2d(dc_tensor *x, int64_t out_h, int64_t out_w);

/* ---- normalisation ---- */
/* x [N, C] or [N, C, L] or [N, C, H, W]; weight/bias [C] or NULL (no affine); running_mean/var
 * [C] or NULL (track_running_stats=False). training (or no running stats): normalise with the
 * batch statistics (biased variance) and, when running stats are given, update them in place:
 * running = (1 - momentum) * running + momentum * batch_stat, with the unbiased variance for
 * running_var (PyTorch's semantics). Otherwise normalise with the running statistics. */
DC_API dc_tensor *dc_batch_norm(dc_tensor *x, dc_tensor *running_mean, dc_tensor *running_var,
                                dc_tensor *weight, dc_tensor *bias, bool training, double momentum,
                                double eps);

/* ---- dropout ---- */
/* Inverted dropout: zero each element with probability p and scale survivors by 1/(1-p); the mask
 * comes from deepc's seeded generator (dc_manual_seed reproduces it). Identity when !training or
 * p == 0; all zeros when p == 1. */
DC_API dc_tensor *dc_dropout(dc_tensor *x, double p, bool training);
/* Zeroes whole channels: x [N, C, *], one draw per (n, c). */
DC_API dc_tensor *dc_dropout2d(dc_tensor *x, double p, bool training);

/* ---- activations not in ops.h ---- */
/* clamp to [min_val, max_val]; gradient 1 strictly inside, 0 elsewhere (PyTorch's rule) */
DC_API dc_tensor *dc_hardtanh(dc_tensor *x, double min_val, double max_val);

/* ---- losses (input first, target second, like PyTorch) ----
 * reduction NONE keeps the element shape, SUM and MEAN give a 0-d tensor. Float targets and
 * weights are converted to the input's dtype; class indices are int64 (other integer types are
 * converted). */
typedef enum dc_reduction {
  DC_REDUCTION_MEAN = 0,
  DC_REDUCTION_SUM,
  DC_REDUCTION_NONE
} dc_reduction;
/* input and target broadcast against each other (both differentiable) */
DC_API dc_tensor *dc_mse_loss(dc_tensor *input, dc_tensor *target, dc_reduction r);
DC_API dc_tensor *dc_l1_loss(dc_tensor *input, dc_tensor *target, dc_reduction r);
/* 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0: L1) */
DC_API dc_tensor *dc_smooth_l1_loss(dc_tensor *input, dc_tensor *target, dc_reduction r,
                                    double beta);
/* input: probabilities in [0, 1], target the same shape; log terms are clamped at -100 like
 * PyTorch; weight: broadcast to input's shape or NULL (not differentiated) */
DC_API dc_tensor *dc_binary_cross_entropy(dc_tensor *input, dc_tensor *target, dc_tensor *weight,
                                          dc_reduction r);
/* logistic loss on logits, computed stably: (1 - y) x + (1 + (pos_weight - 1) y) log(1 + e^-x);
 * weight and pos_weight (e.g. [C] for input [N, C]) broadcast to input's shape or NULL */
DC_API dc_tensor *dc_binary_cross_entropy_with_logits(dc_tensor *input, dc_tensor *target,
                                                      dc_tensor *weight, dc_tensor *pos_weight,
                                                      dc_reduction r);
/* SVM hinge loss for labels y in {-1, +1}: max(0, margin - y * x) per element */
DC_API dc_tensor *dc_hinge_loss(dc_tensor *input, dc_tensor *target, double margin, dc_reduction r);
typedef struct dc_multi_margin_opts {
  int p;             /* 1 or 2 (0 = 1) */
  double margin;     /* 0 = 1.0 (PyTorch's default) unless zero_margin */
  bool zero_margin;  /* use a margin of exactly 0 */
  dc_tensor *weight; /* [C] or NULL */
  dc_reduction reduction;
} dc_multi_margin_opts;
/* input [N, C] (or [C]) scores, target [N] (or 0-d) int64 class indices:
 * loss_n = sum over i != y of w[y] * max(0, margin - x[y] + x[i])^p / C */
DC_API dc_tensor *dc_multi_margin_loss_opt(dc_tensor *input, dc_tensor *target,
                                           dc_multi_margin_opts o);
#define dc_multi_margin_loss(input, target, ...)                                                   \
  dc_multi_margin_loss_opt((input), (target), (dc_multi_margin_opts){__VA_ARGS__})
typedef struct dc_cross_entropy_opts {
  dc_tensor *weight;    /* [C] class weights or NULL */
  int64_t ignore_index; /* used when has_ignore_index; else PyTorch's default -100 applies */
  bool has_ignore_index;
  double label_smoothing; /* in [0, 1] (cross-entropy only) */
  dc_reduction reduction;
} dc_cross_entropy_opts;
/* input [N, C] (or [N, C, d1...], or [C]) logits, target [N] (or [N, d1...], or 0-d) int64 class
 * indices in [0, C) or ignore_index. A fused log-softmax + NLL; label smoothing mixes in the
 * uniform distribution: (1 - s) * nll + s / C * sum over classes of -w[c] log p[c]. MEAN divides
 * by the summed class weights of the non-ignored targets (their count when unweighted). */
DC_API dc_tensor *dc_cross_entropy_opt(dc_tensor *input, dc_tensor *target,
                                       dc_cross_entropy_opts o);
#define dc_cross_entropy(input, target, ...)                                                       \
  dc_cross_entropy_opt((input), (target), (dc_cross_entropy_opts){__VA_ARGS__})
/* input [N, C] (or as cross-entropy) log-probabilities, target int64: -w[y] * input[y] */
DC_API dc_tensor *dc_nll_loss_opt(dc_tensor *input, dc_tensor *target, dc_cross_entropy_opts o);
#define dc_nll_loss(input, target, ...)                                                            \
  dc_nll_loss_opt((input), (target), (dc_cross_entropy_opts){__VA_ARGS__})

#ifdef __cplusplus
}
#endif
#endif
