/* The list of every autograd op, once: its id (DC_OP_<id>, and the table entry dc__op_<id> that
 * the op's file defines with DC__OPDEF), the name users see (dc_grad_fn_name, tensor printing,
 * `deepc graph`'s DOT, error and anomaly messages; unique, see test_op_list.c) and the type of
 * the scalars its forward saves for the backward (dc__<type>_args in op-args.h; none: no scalars).
 * Kernel families have their own lists (DC_UNARY_LIST... in backend.h): one op here may run
 * several kernels, and a kernel may serve several ops. */
#ifndef DC_OP_LIST_H
#define DC_OP_LIST_H

/* clang-format off */
#define DC_OP_LIST(X) \
  /* binary.c: tensor-tensor */ \
  X(ADD, "add", none) \
  X(ADD_SCALED, "add_scaled", add_scaled) \
  X(SUB, "sub", none) \
  X(MUL, "mul", none) \
  X(DIV, "div", none) \
  X(POW, "pow", none) \
  X(MAXIMUM, "maximum", none) \
  X(MINIMUM, "minimum", none) \
  X(WHERE, "where", none) \
  /* binary.c: tensor-scalar */ \
  X(ADD_SCALAR, "add_scalar", scalar) \
  X(SUB_SCALAR, "sub_scalar", scalar) \
  X(RSUB_SCALAR, "rsub", scalar) \
  X(MUL_SCALAR, "mul_scalar", scalar) \
  X(DIV_SCALAR, "div_scalar", scalar) \
  X(POW_SCALAR, "pow_scalar", scalar) \
  /* unary.c */ \
  X(ACT_GRAD, "activation_backward", act_grad) \
  X(NEG, "neg", none) \
  X(ABS, "abs", none) \
  X(SIGN, "sign", none) \
  X(EXP, "exp", none) \
  X(LOG, "log", none) \
  X(SQRT, "sqrt", none) \
  X(RSQRT, "rsqrt", none) \
  X(SQUARE, "square", none) \
  X(RECIPROCAL, "reciprocal", none) \
  X(CLAMP, "clamp", clamp) \
  X(SIGMOID, "sigmoid", none) \
  X(TANH, "tanh", none) \
  X(RELU, "relu", none) \
  X(LEAKY_RELU, "leaky_relu", leaky_relu) \
  X(ELU, "elu", elu) \
  X(SELU, "selu", elu) \
  X(GELU, "gelu", gelu) \
  X(SOFTPLUS, "softplus", softplus) \
  X(ERF, "erf", none) \
  X(ADD_RELU, "add_relu", none) \
  /* reduce.c */ \
  X(SUM, "sum", reduce) \
  X(MEAN, "mean", reduce) \
  X(AMAX, "amax", reduce) \
  X(AMIN, "amin", reduce) \
  X(MAX, "max", reduce) \
  X(MIN, "min", reduce) \
  X(LOGSUMEXP, "logsumexp", reduce) \
  X(STD, "std", none) \
  X(MAX_DIM, "max_dim", dim) \
  X(MIN_DIM, "min_dim", dim) \
  /* softmax.c */ \
  X(SOFTMAX, "softmax", dim) \
  X(LOG_SOFTMAX, "log_softmax", dim) \
  /* convert.c */ \
  X(CLONE, "clone", none) \
  X(TO, "to", none) \
  X(TO_DEVICE, "to_device", none) \
  /* view.c */ \
  X(VIEW, "view", view) \
  X(PERMUTE, "permute", permute) \
  X(SLICE, "slice", slice) \
  X(EXPAND, "expand", view) \
  /* index.c */ \
  X(GATHER, "gather", dim) \
  X(SCATTER_ADD, "scatter_add", dim) \
  X(INDEX_SELECT, "index_select", dim) \
  X(INDEX_ADD, "index_add", dim) \
  X(CAT, "cat", cat) \
  X(STACK, "stack", dim) \
  /* matmul.c */ \
  X(MM, "mm", none) \
  X(BMM, "bmm", none) \
  X(LINEAR, "linear", none) \
  /* nn_conv.c, nn_conv_block.c */ \
  X(CONV2D, "conv2d", conv2d) \
  X(CONV_BN, "conv_bn", conv_block) \
  X(CONV_BN_RELU, "conv_bn_relu", conv_block) \
  X(CONV_BN_RELU_POOL, "conv_bn_relu_pool", conv_block) \
  /* nn_pool.c */ \
  X(MAX_POOL2D, "max_pool2d", pool) \
  X(AVG_POOL2D, "avg_pool2d", pool) \
  X(ADAPTIVE_AVG_POOL2D, "adaptive_avg_pool2d", pool) \
  X(ADAPTIVE_MAX_POOL2D, "adaptive_max_pool2d", pool) \
  /* nn_batchnorm.c */ \
  X(BATCH_NORM, "batch_norm", batch_norm) \
  X(BATCH_NORM_RELU, "batch_norm_relu", batch_norm) \
  /* nn_hardtanh.c, nn_dropout.c */ \
  X(HARDTANH, "hardtanh", hardtanh) \
  X(DROPOUT_IDENTITY, "dropout_identity", none) \
  X(DROPOUT, "dropout", dropout) \
  /* nn_loss.c: the pointwise losses in dc_pwloss_op's order, then the class losses */ \
  X(MSE_LOSS, "mse_loss", pwloss) \
  X(L1_LOSS, "l1_loss", pwloss) \
  X(SMOOTH_L1_LOSS, "smooth_l1_loss", pwloss) \
  X(BINARY_CROSS_ENTROPY, "binary_cross_entropy", pwloss) \
  X(BINARY_CROSS_ENTROPY_WITH_LOGITS, "binary_cross_entropy_with_logits", pwloss) \
  X(HINGE_LOSS, "hinge_loss", pwloss) \
  X(CROSS_ENTROPY, "cross_entropy", xent) \
  X(NLL_LOSS, "nll_loss", xent) \
  X(MULTI_MARGIN_LOSS, "multi_margin_loss", multi_margin) \
  /* src/dist/syncbn.c */ \
  X(DIST_ALL_REDUCE, "dist_all_reduce", none)
/* clang-format on */

typedef enum dc_op_kind {
#define DC_X(id, name, args) DC_OP_##id,
  DC_OP_LIST(DC_X)
#undef DC_X
      DC_OP_COUNT
} dc_op_kind;

#endif
