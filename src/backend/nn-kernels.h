/* The nn kernel family of a backend: convolution, pooling, batch norm, dropout masks, hardtanh and
 * the fused losses. Ops (src/ops/nn_*.c) check arguments, compute geometry, allocate contiguous
 * outputs and record autograd nodes; these kernels only compute, on contiguous operands.
 * Shapes: N batch, C input channels, K output channels (filters), G groups, H/W input height and
 * width, OH/OW output height and width, kH/kW kernel size, S the flattened spatial size of batch
 * norm ([N, C] has S = 1), E elements of a pointwise loss, R rows of a cross-entropy (N * d1...).
 */
#ifndef DC_NN_KERNELS_H
#define DC_NN_KERNELS_H

#include <deepc/nn_functional.h>

#include "backend.h"

#define DC_NN_KERNELS_VERSION 1

/* Convolution geometry (all sizes resolved; padding may be asymmetric for padding="same"). */
typedef struct dc_conv2d_geom {
  int64_t n, c, h, w; /* input x [N, C, H, W] */
  int64_t k, kh, kw;  /* weight [K, C/G, kH, kW] */
  int64_t oh, ow;     /* output [N, K, OH, OW] */
  int64_t stride[2], dilation[2], groups;
  int64_t pad_l[2], pad_r[2]; /* top/left and bottom/right zero padding */
  int64_t algo; /* dc_conv_algo in force when the forward ran (backward uses it too) */
} dc_conv2d_geom;

/* Pooling geometry: a plane is one (n, c) image; windows of max/avg pooling. */
typedef struct dc_pool2d_geom {
  int64_t planes, h, w; /* input [P = N*C, H, W] */
  int64_t oh, ow;       /* output [P, OH, OW] */
  int64_t kernel[2], stride[2], pad[2], dilation[2];
  bool count_include_pad; /* avg */
  int64_t divisor;        /* avg: divisor_override, 0 = off */
} dc_pool2d_geom;

/* Pointwise losses: loss(x, y) per element, with an optional per-element weight. */
#define DC_PWLOSS_LIST(X) X(MSE) X(L1) X(SMOOTH_L1) X(BCE) X(BCE_LOGITS) X(HINGE)
typedef enum dc_pwloss_op {
#define DC_X(n) DC_PWLOSS_##n,
  DC_PWLOSS_LIST(DC_X)
#undef DC_X
      DC_PWLOSS_COUNT
} dc_pwloss_op;

/* Cross-entropy / NLL options resolved by the op. */
typedef struct dc_xent_params {
  int64_t rows, classes, inner; /* input [N, C, inner] with R = N * inner rows */
  int64_t ignore_index;
  double smoothing; /* label smoothing (0 for NLL) */
  bool log_softmax; /* true: input is logits (cross-entropy); false: log-probs (NLL) */
  dc_reduction reduction;
} dc_xent_params;

/* conv_block's layers after the batch norm; pooling comes only with the ReLU */
enum { DC_CONV_BLOCK_RELU = 1, DC_CONV_BLOCK_POOL = 2 };

struct dc_nn_kernels {
  int version;

  /* ---- convolution: x [N, C, H, W], w [K, C/G, kH, kW], b [K] or NULL, y [N, K, OH, OW] ---- */
  int (*conv2d_forward)(dc_tensor *y, const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                        const dc_conv2d_geom *g);
  /* gx [N, C, H, W], gw [K, C/G, kH, kW], gb [K]: each NULL when not wanted; gx and gw are
   * overwritten (=), gb too */
  int (*conv2d_backward)(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                         const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g);

  /* ---- pooling: x [P, H, W], y [P, OH, OW], idx int32 [P, OH, OW] (h * W + w in the plane) ----
   */
  int (*max_pool2d_forward)(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                            const dc_pool2d_geom *g);
  int (*avg_pool2d_forward)(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g);
  int (*avg_pool2d_backward)(dc_tensor *gx, const dc_tensor *gy, const dc_pool2d_geom *g);
  /* adaptive pools use only planes, h, w, oh, ow of the geometry */
  int (*adaptive_avg_pool2d_forward)(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g);
  int (*adaptive_avg_pool2d_backward)(dc_tensor *gx, const dc_tensor *gy, const dc_pool2d_geom *g);
  int (*adaptive_max_pool2d_forward)(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                                     const dc_pool2d_geom *g);
  /* gx [P, H, W] = gy summed into the positions idx names (max and adaptive max pooling) */
  int (*max_pool2d_backward)(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *idx,
                             const dc_pool2d_geom *g);

  /* ---- batch norm: x, y [N, C, S]; weight, bias, running stats [C] or NULL ----
   * batch_stats: normalise with the batch mean/var and, with running stats given, update them
   * (momentum, unbiased var); else normalise with the running stats. save_mean/save_invstd [C]
   * receive the mean and 1/sqrt(var + eps) used. */
  int (*batch_norm_forward)(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                            const dc_tensor *x, const dc_tensor *weight, const dc_tensor *bias,
                            dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                            double momentum, double eps);
  /* gx [N, C, S], gw, gb [C]: NULL when not wanted. batch_stats: the training-mode formula
   * (gradient through the batch statistics), else the eval-mode one (stats are constants). */
  int (*batch_norm_backward)(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                             const dc_tensor *x, const dc_tensor *weight, const dc_tensor *mean,
                             const dc_tensor *invstd, bool batch_stats);

  /* ---- dropout and hardtanh ---- */
  /* in place: u (uniform [0, 1) draws) becomes the mask: 1/(1-p) where u < 1 - p, else 0 */
  int (*dropout_mask)(dc_tensor *mask, double p);
  /* y [E] = x [E] * mask[e / inner] (mask [E / inner]) */
  int (*apply_mask)(dc_tensor *y, const dc_tensor *x, const dc_tensor *mask, int64_t inner);
  int (*hardtanh_forward)(dc_tensor *y, const dc_tensor *x, double lo, double hi);
  int (*hardtanh_backward)(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *x, double lo,
                           double hi);

  /* ---- pointwise losses: x, t, weight, pos_weight [E] (weights may be NULL) ----
   * out: [E] for reduction NONE, else 0-d (the sum, times scale). p: beta (SMOOTH_L1) or margin
   * (HINGE). */
  int (*pointwise_loss_forward)(dc_pwloss_op op, dc_tensor *out, const dc_tensor *x,
                                const dc_tensor *t, const dc_tensor *weight,
                                const dc_tensor *pos_weight, double p, bool reduce, double scale);
  /* gx, gt [E] (NULL when not wanted) = d loss / d x, d loss / d t times gout (gout [E], or 0-d
   * for a reduced loss) times scale */
  int (*pointwise_loss_backward)(dc_pwloss_op op, dc_tensor *gx, dc_tensor *gt,
                                 const dc_tensor *gout, const dc_tensor *x, const dc_tensor *t,
                                 const dc_tensor *weight, const dc_tensor *pos_weight, double p,
                                 double scale);

  /* ---- cross-entropy / NLL: x [N, C, inner], target int64 [R], class weight [C] or NULL ----
   * Checks every target (error naming the bad label, its position and C). out: [R] for NONE,
   * else 0-d. lse [R]: per row, what the backend's backward needs
   * to rebuild the softmax (log_softmax only; the CPU's: log(sum(exp(x - max))), max recomputed).
   * wsum: the weighted-mean denominators {NLL term, smoothing term}. */
  int (*xent_forward)(dc_tensor *out, dc_tensor *lse, double wsum[2], const dc_tensor *x,
                      const dc_tensor *target, const dc_tensor *weight, const dc_xent_params *p);
  /* gx [N, C, inner] = d loss / d x times gout ([R] or 0-d) */
  int (*xent_backward)(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                       const dc_tensor *lse, const dc_tensor *target, const dc_tensor *weight,
                       const double wsum[2], const dc_xent_params *p);

  /* ---- multi-class hinge: x [N, C], target int64 [N], weight [C] or NULL; out [N] or 0-d ---- */
  int (*multi_margin_forward)(dc_tensor *out, const dc_tensor *x, const dc_tensor *target,
                              const dc_tensor *weight, int p, double margin, bool reduce,
                              double scale);
  int (*multi_margin_backward)(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                               const dc_tensor *target, const dc_tensor *weight, int p,
                               double margin, double scale);

  /* ---- optional (NULL: the op runs batch norm, then ReLU): batch norm and the ReLU after it
   * in one pass. Forward: batch_norm_forward's arguments, y = max(bn(x), 0) (NaN stays NaN).
   * Backward: batch_norm_backward's, with gy masked by y > 0 (y [N, C, S], the forward's
   * output) as it is read. */
  int (*batch_norm_relu_forward)(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                                 const dc_tensor *x, const dc_tensor *weight, const dc_tensor *bias,
                                 dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                                 double momentum, double eps);
  int (*batch_norm_relu_backward)(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                                  const dc_tensor *y, const dc_tensor *x, const dc_tensor *weight,
                                  const dc_tensor *mean, const dc_tensor *invstd, bool batch_stats);

  /* ---- optional (NULL, or a plan that says DC_ERR_UNSUPPORTED: the op runs the layers):
   * conv2d -> batch norm [-> ReLU [-> max pooling 2x2 stride 2 (floor mode)]] in one op, the
   * convolution's output kept in between in a layout of the backend's choosing; mode says which
   * layers follow the batch norm (DC_CONV_BLOCK_RELU, | DC_CONV_BLOCK_POOL).
   * Shapes: x, w, b and g as conv2d; yc the convolution's output [N, K, OH, OW] in the backend's
   * layout, stored as float32 [bytes / 4]; y [N, K, OH/2, OW/2] pooled, else [N, K, OH, OW]
   * (NCHW); idx (pooled) uint8 of y's size, each window's argmax in the backend's order, else
   * NULL; bn_w, bn_b, running stats [K]; stats [4, K] what the forward used (mean, invstd, and
   * the affine a, b of yc).
   * conv_block_plan: DC_OK and yc's size in bytes when the backend fuses this float32 layer. */
  int (*conv_block_plan)(const dc_conv2d_geom *g, bool has_bias, size_t *bytes);
  /* batch norm as batch_norm_forward; idx NULL when no backward will run or not pooled */
  int (*conv_block_forward)(dc_tensor *y, dc_tensor *yc, dc_tensor *idx, dc_tensor *stats,
                            const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                            const dc_tensor *bn_w, const dc_tensor *bn_b, dc_tensor *running_mean,
                            dc_tensor *running_var, bool batch_stats, double momentum, double eps,
                            const dc_conv2d_geom *g, int mode);
  /* gx, gw, gb (the convolution's) and gbn_w, gbn_b [K] (the batch norm's): NULL when not
   * wanted; gy y's shape; batch_stats as batch_norm_backward */
  int (*conv_block_backward)(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, dc_tensor *gbn_w,
                             dc_tensor *gbn_b, const dc_tensor *gy, const dc_tensor *x,
                             const dc_tensor *w, const dc_tensor *yc, const dc_tensor *idx,
                             const dc_tensor *bn_w, const dc_tensor *bn_b, const dc_tensor *stats,
                             bool batch_stats, const dc_conv2d_geom *g, int mode);
};

#endif
