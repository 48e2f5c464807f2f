/* Unary elementwise ops: math (neg ... reciprocal, clamp) and activations (sigmoid ... softplus)
 * with PyTorch's formulas and gradient conventions. The hot activation gradients run as fused
 * kernels (DC_BIN_*_BWD) recorded as ops of their own, so create_graph (double backward) works
 * through them too. Kernels: src/backend/cpu/unary.c and binary.c. */
#include "../autograd/autograd-impl.h"
#include "../backend/backend.h"
#include "nn_ops.h"

#include <math.h>

static const double kSeluAlpha = 1.6732632423543772848170429916717;
static const double kSeluScale = 1.0507009873554804934193349852946;
static const double kGeluBeta = M_SQRT2 * M_2_SQRTPI * 0.5; /* sqrt(2 / pi) */
static const double kGeluKappa = 0.044715;

static int rule_status(dc_tensor **gin, const dc_node *n) {
  for (int k = 0; k < n->ninputs; k++)
    if (dc__needs_grad(n, k) && !gin[k]) return dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
  return DC_OK;
}

static double round_to(double s, dc_dtype dt) {
  if (dt == DC_F32) return (double)(float)s;
  if (dt == DC_BF16) return dc__bf16_to_f32(dc__f32_to_bf16((float)s));
  if (dt == DC_F16) return dc__f16_to_f32(dc__f32_to_f16((float)s));
  return s;
}

/* The output saved by op (an alias without grad_fn), or, under create_graph, recomputed from
 * the input so that the second-order graph reaches the input. */
static dc_tensor *saved_out(dc_node *n, dc_tensor *(*op)(dc_tensor *)) {
  return dc_is_grad_enabled() ? op(n->inputs[0]) : n->saved[0];
}

/* ---- fused activation gradients as differentiable ops: out = kop(g, t) ---- */

static dc_tensor *act_grad(dc_binary_op kop, dc_tensor *g, dc_tensor *t);

/* gelu''(x) = phi(x) (2 - x^2) */
static dc_tensor *gelu_second(dc_tensor *x) {
  dc_tensor *x2 = dc_square(x);
  dc_tensor *pdf = dc_mul_scalar(dc_exp(dc_mul_scalar(x2, -0.5)), 0.5 * M_2_SQRTPI * M_SQRT1_2);
  return dc_mul(pdf, dc_rsub_scalar(x2, 2.0));
}

/* gelu_tanh''(x) = (1 - th^2) (u' + x/2 (u'' - 2 th u'^2)), u = beta (x + kappa x^3) */
static dc_tensor *gelu_tanh_second(dc_tensor *x) {
  dc_tensor *x2 = dc_square(x);
  dc_tensor *u = dc_mul_scalar(dc_add(x, dc_mul_scalar(dc_mul(x2, x), kGeluKappa)), kGeluBeta);
  dc_tensor *th = dc_tanh(u);
  dc_tensor *du = dc_mul_scalar(dc_add_scalar(dc_mul_scalar(x2, 3.0 * kGeluKappa), 1.0), kGeluBeta);
  dc_tensor *ddu = dc_mul_scalar(x, 6.0 * kGeluBeta * kGeluKappa);
  dc_tensor *in = dc_sub(ddu, dc_mul_scalar(dc_mul(th, dc_square(du)), 2.0));
  dc_tensor *s = dc_add(du, dc_mul(dc_mul_scalar(x, 0.5), in));
  return dc_mul(dc_rsub_scalar(dc_square(th), 1.0), s);
}

/* d/dg = kop(gg, t); d/dt: relu 0, sigmoid gg g (1 - 2y), tanh -2 gg g y, gelu gg g f''(x) */
static int act_grad_backward(dc_node *n, dc_tensor *gg, dc_tensor **gin) {
  dc_binary_op kop = DC__ARGS(n, act_grad)->kop;
  dc_tensor *g = n->inputs[0], *t = n->inputs[1];
  if (dc__needs_grad(n, 0)) {
    gin[0] = act_grad(kop, gg, t);
    if (!gin[0]) return dc_last_status();
  }
  if (!dc__needs_grad(n, 1)) return DC_OK;
  if (kop == DC_BIN_RELU_BWD) { /* piecewise constant in x */
    gin[1] = dc_zeros_like(t);
    return gin[1] ? DC_OK : dc_last_status();
  }
  dc_tensor *d = NULL;
  if (kop == DC_BIN_SIGMOID_BWD)
    d = dc_rsub_scalar(dc_mul_scalar(t, 2.0), 1.0);
  else if (kop == DC_BIN_TANH_BWD)
    d = dc_mul_scalar(t, -2.0);
  else if (kop == DC_BIN_GELU_BWD)
    d = gelu_second(t);
  else
    d = gelu_tanh_second(t);
  gin[1] = dc_mul(dc_mul(gg, g), d);
  return gin[1] ? DC_OK : dc_last_status();
}

DC__OPDEF(ACT_GRAD, act_grad_backward);

static dc_tensor *act_grad(dc_binary_op kop, dc_tensor *g, dc_tensor *t) {
  if (!dc__check_nonnull("activation_backward", 2, g, t)) return NULL;
  DC__CHECK(g->dtype == t->dtype && dc_shape_equal(dc_shape_of(g), dc_shape_of(t)), NULL);
  dc_tensor *out = dc__new(dc_shape_of(g), g->dtype, g->device);
  const dc_backend *be = out ? dc__backend(g->device) : NULL;
  dc_node *n = NULL;
  if (!be || be->ew->binary(kop, out, g, t) != DC_OK ||
      !dc__record(&dc__op_ACT_GRAD, out, 2, (dc_tensor *[]){g, t}, &n)) {
    dc_free(out);
    return NULL;
  }
  if (n) DC__ARGS(n, act_grad)->kop = kop;
  return out;
}

/* ---- backward rules (x = inputs[0], g = gradient of the output, y = output) ---- */

/* neg: -g */
static int neg_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_neg(g);
  return rule_status(gin, n);
}
/* abs: g sign(x) (0 at 0) */
static int abs_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_mul(g, dc_sign(n->inputs[0]));
  return rule_status(gin, n);
}
/* sign: 0 */
static int sign_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_zeros_like(n->inputs[0]);
  return rule_status(gin, n);
}
/* exp: g y */
static int exp_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_mul(g, saved_out(n, dc_exp));
  return rule_status(gin, n);
}
/* log: g / x */
static int log_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_div(g, n->inputs[0]);
  return rule_status(gin, n);
}
/* sqrt: g / (2 y) */
static int sqrt_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_div(g, dc_mul_scalar(saved_out(n, dc_sqrt), 2.0));
  return rule_status(gin, n);
}
/* rsqrt: -g y^3 / 2 */
static int rsqrt_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_mul(g, dc_mul_scalar(dc_pow_scalar(saved_out(n, dc_rsqrt), 3.0), -0.5));
  return rule_status(gin, n);
}
/* square: 2 g x */
static int square_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_mul(g, dc_mul_scalar(n->inputs[0], 2.0));
  return rule_status(gin, n);
}
/* reciprocal: -g y^2 */
static int reciprocal_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = dc_mul(g, dc_neg(dc_square(saved_out(n, dc_reciprocal))));
  return rule_status(gin, n);
}
/* clamp: g where lo <= x <= hi (bounds included, NaN gets 0) */
static int clamp_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0];
  const dc__clamp_args *a = DC__ARGS(n, clamp);
  dc_tensor *lo = dc_scalar(a->lo, x->dtype), *hi = dc_scalar(a->hi, x->dtype);
  dc_tensor *zero = dc_scalar(0.0, g->dtype);
  gin[0] = dc_where(dc_ge(x, lo), dc_where(dc_le(x, hi), g, zero), zero);
  return rule_status(gin, n);
}
/* sigmoid: g y (1 - y), fused */
static int sigmoid_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = act_grad(DC_BIN_SIGMOID_BWD, g, saved_out(n, dc_sigmoid));
  return rule_status(gin, n);
}
/* tanh: g (1 - y^2), fused */
static int tanh_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = act_grad(DC_BIN_TANH_BWD, g, saved_out(n, dc_tanh));
  return rule_status(gin, n);
}
/* relu: g where x > 0 (0 at 0), fused */
static int relu_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = act_grad(DC_BIN_RELU_BWD, g, n->inputs[0]);
  return rule_status(gin, n);
}
/* leaky_relu: g where x > 0, else g slope */
static int leaky_relu_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0];
  gin[0] = dc_where(dc_gt_scalar(x, 0.0), g, dc_mul_scalar(g, DC__ARGS(n, leaky_relu)->slope));
  return rule_status(gin, n);
}
/* elu / selu: g scale where x > 0, else g scale alpha exp(x) */
static int elu_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0];
  const dc__elu_args *a = DC__ARGS(n, elu);
  dc_tensor *pos = a->scale == 1.0 ? g : dc_mul_scalar(g, a->scale);
  dc_tensor *neg = dc_mul(g, dc_mul_scalar(dc_exp(x), a->scale_alpha));
  gin[0] = dc_where(dc_gt_scalar(x, 0.0), pos, neg);
  return rule_status(gin, n);
}
/* gelu: g gelu'(x), fused */
static int gelu_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  gin[0] = act_grad(DC__ARGS(n, gelu)->tanh_approximation ? DC_BIN_GELU_TANH_BWD : DC_BIN_GELU_BWD,
                    g, n->inputs[0]);
  return rule_status(gin, n);
}
/* erf: g 2/sqrt(pi) exp(-x^2), composed (so that double backward works) */
static int erf_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0];
  gin[0] = dc_mul(g, dc_mul_scalar(dc_exp(dc_neg(dc_square(x))), M_2_SQRTPI));
  return rule_status(gin, n);
}
/* softplus: g where x beta > threshold, else g sigmoid(x beta) */
static int softplus_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  const dc__softplus_args *a = DC__ARGS(n, softplus);
  dc_tensor *bx = dc_mul_scalar(n->inputs[0], a->beta);
  gin[0] = dc_where(dc_gt_scalar(bx, a->threshold), g, dc_mul(g, dc_sigmoid(bx)));
  return rule_status(gin, n);
}

DC__OPDEF(NEG, neg_backward);
DC__OPDEF(ABS, abs_backward);
DC__OPDEF(SIGN, sign_backward);
DC__OPDEF(EXP, exp_backward);
DC__OPDEF(LOG, log_backward);
DC__OPDEF(SQRT, sqrt_backward);
DC__OPDEF(RSQRT, rsqrt_backward);
DC__OPDEF(SQUARE, square_backward);
DC__OPDEF(RECIPROCAL, reciprocal_backward);
DC__OPDEF(CLAMP, clamp_backward);
DC__OPDEF(SIGMOID, sigmoid_backward);
DC__OPDEF(TANH, tanh_backward);
DC__OPDEF(RELU, relu_backward);
DC__OPDEF(LEAKY_RELU, leaky_relu_backward);
DC__OPDEF(ELU, elu_backward);
DC__OPDEF(SELU, elu_backward);
DC__OPDEF(GELU, gelu_backward);
DC__OPDEF(SOFTPLUS, softplus_backward);
DC__OPDEF(ERF, erf_backward);

/* ---- forward ---- */

enum { UN_FLOAT_ONLY = 1, UN_SAVE_OUT = 2 };

/* out = kop(x; p) with x's shape and dtype; flags: UN_FLOAT_ONLY refuses integer inputs,
 * UN_SAVE_OUT keeps an alias of the output in saved[0]. *node is the recorded node or NULL: the
 * caller saves the op's arguments in it (p0, p1 as the kernel saw them: round_to(p, out_dtype)). */
static dc_tensor *unary_op(const char *name, const dc_opdef *od, dc_unary_op kop, dc_tensor *x,
                           double p0, double p1, int flags, dc_node **node) {
  *node = NULL;
  if (!dc__check_nonnull(name, 1, x)) return NULL;
  if ((flags & UN_FLOAT_ONLY) && !dc_dtype_is_float(x->dtype))
    return dc__err(DC_ERR_ARG,
                   "%s: expected a floating-point tensor, got %s; convert it first "
                   "with dc_to_dtype(x, DC_F32)",
                   name, dc_dtype_name(x->dtype));
  if (x->dtype == DC_BOOL)
    return dc__err(DC_ERR_ARG, "%s: not supported on bool tensors; convert with dc_to_dtype first",
                   name);
  double p[2] = {round_to(p0, x->dtype), round_to(p1, x->dtype)};
  dc_tensor *out = dc__new(dc_shape_of(x), x->dtype, x->device);
  const dc_backend *be = out ? dc__backend(x->device) : NULL;
  if (!be || be->ew->unary(kop, out, x, p) != DC_OK || !dc__record(od, out, 1, &x, node)) {
    dc_free(out);
    return NULL;
  }
  if (*node && (flags & UN_SAVE_OUT) && !dc__save_output(*node, 0, out)) {
    dc_free(out);
    return NULL;
  }
  return out;
}

static dc_tensor *simple(const char *name, const dc_opdef *od, dc_unary_op kop, dc_tensor *x,
                         int flags) {
  dc_node *n;
  return unary_op(name, od, kop, x, 0.0, 0.0, flags, &n);
}

dc_tensor *dc_neg(dc_tensor *x) { return simple("neg", &dc__op_NEG, DC_UN_NEG, x, 0); }
dc_tensor *dc_abs(dc_tensor *x) { return simple("abs", &dc__op_ABS, DC_UN_ABS, x, 0); }
dc_tensor *dc_sign(dc_tensor *x) { return simple("sign", &dc__op_SIGN, DC_UN_SIGN, x, 0); }
dc_tensor *dc_square(dc_tensor *x) { return simple("square", &dc__op_SQUARE, DC_UN_SQUARE, x, 0); }
dc_tensor *dc_relu(dc_tensor *x) { return simple("relu", &dc__op_RELU, DC_UN_RELU, x, 0); }
dc_tensor *dc_log(dc_tensor *x) { return simple("log", &dc__op_LOG, DC_UN_LOG, x, UN_FLOAT_ONLY); }
dc_tensor *dc_exp(dc_tensor *x) {
  return simple("exp", &dc__op_EXP, DC_UN_EXP, x, UN_FLOAT_ONLY | UN_SAVE_OUT);
}
dc_tensor *dc_sqrt(dc_tensor *x) {
  return simple("sqrt", &dc__op_SQRT, DC_UN_SQRT, x, UN_FLOAT_ONLY | UN_SAVE_OUT);
}
dc_tensor *dc_rsqrt(dc_tensor *x) {
  return simple("rsqrt", &dc__op_RSQRT, DC_UN_RSQRT, x, UN_FLOAT_ONLY | UN_SAVE_OUT);
}
dc_tensor *dc_reciprocal(dc_tensor *x) {
  return simple("reciprocal", &dc__op_RECIPROCAL, DC_UN_RECIPROCAL, x, UN_FLOAT_ONLY | UN_SAVE_OUT);
}
dc_tensor *dc_sigmoid(dc_tensor *x) {
  return simple("sigmoid", &dc__op_SIGMOID, DC_UN_SIGMOID, x, UN_FLOAT_ONLY | UN_SAVE_OUT);
}
dc_tensor *dc_tanh(dc_tensor *x) {
  return simple("tanh", &dc__op_TANH, DC_UN_TANH, x, UN_FLOAT_ONLY | UN_SAVE_OUT);
}

dc_tensor *dc_leaky_relu(dc_tensor *x, double negative_slope) {
  dc_node *n;
  dc_tensor *out = unary_op("leaky_relu", &dc__op_LEAKY_RELU, DC_UN_LEAKY_RELU, x, negative_slope,
                            0.0, UN_FLOAT_ONLY, &n);
  if (n) DC__ARGS(n, leaky_relu)->slope = round_to(negative_slope, n->out_dtype);
  return out;
}

dc_tensor *dc_elu(dc_tensor *x, double alpha) {
  dc_node *n;
  dc_tensor *out = unary_op("elu", &dc__op_ELU, DC_UN_ELU, x, alpha, 0.0, UN_FLOAT_ONLY, &n);
  if (n) *DC__ARGS(n, elu) = (dc__elu_args){round_to(alpha, n->out_dtype), 1.0};
  return out;
}

dc_tensor *dc_selu(dc_tensor *x) {
  dc_node *n;
  dc_tensor *out = unary_op("selu", &dc__op_SELU, DC_UN_SELU, x, 0.0, 0.0, UN_FLOAT_ONLY, &n);
  if (n) *DC__ARGS(n, elu) = (dc__elu_args){kSeluScale * kSeluAlpha, kSeluScale};
  return out;
}

dc_tensor *dc_gelu(dc_tensor *x, bool tanh_approximation) {
  dc_node *n;
  dc_tensor *out = unary_op("gelu", &dc__op_GELU, tanh_approximation ? DC_UN_GELU_TANH : DC_UN_GELU,
                            x, 0.0, 0.0, UN_FLOAT_ONLY, &n);
  if (n) DC__ARGS(n, gelu)->tanh_approximation = tanh_approximation;
  return out;
}

dc_tensor *dc_erf(dc_tensor *x) {
  dc_node *n;
  return unary_op("erf", &dc__op_ERF, DC_UN_ERF, x, 0.0, 0.0, UN_FLOAT_ONLY, &n);
}

dc_tensor *dc_softplus(dc_tensor *x, double beta, double threshold) {
  if (x && beta == 0.0)
    return dc__err(DC_ERR_ARG, "softplus: beta must be non-zero (PyTorch's default is 1)");
  dc_node *n;
  dc_tensor *out =
      unary_op("softplus", &dc__op_SOFTPLUS, DC_UN_SOFTPLUS, x, beta, threshold, UN_FLOAT_ONLY, &n);
  if (n)
    *DC__ARGS(n, softplus) =
        (dc__softplus_args){round_to(beta, n->out_dtype), round_to(threshold, n->out_dtype)};
  return out;
}

/* clamp: an integer tensor stays integer for integral (or infinite) bounds, else becomes
 * float32, like PyTorch's promotion with Python scalars. */
dc_tensor *dc_clamp(dc_tensor *x, double lo, double hi) {
  if (!dc__check_nonnull("clamp", 1, x)) return NULL;
  if (isnan(lo) || isnan(hi))
    return dc__err(DC_ERR_ARG, "clamp: bounds must not be NaN (use +-INFINITY for no bound)");
  dc_node *n;
  if (!dc_dtype_is_float(x->dtype) && x->dtype != DC_BOOL) {
    bool integral = (isinf(lo) || lo == nearbyint(lo)) && (isinf(hi) || hi == nearbyint(hi));
    if (!integral) {
      dc_tensor *xf = dc_to_dtype(x, DC_F32);
      dc_tensor *out = unary_op("clamp", &dc__op_CLAMP, DC_UN_CLAMP, xf, lo, hi, 0, &n);
      if (n)
        *DC__ARGS(n, clamp) =
            (dc__clamp_args){round_to(lo, n->out_dtype), round_to(hi, n->out_dtype)};
      dc_free(xf);
      return out;
    }
  }
  dc_tensor *out = unary_op("clamp", &dc__op_CLAMP, DC_UN_CLAMP, x, lo, hi, 0, &n);
  if (n)
    *DC__ARGS(n, clamp) = (dc__clamp_args){round_to(lo, n->out_dtype), round_to(hi, n->out_dtype)};
  return out;
}

/* ---- relu(a + b) as one op (ResNet's residual join) ---- */

/* both inputs: g where the output is > 0 (relu's rule: a + b > 0 exactly where relu(a + b) > 0),
 * from the saved output */
static int add_relu_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *gr = act_grad(DC_BIN_RELU_BWD, g, n->saved[0]);
  for (int k = 0; k < 2 && gr; k++)
    if (dc__needs_grad(n, k)) gin[k] = dc__sum_to(gr, dc_shape_of(n->inputs[k]));
  return rule_status(gin, n);
}
DC__OPDEF(ADD_RELU, add_relu_backward);

dc_tensor *dc__add_relu(dc_tensor *a, dc_tensor *b) {
  if (!dc__check_nonnull("add_relu", 2, a, b)) return NULL;
  if (!dc_shape_equal(dc_shape_of(a), dc_shape_of(b)) || a->dtype != b->dtype ||
      !dc_dtype_is_float(a->dtype) || a->device != b->device) { /* broadcasting, promotion */
    dc_tensor *s = dc_add(a, b), *y = s ? dc_relu(s) : NULL;
    dc_free(s);
    return y;
  }
  dc_tensor *out = dc__new(dc_shape_of(a), a->dtype, a->device);
  const dc_backend *be = out ? dc__backend(a->device) : NULL;
  dc_node *n = NULL;
  if (!be || be->ew->binary(DC_BIN_ADD_RELU, out, a, b) != DC_OK ||
      !dc__record(&dc__op_ADD_RELU, out, 2, (dc_tensor *[]){a, b}, &n)) {
    dc_free(out);
    return NULL;
  }
  if (n) {
    if (!dc__save_output(n, 0, out)) {
      dc_free(out);
      return NULL;
    }
  }
  return out;
}
