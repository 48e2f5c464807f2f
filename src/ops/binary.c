/* Binary elementwise ops with NumPy broadcasting and PyTorch type promotion (add ... minimum,
 * add_scaled, where), comparisons, and the ops with a scalar, each with its backward rule
 * (gradients summed back over broadcast dims with dc__sum_to). Kernels live in
 * src/backend/cpu/binary.c and unary.c; this file checks, promotes, allocates and records. */
#include "../autograd/autograd-impl.h"
#include "../backend/backend.h"

#include <math.h>

/* ---- dtype rules ---- */

static int category(dc_dtype dt) { return dt == DC_BOOL ? 0 : dc_dtype_is_float(dt) ? 2 : 1; }

/* PyTorch's result type of two tensors: a 0-d tensor only decides the dtype when it is of a
 * higher category (bool < integer < float) than the dimensioned one. */
static dc_dtype result_type(const dc_tensor *a, const dc_tensor *b) {
  bool za = a->ndim == 0, zb = b->ndim == 0;
  if (za == zb) return dc__promote(a->dtype, b->dtype);
  const dc_tensor *dim = za ? b : a, *zero = za ? a : b;
  return category(zero->dtype) > category(dim->dtype) ? zero->dtype : dim->dtype;
}

static bool is_integral(double s) { return isfinite(s) && s == nearbyint(s) && fabs(s) < 9.0e18; }

/* s rounded to dtype dt (what PyTorch does to a Python scalar before computing). */
static double round_to(double s, dc_dtype dt) {
  if (dt == DC_F32) return (double)(float)s;
  if (dt == DC_BF16) return dc__bf16_to_f32(dc__f32_to_bf16((float)s));
  if (dt == DC_F16) return dc__f16_to_f32(dc__f32_to_f16((float)s));
  return s;
}

/* The device an op on a and b (and c, may be NULL) runs on, PyTorch's rule: a 0-d cpu tensor
 * mixes with tensors on any device; other tensors must share one. False (an error) otherwise. */
static bool op_device(const char *op, const dc_tensor *a, const dc_tensor *b, const dc_tensor *c,
                      dc_device *dev) {
  const dc_tensor *ts[3] = {a, b, c}, *first = NULL;
  for (int k = 0; k < 3; k++) {
    const dc_tensor *t = ts[k];
    if (!t || (t->ndim == 0 && t->device == DC_CPU)) continue;
    if (first && t->device != first->device) {
      dc__err(DC_ERR_ARG,
              "%s: tensors are on different devices (%s and %s); move one with "
              "dc_to_device",
              op, dc_device_name(first->device), dc_device_name(t->device));
      return false;
    }
    if (!first) first = t;
  }
  *dev = first ? first->device : DC_CPU;
  return true;
}

/* Gradient g [broadcast shape] as the gradient of input t: summed back to t's shape. */
static dc_tensor *grad_for(dc_tensor *g, const dc_tensor *t) {
  return dc__sum_to(g, dc_shape_of(t));
}

static dc_tensor *zero_like_dtype(dc_dtype dt) { return dc_scalar(0.0, dt); }

static int rule_status(dc_tensor **gin, const dc_node *n) {
  for (int k = 0; k < n->ninputs; k++)
    if (dc__needs_grad(n, k) && !gin[k]) return dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
  return DC_OK;
}

/* ---- backward rules (a = inputs[0], b = inputs[1], g = gradient of the output) ---- */

/* add: ga = g, gb = g (summed over broadcast dims) */
static int add_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  if (dc__needs_grad(n, 0)) gin[0] = grad_for(g, n->inputs[0]);
  if (dc__needs_grad(n, 1)) gin[1] = grad_for(g, n->inputs[1]);
  return rule_status(gin, n);
}

/* add_scaled (a + alpha b): ga = g, gb = alpha g */
static int add_scaled_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  if (dc__needs_grad(n, 0)) gin[0] = grad_for(g, n->inputs[0]);
  if (dc__needs_grad(n, 1))
    gin[1] = grad_for(dc_mul_scalar(g, DC__ARGS(n, add_scaled)->alpha), n->inputs[1]);
  return rule_status(gin, n);
}

/* sub: ga = g, gb = -g */
static int sub_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  if (dc__needs_grad(n, 0)) gin[0] = grad_for(g, n->inputs[0]);
  if (dc__needs_grad(n, 1)) gin[1] = grad_for(dc_neg(g), n->inputs[1]);
  return rule_status(gin, n);
}

/* mul: ga = g b, gb = g a */
static int mul_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *a = n->inputs[0], *b = n->inputs[1];
  if (dc__needs_grad(n, 0)) gin[0] = grad_for(dc_mul(g, b), a);
  if (dc__needs_grad(n, 1)) gin[1] = grad_for(dc_mul(g, a), b);
  return rule_status(gin, n);
}

/* div: ga = g / b, gb = -g a / b^2 */
static int div_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *a = n->inputs[0], *b = n->inputs[1];
  if (dc__needs_grad(n, 0)) gin[0] = grad_for(dc_div(g, b), a);
  if (dc__needs_grad(n, 1)) gin[1] = grad_for(dc_neg(dc_div(dc_mul(g, a), dc_square(b))), b);
  return rule_status(gin, n);
}

/* pow (a^b): ga = g b a^(b-1) (0 where b == 0); gb = g a^b log(a) (0 where a == 0 and b >= 0),
 * PyTorch's conventions. The output is recomputed under create_graph so it stays in the graph. */
static int pow_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *a = n->inputs[0], *b = n->inputs[1];
  dc_tensor *zero = zero_like_dtype(g->dtype);
  if (dc__needs_grad(n, 0)) {
    dc_tensor *d = dc_mul(b, dc_pow(a, dc_add_scalar(b, -1.0)));
    gin[0] = grad_for(dc_where(dc_eq_scalar(b, 0.0), zero, dc_mul(g, d)), a);
  }
  if (dc__needs_grad(n, 1)) {
    dc_tensor *y = dc_is_grad_enabled() ? dc_pow(a, b) : n->saved[0];
    dc_tensor *v = dc_mul(g, dc_mul(y, dc_log(a)));
    gin[1] = grad_for(dc_where(dc_eq_scalar(a, 0.0), dc_where(dc_ge(b, zero), zero, v), v), b);
  }
  return rule_status(gin, n);
}

/* maximum / minimum: the gradient goes to the larger (smaller) input, split half/half on ties
 * (PyTorch 1.13). */
static int maxmin_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *a = n->inputs[0], *b = n->inputs[1];
  bool is_max = n->op->kind == DC_OP_MAXIMUM;
  dc_tensor *zero = zero_like_dtype(g->dtype);
  dc_tensor *tie = dc_where(dc_eq(a, b), dc_mul_scalar(g, 0.5), g);
  if (dc__needs_grad(n, 0))
    gin[0] = grad_for(dc_where(is_max ? dc_lt(a, b) : dc_gt(a, b), zero, tie), a);
  if (dc__needs_grad(n, 1))
    gin[1] = grad_for(dc_where(is_max ? dc_gt(a, b) : dc_lt(a, b), zero, tie), b);
  return rule_status(gin, n);
}

/* where(c, a, b): ga = g where c, gb = g where !c; c in saved[0] */
static int where_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *c = n->saved[0], *zero = zero_like_dtype(g->dtype);
  if (dc__needs_grad(n, 0)) gin[0] = grad_for(dc_where(c, g, zero), n->inputs[0]);
  if (dc__needs_grad(n, 1)) gin[1] = grad_for(dc_where(c, zero, g), n->inputs[1]);
  return rule_status(gin, n);
}

DC__OPDEF(ADD, add_backward);
DC__OPDEF(ADD_SCALED, add_scaled_backward);
DC__OPDEF(SUB, sub_backward);
DC__OPDEF(MUL, mul_backward);
DC__OPDEF(DIV, div_backward);
DC__OPDEF(POW, pow_backward);
DC__OPDEF(MAXIMUM, maxmin_backward);
DC__OPDEF(MINIMUM, maxmin_backward);
DC__OPDEF(WHERE, where_backward);

/* ---- forward ---- */

/* The compute dtype of a binary op, or an error. Comparisons compute in the promoted dtype;
 * division of integers is true division in float32; bool arithmetic is refused. */
static bool binary_dtype(const char *name, dc_binary_op kop, const dc_tensor *a, const dc_tensor *b,
                         dc_dtype *ct) {
  dc_dtype t = result_type(a, b);
  bool cmp = kop >= DC_BIN_EQ && kop <= DC_BIN_GE;
  bool bool_ok = cmp || kop == DC_BIN_MAXIMUM || kop == DC_BIN_MINIMUM;
  if (t == DC_BOOL && !bool_ok) {
    dc__err(DC_ERR_ARG,
            "%s: arithmetic on bool tensors is not supported (got %s and %s); convert "
            "them with dc_to_dtype first",
            name, dc_dtype_name(a->dtype), dc_dtype_name(b->dtype));
    return false;
  }
  if (kop == DC_BIN_DIV && !dc_dtype_is_float(t)) t = DC_F32;
  *ct = t;
  return true;
}

/* 1 when an integer tensor holds a negative value (integer pow refuses those exponents), 0 when
 * not, -1 on error. Reduced on the tensor's device; one explicit read of the answer. */
static int any_negative(dc_tensor *t) {
  if (dc_numel(t) == 0) return 0;
  dc_tensor *f = dc_to_dtype(t, DC_F64); /* keeps every sign; amin takes floats */
  dc_tensor *m = f ? dc_amin(f, NULL, 0, false) : NULL;
  int r = m ? dc_item(m) < 0 : -1;
  dc_free(m);
  dc_free(f);
  return r;
}

/* out = a op b: checks, promotion, broadcast, kernel, autograd node (od NULL: not recorded). */
static dc_tensor *binary_op(const char *name, const dc_opdef *od, dc_binary_op kop, dc_tensor *a,
                            dc_tensor *b, dc_node **node) {
  *node = NULL;
  dc_device dev;
  if (!dc__check_nonnull(name, 2, a, b) || !op_device(name, a, b, NULL, &dev)) return NULL;
  dc_shape s;
  dc_dtype ct;
  if (!dc__broadcast_shapes(name, dc_shape_of(a), dc_shape_of(b), &s)) return NULL;
  if (!binary_dtype(name, kop, a, b, &ct)) return NULL;
  if (kop == DC_BIN_POW && !dc_dtype_is_float(ct)) {
    int neg = any_negative(b);
    if (neg < 0) return NULL;
    if (neg)
      return dc__err(DC_ERR_ARG, "pow: integers to negative integer powers are not allowed; "
                                 "convert the base to a float dtype first");
  }
  bool cmp = kop >= DC_BIN_EQ && kop <= DC_BIN_GE;
  dc_tensor *a2 = dc__as_operand(a, ct, dev), *b2 = a2 ? dc__as_operand(b, ct, dev) : NULL;
  dc_tensor *out = b2 ? dc__new(s, cmp ? DC_BOOL : ct, dev) : NULL;
  const dc_backend *be = out ? dc__backend(dev) : NULL;
  if (!be || be->ew->binary(kop, out, a2, b2) != DC_OK ||
      (od && !dc__record(od, out, 2, (dc_tensor *[]){a2, b2}, node))) {
    dc_free(out);
    out = NULL;
  }
  dc__unref(a2);
  dc__unref(b2);
  return out;
}

dc_tensor *dc_add(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("add", &dc__op_ADD, DC_BIN_ADD, a, b, &n);
}

dc_tensor *dc_sub(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("sub", &dc__op_SUB, DC_BIN_SUB, a, b, &n);
}

dc_tensor *dc_mul(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("mul", &dc__op_MUL, DC_BIN_MUL, a, b, &n);
}

dc_tensor *dc_div(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("div", &dc__op_DIV, DC_BIN_DIV, a, b, &n);
}

dc_tensor *dc_pow(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  dc_tensor *out = binary_op("pow", &dc__op_POW, DC_BIN_POW, a, b, &n);
  if (n) {
    if (!dc__save_output(n, 0, out)) {
      dc_free(out);
      return NULL;
    }
  }
  return out;
}

dc_tensor *dc_maximum(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("maximum", &dc__op_MAXIMUM, DC_BIN_MAXIMUM, a, b, &n);
}

dc_tensor *dc_minimum(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("minimum", &dc__op_MINIMUM, DC_BIN_MINIMUM, a, b, &n);
}

dc_tensor *dc_eq(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("eq", NULL, DC_BIN_EQ, a, b, &n);
}
dc_tensor *dc_ne(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("ne", NULL, DC_BIN_NE, a, b, &n);
}
dc_tensor *dc_lt(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("lt", NULL, DC_BIN_LT, a, b, &n);
}
dc_tensor *dc_le(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("le", NULL, DC_BIN_LE, a, b, &n);
}
dc_tensor *dc_gt(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("gt", NULL, DC_BIN_GT, a, b, &n);
}
dc_tensor *dc_ge(dc_tensor *a, dc_tensor *b) {
  dc_node *n;
  return binary_op("ge", NULL, DC_BIN_GE, a, b, &n);
}

dc_tensor *dc_add_scaled(dc_tensor *a, dc_tensor *b, double alpha) {
  dc_device dev;
  if (!dc__check_nonnull("add", 2, a, b) || !op_device("add", a, b, NULL, &dev)) return NULL;
  dc_shape s;
  dc_dtype ct;
  if (!dc__broadcast_shapes("add", dc_shape_of(a), dc_shape_of(b), &s)) return NULL;
  if (!binary_dtype("add", DC_BIN_ADD, a, b, &ct)) return NULL;
  if (!dc_dtype_is_float(ct) && !is_integral(alpha))
    return dc__err(DC_ERR_ARG, "add: for integer tensors (%s) alpha must be an integer, got %g",
                   dc_dtype_name(ct), alpha);
  alpha = round_to(alpha, ct);
  dc_tensor *a2 = dc__as_operand(a, ct, dev), *b2 = a2 ? dc__as_operand(b, ct, dev) : NULL;
  dc_tensor *out = b2 ? dc__new(s, ct, dev) : NULL;
  const dc_backend *be = out ? dc__backend(dev) : NULL;
  dc_node *n = NULL;
  if (!be || be->ew->axpy(out, a2, alpha, b2) != DC_OK ||
      !dc__record(&dc__op_ADD_SCALED, out, 2, (dc_tensor *[]){a2, b2}, &n)) {
    dc_free(out);
    out = NULL;
  }
  if (n) DC__ARGS(n, add_scaled)->alpha = alpha;
  dc__unref(a2);
  dc__unref(b2);
  return out;
}

/* where(cond, a, b): cond is bool (other dtypes: nonzero is true), all three broadcast. */
dc_tensor *dc_where(dc_tensor *cond, dc_tensor *a, dc_tensor *b) {
  dc_device dev;
  if (!dc__check_nonnull("where", 3, cond, a, b) || !op_device("where", cond, a, b, &dev))
    return NULL;
  dc_shape s, s2;
  if (!dc__broadcast_shapes("where", dc_shape_of(a), dc_shape_of(b), &s2) ||
      !dc__broadcast_shapes("where", dc_shape_of(cond), s2, &s))
    return NULL;
  dc_dtype ct = result_type(a, b);
  bool cond_ok = cond->dtype == DC_BOOL || cond->dtype == DC_U8;
  dc_tensor *c2 = dc__as_operand(cond, cond_ok ? cond->dtype : DC_BOOL, dev);
  dc_tensor *a2 = c2 ? dc__as_operand(a, ct, dev) : NULL;
  dc_tensor *b2 = a2 ? dc__as_operand(b, ct, dev) : NULL;
  dc_tensor *out = b2 ? dc__new(s, ct, dev) : NULL;
  const dc_backend *be = out ? dc__backend(dev) : NULL;
  dc_node *n = NULL;
  if (!be || be->ew->where(out, c2, a2, b2) != DC_OK ||
      !dc__record(&dc__op_WHERE, out, 2, (dc_tensor *[]){a2, b2}, &n)) {
    dc_free(out);
    out = NULL;
  }
  if (n) dc__save(n, 0, c2);
  dc__unref(c2);
  dc__unref(a2);
  dc__unref(b2);
  return out;
}

/* ---- ops with a scalar (PyTorch's Python-scalar rules: a float tensor keeps its dtype, an
 * integer tensor stays integer for integral scalars and becomes float32 otherwise) ---- */

/* add/sub: g */
static int scalar_add_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = grad_for(g, n->inputs[0]);
  return rule_status(gin, n);
}
/* rsub (s - x): -g */
static int scalar_rsub_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_neg(g);
  return rule_status(gin, n);
}
/* mul: g s */
static int scalar_mul_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_mul_scalar(g, DC__ARGS(n, scalar)->s);
  return rule_status(gin, n);
}
/* div: g / s */
static int scalar_div_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_div_scalar(g, DC__ARGS(n, scalar)->s);
  return rule_status(gin, n);
}
/* pow (x^e): g e x^(e-1); zero for e == 0 */
static int scalar_pow_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0];
  double e = DC__ARGS(n, scalar)->s;
  if (e == 0.0)
    gin[0] = dc_zeros_like(x);
  else
    gin[0] = dc_mul(g, dc_mul_scalar(dc_pow_scalar(x, e - 1.0), e));
  return rule_status(gin, n);
}

DC__OPDEF(ADD_SCALAR, scalar_add_backward);
DC__OPDEF(SUB_SCALAR, scalar_add_backward);
DC__OPDEF(RSUB_SCALAR, scalar_rsub_backward);
DC__OPDEF(MUL_SCALAR, scalar_mul_backward);
DC__OPDEF(DIV_SCALAR, scalar_div_backward);
DC__OPDEF(POW_SCALAR, scalar_pow_backward);

/* out = x op s. cmp: bool result, not recorded. The kernel gets s rounded to the compute dtype
 * and the node keeps it (dc__scalar_args). */
static dc_tensor *scalar_op(const char *name, const dc_opdef *od, dc_unary_op kop, dc_tensor *x,
                            double s, bool cmp) {
  if (!dc__check_nonnull(name, 1, x)) return NULL;
  dc_dtype ct = x->dtype;
  if (!dc_dtype_is_float(ct)) {
    if (kop == DC_UN_DIV_SCALAR || !is_integral(s))
      ct = DC_F32;
    else if (ct == DC_BOOL && !cmp)
      ct = DC_I64;
    if (kop == DC_UN_POW_SCALAR && ct != DC_F32 && s < 0)
      return dc__err(DC_ERR_ARG,
                     "pow: integers to negative integer powers are not allowed (%s "
                     "tensor, exponent %g); convert the tensor to a float dtype first",
                     dc_dtype_name(x->dtype), s);
  }
  double p[2] = {round_to(s, ct), 0.0};
  dc_tensor *x2 = dc__as_dtype(x, ct);
  dc_tensor *out = x2 ? dc__new(dc_shape_of(x), cmp ? DC_BOOL : ct, x->device) : NULL;
  const dc_backend *be = out ? dc__backend(x->device) : NULL;
  dc_node *n = NULL;
  if (!be || be->ew->unary(kop, out, x2, p) != DC_OK || (od && !dc__record(od, out, 1, &x2, &n))) {
    dc_free(out);
    out = NULL;
  }
  if (n) DC__ARGS(n, scalar)->s = p[0];
  dc__unref(x2);
  return out;
}

dc_tensor *dc_add_scalar(dc_tensor *x, double s) {
  return scalar_op("add", &dc__op_ADD_SCALAR, DC_UN_ADD_SCALAR, x, s, false);
}
dc_tensor *dc_sub_scalar(dc_tensor *x, double s) {
  return scalar_op("sub", &dc__op_SUB_SCALAR, DC_UN_ADD_SCALAR, x, -s, false);
}
dc_tensor *dc_rsub_scalar(dc_tensor *x, double s) {
  return scalar_op("rsub", &dc__op_RSUB_SCALAR, DC_UN_RSUB_SCALAR, x, s, false);
}
dc_tensor *dc_mul_scalar(dc_tensor *x, double s) {
  return scalar_op("mul", &dc__op_MUL_SCALAR, DC_UN_MUL_SCALAR, x, s, false);
}
dc_tensor *dc_div_scalar(dc_tensor *x, double s) {
  return scalar_op("div", &dc__op_DIV_SCALAR, DC_UN_DIV_SCALAR, x, s, false);
}
dc_tensor *dc_pow_scalar(dc_tensor *x, double e) {
  return scalar_op("pow", &dc__op_POW_SCALAR, DC_UN_POW_SCALAR, x, e, false);
}
dc_tensor *dc_gt_scalar(dc_tensor *x, double s) {
  return scalar_op("gt", NULL, DC_UN_GT_SCALAR, x, s, true);
}
dc_tensor *dc_lt_scalar(dc_tensor *x, double s) {
  return scalar_op("lt", NULL, DC_UN_LT_SCALAR, x, s, true);
}
dc_tensor *dc_eq_scalar(dc_tensor *x, double s) {
  return scalar_op("eq", NULL, DC_UN_EQ_SCALAR, x, s, true);
}
