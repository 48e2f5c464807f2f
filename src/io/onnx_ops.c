/* The importer's op table: each ONNX op deepc reads (DC__ONNX_OPS in onnx-impl.h), its
 * attributes checked at load time and its forward on deepc ops (differentiable, so an imported
 * graph fine-tunes). Reading the file and the graph's structure is onnx_import.c.
 * Shapes: N batch, C channels, H/W height/width, F features. */
#include "onnx-impl.h"

#include <deepc/nn_functional.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- the table ---- */
#define DC__ONNX_ROW(e, name, lo, hi) {name, lo, hi},
static const struct {
  const char *name;
  int min_in, max_in;
} OPS[] = {DC__ONNX_OPS(DC__ONNX_ROW)};
#undef DC__ONNX_ROW
_Static_assert(sizeof OPS / sizeof OPS[0] == DC__ONNX_OP_COUNT, "one row per op");

const char *dc__onnx_op_name(dc__onnx_op op) { return op < DC__ONNX_OP_COUNT ? OPS[op].name : "?"; }

int dc__onnx_op_find(const char *name, int *min_in, int *max_in) {
  for (int i = 0; i < DC__ONNX_OP_COUNT; i++)
    if (!strcmp(OPS[i].name, name)) {
      *min_in = OPS[i].min_in, *max_in = OPS[i].max_in;
      return i;
    }
  return -1;
}

/* ---- attributes ---- */
static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *name) {
  for (size_t i = 0; i < n->n_attribute; i++)
    if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name)) return n->attribute[i];
  return NULL;
}

typedef struct actx {
  const dc__onnx_gnode *g;
  const char *file;
  int rc;
} actx;

static void bad(actx *c, const char *name, const char *what) {
  if (c->rc == DC_OK)
    c->rc = dc__errs(DC_ERR_FORMAT, "%s: node %s (%s): attribute '%s' %s", c->file, c->g->name,
                     dc__onnx_op_name(c->g->op), name, what);
}

static int64_t get_int(actx *c, const Onnx__NodeProto *n, const char *name, int64_t dflt) {
  const Onnx__AttributeProto *a = attr(n, name);
  if (!a) return dflt;
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT) bad(c, name, "is not an int");
  return a->i;
}

static double get_float(actx *c, const Onnx__NodeProto *n, const char *name, double dflt) {
  const Onnx__AttributeProto *a = attr(n, name);
  if (!a) return dflt;
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT) bad(c, name, "is not a float");
  return a->f;
}

/* k ints into v (left as they are when absent); a count other than k is an error. */
static void get_ints(actx *c, const Onnx__NodeProto *n, const char *name, int k, int64_t *v) {
  const Onnx__AttributeProto *a = attr(n, name);
  if (!a) return;
  if (a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS || a->n_ints != (size_t)k) {
    char what[64];
    snprintf(what, sizeof what, "must hold %d ints (2-d layers only)", k);
    bad(c, name, what);
    return;
  }
  memcpy(v, a->ints, sizeof *v * (size_t)k);
}

/* The window attributes of Conv / pools: kernel, strides, pads, dilations within sane bounds. */
static void window_attrs(actx *c, dc__onnx_gnode *g, const Onnx__NodeProto *n) {
  const Onnx__AttributeProto *ap = attr(n, "auto_pad");
  if (ap && !(ap->has_s && ap->s.len == 6 && !memcmp(ap->s.data, "NOTSET", 6)))
    bad(c, "auto_pad", "is not supported (only NOTSET with explicit pads)");
  get_ints(c, n, "kernel_shape", 2, g->kernel);
  get_ints(c, n, "strides", 2, g->strides);
  get_ints(c, n, "pads", 4, g->pads);
  get_ints(c, n, "dilations", 2, g->dilations);
  for (int i = 0; i < 2; i++) {
    if (g->kernel[i] < 1 || g->kernel[i] > 1 << 16) bad(c, "kernel_shape", "is out of range");
    if (g->strides[i] < 1 || g->strides[i] > 1 << 16) bad(c, "strides", "is out of range");
    if (g->dilations[i] < 1 || g->dilations[i] > 1 << 16) bad(c, "dilations", "is out of range");
    if (g->pads[i] != g->pads[i + 2])
      bad(c, "pads", "differs at the two ends of a dim (deepc pads both ends alike)");
    if (g->pads[i] < 0 || g->pads[i] > 1 << 16) bad(c, "pads", "is out of range");
  }
}

/* A scalar known at load time: value v (an initializer or Constant), else dflt. */
static double const_scalar(actx *c, const dc__onnx_gnode *g, dc_tensor *const *consts, int k,
                           double dflt) {
  if (k >= g->nin || g->in[k] < 0) return dflt;
  dc_tensor *t = consts[g->in[k]];
  if (!t || dc_numel(t) != 1) {
    if (c->rc == DC_OK)
      c->rc = dc__errs(DC_ERR_UNSUPPORTED,
                       "%s: node %s (%s): input %d must be a constant scalar (an initializer)",
                       c->file, g->name, dc__onnx_op_name(g->op), k);
    return dflt;
  }
  return dc_item(t);
}

static void reshape_attrs(actx *c, dc__onnx_gnode *g, dc_tensor *const *consts) {
  dc_tensor *t = consts[g->in[1]];
  if (!t || t->ndim != 1 || t->dtype != DC_I64 || t->shape[0] > DC_MAX_DIMS) {
    if (c->rc == DC_OK)
      c->rc = dc__errs(DC_ERR_UNSUPPORTED,
                       "%s: node %s (Reshape): the shape must be a constant int64 vector of at "
                       "most %d sizes",
                       c->file, g->name, DC_MAX_DIMS);
    return;
  }
  g->nshape = (int)t->shape[0];
  if (dc_copy_to_buffer(t, g->shape, sizeof(int64_t) * (size_t)g->nshape) != DC_OK) c->rc = 1;
  int minus = 0;
  for (int i = 0; i < g->nshape; i++) {
    minus += g->shape[i] == -1;
    if (g->shape[i] < -1 || minus > 1) bad(c, "shape", "has a size below -1 or two -1");
  }
}

/* Conv, MaxPool, AveragePool. */
static void window_op_attrs(actx *c, dc__onnx_gnode *g, const Onnx__NodeProto *n) {
  g->kernel[0] = g->kernel[1] = 1;
  window_attrs(c, g, n);
  g->group = get_int(c, n, "group", 1);
  if (g->group < 1 || g->group > 1 << 20) bad(c, "group", "is out of range");
  g->ceil_mode = get_int(c, n, "ceil_mode", 0);
  g->count_include_pad = get_int(c, n, "count_include_pad", 0);
  if (g->op == DC__ONNX_MAXPOOL && n->n_output > 1) bad(c, "(output Indices)", "is not supported");
  if (g->op == DC__ONNX_MAXPOOL && get_int(c, n, "storage_order", 0))
    bad(c, "storage_order", "must be 0");
}

static void batchnorm_attrs(actx *c, dc__onnx_gnode *g, const Onnx__NodeProto *n) {
  g->epsilon = get_float(c, n, "epsilon", 1e-5);
  g->alpha = get_float(c, n, "momentum", 0.9);
  if (get_int(c, n, "training_mode", 0)) bad(c, "training_mode", "must be 0");
  if (!(g->epsilon >= 0) || !(g->alpha >= 0 && g->alpha <= 1))
    bad(c, "epsilon/momentum", "is out of range");
}

static void selu_attrs(actx *c, const Onnx__NodeProto *n) {
  if (fabs(get_float(c, n, "alpha", 1.67326319217681884765625) - 1.6732632) > 1e-6 ||
      fabs(get_float(c, n, "gamma", 1.05070102214813232421875) - 1.0507010) > 1e-6)
    bad(c, "alpha/gamma", "differ from SELU's constants");
}

/* Softmax / LogSoftmax / Flatten: one axis within the ranks deepc has. */
static void axis_attr(actx *c, dc__onnx_gnode *g, const Onnx__NodeProto *n, int64_t dflt) {
  g->axis = get_int(c, n, "axis", dflt);
  if (g->axis < -DC_MAX_DIMS || g->axis > DC_MAX_DIMS) bad(c, "axis", "is out of range");
}

int dc__onnx_node_attrs(dc__onnx_gnode *g, const Onnx__NodeProto *n, int opset,
                        dc_tensor *const *consts, const char *file) {
  actx c = {g, file, DC_OK};
  g->strides[0] = g->strides[1] = g->dilations[0] = g->dilations[1] = 1;
  switch (g->op) {
  case DC__ONNX_CONV:
  case DC__ONNX_MAXPOOL:
  case DC__ONNX_AVGPOOL:
    window_op_attrs(&c, g, n);
    break;
  case DC__ONNX_GEMM:
    g->trans_a = get_int(&c, n, "transA", 0), g->trans_b = get_int(&c, n, "transB", 0);
    g->alpha = get_float(&c, n, "alpha", 1.0), g->beta = get_float(&c, n, "beta", 1.0);
    break;
  case DC__ONNX_BATCHNORM:
    batchnorm_attrs(&c, g, n);
    break;
  case DC__ONNX_LEAKY_RELU:
  case DC__ONNX_ELU:
    g->alpha = get_float(&c, n, "alpha", g->op == DC__ONNX_ELU ? 1.0 : 0.01);
    break;
  case DC__ONNX_SELU:
    selu_attrs(&c, n);
    break;
  case DC__ONNX_SOFTMAX:
  case DC__ONNX_LOG_SOFTMAX:
    axis_attr(&c, g, n, opset >= 13 ? -1 : 1);
    g->coerce_2d = opset < 13; /* checked at run time: the same as opset 13 on the last axis */
    break;
  case DC__ONNX_FLATTEN:
    axis_attr(&c, g, n, 1);
    break;
  case DC__ONNX_CLIP:
    g->lo = opset >= 11 ? const_scalar(&c, g, consts, 1, -INFINITY)
                        : get_float(&c, n, "min", -INFINITY);
    g->hi =
        opset >= 11 ? const_scalar(&c, g, consts, 2, INFINITY) : get_float(&c, n, "max", INFINITY);
    break;
  case DC__ONNX_RESHAPE:
    reshape_attrs(&c, g, consts);
    if (get_int(&c, n, "allowzero", 0)) bad(&c, "allowzero", "must be 0");
    break;
  case DC__ONNX_DROPOUT:
    g->ratio = opset >= 12 ? const_scalar(&c, g, consts, 1, 0.5) : get_float(&c, n, "ratio", 0.5);
    if (!(g->ratio >= 0 && g->ratio < 1)) bad(&c, "ratio", "must be in [0, 1)");
    break;
  case DC__ONNX_MATMUL:
  case DC__ONNX_GLOBAL_AVGPOOL:
  case DC__ONNX_GLOBAL_MAXPOOL:
  case DC__ONNX_ADD:
  case DC__ONNX_SUB:
  case DC__ONNX_MUL:
  case DC__ONNX_DIV:
  case DC__ONNX_POW:
  case DC__ONNX_RELU:
  case DC__ONNX_SIGMOID:
  case DC__ONNX_TANH:
  case DC__ONNX_ERF:
  case DC__ONNX_SOFTPLUS:
  case DC__ONNX_IDENTITY:
  case DC__ONNX_OP_COUNT:
    break;
  }
  return c.rc;
}
