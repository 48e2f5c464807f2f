/* The scalars an op's forward saves in its node for the backward rule: one struct per argument
 * type, named in the op's row of DC_OP_LIST (op-list.h), several ops sharing a type where their
 * rule is shared. A node holds them in its dc__op_args union (sized by the largest); rules and
 * forwards reach them only through DC__ARGS(n, type) (autograd-impl.h). Saved tensors stay in
 * n->saved[k], each op's comment naming its slots. */
#ifndef DC_OP_ARGS_H
#define DC_OP_ARGS_H

#include "../backend/nn-kernels.h"

typedef struct dc__none_args {
  char unused; /* ops that save no scalars (C has no empty struct) */
} dc__none_args;

/* ---- binary.c, unary.c ---- */
typedef struct dc__add_scaled_args {
  double alpha; /* out = a + alpha b, alpha rounded to the compute dtype */
} dc__add_scaled_args;
typedef struct dc__scalar_args {
  double s; /* the scalar operand rounded to the compute dtype (sub_scalar: -s) */
} dc__scalar_args;
typedef struct dc__act_grad_args {
  dc_binary_op kop; /* the activation's backward kernel: DC_BIN_{RELU,SIGMOID,TANH,GELU...}_BWD */
} dc__act_grad_args;
typedef struct dc__clamp_args {
  double lo, hi; /* the bounds, rounded to x's dtype */
} dc__clamp_args;
typedef struct dc__leaky_relu_args {
  double slope; /* negative_slope, rounded to x's dtype */
} dc__leaky_relu_args;
typedef struct dc__elu_args {
  double scale_alpha; /* gradient factor of exp(x) for x <= 0 (elu: alpha) */
  double scale;       /* gradient for x > 0 (elu: 1) */
} dc__elu_args;
typedef struct dc__gelu_args {
  bool tanh_approximation; /* the tanh form instead of erf's */
} dc__gelu_args;
typedef struct dc__softplus_args {
  double beta, threshold; /* rounded to x's dtype; linear where x beta > threshold */
} dc__softplus_args;
typedef struct dc__hardtanh_args {
  double min_val, max_val; /* the gradient is 1 strictly between them */
} dc__hardtanh_args;

/* ---- reduce.c, softmax.c, index.c ---- */
typedef struct dc__reduce_args {
  double scale;  /* 1/R for mean (R reduced elements), else 1 */
  uint32_t mask; /* the reduced dims: bit d for dim d */
  dc_shape keep; /* the output's shape with the reduced dims kept as 1 */
} dc__reduce_args;
typedef struct dc__dim_args {
  int dim; /* the dim the op works along (wrapped: 0 <= dim < ndim) */
} dc__dim_args;
typedef struct dc__cat_args {
  int dim;         /* the dim of the concatenation */
  bool skip_empty; /* 1-D inputs of size 0 took no part (torch's legacy rule) */
} dc__cat_args;

/* ---- view.c ---- */
typedef struct dc__view_args {
  dc_shape in; /* the input's shape */
} dc__view_args;
typedef struct dc__permute_args {
  dc_shape in;          /* the input's shape */
  int inv[DC_MAX_DIMS]; /* the inverse permutation, in[0 .. ndim-1] */
} dc__permute_args;
typedef struct dc__slice_args {
  dc_shape in;              /* the input's shape */
  int dim;                  /* the sliced dim */
  int64_t start, len, step; /* the elements start, start + step, ... (len of them) */
  bool drop;                /* select: dim is removed from the output */
} dc__slice_args;

/* ---- nn_*.c ---- */
typedef struct dc__conv2d_args {
  dc_conv2d_geom geom; /* sizes, padding and the algorithm the forward ran */
} dc__conv2d_args;
typedef struct dc__conv_block_args {
  dc_conv2d_geom geom; /* the convolution's, as conv2d's */
  bool batch_stats;    /* batch statistics (training) rather than the running ones */
  int ib, ibw, ibb;    /* index among the inputs of the conv bias, bn weight, bn bias (0: none) */
  int mode;            /* DC_CONV_BLOCK_RELU | DC_CONV_BLOCK_POOL */
} dc__conv_block_args;
typedef struct dc__pool_args {
  dc_pool2d_geom geom; /* windows and sizes */
  int kind;            /* POOL_MAX, POOL_AVG, ... (nn_pool.c) */
} dc__pool_args;
typedef struct dc__batch_norm_args {
  bool batch_stats; /* batch statistics (training) rather than the running ones */
  int iw, ib;       /* index among the inputs of the weight, the bias (0: none) */
} dc__batch_norm_args;
typedef struct dc__dropout_args {
  int64_t inner; /* dropout2d: the mask is broadcast over the last `inner` elements; 1: dropout */
} dc__dropout_args;
typedef struct dc__pwloss_args {
  dc_pwloss_op kind; /* which pointwise loss */
  double p;          /* smooth_l1's beta, hinge's margin */
  double scale;      /* 1/E for a mean, else 1 */
} dc__pwloss_args;
typedef struct dc__xent_args {
  dc_xent_params p; /* rows, classes, ignore_index, smoothing, reduction... */
  double wsum[2];   /* the weighted-mean denominators {NLL term, smoothing term} */
} dc__xent_args;
typedef struct dc__multi_margin_args {
  int p;         /* 1 or 2 */
  double margin; /* the hinge's margin */
  double scale;  /* 1/N for a mean, else 1 */
} dc__multi_margin_args;

/* every argument type once: a member of the node's union and a dc__args_kind */
/* clang-format off */
#define DC_OP_ARGS_LIST(X) \
  X(none) X(add_scaled) X(scalar) X(act_grad) X(clamp) X(leaky_relu) X(elu) X(gelu) \
  X(softplus) X(hardtanh) X(reduce) X(dim) X(cat) X(view) X(permute) X(slice) X(conv2d) \
  X(conv_block) X(pool) X(batch_norm) X(dropout) X(pwloss) X(xent) X(multi_margin)
/* clang-format on */

typedef enum dc__args_kind {
#define DC_X(t) DC__ARGS_##t,
  DC_OP_ARGS_LIST(DC_X)
#undef DC_X
      DC__ARGS_COUNT
} dc__args_kind;

typedef union dc__op_args {
#define DC_X(t) dc__##t##_args t;
  DC_OP_ARGS_LIST(DC_X)
#undef DC_X
} dc__op_args;

#endif
