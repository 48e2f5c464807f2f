/* The forward of each ONNX op deepc reads, on deepc ops (so autograd and fine-tuning work):
 * one function per op family, dispatched by an exhaustive switch. Attributes were checked when
 * the file was read (onnx_ops.c). Shapes: N batch, C channels, H/W height/width, F features. */
#include "onnx-impl.h"

#include <deepc/nn_functional.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static dc_tensor *run_err(const dc__onnx_gnode *g, const char *what) {
  return dc__err(DC_ERR_ARG, "onnx node %s (%s): %s", g->name, dc__onnx_op_name(g->op), what);
}

static int ival(int64_t v) { return (int)v; }

/* x [N, C, H, W], w [K, C/groups, kH, kW] -> [N, K, Ho, Wo] */
static dc_tensor *conv(const dc__onnx_gnode *g, dc_tensor *const *in) {
  dc_tensor *w = in[1];
  if (!w || w->ndim != 4) return run_err(g, "only 2-d convolutions (a 4-d weight) are supported");
  if ((g->kernel[0] != 1 || g->kernel[1] != 1) &&
      (w->shape[2] != g->kernel[0] || w->shape[3] != g->kernel[1]))
    return run_err(g, "kernel_shape differs from the weight's size");
  dc_conv2d_opts o = {.groups = ival(g->group)};
  for (int i = 0; i < 2; i++) {
    o.stride[i] = ival(g->strides[i]);
    o.padding[i] = ival(g->pads[i]);
    o.dilation[i] = ival(g->dilations[i]);
  }
  return dc_conv2d_opt(in[0], w, g->nin > 2 && g->in[2] >= 0 ? in[2] : NULL, o);
}

static dc_tensor *pool(const dc__onnx_gnode *g, dc_tensor *x, bool max) {
  if (!x || x->ndim != 4) return run_err(g, "only 2-d pooling of [N, C, H, W] is supported");
  dc_pool2d_opts o = {.ceil_mode = g->ceil_mode != 0, .exclude_pad = !g->count_include_pad};
  for (int i = 0; i < 2; i++) {
    o.kernel[i] = ival(g->kernel[i]);
    o.stride[i] = ival(g->strides[i]);
    o.padding[i] = ival(g->pads[i]);
    o.dilation[i] = ival(g->dilations[i]);
  }
  return max ? dc_max_pool2d_opt(x, o) : dc_avg_pool2d_opt(x, o);
}

/* Global pools: the mean / max over every dim after the first two, kept as size 1. */
static dc_tensor *global_pool(const dc__onnx_gnode *g, dc_tensor *x, bool max) {
  if (!x || x->ndim < 3) return run_err(g, "needs an input [N, C, ...] of rank 3 or more");
  int dims[DC_MAX_DIMS], k = 0;
  for (int d = 2; d < x->ndim; d++) dims[k++] = d;
  return max ? dc_amax(x, dims, k, true) : dc_mean(x, dims, k, true);
}

/* y = alpha * A' B' + beta * C; Linear's form (transB, alpha = beta = 1) as dc_linear. */
static dc_tensor *gemm(const dc__onnx_gnode *g, dc_tensor *const *in) {
  dc_tensor *a = in[0], *b = in[1], *c = g->nin > 2 && g->in[2] >= 0 ? in[2] : NULL;
  if (!a || !b || a->ndim != 2 || b->ndim != 2) return run_err(g, "needs 2-d A and B");
  if (!g->trans_a && g->trans_b && g->alpha == 1 && (g->beta == 1 || !c) && (!c || c->ndim == 1))
    return dc_linear(a, b, c);
  dc_tensor *y =
      dc_matmul(g->trans_a ? dc_transpose(a, 0, 1) : a, g->trans_b ? dc_transpose(b, 0, 1) : b);
  if (g->alpha != 1) y = dc_mul_scalar(y, g->alpha);
  if (c) y = dc_add(y, g->beta != 1 ? dc_mul_scalar(c, g->beta) : c);
  return y;
}

/* ONNX Flatten: [d0 * .. * d(axis-1), d(axis) * .. ] (a 2-d result always). */
static dc_tensor *flatten(const dc__onnx_gnode *g, dc_tensor *x) {
  int r = x->ndim;
  int64_t axis = g->axis < 0 ? g->axis + r : g->axis, lead = 1;
  if (axis < 0 || axis > r) return run_err(g, "axis is outside the input's dims");
  for (int i = 0; i < axis; i++) lead *= x->shape[i];
  return dc_reshape(x, DC_SHAPE(lead, -1));
}

/* Reshape to the constant shape: 0 copies the input's size, -1 takes the rest. */
static dc_tensor *reshape(const dc__onnx_gnode *g, dc_tensor *x) {
  dc_shape s = {.ndim = g->nshape};
  int64_t known = 1; /* product of the sizes given, checked before dc_reshape multiplies them */
  for (int i = 0; i < g->nshape; i++) {
    if (g->shape[i] == 0 && i >= x->ndim) return run_err(g, "a 0 in the shape has no input dim");
    s.d[i] = g->shape[i] == 0 ? x->shape[i] : g->shape[i];
    if (s.d[i] >= 0 && (dc__mul_overflow(known, s.d[i], &known) || known > dc_numel(x)))
      return run_err(g, "the shape holds more elements than the input");
  }
  return dc_reshape(x, s);
}

static dc_tensor *softmax(const dc__onnx_gnode *g, dc_tensor *x, bool log) {
  int64_t axis = g->axis;
  if (g->coerce_2d && (axis < 0 ? axis + x->ndim : axis) != x->ndim - 1)
    return run_err(g, "before opset 13 only the last axis is supported");
  if (axis < -x->ndim || axis >= x->ndim) return run_err(g, "axis is outside the input's dims");
  return log ? dc_log_softmax(x, (int)axis) : dc_softmax(x, (int)axis);
}

static dc_tensor *binary(const dc__onnx_gnode *g, dc_tensor *a, dc_tensor *b) {
  if (g->op == DC__ONNX_ADD) return dc_add(a, b);
  if (g->op == DC__ONNX_SUB) return dc_sub(a, b);
  if (g->op == DC__ONNX_MUL) return dc_mul(a, b);
  return g->op == DC__ONNX_DIV ? dc_div(a, b) : dc_pow(a, b);
}

/* momentum: ONNX's running = running * momentum + batch * (1 - momentum), PyTorch's 1 - that */
static dc_tensor *batchnorm(const dc__onnx_gnode *g, dc_tensor *const *in, bool training) {
  return dc_batch_norm(in[0], in[3], in[4], in[1], in[2], training, 1 - g->alpha, g->epsilon);
}

dc_tensor *dc__onnx_run_node(const dc__onnx_gnode *g, dc_tensor *const *in, bool training) {
  dc_tensor *x = in[0];
  if (!x) return NULL;
  switch (g->op) {
  case DC__ONNX_CONV:
    return conv(g, in);
  case DC__ONNX_GEMM:
    return gemm(g, in);
  case DC__ONNX_MATMUL:
    return dc_matmul(x, in[1]);
  case DC__ONNX_BATCHNORM:
    return batchnorm(g, in, training);
  case DC__ONNX_MAXPOOL:
  case DC__ONNX_AVGPOOL:
    return pool(g, x, g->op == DC__ONNX_MAXPOOL);
  case DC__ONNX_GLOBAL_AVGPOOL:
  case DC__ONNX_GLOBAL_MAXPOOL:
    return global_pool(g, x, g->op == DC__ONNX_GLOBAL_MAXPOOL);
  case DC__ONNX_ADD:
  case DC__ONNX_SUB:
  case DC__ONNX_MUL:
  case DC__ONNX_DIV:
  case DC__ONNX_POW:
    return binary(g, x, in[1]);
  case DC__ONNX_RELU:
    return dc_relu(x);
  case DC__ONNX_LEAKY_RELU:
    return dc_leaky_relu(x, g->alpha);
  case DC__ONNX_ELU:
    return dc_elu(x, g->alpha);
  case DC__ONNX_SELU:
    return dc_selu(x);
  case DC__ONNX_SIGMOID:
    return dc_sigmoid(x);
  case DC__ONNX_TANH:
    return dc_tanh(x);
  case DC__ONNX_ERF:
    return dc_erf(x);
  case DC__ONNX_SOFTPLUS:
    return dc_softplus(x, 1.0, INFINITY);
  case DC__ONNX_SOFTMAX:
  case DC__ONNX_LOG_SOFTMAX:
    return softmax(g, x, g->op == DC__ONNX_LOG_SOFTMAX);
  case DC__ONNX_CLIP:
    return dc_clamp(x, g->lo, g->hi);
  case DC__ONNX_FLATTEN:
    return flatten(g, x);
  case DC__ONNX_RESHAPE:
    return reshape(g, x);
  case DC__ONNX_DROPOUT:
    return dc_dropout(x, g->ratio, training);
  case DC__ONNX_IDENTITY:
    return dc_reshape(x, dc_shape_of(x)); /* a view: the value keeps its own tensor */
  case DC__ONNX_OP_COUNT:
    break;
  }
  return run_err(g, "internal: no forward for this op");
}
