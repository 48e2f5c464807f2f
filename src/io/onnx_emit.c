/* The exporter's per-layer emitters: the ONNX nodes of each leaf module of src/nn (Linear,
 * Conv2d, BatchNorm1d/2d in eval form, the pools, every activation, dropout as Identity,
 * Flatten, Identity). Containers (Sequential, ResNet, VGG) are walked by onnx_export.c.
 * Reads the layers' state blocks (src/nn/nn-impl.h). Shapes: N batch, C channels, H/W
 * height/width, F features; xt is the layer's example input, for ranks and sizes. */
#include "onnx-impl.h"

#include "../nn/nn-impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define ACT(m) ((const dc__act_state *)(m)->state)

static char *join(char *buf, size_t n, const char *path, const char *leaf) {
  snprintf(buf, n, "%s%s%s", path, *path ? "." : "", leaf);
  return buf;
}

/* One node op(x) named path; NULL on failure. */
static Onnx__NodeProto *unary(dc__onnx_builder *b, const char *op, const char *path,
                              const char *x) {
  return dc__onnx_node(b, op, *path ? path : op, 1, (const char *[]){x});
}

/* A float scalar initializer named path.leaf. */
static const char *scalar(dc__onnx_builder *b, const char *path, const char *leaf, float v) {
  char nm[1024];
  return dc__onnx_init_fill(b, join(nm, sizeof nm, path, leaf), (dc_shape){0}, v);
}

/* op(x, constant v) named path.leaf. */
static const char *binary_c(dc__onnx_builder *b, const char *op, const char *path, const char *leaf,
                            const char *x, float v) {
  char nm[1024];
  const char *c = scalar(b, path, leaf, v);
  join(nm, sizeof nm, path, leaf);
  return dc__onnx_out(dc__onnx_node(b, op, nm, 2, (const char *[]){x, c}));
}

static const char *param(dc__onnx_builder *b, dc_module *m, const char *path, const char *name) {
  char nm[1024];
  dc_tensor *t = dc__own_param(m, name);
  if (!t) t = dc__own_buffer(m, name);
  return t ? dc__onnx_init_tensor(b, join(nm, sizeof nm, path, name), t) : NULL;
}

/* ---- Linear: Gemm on [N, F]; MatMul with the transposed weight (+ Add) on [N, *, F] ---- */
static const char *linear(dc__onnx_builder *b, dc_module *m, const char *path, const char *x,
                          const dc_tensor *xt) {
  dc_tensor *w = dc__own_param(m, "weight"), *bias = dc__own_param(m, "bias");
  const char *bn = bias ? param(b, m, path, "bias") : NULL;
  if (xt->ndim == 2) {
    const char *wn = param(b, m, path, "weight");
    Onnx__NodeProto *n = dc__onnx_node(b, "Gemm", path, bias ? 3 : 2, (const char *[]){x, wn, bn});
    return dc__onnx_attr_int(n, "transB", 1) ? dc__onnx_out(n) : NULL;
  }
  char nm[1024], mm[1024];
  const char *wt = dc__onnx_init_tensor(b, join(nm, sizeof nm, path, "weight_t"),
                                        dc_contiguous(dc_transpose(w, 0, 1)));
  const char *y = dc__onnx_out(dc__onnx_node(
      b, "MatMul", bias ? join(mm, sizeof mm, path, "matmul") : path, 2, (const char *[]){x, wt}));
  return bias ? dc__onnx_out(dc__onnx_node(b, "Add", path, 2, (const char *[]){y, bn})) : y;
}

/* ---- Conv2d ---- */
static const char *conv(dc__onnx_builder *b, dc_module *m, const char *path, const char *x) {
  const dc__conv_state *s = m->state;
  int64_t k[2], st[2], dil[2], pads[4];
  for (int i = 0; i < 2; i++) {
    k[i] = s->kernel.v[i], st[i] = s->stride.v[i], dil[i] = s->dilation.v[i];
    int64_t total = s->same ? dil[i] * (k[i] - 1) : 2 * s->padding.v[i];
    pads[i] = total / 2; /* PyTorch's 'same': the extra pixel goes after */
    pads[i + 2] = total - total / 2;
  }
  const char *w = param(b, m, path, "weight");
  const char *bias = s->bias ? param(b, m, path, "bias") : NULL;
  Onnx__NodeProto *n = dc__onnx_node(b, "Conv", path, bias ? 3 : 2, (const char *[]){x, w, bias});
  bool ok = dc__onnx_attr_ints(n, "kernel_shape", 2, k) &&
            dc__onnx_attr_ints(n, "strides", 2, st) && dc__onnx_attr_ints(n, "pads", 4, pads) &&
            dc__onnx_attr_ints(n, "dilations", 2, dil) && dc__onnx_attr_int(n, "group", s->groups);
  return ok ? dc__onnx_out(n) : NULL;
}

/* ---- BatchNorm1d/2d: BatchNormalization with the running statistics ---- */
static const char *batchnorm(dc__onnx_builder *b, dc_module *m, const char *path, const char *x) {
  const dc__bn_state *s = m->state;
  if (!s->track)
    return dc__err(DC_ERR_UNSUPPORTED,
                   "%s (%s): track_running_stats=False normalises with the batch's statistics "
                   "in eval mode too, which has no ONNX form; train with running statistics",
                   path, m->type->name);
  char nm[1024];
  const char *scale =
      s->affine ? param(b, m, path, "weight")
                : dc__onnx_init_fill(b, join(nm, sizeof nm, path, "weight"), DC_SHAPE(s->c), 1.0f);
  const char *bias =
      s->affine ? param(b, m, path, "bias")
                : dc__onnx_init_fill(b, join(nm, sizeof nm, path, "bias"), DC_SHAPE(s->c), 0.0f);
  const char *mean = param(b, m, path, "running_mean"), *var = param(b, m, path, "running_var");
  Onnx__NodeProto *n =
      dc__onnx_node(b, "BatchNormalization", path, 5, (const char *[]){x, scale, bias, mean, var});
  return dc__onnx_attr_float(n, "epsilon", (float)s->eps) ? dc__onnx_out(n) : NULL;
}

/* ---- pools ---- */
static const char *pool(dc__onnx_builder *b, dc_module *m, const char *path, const char *x,
                        bool max) {
  const dc__pool_state *s = m->state;
  if (!max && s->divisor_override)
    return dc__err(DC_ERR_UNSUPPORTED, "%s (AvgPool2d): divisor_override has no ONNX form", path);
  int64_t k[2], st[2], dil[2], pads[4];
  for (int i = 0; i < 2; i++) {
    k[i] = s->kernel.v[i], st[i] = s->stride.v[i], dil[i] = s->dilation.v[i];
    pads[i] = pads[i + 2] = s->padding.v[i];
  }
  Onnx__NodeProto *n = unary(b, max ? "MaxPool" : "AveragePool", path, x);
  bool ok = dc__onnx_attr_ints(n, "kernel_shape", 2, k) &&
            dc__onnx_attr_ints(n, "strides", 2, st) && dc__onnx_attr_ints(n, "pads", 4, pads) &&
            dc__onnx_attr_int(n, "ceil_mode", s->ceil_mode);
  if (ok && max) ok = dc__onnx_attr_ints(n, "dilations", 2, dil);
  if (ok && !max) ok = dc__onnx_attr_int(n, "count_include_pad", !s->exclude_pad);
  return ok ? dc__onnx_out(n) : NULL;
}

/* Adaptive pools: Global*Pool for a 1x1 output, else a plain pool when the sizes divide. */
static const char *adaptive(dc__onnx_builder *b, dc_module *m, const char *path, const char *x,
                            const dc_tensor *xt, bool max) {
  const dc__adaptive_state *s = m->state;
  int64_t in[2] = {xt->shape[xt->ndim - 2], xt->shape[xt->ndim - 1]}, k[2];
  for (int i = 0; i < 2; i++) {
    int64_t out = s->out[i] ? s->out[i] : in[i];
    if (in[i] % out)
      return dc__err(DC_ERR_UNSUPPORTED,
                     "%s (%s): an output of %lld from %lld has no ONNX form (the sizes must "
                     "divide); export with an input size that is a multiple",
                     path, m->type->name, (long long)out, (long long)in[i]);
    k[i] = in[i] / out;
  }
  if (k[0] == in[0] && k[1] == in[1])
    return dc__onnx_out(unary(b, max ? "GlobalMaxPool" : "GlobalAveragePool", path, x));
  Onnx__NodeProto *n = unary(b, max ? "MaxPool" : "AveragePool", path, x);
  bool ok = dc__onnx_attr_ints(n, "kernel_shape", 2, k) && dc__onnx_attr_ints(n, "strides", 2, k);
  return ok ? dc__onnx_out(n) : NULL;
}

/* ---- Flatten: Flatten(axis=1) for (1, -1), else Reshape to the flattened sizes ---- */
static const char *flatten(dc__onnx_builder *b, dc_module *m, const char *path, const char *x,
                           const dc_tensor *xt) {
  int r = xt->ndim, s = ACT(m)->dim < 0 ? ACT(m)->dim + r : ACT(m)->dim,
      e = ACT(m)->dim2 < 0 ? ACT(m)->dim2 + r : ACT(m)->dim2;
  if (r == 0 || s == e) return dc__onnx_out(unary(b, "Identity", path, x));
  if (s == 1 && e == r - 1) {
    Onnx__NodeProto *n = unary(b, "Flatten", path, x);
    return dc__onnx_attr_int(n, "axis", 1) ? dc__onnx_out(n) : NULL;
  }
  int64_t shape[DC_MAX_DIMS];
  int k = 0;
  for (int i = 0; i < r; i++) {
    if (i > s && i <= e) continue;
    shape[k++] = i == s ? -1 : i == 0 ? 0 : xt->shape[i]; /* 0: the (dynamic) batch as is */
  }
  char nm[1024];
  const char *sh = dc__onnx_init_i64(b, join(nm, sizeof nm, path, "shape"), k, shape);
  return dc__onnx_out(dc__onnx_node(b, "Reshape", path, 2, (const char *[]){x, sh}));
}

/* ---- activations ---- */
/* GELU: x * 0.5 * (1 + erf(x / sqrt 2)), or its tanh form (opset 17 has no Gelu op). */
static const char *gelu(dc__onnx_builder *b, const char *path, const char *x, bool tanh_form) {
  char nm[1024];
  const char *in = x;
  if (tanh_form) { /* tanh(sqrt(2 / pi) * (x + 0.044715 x^3)) */
    const char *x3 = binary_c(b, "Pow", path, "cube", x, 3.0f);
    const char *t = binary_c(b, "Mul", path, "c", x3, 0.044715f);
    t = dc__onnx_out(
        dc__onnx_node(b, "Add", join(nm, sizeof nm, path, "inner"), 2, (const char *[]){x, t}));
    t = binary_c(b, "Mul", path, "k", t, (float)sqrt(2.0 / M_PI));
    in = dc__onnx_out(
        dc__onnx_node(b, "Tanh", join(nm, sizeof nm, path, "tanh"), 1, (const char *[]){t}));
  } else {
    const char *d = binary_c(b, "Div", path, "sqrt2", x, (float)M_SQRT2);
    in = dc__onnx_out(
        dc__onnx_node(b, "Erf", join(nm, sizeof nm, path, "erf"), 1, (const char *[]){d}));
  }
  const char *p = binary_c(b, "Add", path, "one", in, 1.0f);
  const char *h = binary_c(b, "Mul", path, "half", x, 0.5f);
  return dc__onnx_out(dc__onnx_node(b, "Mul", path, 2, (const char *[]){h, p}));
}

/* Softplus(beta): Softplus(beta x) / beta (the threshold changes nothing in float32). */
static const char *softplus(dc__onnx_builder *b, const char *path, const char *x, double beta) {
  if (beta == 1) return dc__onnx_out(unary(b, "Softplus", path, x));
  char nm[1024];
  const char *s = binary_c(b, "Mul", path, "beta", x, (float)beta);
  s = dc__onnx_out(
      dc__onnx_node(b, "Softplus", join(nm, sizeof nm, path, "softplus"), 1, (const char *[]){s}));
  return binary_c(b, "Div", path, "inv_beta", s, (float)beta);
}

static const char *clip(dc__onnx_builder *b, const char *path, const char *x, double lo,
                        double hi) {
  const char *l = scalar(b, path, "min", (float)lo), *h = scalar(b, path, "max", (float)hi);
  return dc__onnx_out(dc__onnx_node(b, "Clip", path, 3, (const char *[]){x, l, h}));
}

static const char *softmax(dc__onnx_builder *b, dc_module *m, const char *path, const char *x,
                           const dc_tensor *xt, bool log) {
  int r = xt->ndim, d = ACT(m)->dim;
  if (d == DC_NN_DIM_NONE) d = r == 0 || r == 1 || r == 3 ? 0 : 1; /* PyTorch's implicit dim */
  Onnx__NodeProto *n = unary(b, log ? "LogSoftmax" : "Softmax", path, x);
  return dc__onnx_attr_int(n, "axis", d < 0 ? d + r : d) ? dc__onnx_out(n) : NULL;
}

/* Activations with one attribute alpha (LeakyReLU's negative_slope, ELU's alpha). */
static const char *with_alpha(dc__onnx_builder *b, const char *op, const char *path, const char *x,
                              double alpha) {
  Onnx__NodeProto *n = unary(b, op, path, x);
  return dc__onnx_attr_float(n, "alpha", (float)alpha) ? dc__onnx_out(n) : NULL;
}

static const char *activation(dc__onnx_builder *b, dc_module *m, const char *path, const char *x,
                              const dc_tensor *xt, bool *known) {
  const char *t = m->type->name;
  *known = true;
  static const char *const PLAIN[][2] = {
      {"ReLU", "Relu"},        {"SELU", "Selu"},          {"Sigmoid", "Sigmoid"},  {"Tanh", "Tanh"},
      {"Dropout", "Identity"}, {"Dropout2d", "Identity"}, {"Identity", "Identity"}};
  for (size_t i = 0; i < sizeof PLAIN / sizeof PLAIN[0]; i++)
    if (!strcmp(t, PLAIN[i][0])) return dc__onnx_out(unary(b, PLAIN[i][1], path, x));
  if (!strcmp(t, "LeakyReLU")) return with_alpha(b, "LeakyRelu", path, x, ACT(m)->a);
  if (!strcmp(t, "ELU")) return with_alpha(b, "Elu", path, x, ACT(m)->a);
  if (!strcmp(t, "GELU")) return gelu(b, path, x, ACT(m)->flag);
  if (!strcmp(t, "Softplus")) return softplus(b, path, x, ACT(m)->a);
  if (!strcmp(t, "Hardtanh")) return clip(b, path, x, ACT(m)->a, ACT(m)->b);
  if (!strcmp(t, "Softmax")) return softmax(b, m, path, x, xt, false);
  if (!strcmp(t, "LogSoftmax")) return softmax(b, m, path, x, xt, true);
  if (!strcmp(t, "Flatten")) return flatten(b, m, path, x, xt);
  *known = false;
  return NULL;
}

const char *dc__onnx_emit_leaf(dc__onnx_builder *b, dc_module *m, const char *path, const char *x,
                               const dc_tensor *xt) {
  const dc_module_type *t = m->type;
  if (t == &dc__type_linear) return linear(b, m, path, x, xt);
  if (t == &dc__type_conv2d) return conv(b, m, path, x);
  if (t == &dc__type_batchnorm1d || t == &dc__type_batchnorm2d) return batchnorm(b, m, path, x);
  if (t == &dc__type_maxpool2d || t == &dc__type_avgpool2d)
    return pool(b, m, path, x, t == &dc__type_maxpool2d);
  if (t == &dc__type_adaptive_avgpool2d || t == &dc__type_adaptive_maxpool2d)
    return adaptive(b, m, path, x, xt, t == &dc__type_adaptive_maxpool2d);
  bool known;
  const char *y = activation(b, m, path, x, xt, &known);
  if (known) return y;
  return dc__err(DC_ERR_UNSUPPORTED,
                 "onnx export: %s (%s) has no ONNX form in deepc; supported: Linear, Conv2d, "
                 "BatchNorm1d/2d, MaxPool2d, AvgPool2d, AdaptiveAvg/MaxPool2d, activations, "
                 "Dropout, Flatten, Identity, Sequential, ResNet, VGG (docs/onnx.md)",
                 *path ? path : "the model", t->name);
}
