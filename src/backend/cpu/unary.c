/* CPU unary elementwise kernels: math, activations, ops with a scalar and comparisons with a
 * scalar. float32 loops vectorise (own exp/log, libmvec tanh/erf/expm1/log1p/pow, see vmath.h);
 * float64 and integer loops are plain typed loops; other dtypes take the naive reference, which
 * is also the test oracle. Shapes: out and x share one shape; n = elements in one piece. */
#include "cpu-impl.h"
#include "vmath.h"

static const float kSqrt1_2f = 0.70710678118654752f;
static const float kBetaf = 0.79788456080286536f, kKappaf = 0.044715f; /* gelu tanh: sqrt(2/pi) */
static const double kSeluAlpha = 1.6732632423543772848170429916717;
static const double kSeluScale = 1.0507009873554804934193349852946;

/* x^e with PyTorch's special exponents (exact sqrt, reciprocal, products) and powf otherwise */
DC__CLONES static void pow_scalar_f32(float *restrict o, const float *restrict x, int64_t n,
                                      float e) {
  if (e == 2.0f) {
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * x[i];
  } else if (e == 3.0f) {
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * x[i] * x[i];
  } else if (e == 0.5f) {
    for (int64_t i = 0; i < n; i++) o[i] = sqrtf(x[i]);
  } else if (e == -0.5f) {
    for (int64_t i = 0; i < n; i++) o[i] = 1.0f / sqrtf(x[i]);
  } else if (e == -1.0f) {
    for (int64_t i = 0; i < n; i++) o[i] = 1.0f / x[i];
  } else if (e == -2.0f) {
    for (int64_t i = 0; i < n; i++) o[i] = 1.0f / (x[i] * x[i]);
  } else if (e == 1.0f) {
    for (int64_t i = 0; i < n; i++) o[i] = x[i];
  } else if (e == 0.0f) {
    for (int64_t i = 0; i < n; i++) o[i] = 1.0f;
  } else {
    for (int64_t i = 0; i < n; i++) o[i] = powf(x[i], e);
  }
}

DC__CLONES static void un_f32(dc_unary_op op, float *restrict o, const float *restrict x, int64_t n,
                              float p0, float p1) {
  switch (op) {
  case DC_UN_NEG:
    for (int64_t i = 0; i < n; i++) o[i] = -x[i];
    break;
  case DC_UN_ABS:
    for (int64_t i = 0; i < n; i++) o[i] = fabsf(x[i]);
    break;
  case DC_UN_SIGN:
    for (int64_t i = 0; i < n; i++) o[i] = (float)(x[i] > 0.0f) - (float)(x[i] < 0.0f);
    break;
  case DC_UN_EXP:
    for (int64_t i = 0; i < n; i++) o[i] = dc__expf(x[i]);
    break;
  case DC_UN_LOG:
    for (int64_t i = 0; i < n; i++) o[i] = dc__logf(x[i]);
    break;
  case DC_UN_SQRT:
    for (int64_t i = 0; i < n; i++) o[i] = sqrtf(x[i]);
    break;
  case DC_UN_RSQRT:
    for (int64_t i = 0; i < n; i++) o[i] = 1.0f / sqrtf(x[i]);
    break;
  case DC_UN_SQUARE:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * x[i];
    break;
  case DC_UN_RECIPROCAL:
    for (int64_t i = 0; i < n; i++) o[i] = 1.0f / x[i];
    break;
  case DC_UN_SIGMOID:
    for (int64_t i = 0; i < n; i++) o[i] = dc__sigmoidf(x[i]);
    break;
  case DC_UN_TANH:
    for (int64_t i = 0; i < n; i++) o[i] = tanhf(x[i]);
    break;
  case DC_UN_RELU:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] < 0.0f ? 0.0f : x[i];
    break;
  case DC_UN_LEAKY_RELU:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0.0f ? x[i] : x[i] * p0;
    break;
  case DC_UN_ELU:
    /* two passes: GCC 12 does not if-convert a loop that holds a call */
    for (int64_t i = 0; i < n; i++) o[i] = expm1f(x[i]);
    for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0.0f ? x[i] : o[i] * p0;
    break;
  case DC_UN_SELU: {
    const float scale = (float)kSeluScale, as = (float)(kSeluAlpha * kSeluScale);
    for (int64_t i = 0; i < n; i++) o[i] = expm1f(x[i]);
    for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0.0f ? x[i] * scale : o[i] * as;
    break;
  }
  case DC_UN_GELU:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * 0.5f * (1.0f + erff(x[i] * kSqrt1_2f));
    break;
  case DC_UN_ERF: /* in double: glibc erff is 4 ulps off near 1 */
    for (int64_t i = 0; i < n; i++) o[i] = (float)erf((double)x[i]);
    break;
  case DC_UN_GELU_TANH: /* 0.5 x (1 + tanh(u)) = x sigmoid(2u), without cancellation */
    for (int64_t i = 0; i < n; i++)
      o[i] = x[i] * dc__sigmoidf(2.0f * kBetaf * (x[i] + kKappaf * x[i] * x[i] * x[i]));
    break;
  case DC_UN_SOFTPLUS: /* p0 = beta, p1 = threshold */
    for (int64_t i = 0; i < n; i++) o[i] = dc__expf(x[i] * p0);
    for (int64_t i = 0; i < n; i++) o[i] = log1pf(o[i]) / p0;
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * p0 > p1 ? x[i] : o[i];
    break;
  case DC_UN_CLAMP: /* NaN passes; lo > hi gives hi, like PyTorch's min(max(x, lo), hi) */
    for (int64_t i = 0; i < n; i++) {
      float t = x[i] < p0 ? p0 : x[i];
      o[i] = t > p1 ? p1 : t;
    }
    break;
  case DC_UN_ADD_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] + p0;
    break;
  case DC_UN_MUL_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * p0;
    break;
  case DC_UN_DIV_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] / p0;
    break;
  case DC_UN_RSUB_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = p0 - x[i];
    break;
  case DC_UN_POW_SCALAR:
    pow_scalar_f32(o, x, n, p0);
    break;
  case DC_UN_GT_SCALAR:
  case DC_UN_LT_SCALAR:
  case DC_UN_EQ_SCALAR:
  case DC_UNARY_COUNT:
    break;
  }
}

static double un_ref(dc_unary_op op, double x, const double *p);

/* float64: the same formulas with libm (scalar calls for the transcendental ones). */
DC__CLONES static void un_f64(dc_unary_op op, double *restrict o, const double *restrict x,
                              int64_t n, const double *p) {
  const double p0 = p[0], p1 = p[1]; /* locals: a conditional load of p[0] blocks vectorising */
  switch (op) {
  case DC_UN_NEG:
    for (int64_t i = 0; i < n; i++) o[i] = -x[i];
    break;
  case DC_UN_ABS:
    for (int64_t i = 0; i < n; i++) o[i] = fabs(x[i]);
    break;
  case DC_UN_SIGN:
    for (int64_t i = 0; i < n; i++) o[i] = (double)(x[i] > 0.0) - (double)(x[i] < 0.0);
    break;
  case DC_UN_SQRT:
    for (int64_t i = 0; i < n; i++) o[i] = sqrt(x[i]);
    break;
  case DC_UN_RSQRT:
    for (int64_t i = 0; i < n; i++) o[i] = 1.0 / sqrt(x[i]);
    break;
  case DC_UN_SQUARE:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * x[i];
    break;
  case DC_UN_RECIPROCAL:
    for (int64_t i = 0; i < n; i++) o[i] = 1.0 / x[i];
    break;
  case DC_UN_RELU:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] < 0.0 ? 0.0 : x[i];
    break;
  case DC_UN_LEAKY_RELU:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0.0 ? x[i] : x[i] * p0;
    break;
  case DC_UN_CLAMP:
    for (int64_t i = 0; i < n; i++) {
      double t = x[i] < p0 ? p0 : x[i];
      o[i] = t > p1 ? p1 : t;
    }
    break;
  case DC_UN_ADD_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] + p0;
    break;
  case DC_UN_MUL_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] * p0;
    break;
  case DC_UN_DIV_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] / p0;
    break;
  case DC_UN_RSUB_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = p0 - x[i];
    break;
  case DC_UN_EXP:
  case DC_UN_LOG:
  case DC_UN_SIGMOID:
  case DC_UN_TANH:
  case DC_UN_ELU:
  case DC_UN_SELU:
  case DC_UN_GELU:
  case DC_UN_GELU_TANH:
  case DC_UN_SOFTPLUS:
  case DC_UN_POW_SCALAR:
  case DC_UN_ERF:
    for (int64_t i = 0; i < n; i++) o[i] = un_ref(op, x[i], p);
    break;
  case DC_UN_GT_SCALAR:
  case DC_UN_LT_SCALAR:
  case DC_UN_EQ_SCALAR:
  case DC_UNARY_COUNT:
    break;
  }
}

/* x^e for integers, e >= 0 (wrapping like PyTorch's) */
static int64_t ipow(int64_t x, int64_t e) {
  uint64_t r = 1, b = (uint64_t)x;
  for (; e > 0; e >>= 1) {
    if (e & 1) r *= b;
    b *= b;
  }
  return (int64_t)r;
}

/* Integer ops, computed in int64 and wrapped to the dtype on store (no signed overflow). */
DC__CLONES static void un_i64(dc_unary_op op, int64_t *restrict o, const int64_t *restrict x,
                              int64_t n, int64_t p0, int64_t p1) {
  const uint64_t *u = (const uint64_t *)x;
  switch (op) {
  case DC_UN_NEG:
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)(0 - u[i]);
    break;
  case DC_UN_ABS:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] < 0 ? (int64_t)(0 - u[i]) : x[i];
    break;
  case DC_UN_SIGN:
    for (int64_t i = 0; i < n; i++) o[i] = (x[i] > 0) - (x[i] < 0);
    break;
  case DC_UN_SQUARE:
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)(u[i] * u[i]);
    break;
  case DC_UN_RELU:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] < 0 ? 0 : x[i];
    break;
  case DC_UN_CLAMP:
    for (int64_t i = 0; i < n; i++) {
      int64_t t = x[i] < p0 ? p0 : x[i];
      o[i] = t > p1 ? p1 : t;
    }
    break;
  case DC_UN_ADD_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)(u[i] + (uint64_t)p0);
    break;
  case DC_UN_MUL_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)(u[i] * (uint64_t)p0);
    break;
  case DC_UN_RSUB_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (int64_t)((uint64_t)p0 - u[i]);
    break;
  case DC_UN_POW_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = ipow(x[i], p0);
    break;
  default:
    break;
  }
}

DC__CLONES static void un_i32(dc_unary_op op, int32_t *restrict o, const int32_t *restrict x,
                              int64_t n, int64_t p0, int64_t p1) {
  const uint32_t *u = (const uint32_t *)x;
  uint32_t q = (uint32_t)(uint64_t)p0;
  switch (op) {
  case DC_UN_NEG:
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)(0 - u[i]);
    break;
  case DC_UN_ABS:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] < 0 ? (int32_t)(0 - u[i]) : x[i];
    break;
  case DC_UN_SIGN:
    for (int64_t i = 0; i < n; i++) o[i] = (x[i] > 0) - (x[i] < 0);
    break;
  case DC_UN_SQUARE:
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)(u[i] * u[i]);
    break;
  case DC_UN_RELU:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] < 0 ? 0 : x[i];
    break;
  case DC_UN_CLAMP:
    for (int64_t i = 0; i < n; i++) {
      int64_t t = x[i] < p0 ? p0 : x[i];
      o[i] = (int32_t)(t > p1 ? p1 : t);
    }
    break;
  case DC_UN_ADD_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)(u[i] + q);
    break;
  case DC_UN_MUL_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)(u[i] * q);
    break;
  case DC_UN_RSUB_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)(q - u[i]);
    break;
  case DC_UN_POW_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)ipow(x[i], p0);
    break;
  default:
    break;
  }
}

DC__CLONES static void un_u8(dc_unary_op op, uint8_t *restrict o, const uint8_t *restrict x,
                             int64_t n, int64_t p0, int64_t p1) {
  uint8_t q = (uint8_t)(uint64_t)p0;
  switch (op) {
  case DC_UN_NEG:
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(0 - x[i]);
    break;
  case DC_UN_ABS:
  case DC_UN_RELU:
    for (int64_t i = 0; i < n; i++) o[i] = x[i];
    break;
  case DC_UN_SIGN:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] > 0;
    break;
  case DC_UN_SQUARE:
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(x[i] * x[i]);
    break;
  case DC_UN_CLAMP:
    for (int64_t i = 0; i < n; i++) {
      int64_t t = x[i] < p0 ? p0 : x[i];
      o[i] = (uint8_t)(t > p1 ? p1 : t);
    }
    break;
  case DC_UN_ADD_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(x[i] + q);
    break;
  case DC_UN_MUL_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(x[i] * q);
    break;
  case DC_UN_RSUB_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)(q - x[i]);
    break;
  case DC_UN_POW_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = (uint8_t)ipow(x[i], p0);
    break;
  default:
    break;
  }
}

/* Comparisons with a scalar into bool. */
DC__CLONES static void cmps_f32(dc_unary_op op, uint8_t *restrict o, const float *restrict x,
                                int64_t n, float s) {
  switch (op) {
  case DC_UN_GT_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] > s;
    break;
  case DC_UN_LT_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] < s;
    break;
  case DC_UN_EQ_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] == s;
    break;
  default:
    break;
  }
}
DC__CLONES static void cmps_f64(dc_unary_op op, uint8_t *restrict o, const double *restrict x,
                                int64_t n, double s) {
  switch (op) {
  case DC_UN_GT_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] > s;
    break;
  case DC_UN_LT_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] < s;
    break;
  case DC_UN_EQ_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] == s;
    break;
  default:
    break;
  }
}
DC__CLONES static void cmps_i64(dc_unary_op op, uint8_t *restrict o, const int64_t *restrict x,
                                int64_t n, int64_t s) {
  switch (op) {
  case DC_UN_GT_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] > s;
    break;
  case DC_UN_LT_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] < s;
    break;
  case DC_UN_EQ_SCALAR:
    for (int64_t i = 0; i < n; i++) o[i] = x[i] == s;
    break;
  default:
    break;
  }
}

static bool is_cmp_scalar(dc_unary_op op) {
  return op == DC_UN_GT_SCALAR || op == DC_UN_LT_SCALAR || op == DC_UN_EQ_SCALAR;
}

typedef struct un_ctx {
  dc_unary_op op;
  dc_dtype dt; /* x's dtype */
  double p[2];
  float pf[2];
  int64_t pi[2];
} un_ctx;

static void un_piece(const void *ctx, int64_t n, char *const *ptr) {
  const un_ctx *c = ctx;
  if (is_cmp_scalar(c->op)) {
    uint8_t *o = (uint8_t *)ptr[0];
    switch (c->dt) {
    case DC_F32:
      cmps_f32(c->op, o, (const float *)ptr[1], n, c->pf[0]);
      return;
    case DC_F64:
      cmps_f64(c->op, o, (const double *)ptr[1], n, c->p[0]);
      return;
    default:
      cmps_i64(c->op, o, (const int64_t *)ptr[1], n, c->pi[0]);
      return;
    }
  }
  switch (c->dt) {
  case DC_F32:
    un_f32(c->op, (float *)ptr[0], (const float *)ptr[1], n, c->pf[0], c->pf[1]);
    return;
  case DC_F64:
    un_f64(c->op, (double *)ptr[0], (const double *)ptr[1], n, c->p);
    return;
  case DC_I64:
    un_i64(c->op, (int64_t *)ptr[0], (const int64_t *)ptr[1], n, c->pi[0], c->pi[1]);
    return;
  case DC_I32:
    un_i32(c->op, (int32_t *)ptr[0], (const int32_t *)ptr[1], n, c->pi[0], c->pi[1]);
    return;
  default:
    un_u8(c->op, (uint8_t *)ptr[0], (const uint8_t *)ptr[1], n, c->pi[0], c->pi[1]);
    return;
  }
}

/* double -> int64 saturating (clamp bounds may be infinite) */
static int64_t sat_i64(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}

static bool un_fast_ok(dc_unary_op op, const dc_tensor *out, const dc_tensor *x, const double *p) {
  dc_dtype dt = x->dtype;
  if (is_cmp_scalar(op)) {
    if (out->dtype != DC_BOOL) return false;
    if (dt == DC_F32 || dt == DC_F64) return true;
    return dt == DC_I64 && p[0] == (double)sat_i64(p[0]); /* integral scalar: exact compare */
  }
  if (out->dtype != dt) return false;
  if (dt == DC_F32 || dt == DC_F64) return true;
  if (!(dt == DC_I64 || dt == DC_I32 || dt == DC_U8) || !dc__unary_int_kernel(op)) return false;
  return op != DC_UN_POW_SCALAR || p[0] >= 0;
}

int dc__cpu_unary(dc_unary_op op, dc_tensor *out, const dc_tensor *x, const double *p) {
  static const double none[2] = {0.0, 0.0};
  if (!p) p = none;
  if (!un_fast_ok(op, out, x, p)) return dc__cpu_unary_ref(op, out, x, p);
  un_ctx c = {.op = op, .dt = x->dtype, .p = {p[0], p[1]}};
  for (int k = 0; k < 2; k++) {
    c.pf[k] = (float)p[k];
    c.pi[k] = sat_i64(p[k]);
  }
  const dc_tensor *in[1] = {x};
  dc__cpu_ew_apply(un_piece, &c, out, 1, in, false);
  return DC_OK;
}

/* ---- naive reference: one element at a time in double with libm ---- */

static double un_ref(dc_unary_op op, double x, const double *p) {
  switch (op) {
  case DC_UN_NEG:
    return -x;
  case DC_UN_ABS:
    return fabs(x);
  case DC_UN_SIGN:
    return (double)(x > 0) - (double)(x < 0);
  case DC_UN_EXP:
    return exp(x);
  case DC_UN_LOG:
    return log(x);
  case DC_UN_SQRT:
    return sqrt(x);
  case DC_UN_RSQRT:
    return 1.0 / sqrt(x);
  case DC_UN_SQUARE:
    return x * x;
  case DC_UN_RECIPROCAL:
    return 1.0 / x;
  case DC_UN_SIGMOID:
    return 1.0 / (1.0 + exp(-x));
  case DC_UN_TANH:
    return tanh(x);
  case DC_UN_RELU:
    return x < 0 ? 0.0 : x;
  case DC_UN_LEAKY_RELU:
    return x > 0 ? x : x * p[0];
  case DC_UN_ELU:
    return x > 0 ? x : expm1(x) * p[0];
  case DC_UN_SELU:
    return x > 0 ? kSeluScale * x : kSeluScale * kSeluAlpha * expm1(x);
  case DC_UN_GELU:
    return 0.5 * x * (1.0 + erf(x * M_SQRT1_2));
  case DC_UN_ERF:
    return erf(x);
  case DC_UN_GELU_TANH: {
    const double beta = M_SQRT2 * M_2_SQRTPI * 0.5, kappa = 0.044715;
    return 0.5 * x * (1.0 + tanh(beta * (x + kappa * x * x * x)));
  }
  case DC_UN_SOFTPLUS:
    return x * p[0] > p[1] ? x : log1p(exp(x * p[0])) / p[0];
  case DC_UN_CLAMP: {
    double t = x < p[0] ? p[0] : x;
    return t > p[1] ? p[1] : t;
  }
  case DC_UN_ADD_SCALAR:
    return x + p[0];
  case DC_UN_MUL_SCALAR:
    return x * p[0];
  case DC_UN_DIV_SCALAR:
    return x / p[0];
  case DC_UN_RSUB_SCALAR:
    return p[0] - x;
  case DC_UN_POW_SCALAR: /* PyTorch's special exponents: +-0.5 go through sqrt */
    if (p[0] == 0.5) return sqrt(x);
    if (p[0] == -0.5) return 1.0 / sqrt(x);
    return p[0] == 0.0 ? 1.0 : pow(x, p[0]);
  case DC_UN_GT_SCALAR:
    return x > p[0];
  case DC_UN_LT_SCALAR:
    return x < p[0];
  case DC_UN_EQ_SCALAR:
    return x == p[0];
  case DC_UNARY_COUNT:
    break;
  }
  return NAN;
}

int dc__cpu_unary_ref(dc_unary_op op, dc_tensor *out, const dc_tensor *x, const double *p) {
  static const double none[2] = {0.0, 0.0};
  if (!p) p = none;
  const dc_tensor *ops[2] = {out, x};
  dc__loop L;
  dc__loop_setup(&L, dc_shape_of(out), 2, ops);
  for (int64_t r = 0; r < L.rows; r++) {
    int64_t off[2];
    dc__loop_row(&L, r, off);
    for (int64_t i = 0; i < L.inner; i++) {
      double v = dc__load(DC__PTR(x, off[1] + i * L.istride[1]), x->dtype);
      dc__store(DC__PTR(out, off[0] + i * L.istride[0]), out->dtype, un_ref(op, v, p));
    }
  }
  return DC_OK;
}
