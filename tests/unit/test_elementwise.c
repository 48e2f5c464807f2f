/* Elementwise ops: broadcasting, PyTorch dtype promotion, integer paths, bad input, fast kernels
 * against the naive references (float32 in ulps, specials, strided and broadcast layouts),
 * results independent of the thread count, float64 gradcheck of every differentiable op (with
 * broadcasting and transposed inputs), PyTorch's gradient conventions at kinks, second
 * derivatives through create_graph, and flat memory over many scoped steps. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "backend/cpu/cpu-impl.h"

/* ---- helpers ---- */

/* A tensor of dtype dt from doubles. */
static dc_tensor *from(const double *v, dc_shape s, dc_dtype dt) {
  dc_tensor *t = dc_from_data(v, s, DC_F64);
  return dt == DC_F64 ? t : dc_to_dtype(t, dt);
}

/* Uniform values in [lo, hi) (float64 draws, then converted). */
static dc_tensor *uniform(dc_shape s, dc_dtype dt, double lo, double hi) {
  dc_tensor *u = dc_rand(s, DC_F64);
  dc_tensor *v = dc_add_scalar(dc_mul_scalar(u, hi - lo), lo);
  return dt == DC_F64 ? v : dc_to_dtype(v, dt);
}

static dc_tensor *leaf(dc_tensor *t) { return dc_requires_grad_(t, true); }

static void assert_values(dc_tensor *t, const double *want, int64_t n, double tol) {
  cr_assert_not_null(t, "%s", dc_last_error());
  cr_assert_eq(dc_numel(t), n);
  for (int64_t i = 0; i < n; i++)
    cr_assert(fabs(dc_item_at(t, i) - want[i]) <= tol, "element %lld: %.9g vs %.9g", (long long)i,
              dc_item_at(t, i), want[i]);
}

static void assert_shape(dc_tensor *t, dc_shape s) {
  cr_assert_not_null(t, "%s", dc_last_error());
  char a[64], b[64];
  cr_assert(dc_shape_equal(dc_shape_of(t), s), "shape %s, want %s",
            dc_shape_str(dc_shape_of(t), a, sizeof a), dc_shape_str(s, b, sizeof b));
}

/* ---- broadcasting, promotion, integers ---- */

Test(elementwise, broadcast_shapes_and_values) {
  dc_scope_begin();
  dc_tensor *a = dc_arange(0, 6, 1, DC_F32), *a23 = dc_view(a, DC_SHAPE(2, 3));
  dc_tensor *b = dc_arange(10, 13, 1, DC_F32);
  dc_tensor *y = dc_add(a23, b);
  assert_shape(y, DC_SHAPE(2, 3));
  assert_values(y, (double[]){10, 12, 14, 13, 15, 17}, 6, 0);

  dc_tensor *p = dc_view(dc_arange(0, 8, 1, DC_F64), DC_SHAPE(2, 1, 4));
  dc_tensor *q = dc_view(dc_arange(0, 3, 1, DC_F64), DC_SHAPE(3, 1));
  dc_tensor *r = dc_mul(p, q);
  assert_shape(r, DC_SHAPE(2, 3, 4));
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++)
      for (int k = 0; k < 4; k++)
        cr_assert_eq(dc_item_at(r, (i * 3 + j) * 4 + k), (double)((i * 4 + k) * j));

  dc_tensor *z = dc_sub(dc_scalar(1.0, DC_F32), b); /* 0-d op [3] */
  assert_shape(z, DC_SHAPE(3));
  assert_values(z, (double[]){-9, -10, -11}, 3, 0);
  dc_tensor *zz = dc_mul(dc_scalar(2.0, DC_F64), dc_scalar(3.0, DC_F64));
  assert_shape(zz, DC_SCALAR_SHAPE);
  cr_assert_eq(dc_item(zz), 6.0);

  dc_tensor *e = dc_add(dc_zeros(DC_SHAPE(0, 3), DC_F32), b); /* empty */
  assert_shape(e, DC_SHAPE(0, 3));

  dc_tensor *t = dc_transpose(a23, 0, 1); /* [3, 2] non-contiguous */
  dc_tensor *u = dc_add(t, dc_view(dc_arange(0, 3, 1, DC_F32), DC_SHAPE(3, 1)));
  assert_values(u, (double[]){0, 3, 2, 5, 4, 7}, 6, 0);
  dc_scope_end();
}

Test(elementwise, dtype_promotion) {
  dc_scope_begin();
  dc_tensor *f32 = dc_ones(DC_SHAPE(3), DC_F32), *f64 = dc_ones(DC_SHAPE(3), DC_F64);
  dc_tensor *i64 = dc_ones(DC_SHAPE(3), DC_I64), *i32 = dc_ones(DC_SHAPE(3), DC_I32);
  dc_tensor *u8 = dc_ones(DC_SHAPE(3), DC_U8), *b = dc_ones(DC_SHAPE(3), DC_BOOL);
  cr_assert_eq(dc_add(i64, f32)->dtype, DC_F32);
  cr_assert_eq(dc_add(f32, f64)->dtype, DC_F64);
  cr_assert_eq(dc_add(i32, i64)->dtype, DC_I64);
  cr_assert_eq(dc_add(u8, i32)->dtype, DC_I32);
  cr_assert_eq(dc_mul(b, f32)->dtype, DC_F32);
  cr_assert_eq(dc_div(i64, i64)->dtype, DC_F32); /* true division */
  assert_values(dc_div(dc_arange(1, 4, 1, DC_I64), dc_full(DC_SHAPE(3), 2, DC_I64)),
                (double[]){0.5, 1.0, 1.5}, 3, 0);
  /* a 0-d tensor decides only when it is of a higher category */
  cr_assert_eq(dc_add(f32, dc_scalar(2, DC_F64))->dtype, DC_F32);
  cr_assert_eq(dc_add(i32, dc_scalar(1.5, DC_F64))->dtype, DC_F64);
  cr_assert_eq(dc_add(u8, dc_scalar(1000, DC_I64))->dtype, DC_U8);
  cr_assert_eq(dc_add(dc_scalar(1, DC_F32), dc_scalar(1, DC_F64))->dtype, DC_F64);
  /* comparisons give bool */
  cr_assert_eq(dc_lt(i64, f32)->dtype, DC_BOOL);
  cr_assert_eq(dc_gt_scalar(f64, 0.5)->dtype, DC_BOOL);
  /* Python-scalar rules */
  cr_assert_eq(dc_add_scalar(i64, 2)->dtype, DC_I64);
  cr_assert_eq(dc_add_scalar(i64, 2.5)->dtype, DC_F32);
  cr_assert_eq(dc_mul_scalar(b, 2)->dtype, DC_I64);
  cr_assert_eq(dc_div_scalar(i32, 2)->dtype, DC_F32);
  cr_assert_eq(dc_mul_scalar(f64, 1e-300)->dtype, DC_F64);
  cr_assert_eq(dc_clamp(i64, 0, 3)->dtype, DC_I64);
  cr_assert_eq(dc_clamp(i64, 0.5, 3)->dtype, DC_F32);
  cr_assert_eq(dc_where(b, f32, dc_scalar(0, DC_F64))->dtype, DC_F32);
  cr_assert_eq(dc_where(b, i64, f64)->dtype, DC_F64);
  /* float32 + a mixed float64 input keeps gradients in each input's dtype */
  dc_tensor *x = leaf(dc_ones(DC_SHAPE(3), DC_F32)), *w = leaf(dc_ones(DC_SHAPE(3), DC_F64));
  dc_tensor *s = dc_sum_all(dc_mul(x, w));
  cr_assert_eq(s->dtype, DC_F64);
  cr_assert_eq(dc_backward(s), DC_OK, "%s", dc_last_error());
  cr_assert_eq(x->grad->dtype, DC_F32);
  cr_assert_eq(w->grad->dtype, DC_F64);
  dc_scope_end();
}

Test(elementwise, integer_ops) {
  dc_scope_begin();
  dc_tensor *a = from((double[]){-3, 0, 5, 7}, DC_SHAPE(4), DC_I64);
  dc_tensor *b = from((double[]){2, 2, -1, 7}, DC_SHAPE(4), DC_I64);
  assert_values(dc_add(a, b), (double[]){-1, 2, 4, 14}, 4, 0);
  assert_values(dc_sub(a, b), (double[]){-5, -2, 6, 0}, 4, 0);
  assert_values(dc_mul(a, b), (double[]){-6, 0, -5, 49}, 4, 0);
  assert_values(dc_neg(a), (double[]){3, 0, -5, -7}, 4, 0);
  assert_values(dc_abs(a), (double[]){3, 0, 5, 7}, 4, 0);
  assert_values(dc_sign(a), (double[]){-1, 0, 1, 1}, 4, 0);
  assert_values(dc_relu(a), (double[]){0, 0, 5, 7}, 4, 0);
  assert_values(dc_square(a), (double[]){9, 0, 25, 49}, 4, 0);
  assert_values(dc_maximum(a, b), (double[]){2, 2, 5, 7}, 4, 0);
  assert_values(dc_minimum(a, b), (double[]){-3, 0, -1, 7}, 4, 0);
  assert_values(dc_eq(a, b), (double[]){0, 0, 0, 1}, 4, 0);
  assert_values(dc_ge(a, b), (double[]){0, 0, 1, 1}, 4, 0);
  assert_values(dc_clamp(a, -1, 6), (double[]){-1, 0, 5, 6}, 4, 0);
  assert_values(dc_pow_scalar(a, 3), (double[]){-27, 0, 125, 343}, 4, 0);
  assert_values(dc_pow(a, dc_abs(b)), (double[]){9, 0, 5, 823543}, 4, 0);
  assert_values(dc_rsub_scalar(a, 1), (double[]){4, 1, -4, -6}, 4, 0);
  assert_values(dc_add_scaled(a, b, 3), (double[]){3, 6, 2, 28}, 4, 0);
  assert_values(dc_gt_scalar(a, 0), (double[]){0, 0, 1, 1}, 4, 0);
  assert_values(dc_where(dc_gt_scalar(a, 0), a, b), (double[]){2, 2, 5, 7}, 4, 0);
  /* exact beyond 2^53, wrap-around like PyTorch */
  int64_t big[2] = {(int64_t)1 << 60, INT64_MAX};
  dc_tensor *g = dc_from_data(big, DC_SHAPE(2), DC_I64);
  dc_tensor *g1 = dc_add_scalar(g, 1);
  cr_assert_eq(((int64_t *)dc_data(g1))[0], ((int64_t)1 << 60) + 1);
  cr_assert_eq(((int64_t *)dc_data(g1))[1], INT64_MIN);
  dc_tensor *u = from((double[]){250, 3}, DC_SHAPE(2), DC_U8);
  assert_values(dc_add(u, from((double[]){10, 1}, DC_SHAPE(2), DC_U8)), (double[]){4, 4}, 2, 0);
  assert_values(dc_neg(u), (double[]){6, 253}, 2, 0);
  dc_tensor *i = from((double[]){-2, 9}, DC_SHAPE(2), DC_I32);
  assert_values(dc_mul(i, i), (double[]){4, 81}, 2, 0);
  assert_values(dc_lt_scalar(i, 0), (double[]){1, 0}, 2, 0);
  assert_values(dc_eq_scalar(dc_lt_scalar(i, 0), 1), (double[]){1, 0}, 2, 0); /* bool == 1 */
  dc_scope_end();
}

Test(elementwise, bad_input) {
  dc_scope_begin();
  dc_tensor *a = dc_ones(DC_SHAPE(2, 3), DC_F32), *b = dc_ones(DC_SHAPE(4), DC_F32);
  cr_assert_null(dc_add(a, b));
  const char *m = dc_last_error();
  cr_assert(strstr(m, "add") && strstr(m, "[2, 3]") && strstr(m, "[4]"), "%s", m);
  cr_assert_null(dc_maximum(b, a));
  m = dc_last_error();
  cr_assert(strstr(m, "maximum") && strstr(m, "[4]") && strstr(m, "[2, 3]"), "%s", m);
  cr_assert_null(dc_where(dc_ones(DC_SHAPE(5), DC_BOOL), a, a));
  cr_assert(strstr(dc_last_error(), "where"), "%s", dc_last_error());
  dc_clear_error();
  cr_assert_null(dc_mul(NULL, a));
  cr_assert_neq(dc_last_status(), DC_OK);
  cr_assert_null(dc_exp(NULL));
  cr_assert_null(dc_add_scalar(NULL, 1));
  cr_assert_null(dc_where(NULL, a, a));
  cr_assert_null(dc_sigmoid(dc_ones(DC_SHAPE(3), DC_I64)));
  m = dc_last_error();
  cr_assert(strstr(m, "sigmoid") && strstr(m, "int64"), "%s", m);
  cr_assert_null(dc_log(dc_ones(DC_SHAPE(3), DC_I32)));
  cr_assert_null(dc_add(dc_ones(DC_SHAPE(3), DC_BOOL), dc_ones(DC_SHAPE(3), DC_BOOL)));
  cr_assert(strstr(dc_last_error(), "bool"), "%s", dc_last_error());
  cr_assert_null(dc_neg(dc_ones(DC_SHAPE(3), DC_BOOL)));
  cr_assert_null(dc_pow_scalar(dc_ones(DC_SHAPE(3), DC_I64), -1));
  cr_assert(strstr(dc_last_error(), "negative"), "%s", dc_last_error());
  cr_assert_null(dc_pow(dc_ones(DC_SHAPE(3), DC_I64), dc_full(DC_SHAPE(3), -2, DC_I64)));
  cr_assert_null(dc_add_scaled(dc_ones(DC_SHAPE(3), DC_I64), dc_ones(DC_SHAPE(3), DC_I64), 0.5));
  cr_assert_null(dc_softplus(a, 0.0, 20.0));
  cr_assert_null(dc_clamp(a, NAN, 1));
  /* a NULL keeps the first error of a chain */
  dc_tensor *y = dc_exp(dc_add(a, b));
  cr_assert_null(y);
  cr_assert(strstr(dc_last_error(), "add"), "%s", dc_last_error());
  dc_scope_end();
}

/* ---- fast kernels against the naive references ---- */

/* |got - want| within ulps of float (or double) precision plus an absolute floor. */
static bool close_enough(double got, double want, dc_dtype dt, double ulps, double atol) {
  if (isnan(want)) return isnan(got);
  if (isinf(want)) return got == want;
  double eps = dt == DC_F32 ? 0x1p-24 : 0x1p-53;
  return fabs(got - want) <= ulps * eps * fabs(want) + atol;
}

static void compare(const char *what, dc_tensor *fast, dc_tensor *ref, dc_tensor *x, double ulps,
                    double atol, double atol_x) {
  int64_t n = dc_numel(fast);
  for (int64_t i = 0; i < n; i++) {
    double g = dc_item_at(fast, i), w = dc_item_at(ref, i), xv = x ? fabs(dc_item_at(x, i)) : 0;
    if (!isfinite(xv)) xv = 0;
    cr_assert(close_enough(g, w, fast->dtype, ulps, atol + atol_x * xv),
              "%s (%s) element %lld (x = %.9g): fast %.9g vs reference %.9g", what,
              dc_dtype_name(fast->dtype), (long long)i, x ? dc_item_at(x, i) : 0.0, g, w);
  }
}

typedef struct un_case {
  dc_unary_op op;
  const char *name;
  double lo, hi, p0, p1;
  double ulps, atol_x; /* tolerance: ulps of the result + atol_x * |x| */
} un_case;

static const un_case UN_CASES[] = {
    {DC_UN_NEG, "neg", -10, 10, 0, 0, 0, 0},
    {DC_UN_ABS, "abs", -10, 10, 0, 0, 0, 0},
    {DC_UN_SIGN, "sign", -2, 2, 0, 0, 0, 0},
    {DC_UN_EXP, "exp", -90, 89, 0, 0, 2, 0},
    {DC_UN_LOG, "log", 0, 100, 0, 0, 2, 0},
    {DC_UN_SQRT, "sqrt", 0, 100, 0, 0, 1, 0},
    {DC_UN_RSQRT, "rsqrt", 0, 100, 0, 0, 2, 0},
    {DC_UN_SQUARE, "square", -100, 100, 0, 0, 1, 0},
    {DC_UN_RECIPROCAL, "reciprocal", -10, 10, 0, 0, 1, 0},
    {DC_UN_SIGMOID, "sigmoid", -30, 30, 0, 0, 4, 0},
    {DC_UN_TANH, "tanh", -10, 10, 0, 0, 4, 0},
    {DC_UN_RELU, "relu", -5, 5, 0, 0, 0, 0},
    {DC_UN_LEAKY_RELU, "leaky_relu", -5, 5, 0.01, 0, 1, 0},
    {DC_UN_ELU, "elu", -10, 5, 1.5, 0, 4, 0},
    {DC_UN_SELU, "selu", -10, 5, 0, 0, 4, 0},
    {DC_UN_GELU, "gelu", -10, 10, 0, 0, 4, 2e-7},
    {DC_UN_GELU_TANH, "gelu_tanh", -10, 10, 0, 0, 8, 1e-7},
    {DC_UN_SOFTPLUS, "softplus", -30, 30, 2.0, 20.0, 6, 0},
    {DC_UN_ERF, "erf", -6, 6, 0, 0, 1, 0},
    {DC_UN_CLAMP, "clamp", -5, 5, -1.5, 2.5, 0, 0},
    {DC_UN_ADD_SCALAR, "add_scalar", -5, 5, 0.25, 0, 1, 0},
    {DC_UN_MUL_SCALAR, "mul_scalar", -5, 5, -3.5, 0, 1, 0},
    {DC_UN_DIV_SCALAR, "div_scalar", -5, 5, 3.0, 0, 1, 0},
    {DC_UN_RSUB_SCALAR, "rsub_scalar", -5, 5, 2.0, 0, 1, 0},
    {DC_UN_POW_SCALAR, "pow_scalar 2", -5, 5, 2.0, 0, 1, 0},
    {DC_UN_POW_SCALAR, "pow_scalar 0.5", 0, 5, 0.5, 0, 1, 0},
    {DC_UN_POW_SCALAR, "pow_scalar -0.5", 0, 5, -0.5, 0, 2, 0},
    {DC_UN_POW_SCALAR, "pow_scalar 1.7", 0, 5, 1.7, 0, 4, 0},
    {DC_UN_POW_SCALAR, "pow_scalar -2", -5, 5, -2.0, 0, 2, 0},
    {DC_UN_GT_SCALAR, "gt_scalar", -2, 2, 0.5, 0, 0, 0},
    {DC_UN_LT_SCALAR, "lt_scalar", -2, 2, 0.5, 0, 0, 0},
    {DC_UN_EQ_SCALAR, "eq_scalar", -2, 2, 0.0, 0, 0, 0},
};

static bool un_is_cmp(dc_unary_op op) {
  return op == DC_UN_GT_SCALAR || op == DC_UN_LT_SCALAR || op == DC_UN_EQ_SCALAR;
}

/* A scalar rounded to float32 as the ops do. Not inlined: GCC 12.2 -O3 SLP-vectorises the
 * conditional conversion of both array elements and then stores the unconverted vector. */
static __attribute__((noinline)) double param(double v, bool f32) {
  return f32 ? (double)(float)v : v;
}

/* fast vs reference on x (any layout) */
static void check_unary(const un_case *c, dc_tensor *x) {
  dc_dtype odt = un_is_cmp(c->op) ? DC_BOOL : x->dtype;
  bool f32 = x->dtype == DC_F32;
  double p[2] = {param(c->p0, f32), param(c->p1, f32)};
  dc_tensor *fast = dc_empty(dc_shape_of(x), odt), *ref = dc_empty(dc_shape_of(x), odt);
  cr_assert_eq(dc__cpu_unary(c->op, fast, x, p), DC_OK);
  cr_assert_eq(dc__cpu_unary_ref(c->op, ref, x, p), DC_OK);
  compare(c->name, fast, ref, x, f32 ? c->ulps : 2 * c->ulps + 2, 1e-38, c->atol_x);
}

Test(elementwise, unary_fast_matches_reference) {
  dc_scope_begin();
  dc_manual_seed(1);
  const double specials[] = {NAN,    INFINITY, -INFINITY, 0.0,  -0.0,  1e-40,
                             -1e-40, 1.0,      -1.0,      88.5, -88.5, 1e-30};
  for (size_t k = 0; k < sizeof UN_CASES / sizeof UN_CASES[0]; k++) {
    const un_case *c = &UN_CASES[k];
    for (int d = 0; d < 2; d++) {
      dc_dtype dt = d ? DC_F64 : DC_F32;
      dc_tensor *x = uniform(DC_SHAPE(3001), dt, c->lo, c->hi);
      check_unary(c, x);
      dc_tensor *xs = dc_from_data(specials, DC_SHAPE(12), DC_F64);
      check_unary(c, dt == DC_F64 ? xs : dc_to_dtype(xs, dt));
      dc_tensor *m = uniform(DC_SHAPE(37, 29), dt, c->lo, c->hi);
      check_unary(c, dc_transpose(m, 0, 1)); /* strided input */
      check_unary(c, dc_slice(m, 1, 0, 29, 3));
    }
  }
  /* integer kernels against the reference, exactly */
  const dc_unary_op iops[] = {
      DC_UN_NEG,       DC_UN_ABS,        DC_UN_SIGN,       DC_UN_SQUARE,      DC_UN_RELU,
      DC_UN_CLAMP,     DC_UN_ADD_SCALAR, DC_UN_MUL_SCALAR, DC_UN_RSUB_SCALAR, DC_UN_POW_SCALAR,
      DC_UN_GT_SCALAR, DC_UN_LT_SCALAR,  DC_UN_EQ_SCALAR};
  const dc_dtype idts[] = {DC_I64, DC_I32, DC_U8};
  for (size_t k = 0; k < sizeof iops / sizeof iops[0]; k++) {
    for (int d = 0; d < 3; d++) {
      dc_tensor *x = dc_randint(idts[d] == DC_U8 ? 0 : -50, 50, DC_SHAPE(13, 11), idts[d]);
      dc_tensor *xt = dc_transpose(x, 0, 1);
      dc_dtype odt = un_is_cmp(iops[k]) ? DC_BOOL : idts[d];
      double p[2] = {iops[k] == DC_UN_POW_SCALAR ? 2 : 3, 7};
      dc_tensor *fast = dc_empty(dc_shape_of(xt), odt), *ref = dc_empty(dc_shape_of(xt), odt);
      cr_assert_eq(dc__cpu_unary(iops[k], fast, xt, p), DC_OK);
      cr_assert_eq(dc__cpu_unary_ref(iops[k], ref, xt, p), DC_OK);
      for (int64_t i = 0; i < dc_numel(fast); i++)
        cr_assert_eq(dc_item_at(fast, i), dc_item_at(ref, i), "int op %d dtype %s element %lld",
                     (int)iops[k], dc_dtype_name(idts[d]), (long long)i);
    }
  }
  dc_scope_end();
}

typedef struct bin_case {
  dc_binary_op op;
  const char *name;
  double alo, ahi, blo, bhi, ulps, atol_x;
} bin_case;

static const bin_case BIN_CASES[] = {
    {DC_BIN_ADD, "add", -5, 5, -5, 5, 0, 0},
    {DC_BIN_SUB, "sub", -5, 5, -5, 5, 0, 0},
    {DC_BIN_MUL, "mul", -5, 5, -5, 5, 0, 0},
    {DC_BIN_DIV, "div", -5, 5, 0.1, 5, 0, 0},
    {DC_BIN_POW, "pow", 0, 5, -3, 3, 4, 0},
    {DC_BIN_MAXIMUM, "maximum", -5, 5, -5, 5, 0, 0},
    {DC_BIN_MINIMUM, "minimum", -5, 5, -5, 5, 0, 0},
    {DC_BIN_EQ, "eq", -2, 2, -2, 2, 0, 0},
    {DC_BIN_NE, "ne", -2, 2, -2, 2, 0, 0},
    {DC_BIN_LT, "lt", -2, 2, -2, 2, 0, 0},
    {DC_BIN_LE, "le", -2, 2, -2, 2, 0, 0},
    {DC_BIN_GT, "gt", -2, 2, -2, 2, 0, 0},
    {DC_BIN_GE, "ge", -2, 2, -2, 2, 0, 0},
    {DC_BIN_RELU_BWD, "relu_bwd", -5, 5, -5, 5, 0, 0},
    {DC_BIN_SIGMOID_BWD, "sigmoid_bwd", -5, 5, 0, 1, 4, 1e-7},
    {DC_BIN_TANH_BWD, "tanh_bwd", -5, 5, -1, 1, 4, 1e-7},
    {DC_BIN_GELU_BWD, "gelu_bwd", -5, 5, -8, 8, 8, 1e-6},
    {DC_BIN_GELU_TANH_BWD, "gelu_tanh_bwd", -5, 5, -8, 8, 8, 1e-6},
    {DC_BIN_ADD_RELU, "add_relu", -5, 5, -5, 5, 0, 0},
};

static bool bin_is_cmp(dc_binary_op op) { return op >= DC_BIN_EQ && op <= DC_BIN_GE; }

static void check_binary(const bin_case *c, dc_tensor *a, dc_tensor *b, dc_shape s) {
  dc_dtype odt = bin_is_cmp(c->op) ? DC_BOOL : a->dtype;
  dc_tensor *fast = dc_empty(s, odt), *ref = dc_empty(s, odt);
  cr_assert_eq(dc__cpu_binary(c->op, fast, a, b), DC_OK);
  cr_assert_eq(dc__cpu_binary_ref(c->op, ref, a, b), DC_OK);
  compare(c->name, fast, ref, dc_add(dc_abs(a), dc_abs(b)), a->dtype == DC_F32 ? c->ulps : 4, 1e-38,
          c->atol_x);
}

Test(elementwise, binary_fast_matches_reference) {
  dc_scope_begin();
  dc_manual_seed(2);
  for (size_t k = 0; k < sizeof BIN_CASES / sizeof BIN_CASES[0]; k++) {
    const bin_case *c = &BIN_CASES[k];
    for (int d = 0; d < 2; d++) {
      dc_dtype dt = d ? DC_F64 : DC_F32;
      dc_tensor *a = uniform(DC_SHAPE(41, 33), dt, c->alo, c->ahi);
      dc_tensor *b = uniform(DC_SHAPE(41, 33), dt, c->blo, c->bhi);
      dc_tensor *brow = uniform(DC_SHAPE(33), dt, c->blo, c->bhi);
      dc_tensor *bcol = uniform(DC_SHAPE(41, 1), dt, c->blo, c->bhi);
      dc_tensor *b0 = uniform(DC_SCALAR_SHAPE, dt, c->blo, c->bhi);
      dc_tensor *bt = dc_transpose(uniform(DC_SHAPE(33, 41), dt, c->blo, c->bhi), 0, 1);
      dc_shape s = DC_SHAPE(41, 33);
      check_binary(c, a, b, s);
      check_binary(c, a, brow, s);
      check_binary(c, a, bcol, s);
      check_binary(c, a, b0, s);
      check_binary(c, a, bt, s);
      check_binary(c, dc_transpose(b, 0, 1), dc_transpose(a, 0, 1), DC_SHAPE(33, 41));
      /* short rows with a broadcast row (fused into multi-row kernel calls), 3-D broadcasts */
      dc_tensor *tall = uniform(DC_SHAPE(300, 7), dt, c->alo, c->ahi);
      check_binary(c, tall, uniform(DC_SHAPE(7), dt, c->blo, c->bhi), DC_SHAPE(300, 7));
      check_binary(c, uniform(DC_SHAPE(7), dt, c->alo, c->ahi), tall, DC_SHAPE(300, 7));
      check_binary(c, uniform(DC_SHAPE(4, 1, 5), dt, c->alo, c->ahi),
                   uniform(DC_SHAPE(3, 1), dt, c->blo, c->bhi), DC_SHAPE(4, 3, 5));
      if (c->op == DC_BIN_EQ || c->op == DC_BIN_MAXIMUM) {
        check_binary(c, a, a, s); /* ties */
        double sp[] = {NAN, 1, NAN, -INFINITY, 0.0, -0.0};
        dc_tensor *x = from(sp, DC_SHAPE(3, 2), dt);
        check_binary(c, x, dc_transpose(x, 0, 1), DC_SHAPE(3, 3, 2));
      }
    }
  }
  /* integer kernels, exactly */
  const dc_binary_op iops[] = {DC_BIN_ADD,     DC_BIN_SUB, DC_BIN_MUL, DC_BIN_MAXIMUM,
                               DC_BIN_MINIMUM, DC_BIN_EQ,  DC_BIN_NE,  DC_BIN_LT,
                               DC_BIN_LE,      DC_BIN_GT,  DC_BIN_GE};
  const dc_dtype idts[] = {DC_I64, DC_I32, DC_U8, DC_BOOL};
  for (size_t k = 0; k < sizeof iops / sizeof iops[0]; k++) {
    for (int d = 0; d < 4; d++) {
      if (idts[d] == DC_BOOL && !bin_is_cmp(iops[k])) continue;
      dc_tensor *a = dc_randint(0, idts[d] == DC_BOOL ? 2 : 10, DC_SHAPE(9, 7), idts[d]);
      dc_tensor *b = dc_randint(0, idts[d] == DC_BOOL ? 2 : 10, DC_SHAPE(7), idts[d]);
      dc_dtype odt = bin_is_cmp(iops[k]) ? DC_BOOL : idts[d];
      dc_tensor *fast = dc_empty(DC_SHAPE(9, 7), odt), *ref = dc_empty(DC_SHAPE(9, 7), odt);
      cr_assert_eq(dc__cpu_binary(iops[k], fast, a, b), DC_OK);
      cr_assert_eq(dc__cpu_binary_ref(iops[k], ref, a, b), DC_OK);
      for (int64_t i = 0; i < 63; i++)
        cr_assert_eq(dc_item_at(fast, i), dc_item_at(ref, i), "int op %d dtype %s", (int)iops[k],
                     dc_dtype_name(idts[d]));
    }
  }
  dc_scope_end();
}

Test(elementwise, where_and_axpy_match_reference) {
  dc_scope_begin();
  dc_manual_seed(3);
  const dc_dtype dts[] = {DC_F32, DC_F64, DC_I64, DC_U8};
  for (int d = 0; d < 4; d++) {
    dc_tensor *c = dc_gt_scalar(dc_rand(DC_SHAPE(5, 1, 7), DC_F32), 0.5);
    dc_tensor *a = dc_randint(0, 100, DC_SHAPE(6, 7), dts[d]);
    dc_tensor *b = dc_transpose(dc_randint(0, 100, DC_SHAPE(7, 6), dts[d]), 0, 1);
    dc_tensor *fast = dc_empty(DC_SHAPE(5, 6, 7), dts[d]),
              *ref = dc_empty(DC_SHAPE(5, 6, 7), dts[d]);
    cr_assert_eq(dc__cpu_where(fast, c, a, b), DC_OK);
    cr_assert_eq(dc__cpu_where_ref(ref, c, a, b), DC_OK);
    compare("where", fast, ref, NULL, 0, 0, 0);
    if (dts[d] == DC_U8) continue;
    dc_tensor *f2 = dc_empty(DC_SHAPE(6, 7), dts[d]), *r2 = dc_empty(DC_SHAPE(6, 7), dts[d]);
    cr_assert_eq(dc__cpu_axpy(f2, a, 3.0, b), DC_OK);
    cr_assert_eq(dc__cpu_axpy_ref(r2, a, 3.0, b), DC_OK);
    compare("axpy", f2, r2, NULL, 1, 0, 0);
  }
  /* in place, as the autograd engine accumulates: acc += 0.5 g with a strided g */
  dc_tensor *acc = dc_ones(DC_SHAPE(4, 3), DC_F32);
  dc_tensor *g = dc_transpose(dc_view(dc_arange(0, 12, 1, DC_F32), DC_SHAPE(3, 4)), 0, 1);
  cr_assert_eq(dc__cpu_axpy(acc, acc, 0.5, g), DC_OK);
  assert_values(acc, (double[]){1, 3, 5, 1.5, 3.5, 5.5, 2, 4, 6, 2.5, 4.5, 6.5}, 12, 0);
  dc_scope_end();
}

/* Max error in float32 ulps (of the correctly rounded result) over 2^20 points per function. */
static double max_ulps(dc_unary_op op, dc_tensor *x, double (*f)(double), double *worst_x) {
  dc_tensor *y = dc_empty(dc_shape_of(x), DC_F32);
  cr_assert_eq(dc__cpu_unary(op, y, x, NULL), DC_OK);
  const float *xp = dc_data(x), *yp = dc_data(y);
  double worst = 0;
  for (int64_t i = 0; i < dc_numel(x); i++) {
    double want = f(xp[i]);
    if (fabs(want) < 1e-37 || fabs(want) > 3e38) continue; /* denormal / overflow edges */
    double ulp = ldexp(1.0, ilogb((float)want) - 23);
    double e = fabs(yp[i] - want) / ulp;
    if (e > worst) {
      worst = e;
      *worst_x = xp[i];
    }
  }
  return worst;
}
static double sigmoid_ref(double x) { return 1.0 / (1.0 + exp(-x)); }

Test(elementwise, transcendental_accuracy_sweep) {
  dc_scope_begin();
  const int64_t n = 1 << 20;
  struct {
    dc_unary_op op;
    const char *name;
    double (*f)(double);
    double lo, hi, bound;
    bool log_spaced;
  } C[] = {{DC_UN_EXP, "exp", exp, -87.3, 88.7, 1.5, false},
           {DC_UN_LOG, "log", log, -87.0, 88.0, 1.5, true},
           {DC_UN_LOG, "log near 1", log, 0.5, 2.0, 1.5, false},
           {DC_UN_TANH, "tanh", tanh, -9.0, 9.0, 2.5, false},
           {DC_UN_SIGMOID, "sigmoid", sigmoid_ref, -80.0, 30.0, 3.0, false}};
  for (size_t k = 0; k < sizeof C / sizeof C[0]; k++) {
    dc_tensor *x = dc_linspace(C[k].lo, C[k].hi, n, DC_F64);
    if (C[k].log_spaced) x = dc_exp(x);
    double wx = 0, e = max_ulps(C[k].op, dc_to_dtype(x, DC_F32), C[k].f, &wx);
    cr_assert(e <= C[k].bound, "%s: %.2f ulp at x = %.9g (bound %.1f)", C[k].name, e, wx,
              C[k].bound);
  }
  dc_scope_end();
}

/* Kernels called in place (out == x, as src/dist does) give the out-of-place result, including
 * the multi-pass ones (elu, softplus, gelu gradient). */
Test(elementwise, kernels_in_place) {
  dc_scope_begin();
  dc_manual_seed(5);
  const dc_unary_op uops[] = {DC_UN_ELU, DC_UN_SOFTPLUS, DC_UN_DIV_SCALAR, DC_UN_EXP, DC_UN_SELU};
  for (int k = 0; k < 5; k++) {
    for (int big = 0; big < 2; big++) {
      dc_shape s = big ? DC_SHAPE(40001) : DC_SHAPE(37, 3);
      dc_tensor *x = uniform(s, DC_F32, -6, 6), *ref = dc_empty(s, DC_F32);
      double p[2] = {2.0, 3.0};
      cr_assert_eq(dc__cpu_unary(uops[k], ref, x, p), DC_OK);
      cr_assert_eq(dc__cpu_unary(uops[k], x, x, p), DC_OK);
      cr_assert_eq(memcmp(dc_data(x), dc_data(ref), (size_t)dc_numel(x) * 4), 0, "unary op %d", k);
    }
  }
  dc_tensor *g = uniform(DC_SHAPE(20000), DC_F32, -1, 1),
            *x = uniform(DC_SHAPE(20000), DC_F32, -4, 4);
  dc_tensor *ref = dc_empty(DC_SHAPE(20000), DC_F32);
  cr_assert_eq(dc__cpu_binary(DC_BIN_GELU_BWD, ref, g, x), DC_OK);
  cr_assert_eq(dc__cpu_binary(DC_BIN_GELU_BWD, g, g, x), DC_OK);
  cr_assert_eq(memcmp(dc_data(g), dc_data(ref), 20000 * 4), 0);
  dc_scope_end();
}

/* Same bits with 1 and 2 threads, for sizes that cut blocks unevenly, contiguous and strided. */
Test(elementwise, results_do_not_depend_on_thread_count) {
  dc_scope_begin();
  dc_manual_seed(4);
  dc_tensor *x = uniform(DC_SHAPE(3 * 16384 + 777), DC_F32, -8, 8);
  dc_tensor *y = uniform(DC_SHAPE(3 * 16384 + 777), DC_F32, -8, 8);
  dc_tensor *m = dc_transpose(uniform(DC_SHAPE(301, 257), DC_F32, -8, 8), 0, 1);
  dc_tensor *r1[8], *r2[8];
  for (int t = 0; t < 2; t++) {
    omp_set_num_threads(t + 1);
    dc_tensor **r = t ? r2 : r1;
    r[0] = dc_exp(x);
    r[1] = dc_tanh(x);
    r[2] = dc_gelu(x, false);
    r[3] = dc_add(x, y);
    r[4] = dc_sigmoid(m);
    r[5] = dc_mul(m, dc_view(dc_arange(0, 301, 1, DC_F32), DC_SHAPE(1, 301)));
    r[6] = dc_pow_scalar(dc_abs(x), 1.3);
    r[7] = dc_softplus(x, 1.0, 20.0);
  }
  omp_set_num_threads(2);
  for (int k = 0; k < 8; k++) {
    cr_assert_not_null(r1[k]);
    int64_t n = dc_numel(r1[k]);
    cr_assert_eq(memcmp(dc_data(r1[k]), dc_data(r2[k]), (size_t)n * 4), 0, "result %d differs", k);
  }
  dc_scope_end();
}

/* ---- gradients ---- */

enum {
  F_ADD,
  F_SUB,
  F_MUL,
  F_DIV,
  F_POW,
  F_MAXIMUM,
  F_MINIMUM,
  F_ADD_SCALED,
  F_WHERE,
  F_NEG,
  F_ABS,
  F_SIGN,
  F_EXP,
  F_LOG,
  F_SQRT,
  F_RSQRT,
  F_SQUARE,
  F_RECIPROCAL,
  F_CLAMP,
  F_SIGMOID,
  F_TANH,
  F_RELU,
  F_LEAKY_RELU,
  F_ELU,
  F_SELU,
  F_GELU,
  F_GELU_TANH,
  F_SOFTPLUS,
  F_ERF,
  F_ADD_S,
  F_SUB_S,
  F_RSUB_S,
  F_MUL_S,
  F_DIV_S,
  F_POW_S,
  F_COUNT
};
static const char *F_NAMES[F_COUNT] = {
    "add",        "sub",         "mul",        "div",        "pow",        "maximum",
    "minimum",    "add_scaled",  "where",      "neg",        "abs",        "sign",
    "exp",        "log",         "sqrt",       "rsqrt",      "square",     "reciprocal",
    "clamp",      "sigmoid",     "tanh",       "relu",       "leaky_relu", "elu",
    "selu",       "gelu",        "gelu_tanh",  "softplus",   "erf",        "add_scalar",
    "sub_scalar", "rsub_scalar", "mul_scalar", "div_scalar", "pow_scalar"};

static bool f_binary(int f) { return f <= F_WHERE; }

static dc_tensor *apply(int f, dc_tensor *a, dc_tensor *b) {
  switch (f) {
  case F_ADD:
    return dc_add(a, b);
  case F_SUB:
    return dc_sub(a, b);
  case F_MUL:
    return dc_mul(a, b);
  case F_DIV:
    return dc_div(a, b);
  case F_POW:
    return dc_pow(a, b);
  case F_MAXIMUM:
    return dc_maximum(a, b);
  case F_MINIMUM:
    return dc_minimum(a, b);
  case F_ADD_SCALED:
    return dc_add_scaled(a, b, -2.5);
  case F_WHERE:
    return dc_where(dc_gt_scalar(a, 0.0), a, b);
  case F_NEG:
    return dc_neg(a);
  case F_ABS:
    return dc_abs(a);
  case F_SIGN:
    return dc_sign(a);
  case F_EXP:
    return dc_exp(a);
  case F_LOG:
    return dc_log(a);
  case F_SQRT:
    return dc_sqrt(a);
  case F_RSQRT:
    return dc_rsqrt(a);
  case F_SQUARE:
    return dc_square(a);
  case F_RECIPROCAL:
    return dc_reciprocal(a);
  case F_CLAMP:
    return dc_clamp(a, -0.5, 0.7);
  case F_SIGMOID:
    return dc_sigmoid(a);
  case F_TANH:
    return dc_tanh(a);
  case F_RELU:
    return dc_relu(a);
  case F_LEAKY_RELU:
    return dc_leaky_relu(a, 0.2);
  case F_ELU:
    return dc_elu(a, 1.3);
  case F_SELU:
    return dc_selu(a);
  case F_GELU:
    return dc_gelu(a, false);
  case F_GELU_TANH:
    return dc_gelu(a, true);
  case F_ERF:
    return dc_erf(a);
  case F_SOFTPLUS:
    return dc_softplus(a, 2.0, 3.0);
  case F_ADD_S:
    return dc_add_scalar(a, 0.3);
  case F_SUB_S:
    return dc_sub_scalar(a, 0.3);
  case F_RSUB_S:
    return dc_rsub_scalar(a, 0.3);
  case F_MUL_S:
    return dc_mul_scalar(a, -1.7);
  case F_DIV_S:
    return dc_div_scalar(a, 1.7);
  case F_POW_S:
    return dc_pow_scalar(a, 2.5);
  }
  return NULL;
}

/* Inputs away from every kink (0, the clamp bounds, softplus's threshold), positive where the
 * op needs it: a [3, 4] (or its transpose [4, 3]) and b [4] (or [3, 1]). */
static bool positive_domain(int f) {
  return f == F_LOG || f == F_SQRT || f == F_RSQRT || f == F_RECIPROCAL || f == F_POW ||
         f == F_POW_S;
}

static dc_tensor *make_a(int f, bool transposed) {
  double v[12];
  for (int k = 0; k < 12; k++) {
    v[k] = -1.95 + 0.31 * ((k * 5) % 12); /* -1.95 .. 1.46 in a shuffled order */
    if (positive_domain(f)) v[k] = fabs(v[k]) + 0.3;
  }
  return leaf(dc_from_data(v, transposed ? DC_SHAPE(4, 3) : DC_SHAPE(3, 4), DC_F64));
}

static dc_tensor *make_b(int f, bool transposed) {
  double v[4] = {0.7, -1.3, 1.9, -0.45};
  for (int k = 0; k < 4; k++)
    if (f == F_DIV || f == F_POW) v[k] = fabs(v[k]) * (f == F_POW ? 1.0 : 1.5);
  return leaf(dc_from_data(v, transposed ? DC_SHAPE(3, 1) : DC_SHAPE(4), DC_F64));
}

typedef struct gc_ud {
  int f;
  bool transposed;
} gc_ud;

static dc_tensor *gc_fn(dc_tensor *const *in, int n, void *ud) {
  const gc_ud *u = ud;
  dc_tensor *a = u->transposed ? dc_transpose(in[0], 0, 1) : in[0];
  return apply(u->f, a, n > 1 ? in[1] : NULL);
}

Test(elementwise, gradcheck_every_op) {
  for (int f = 0; f < F_COUNT; f++) {
    for (int t = 0; t < 2; t++) {
      dc_scope_begin();
      gc_ud u = {f, t != 0};
      dc_tensor *in[2] = {make_a(f, u.transposed), make_b(f, u.transposed)};
      int n = f_binary(f) ? 2 : 1;
      bool ok = dc_gradcheck(gc_fn, in, n, &u, .eps = 1e-6, .atol = 1e-6, .rtol = 1e-5);
      cr_assert(ok, "%s%s: %s", F_NAMES[f], t ? " (transposed input)" : "", dc_last_error());
      dc_scope_end();
    }
  }
}

/* Gradients of a 0-d input broadcast against a matrix, and of a float32 leaf through a float64
 * op (the gradient comes back in float32). */
Test(elementwise, gradcheck_broadcast_scalar) {
  dc_scope_begin();
  for (int f = F_ADD; f <= F_MINIMUM; f++) {
    gc_ud u = {f, false};
    dc_tensor *in[2] = {make_a(f, false), leaf(dc_scalar(f == F_POW ? 1.3 : 0.45, DC_F64))};
    cr_assert(dc_gradcheck(gc_fn, in, 2, &u), "%s: %s", F_NAMES[f], dc_last_error());
  }
  dc_scope_end();
}

static double grad_at(int f, double x, double *second) {
  dc_scope_begin();
  dc_tensor *t = leaf(dc_scalar(x, DC_F64));
  dc_tensor *y = apply(f, t, dc_add_scalar(t, 3.0)); /* binary ops: f(t, t + 3) */
  double g = NAN;
  if (dc_backward(y, .create_graph = second != NULL, .retain_graph = second != NULL) == DC_OK)
    g = dc_item(t->grad);
  if (second) { /* d(dy/dx)/dx through the recorded backward graph */
    dc_tensor *gx = t->grad;
    t->grad = NULL;
    *second = NAN;
    if (gx && gx->requires_grad && dc_backward(gx) == DC_OK && t->grad)
      *second = dc_item(t->grad);
    else if (gx && !gx->requires_grad)
      *second = 0.0;
    dc_free(gx);
  }
  dc_scope_end();
  return g;
}

Test(elementwise, conventions_at_kinks) {
  cr_assert_eq(grad_at(F_RELU, 0.0, NULL), 0.0);
  cr_assert_eq(grad_at(F_ABS, 0.0, NULL), 0.0);
  cr_assert_eq(grad_at(F_SIGN, 0.0, NULL), 0.0);
  cr_assert_float_eq(grad_at(F_LEAKY_RELU, 0.0, NULL), 0.2, 1e-15);
  cr_assert_float_eq(grad_at(F_ELU, 0.0, NULL), 1.3, 1e-15);
  cr_assert_float_eq(grad_at(F_CLAMP, -0.5, NULL), 1.0, 0); /* bounds pass the gradient */
  cr_assert_float_eq(grad_at(F_CLAMP, 0.7, NULL), 1.0, 0);
  cr_assert_eq(grad_at(F_CLAMP, 0.75, NULL), 0.0);
  dc_scope_begin();
  /* maximum / minimum ties split the gradient */
  dc_tensor *a = leaf(from((double[]){1, 2, 3}, DC_SHAPE(3), DC_F64));
  dc_tensor *b = leaf(from((double[]){2, 2, 1}, DC_SHAPE(3), DC_F64));
  cr_assert_eq(dc_backward(dc_sum_all(dc_maximum(a, b))), DC_OK);
  assert_values(a->grad, (double[]){0, 0.5, 1}, 3, 0);
  assert_values(b->grad, (double[]){1, 0.5, 0}, 3, 0);
  dc_zero_grad(a);
  dc_zero_grad(b);
  cr_assert_eq(dc_backward(dc_sum_all(dc_minimum(a, b))), DC_OK);
  assert_values(a->grad, (double[]){1, 0.5, 0}, 3, 0);
  /* pow: d/db uses log(a), 0 where a == 0 and b >= 0; d/da is 0 where b == 0 */
  dc_tensor *x = leaf(from((double[]){0, 0, 2, 2}, DC_SHAPE(4), DC_F64));
  dc_tensor *e = leaf(from((double[]){0, 2, 0, -1}, DC_SHAPE(4), DC_F64));
  cr_assert_eq(dc_backward(dc_sum_all(dc_pow(x, e))), DC_OK);
  assert_values(x->grad, (double[]){0, 0, 0, -0.25}, 4, 1e-15);
  assert_values(e->grad, (double[]){0, 0, log(2.0), 0.5 * log(2.0)}, 4, 1e-15);
  /* clamp of NaN: NaN out, zero gradient */
  dc_tensor *nn = leaf(from((double[]){NAN}, DC_SHAPE(1), DC_F64));
  dc_tensor *c = dc_clamp(nn, 0, 1);
  cr_assert(isnan(dc_item(c)));
  cr_assert_eq(dc_backward(dc_sum_all(c)), DC_OK);
  cr_assert_eq(dc_item(nn->grad), 0.0);
  dc_scope_end();
}

/* Second derivatives through create_graph, against central differences of the first. */
Test(elementwise, double_backward) {
  const int fs[] = {F_SIGMOID, F_TANH,       F_GELU,   F_GELU_TANH, F_EXP,        F_SQRT,
                    F_RSQRT,   F_RECIPROCAL, F_SQUARE, F_LOG,       F_ELU,        F_SOFTPLUS,
                    F_MUL,     F_DIV,        F_POW_S,  F_SELU,      F_LEAKY_RELU, F_RELU};
  const double xs[] = {-1.7, -0.4, 0.3, 1.2};
  for (size_t k = 0; k < sizeof fs / sizeof fs[0]; k++) {
    for (int j = 0; j < 4; j++) {
      double x = positive_domain(fs[k]) || fs[k] == F_LOG ? fabs(xs[j]) : xs[j];
      double h = 1e-5, second = 0;
      grad_at(fs[k], x, &second);
      double num = (grad_at(fs[k], x + h, NULL) - grad_at(fs[k], x - h, NULL)) / (2 * h);
      cr_assert(fabs(second - num) <= 1e-6 + 1e-5 * fabs(num),
                "%s''(%g): create_graph %.10g vs "
                "numeric %.10g",
                F_NAMES[fs[k]], x, second, num);
    }
  }
}

/* Sigmoid/tanh save an alias of their output: no cycle, nothing leaks; a 64x10 add with grad in
 * a scope, 10000 times, keeps memory flat. */
Test(elementwise, memory_is_flat) {
  dc_tensor *w = leaf(dc_ones(DC_SHAPE(64, 10), DC_F32));
  dc_tensor *x = dc_ones(DC_SHAPE(64, 10), DC_F32);
  int64_t live0 = dc_live_tensors();
  dc_alloc_stats s0 = {0};
  for (int it = 0; it < 10000; it++) {
    dc_scope_begin();
    dc_tensor *y = dc_sum_all(dc_tanh(dc_sigmoid(dc_add(x, w))));
    cr_assert_eq(dc_backward(y), DC_OK, "%s", dc_last_error());
    dc_zero_grad(w);
    dc_scope_end();
    if (it == 10) s0 = dc_alloc_get_stats();
  }
  cr_assert_eq(dc_live_tensors(), live0);
  cr_assert_eq(dc_alloc_get_stats().live_bytes, s0.live_bytes);
  dc_scope_begin();
  dc_tensor *y = dc_sigmoid(w);
  dc_scope_end(); /* y's node holds an alias of y, not y itself */
  (void)y;
  cr_assert_eq(dc_live_tensors(), live0);
  dc_free(w);
  dc_free(x);
}
