/* Loss functions: the pointwise losses (MSE, L1, smooth L1, BCE on probabilities and on logits,
 * SVM hinge), cross-entropy (fused log-softmax + NLL) and NLL on class indices, and the
 * multi-class hinge loss, with mean/sum/none reductions and fused backward kernels.
 * Shapes: E elements of a pointwise loss; class losses: input [N, C, d1...] or [C], target
 * int64 [N, d1...] or 0-d, R = N * d1... rows. */
#include "nn_ops.h"
#include "autocast-impl.h"

#include <assert.h>
#include <string.h>

/* ---- pointwise losses ---- */

static const char *const PW_NAMES[] = {"mse_loss",
                                       "l1_loss",
                                       "smooth_l1_loss",
                                       "binary_cross_entropy",
                                       "binary_cross_entropy_with_logits",
                                       "hinge_loss"};
static_assert(sizeof PW_NAMES / sizeof *PW_NAMES == DC_PWLOSS_COUNT, "one name per pointwise loss");

/* grads from the fused kernel: gx = dl/dx * w * gout * scale, gt = dl/dt * w * gout * scale.
 * saved: weight (0), pos_weight (1); args: dc__pwloss_args */
static int pwloss_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  const dc__pwloss_args *a = DC__ARGS(n, pwloss);
  dc_pwloss_op kind = a->kind;
  if (!dc__nn_no_double_backward(PW_NAMES[kind])) return DC_ERR_UNSUPPORTED;
  dc_tensor *x = n->inputs[0], *t = n->inputs[1];
  dc_tensor *gy = dc_contiguous(gout);
  dc_tensor *gx = dc__needs_grad(n, 0) ? dc__new(dc_shape_of(x), x->dtype, x->device) : NULL;
  dc_tensor *gt = dc__needs_grad(n, 1) ? dc__new(dc_shape_of(t), t->dtype, t->device) : NULL;
  if (!gy || (dc__needs_grad(n, 0) && !gx) || (dc__needs_grad(n, 1) && !gt)) return dc__nn_status();
  const struct dc_nn_kernels *k = dc__nn_kernels(PW_NAMES[kind], x);
  int rc = k ? k->pointwise_loss_backward(kind, gx, gt, gy, x, t, n->saved[0], n->saved[1], a->p,
                                          a->scale)
             : dc__nn_status();
  if (rc != DC_OK) return rc;
  gin[0] = gx;
  gin[1] = gt;
  return DC_OK;
}
DC__OPDEF(MSE_LOSS, pwloss_backward);
DC__OPDEF(L1_LOSS, pwloss_backward);
DC__OPDEF(SMOOTH_L1_LOSS, pwloss_backward);
DC__OPDEF(BINARY_CROSS_ENTROPY, pwloss_backward);
DC__OPDEF(BINARY_CROSS_ENTROPY_WITH_LOGITS, pwloss_backward);
DC__OPDEF(HINGE_LOSS, pwloss_backward);
/* by dc_pwloss_op */
static const dc_opdef *const PWLOSS_OPS[DC_PWLOSS_COUNT] = {
    &dc__op_MSE_LOSS,
    &dc__op_L1_LOSS,
    &dc__op_SMOOTH_L1_LOSS,
    &dc__op_BINARY_CROSS_ENTROPY,
    &dc__op_BINARY_CROSS_ENTROPY_WITH_LOGITS,
    &dc__op_HINGE_LOSS,
};

/* t broadcast to shape s, contiguous, in dtype dt, as an owned reference (dc__unref it; NULL for
 * NULL); what names it in errors. */
static dc_tensor *spread(const char *op, const char *what, dc_tensor *t, dc_shape s, dc_dtype dt,
                         bool *failed) {
  if (!t) return NULL;
  dc_shape b;
  char ts[128], ss[128];
  if (!dc__broadcast_shapes(op, dc_shape_of(t), s, &b) || !dc_shape_equal(b, s)) {
    dc__err(DC_ERR_ARG, "%s: %s of shape %s cannot be broadcast to the input's shape %s", op, what,
            dc_shape_str(dc_shape_of(t), ts, sizeof ts), dc_shape_str(s, ss, sizeof ss));
    *failed = true;
    return NULL;
  }
  dc_tensor *e = dc_shape_equal(dc_shape_of(t), s) ? NULL : dc_expand(t, s);
  dc_tensor *r = e || dc_shape_equal(dc_shape_of(t), s) ? dc__nn_prepare(e ? e : t, dt) : NULL;
  dc_free(e);
  if (!r) *failed = true;
  return r;
}

static dc_tensor *pointwise_loss(dc_pwloss_op kind, dc_tensor *input, dc_tensor *target,
                                 dc_tensor *weight, dc_tensor *pos_weight, double p, dc_reduction r,
                                 bool broadcast) {
  const char *op = PW_NAMES[kind];
  /* autocast's float32 list; bfloat16 outside it: in float32, the loss rounded once */
  dc_tensor *in[4] = {input, target, weight, pos_weight}, *c[4];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_FP32, 0, 4, in, c);
  if (am != DC__AMP_NONE)
    return dc__amp_leave(am, true, pointwise_loss(kind, c[0], c[1], c[2], c[3], p, r, broadcast), 4,
                         in, c);
  if (!dc__check_nonnull(op, 2, input, target) || !dc__nn_check_float(op, "input", input) ||
      !dc__nn_check_reduction(op, r) || !dc__nn_check_device(op, "target", target, input) ||
      !dc__nn_check_device(op, "weight", weight, input) ||
      !dc__nn_check_device(op, "pos_weight", pos_weight, input))
    return NULL;
  dc_shape s = dc_shape_of(input);
  if (!dc_shape_equal(s, dc_shape_of(target))) {
    char a[128], b[128];
    if (!broadcast)
      return dc__err(DC_ERR_ARG, "%s: target %s must have the same shape as input %s", op,
                     dc_shape_str(dc_shape_of(target), a, sizeof a), dc_shape_str(s, b, sizeof b));
    if (!dc__broadcast_shapes(op, s, dc_shape_of(target), &s)) return NULL;
  }
  const struct dc_nn_kernels *k = dc__nn_kernels(op, input);
  if (!k) return NULL;
  bool failed = false;
  dc_tensor *xc = spread(op, "input", input, s, input->dtype, &failed);
  dc_tensor *tc = spread(op, "target", target, s, input->dtype, &failed);
  dc_tensor *wc = spread(op, "weight", weight, s, input->dtype, &failed);
  dc_tensor *pc = spread(op, "pos_weight", pos_weight, s, input->dtype, &failed);
  int64_t e = dc__shape_numel(&s);
  dc_tensor *out =
      failed ? NULL
             : dc__new(r == DC_REDUCTION_NONE ? s : DC_SCALAR_SHAPE, input->dtype, input->device);
  double scale = r == DC_REDUCTION_MEAN ? 1.0 / (double)e : 1.0;
  dc_node *n = NULL;
  bool ok = out &&
            k->pointwise_loss_forward(kind, out, xc, tc, wc, pc, p, r != DC_REDUCTION_NONE,
                                      scale) == DC_OK &&
            dc__record(PWLOSS_OPS[kind], out, 2, (dc_tensor *[]){xc, tc}, &n);
  if (ok && n) {
    *DC__ARGS(n, pwloss) = (dc__pwloss_args){kind, p, scale};
    if (wc) dc__save(n, 0, wc);
    if (pc) dc__save(n, 1, pc);
  }
  dc__unref(xc);
  dc__unref(tc);
  dc__unref(wc);
  dc__unref(pc);
  if (!ok) {
    dc_free(out);
    return NULL;
  }
  return out;
}

dc_tensor *dc_mse_loss(dc_tensor *input, dc_tensor *target, dc_reduction r) {
  return pointwise_loss(DC_PWLOSS_MSE, input, target, NULL, NULL, 0, r, true);
}

dc_tensor *dc_l1_loss(dc_tensor *input, dc_tensor *target, dc_reduction r) {
  return pointwise_loss(DC_PWLOSS_L1, input, target, NULL, NULL, 0, r, true);
}

dc_tensor *dc_smooth_l1_loss(dc_tensor *input, dc_tensor *target, dc_reduction r, double beta) {
  if (!(beta >= 0)) return dc__err(DC_ERR_ARG, "smooth_l1_loss: beta must be >= 0, got %g", beta);
  return pointwise_loss(DC_PWLOSS_SMOOTH_L1, input, target, NULL, NULL, beta, r, true);
}

dc_tensor *dc_binary_cross_entropy(dc_tensor *input, dc_tensor *target, dc_tensor *weight,
                                   dc_reduction r) {
  return pointwise_loss(DC_PWLOSS_BCE, input, target, weight, NULL, 0, r, false);
}

dc_tensor *dc_binary_cross_entropy_with_logits(dc_tensor *input, dc_tensor *target,
                                               dc_tensor *weight, dc_tensor *pos_weight,
                                               dc_reduction r) {
  return pointwise_loss(DC_PWLOSS_BCE_LOGITS, input, target, weight, pos_weight, 0, r, false);
}

dc_tensor *dc_hinge_loss(dc_tensor *input, dc_tensor *target, double margin, dc_reduction r) {
  return pointwise_loss(DC_PWLOSS_HINGE, input, target, NULL, NULL, margin, r, true);
}

/* ---- cross-entropy and NLL ---- */

/* grad (cross-entropy): gx = softmax(x) - smoothed weighted one-hot, scaled; (NLL): -w[y] at y.
 * saved: target (0), weight (1), lse (2); args: dc__xent_args */
static int xent_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  const dc__xent_args *a = DC__ARGS(n, xent);
  dc_xent_params p = a->p;
  const char *op = p.log_softmax ? "cross_entropy" : "nll_loss";
  if (!dc__nn_no_double_backward(op)) return DC_ERR_UNSUPPORTED;
  dc_tensor *x = n->inputs[0];
  dc_tensor *gy = dc_contiguous(gout), *gx = dc__new(dc_shape_of(x), x->dtype, x->device);
  const struct dc_nn_kernels *k = gy && gx ? dc__nn_kernels(op, x) : NULL;
  int rc = k ? k->xent_backward(gx, gy, x, n->saved[2], n->saved[0], n->saved[1], a->wsum, &p)
             : dc__nn_status();
  if (rc != DC_OK) return rc;
  gin[0] = gx;
  return DC_OK;
}
DC__OPDEF(CROSS_ENTROPY, xent_backward);
DC__OPDEF(NLL_LOSS, xent_backward);

/* Integer class indices as an owned reference to a contiguous int64 tensor (dc__unref it);
 * floats are refused. */
static dc_tensor *class_indices(const char *op, dc_tensor *target) {
  if (dc_dtype_is_float(target->dtype))
    return dc__err(DC_ERR_ARG,
                   "%s: target must hold int64 class indices, got %s (probability "
                   "targets are not supported; turn one-hot rows into indices with dc_argmax)",
                   op, dc_dtype_name(target->dtype));
  return dc__nn_prepare(target, DC_I64);
}

/* The target shape a class loss expects for input [N, C, d...] (or [C]): [N, d...] (or []). */
static bool check_class_shapes(const char *op, const dc_tensor *x, const dc_tensor *t) {
  char xs[128], ts[128], es[128];
  dc_shape_str(dc_shape_of(x), xs, sizeof xs);
  dc_shape_str(dc_shape_of(t), ts, sizeof ts);
  if (x->ndim == 0) {
    dc__err(DC_ERR_ARG, "%s: input must be [N, C] scores (or [C]), got a 0-d tensor", op);
    return false;
  }
  dc_shape e = {.ndim = x->ndim > 1 ? x->ndim - 1 : 0};
  for (int d = 0, k = 0; d < x->ndim && x->ndim > 1; d++)
    if (d != 1) e.d[k++] = x->shape[d];
  if (dc_shape_equal(e, dc_shape_of(t))) return true;
  dc__err(DC_ERR_ARG,
          "%s: target %s does not fit input %s: expected target %s of class indices "
          "(the input's shape without the class dim 1)",
          op, ts, xs, dc_shape_str(e, es, sizeof es));
  return false;
}

static dc_tensor *class_loss(bool log_softmax, dc_tensor *input, dc_tensor *target,
                             dc_cross_entropy_opts o) {
  const char *op = log_softmax ? "cross_entropy" : "nll_loss";
  dc_tensor *in[3] = {input, target, o.weight}, *c[3]; /* as pointwise_loss */
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_FP32, 0, 3, in, c);
  if (am != DC__AMP_NONE) {
    dc_cross_entropy_opts oc = o;
    oc.weight = c[2];
    return dc__amp_leave(am, true, class_loss(log_softmax, c[0], c[1], oc), 3, in, c);
  }
  if (!dc__check_nonnull(op, 2, input, target) || !dc__nn_check_float(op, "input", input) ||
      !dc__nn_check_reduction(op, o.reduction) || !check_class_shapes(op, input, target) ||
      !dc__nn_check_device(op, "target", target, input) ||
      !dc__nn_check_device(op, "class weight", o.weight, input))
    return NULL;
  if (!(o.label_smoothing >= 0 && o.label_smoothing <= 1))
    return dc__err(DC_ERR_ARG, "%s: label_smoothing must be in [0, 1], got %g", op,
                   o.label_smoothing);
  if (!log_softmax && o.label_smoothing != 0)
    return dc__err(DC_ERR_ARG, "nll_loss: label_smoothing applies to cross-entropy only");
  dc_xent_params p = {0};
  p.classes = input->ndim > 1 ? input->shape[1] : input->shape[0];
  p.inner = 1;
  for (int d = 2; d < input->ndim; d++) p.inner *= input->shape[d];
  p.rows = dc_numel(target);
  p.ignore_index = o.has_ignore_index ? o.ignore_index : -100;
  p.smoothing = o.label_smoothing;
  p.log_softmax = log_softmax;
  p.reduction = o.reduction;
  if (p.classes == 0) return dc__err(DC_ERR_ARG, "%s: input has no classes (C = 0)", op);
  if (o.weight && (!dc__nn_check_vector(op, "class weight", o.weight, p.classes) ||
                   !dc__nn_check_float(op, "class weight", o.weight)))
    return NULL;
  const struct dc_nn_kernels *k = dc__nn_kernels(op, input);
  if (!k) return NULL;
  dc_tensor *xc = dc__nn_prepare(input, input->dtype), *tc = class_indices(op, target);
  dc_tensor *wc = o.weight ? dc__nn_prepare(o.weight, input->dtype) : NULL;
  dc_tensor *lse = log_softmax ? dc__new(DC_SHAPE(p.rows), input->dtype, input->device) : NULL;
  dc_shape os = o.reduction == DC_REDUCTION_NONE ? dc_shape_of(target) : DC_SCALAR_SHAPE;
  dc_tensor *out = dc__new(os, input->dtype, input->device);
  double wsum[2] = {0, 0};
  dc_node *n = NULL;
  bool ok = xc && tc && (wc || !o.weight) && (lse || !log_softmax) && out &&
            k->xent_forward(out, lse, wsum, xc, tc, wc, &p) == DC_OK &&
            dc__record(log_softmax ? &dc__op_CROSS_ENTROPY : &dc__op_NLL_LOSS, out, 1, &xc, &n);
  if (ok && n) {
    *DC__ARGS(n, xent) = (dc__xent_args){p, {wsum[0], wsum[1]}};
    dc__save(n, 0, tc);
    if (wc) dc__save(n, 1, wc);
    if (lse) dc__save(n, 2, lse);
  }
  dc__unref(xc);
  dc__unref(tc);
  dc__unref(wc);
  dc_free(lse);
  if (!ok) {
    dc_free(out);
    return NULL;
  }
  return out;
}

dc_tensor *dc_cross_entropy_opt(dc_tensor *input, dc_tensor *target, dc_cross_entropy_opts o) {
  return class_loss(true, input, target, o);
}

dc_tensor *dc_nll_loss_opt(dc_tensor *input, dc_tensor *target, dc_cross_entropy_opts o) {
  return class_loss(false, input, target, o);
}

/* ---- multi-class hinge (MultiMarginLoss) ---- */

/* grad: for each i != y with z = margin - x[y] + x[i] > 0: gx[i] = w[y] (p == 1 ? 1 : 2z) / C,
 * gx[y] -= the same; times gout and scale. saved: target (0), weight (1); args:
 * dc__multi_margin_args */
static int multi_margin_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  if (!dc__nn_no_double_backward("multi_margin_loss")) return DC_ERR_UNSUPPORTED;
  dc_tensor *x = n->inputs[0];
  const dc__multi_margin_args *a = DC__ARGS(n, multi_margin);
  dc_tensor *gy = dc_contiguous(gout), *gx = dc__new(dc_shape_of(x), x->dtype, x->device);
  const struct dc_nn_kernels *k = gy && gx ? dc__nn_kernels("multi_margin_loss", x) : NULL;
  if (!k) return dc__nn_status();
  /* the kernel sees [N, C]: a 1-D input is one row */
  int64_t C = x->shape[x->ndim - 1], N = x->ndim == 2 ? x->shape[0] : 1;
  dc_tensor *x2 = dc__alias(x, 2, (int64_t[]){N, C}, (int64_t[]){C, 1}, x->offset);
  dc_tensor *g2 = dc__alias(gx, 2, (int64_t[]){N, C}, (int64_t[]){C, 1}, gx->offset);
  int rc = x2 && g2 ? k->multi_margin_backward(g2, gy, x2, n->saved[0], n->saved[1], a->p,
                                               a->margin, a->scale)
                    : dc__nn_status();
  dc_free(x2);
  dc_free(g2);
  if (rc != DC_OK) return rc;
  gin[0] = gx;
  return DC_OK;
}
DC__OPDEF(MULTI_MARGIN_LOSS, multi_margin_backward);

dc_tensor *dc_multi_margin_loss_opt(dc_tensor *input, dc_tensor *target, dc_multi_margin_opts o) {
  const char *op = "multi_margin_loss";
  dc_tensor *in[3] = {input, target, o.weight}, *c[3]; /* as pointwise_loss */
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_FP32, 0, 3, in, c);
  if (am != DC__AMP_NONE) {
    dc_multi_margin_opts oc = o;
    oc.weight = c[2];
    return dc__amp_leave(am, true, dc_multi_margin_loss_opt(c[0], c[1], oc), 3, in, c);
  }
  if (!dc__check_nonnull(op, 2, input, target) || !dc__nn_check_float(op, "input", input) ||
      !dc__nn_check_reduction(op, o.reduction) ||
      !dc__nn_check_device(op, "target", target, input) ||
      !dc__nn_check_device(op, "weight", o.weight, input))
    return NULL;
  char xs[128];
  if (input->ndim != 1 && input->ndim != 2)
    return dc__err(DC_ERR_ARG, "%s: expected input [N, C] or [C], got %s", op,
                   dc_shape_str(dc_shape_of(input), xs, sizeof xs));
  if (!check_class_shapes(op, input, target)) return NULL;
  int p = o.p ? o.p : 1;
  if (p != 1 && p != 2) return dc__err(DC_ERR_ARG, "%s: p must be 1 or 2, got %d", op, o.p);
  double margin = o.zero_margin ? 0.0 : o.margin != 0 ? o.margin : 1.0;
  int64_t C = input->shape[input->ndim - 1], N = input->ndim == 2 ? input->shape[0] : 1;
  if (C == 0) return dc__err(DC_ERR_ARG, "%s: input has no classes (C = 0)", op);
  if (o.weight && (!dc__nn_check_vector(op, "weight", o.weight, C) ||
                   !dc__nn_check_float(op, "weight", o.weight)))
    return NULL;
  const struct dc_nn_kernels *k = dc__nn_kernels(op, input);
  if (!k) return NULL;
  dc_tensor *xc = dc__nn_prepare(input, input->dtype), *tc = class_indices(op, target);
  dc_tensor *wc = o.weight ? dc__nn_prepare(o.weight, input->dtype) : NULL;
  dc_shape os = o.reduction == DC_REDUCTION_NONE ? dc_shape_of(target) : DC_SCALAR_SHAPE;
  dc_tensor *out = dc__new(os, input->dtype, input->device);
  dc_tensor *x2 = xc ? dc__alias(xc, 2, (int64_t[]){N, C}, (int64_t[]){C, 1}, xc->offset) : NULL;
  double scale = o.reduction == DC_REDUCTION_MEAN ? 1.0 / (double)N : 1.0;
  dc_node *n = NULL;
  bool ok = x2 && tc && (wc || !o.weight) && out &&
            k->multi_margin_forward(out, x2, tc, wc, p, margin, o.reduction != DC_REDUCTION_NONE,
                                    scale) == DC_OK &&
            dc__record(&dc__op_MULTI_MARGIN_LOSS, out, 1, &xc, &n);
  if (ok && n) {
    *DC__ARGS(n, multi_margin) = (dc__multi_margin_args){p, margin, scale};
    dc__save(n, 0, tc);
    if (wc) dc__save(n, 1, wc);
  }
  dc_free(x2);
  dc__unref(xc);
  dc__unref(tc);
  dc__unref(wc);
  if (!ok) {
    dc_free(out);
    return NULL;
  }
  return out;
}
