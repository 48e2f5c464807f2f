/* CUDA elementwise kernels: copy (dtype conversion, broadcasting by strides), fill, every
 * DC_UNARY_LIST and DC_BINARY_LIST op, where and axpy, with the CPU's semantics (cpu/unary.c,
 * cpu/binary.c): float32 computes in float (erf through double), float64 in double, integer
 * dtypes in wrapping int64 for the ops the CPU has integer kernels for, and every other
 * combination in double as the CPU's naive reference does. One generic strided kernel per
 * family with the op as a uniform switch: correctness first; fused/vectorised ones come later. */
#include "kern.cuh"

/* ---- unary ---- */

__device__ inline float dc__cu_erf(float x) { return (float)erf((double)x); }
__device__ inline double dc__cu_erf(double x) { return erf(x); }

template <typename T> __device__ inline T un_float(int op, T x, T p0, T p1) {
  const T half = (T)0.5, one = (T)1;
  const double kSeluAlpha = 1.6732632423543772848170429916717;
  const double kSeluScale = 1.0507009873554804934193349852946;
  switch (op) {
  case DC_UN_NEG:
    return -x;
  case DC_UN_ABS:
    return fabs(x);
  case DC_UN_SIGN:
    return (T)(x > 0) - (T)(x < 0);
  case DC_UN_EXP:
    return exp(x);
  case DC_UN_LOG:
    return log(x);
  case DC_UN_SQRT:
    return sqrt(x);
  case DC_UN_RSQRT:
    return one / sqrt(x);
  case DC_UN_SQUARE:
    return x * x;
  case DC_UN_RECIPROCAL:
    return one / x;
  case DC_UN_SIGMOID:
    return one / (one + exp(-x));
  case DC_UN_TANH:
    return tanh(x);
  case DC_UN_RELU:
    return x < 0 ? (T)0 : x;
  case DC_UN_LEAKY_RELU:
    return x > 0 ? x : x * p0;
  case DC_UN_ELU:
    return x > 0 ? x : expm1(x) * p0;
  case DC_UN_SELU:
    return x > 0 ? (T)kSeluScale * x : (T)(kSeluScale * kSeluAlpha) * expm1(x);
  case DC_UN_GELU:
    return half * x * (one + dc__cu_erf(x * (T)0.70710678118654752440));
  case DC_UN_ERF:
    return dc__cu_erf(x);
  case DC_UN_GELU_TANH: { /* x sigmoid(2u), u = beta (x + kappa x^3): no cancellation */
    const T beta = (T)0.79788456080286535588, kappa = (T)0.044715;
    return x / (one + exp((T)-2 * beta * (x + kappa * x * x * x)));
  }
  case DC_UN_SOFTPLUS: /* p0 = beta, p1 = threshold */
    return x * p0 > p1 ? x : log1p(exp(x * p0)) / p0;
  case DC_UN_CLAMP: { /* NaN passes; lo > hi gives hi */
    T t = x < p0 ? p0 : x;
    return t > p1 ? p1 : t;
  }
  case DC_UN_ADD_SCALAR:
    return x + p0;
  case DC_UN_MUL_SCALAR:
    return x * p0;
  case DC_UN_DIV_SCALAR:
    return x / p0;
  case DC_UN_RSUB_SCALAR:
    return p0 - x;
  case DC_UN_POW_SCALAR: /* PyTorch's special exponents */
    if (p0 == (T)2) return x * x;
    if (p0 == (T)3) return x * x * x;
    if (p0 == (T)0.5) return sqrt(x);
    if (p0 == (T)-0.5) return one / sqrt(x);
    if (p0 == (T)-1) return one / x;
    if (p0 == (T)-2) return one / (x * x);
    if (p0 == (T)1) return x;
    if (p0 == (T)0) return one;
    return pow(x, p0);
  case DC_UN_GT_SCALAR:
    return (T)(x > p0);
  case DC_UN_LT_SCALAR:
    return (T)(x < p0);
  case DC_UN_EQ_SCALAR:
    return (T)(x == p0);
  }
  return (T)NAN;
}

__device__ inline int64_t ipow(int64_t x, int64_t e) {
  uint64_t r = 1, b = (uint64_t)x;
  for (; e > 0; e >>= 1) {
    if (e & 1) r *= b;
    b *= b;
  }
  return (int64_t)r;
}

/* the ops with integer kernels (dc__unary_int_kernel, and the comparisons), wrapping */
__device__ inline int64_t un_int(int op, int64_t x, int64_t p0, int64_t p1) {
  uint64_t u = (uint64_t)x;
  switch (op) {
  case DC_UN_NEG:
    return (int64_t)(0 - u);
  case DC_UN_ABS:
    return x < 0 ? (int64_t)(0 - u) : x;
  case DC_UN_SIGN:
    return (x > 0) - (x < 0);
  case DC_UN_SQUARE:
    return (int64_t)(u * u);
  case DC_UN_RELU:
    return x < 0 ? 0 : x;
  case DC_UN_CLAMP: {
    int64_t t = x < p0 ? p0 : x;
    return t > p1 ? p1 : t;
  }
  case DC_UN_ADD_SCALAR:
    return (int64_t)(u + (uint64_t)p0);
  case DC_UN_MUL_SCALAR:
    return (int64_t)(u * (uint64_t)p0);
  case DC_UN_RSUB_SCALAR:
    return (int64_t)((uint64_t)p0 - u);
  case DC_UN_POW_SCALAR:
    return ipow(x, p0);
  case DC_UN_GT_SCALAR:
    return x > p0;
  case DC_UN_LT_SCALAR:
    return x < p0;
  case DC_UN_EQ_SCALAR:
    return x == p0;
  }
  return 0;
}

template <typename T> __device__ inline T un_op(int op, T x, T p0, T p1) {
  if constexpr (std::is_integral<T>::value)
    return un_int(op, x, p0, p1);
  else
    return un_float<T>(op, x, p0, p1);
}

template <typename T> __global__ void unary_k(dc__cu_iter it, int op, T p0, T p1) {
  DC__CU_FOR(i, it.numel) {
    char *p[2];
    dc__cu_iter_at(it, i, p);
    dc__cu_store<T>(p[0], it.dt[0], un_op<T>(op, dc__cu_load<T>(p[1], it.dt[1]), p0, p1));
  }
}

static bool is_int(dc_dtype dt) {
  return dt == DC_I64 || dt == DC_I32 || dt == DC_U8 || dt == DC_BOOL;
}


/* double -> int64 saturating (clamp bounds may be infinite), as the CPU's sat_i64 */
static int64_t sat_i64(double v) {
  if (v != v) return 0;
  if (v >= 9.2233720368547758e18) return INT64_MAX;
  if (v <= -9.2233720368547758e18) return INT64_MIN;
  return (int64_t)v;
}

static bool is_cmp_scalar(dc_unary_op op) {
  return op == DC_UN_GT_SCALAR || op == DC_UN_LT_SCALAR || op == DC_UN_EQ_SCALAR;
}

extern "C" int dc__cuda_unary(dc_unary_op op, dc_tensor *out, const dc_tensor *x, const double *p) {
  static const double none[2] = {0.0, 0.0};
  if (!p) p = none;
  if (dc_numel(out) == 0) return DC_OK;
  const dc_tensor *ops[2] = {out, x};
  dc__cu_iter it;
  dc__cu_iter_setup(&it, 2, ops);
  unsigned nb = dc__cu_blocks(it.numel);
  cudaStream_t s = dc__cuda_stream();
  dc_dtype dt = x->dtype;
  bool same = is_cmp_scalar(op) ? out->dtype == DC_BOOL : out->dtype == dt;
  bool integral_p = is_cmp_scalar(op) ? p[0] == (double)sat_i64(p[0]) : true;
  if (same && dt == DC_F32)
    unary_k<float><<<nb, DC__CU_THREADS, 0, s>>>(it, (int)op, (float)p[0], (float)p[1]);
  else if (same && is_int(dt) && dt != DC_BOOL &&
           (dc__unary_int_kernel(op) || is_cmp_scalar(op)) && integral_p &&
           (op != DC_UN_POW_SCALAR || p[0] >= 0))
    unary_k<int64_t><<<nb, DC__CU_THREADS, 0, s>>>(it, (int)op, sat_i64(p[0]), sat_i64(p[1]));
  else
    unary_k<double><<<nb, DC__CU_THREADS, 0, s>>>(it, (int)op, p[0], p[1]);
  return dc__cuda_launched("unary kernel");
}

/* ---- binary ---- */

__device__ inline double gelu_grad(double x) {
  return 0.5 * (1.0 + erf(x * 0.70710678118654752440)) +
         x * 0.39894228040143267794 * exp(-0.5 * x * x);
}
__device__ inline double gelu_tanh_grad(double x) {
  const double beta = 0.79788456080286535588, kappa = 0.044715;
  double th = tanh(beta * (x + kappa * x * x * x));
  return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * beta * (1.0 + 3.0 * kappa * x * x);
}
__device__ inline float gelu_grad(float x) {
  float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
  return cdf + x * 0.39894228040143268f * expf(-0.5f * x * x);
}
__device__ inline float gelu_tanh_grad(float x) {
  const float beta = 0.79788456080286536f, kappa = 0.044715f;
  float th = tanhf(beta * (x + kappa * x * x * x));
  return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * beta * (1.0f + 3.0f * kappa * x * x);
}

template <typename T> __device__ inline T bin_op(int op, T a, T b) {
  switch (op) {
  case DC_BIN_ADD:
    if constexpr (std::is_integral<T>::value) return (T)((uint64_t)a + (uint64_t)b);
    return a + b;
  case DC_BIN_SUB:
    if constexpr (std::is_integral<T>::value) return (T)((uint64_t)a - (uint64_t)b);
    return a - b;
  case DC_BIN_MUL:
    if constexpr (std::is_integral<T>::value) return (T)((uint64_t)a * (uint64_t)b);
    return a * b;
  case DC_BIN_MAXIMUM:
    if constexpr (!std::is_integral<T>::value)
      if (a != a || b != b) return (T)NAN;
    return a > b ? a : b;
  case DC_BIN_MINIMUM:
    if constexpr (!std::is_integral<T>::value)
      if (a != a || b != b) return (T)NAN;
    return a < b ? a : b;
  case DC_BIN_EQ:
    return (T)(a == b);
  case DC_BIN_NE:
    return (T)(a != b);
  case DC_BIN_LT:
    return (T)(a < b);
  case DC_BIN_LE:
    return (T)(a <= b);
  case DC_BIN_GT:
    return (T)(a > b);
  case DC_BIN_GE:
    return (T)(a >= b);
  }
  if constexpr (!std::is_integral<T>::value) {
    switch (op) {
    case DC_BIN_DIV:
      return a / b;
    case DC_BIN_POW:
      return pow(a, b);
    case DC_BIN_RELU_BWD: /* threshold_backward: a NaN x passes a */
      return b <= 0 ? (T)0 : a;
    case DC_BIN_SIGMOID_BWD:
      return a * b * ((T)1 - b);
    case DC_BIN_TANH_BWD:
      return a * ((T)1 - b * b);
    case DC_BIN_GELU_BWD:
      return a * gelu_grad(b);
    case DC_BIN_GELU_TANH_BWD:
      return a * gelu_tanh_grad(b);
    case DC_BIN_ADD_RELU: {
      T v = a + b;
      return v < 0 ? (T)0 : v;
    }
    }
  }
  return (T)0;
}

template <typename T> __global__ void binary_k(dc__cu_iter it, int op) {
  DC__CU_FOR(i, it.numel) {
    char *p[3];
    dc__cu_iter_at(it, i, p);
    T a = dc__cu_load<T>(p[1], it.dt[1]), b = dc__cu_load<T>(p[2], it.dt[2]);
    dc__cu_store<T>(p[0], it.dt[0], bin_op<T>(op, a, b));
  }
}

static bool bin_float_only(dc_binary_op op) {
  return op == DC_BIN_DIV || op == DC_BIN_POW || op >= DC_BIN_RELU_BWD;
}

static bool bin_is_cmp(dc_binary_op op) { return op >= DC_BIN_EQ && op <= DC_BIN_GE; }

extern "C" int dc__cuda_binary(dc_binary_op op, dc_tensor *out, const dc_tensor *a,
                               const dc_tensor *b) {
  if (dc_numel(out) == 0) return DC_OK;
  const dc_tensor *ops[3] = {out, a, b};
  dc__cu_iter it;
  dc__cu_iter_setup(&it, 3, ops);
  unsigned nb = dc__cu_blocks(it.numel);
  cudaStream_t s = dc__cuda_stream();
  dc_dtype dt = a->dtype;
  bool same = b->dtype == dt && (bin_is_cmp(op) ? out->dtype == DC_BOOL : out->dtype == dt);
  if (same && dt == DC_F32)
    binary_k<float><<<nb, DC__CU_THREADS, 0, s>>>(it, (int)op);
  else if (same && is_int(dt) && !bin_float_only(op) && (dt != DC_BOOL || bin_is_cmp(op)))
    binary_k<int64_t><<<nb, DC__CU_THREADS, 0, s>>>(it, (int)op);
  else
    binary_k<double><<<nb, DC__CU_THREADS, 0, s>>>(it, (int)op);
  return dc__cuda_launched("binary kernel");
}

/* ---- where, axpy ---- */

/* out = c ? a : b: raw elements when a, b and out share a dtype, else through double */
__global__ void where_k(dc__cu_iter it, bool raw) {
  DC__CU_FOR(i, it.numel) {
    char *p[4];
    dc__cu_iter_at(it, i, p);
    bool cv = dc__cu_load<double>(p[1], it.dt[1]) != 0.0;
    const char *src = cv ? p[2] : p[3];
    int sdt = cv ? it.dt[2] : it.dt[3];
    if (!raw) {
      dc__cu_store<double>(p[0], it.dt[0], dc__cu_load<double>(src, sdt));
      continue;
    }
    dc__cu_copy_raw(p[0], src, it.esize[0]);
  }
}

extern "C" int dc__cuda_where(dc_tensor *out, const dc_tensor *c, const dc_tensor *a,
                              const dc_tensor *b) {
  if (dc_numel(out) == 0) return DC_OK;
  const dc_tensor *ops[4] = {out, c, a, b};
  dc__cu_iter it;
  dc__cu_iter_setup(&it, 4, ops);
  bool raw = a->dtype == out->dtype && b->dtype == out->dtype;
  where_k<<<dc__cu_blocks(it.numel), DC__CU_THREADS, 0, dc__cuda_stream()>>>(it, raw);
  return dc__cuda_launched("where kernel");
}

template <typename T> __global__ void axpy_k(dc__cu_iter it, T alpha) {
  DC__CU_FOR(i, it.numel) {
    char *p[3];
    dc__cu_iter_at(it, i, p);
    T a = dc__cu_load<T>(p[1], it.dt[1]), b = dc__cu_load<T>(p[2], it.dt[2]);
    if constexpr (std::is_integral<T>::value)
      dc__cu_store<T>(p[0], it.dt[0], (T)((uint64_t)a + (uint64_t)alpha * (uint64_t)b));
    else
      dc__cu_store<T>(p[0], it.dt[0], a + alpha * b);
  }
}

extern "C" int dc__cuda_axpy(dc_tensor *out, const dc_tensor *a, double alpha, const dc_tensor *b) {
  if (dc_numel(out) == 0) return DC_OK;
  const dc_tensor *ops[3] = {out, a, b};
  dc__cu_iter it;
  dc__cu_iter_setup(&it, 3, ops);
  unsigned nb = dc__cu_blocks(it.numel);
  cudaStream_t s = dc__cuda_stream();
  dc_dtype dt = out->dtype;
  bool same = a->dtype == dt && b->dtype == dt;
  if (same && dt == DC_F32)
    axpy_k<float><<<nb, DC__CU_THREADS, 0, s>>>(it, (float)alpha);
  else if (same && dt == DC_I64 && alpha == (double)(int64_t)alpha)
    axpy_k<int64_t><<<nb, DC__CU_THREADS, 0, s>>>(it, (int64_t)alpha);
  else
    axpy_k<double><<<nb, DC__CU_THREADS, 0, s>>>(it, alpha);
  return dc__cuda_launched("axpy kernel");
}

/* ---- copy and fill ---- */

/* dst = src: raw bytes when the dtypes match, else through double (core's dc__load/dc__store) */
__global__ void copy_k(dc__cu_iter it, bool raw) {
  DC__CU_FOR(i, it.numel) {
    char *p[2];
    dc__cu_iter_at(it, i, p);
    if (!raw) {
      if (it.dt[0] == DC_F32 && it.dt[1] == DC_F64)
        *(float *)p[0] = (float)*(const double *)p[1];
      else
        dc__cu_store<double>(p[0], it.dt[0], dc__cu_load<double>(p[1], it.dt[1]));
      continue;
    }
    dc__cu_copy_raw(p[0], p[1], it.esize[0]);
  }
}

extern "C" int dc__cuda_copy(dc_tensor *dst, const dc_tensor *src) {
  int64_t n = dc_numel(dst);
  if (n == 0) return DC_OK;
  if (dst->dtype == src->dtype && dc_is_contiguous(dst) && dc_is_contiguous(src) &&
      dc_numel(src) == n)
    return dc__cuda_fail(cudaMemcpyAsync(dc__cuda_ptr(dst), dc__cuda_ptr(src),
                                         (size_t)n * dc_dtype_size(dst->dtype),
                                         cudaMemcpyDeviceToDevice, dc__cuda_stream()),
                         "copy: cudaMemcpyAsync");
  const dc_tensor *ops[2] = {dst, src};
  dc__cu_iter it;
  dc__cu_iter_setup(&it, 2, ops);
  copy_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(it, dst->dtype == src->dtype);
  return dc__cuda_launched("copy kernel");
}

/* t = one element's bytes (already converted on the host) */
__global__ void fill_k(dc__cu_iter it, uint64_t bits) {
  DC__CU_FOR(i, it.numel) {
    char *p[1];
    dc__cu_iter_at(it, i, p);
    switch (it.esize[0]) {
    case 8:
      *(uint64_t *)p[0] = bits;
      break;
    case 4:
      *(uint32_t *)p[0] = (uint32_t)bits;
      break;
    case 2:
      *(uint16_t *)p[0] = (uint16_t)bits;
      break;
    default:
      *(uint8_t *)p[0] = (uint8_t)bits;
      break;
    }
  }
}

extern "C" int dc__cuda_fill(dc_tensor *t, double v) {
  int64_t n = dc_numel(t);
  if (n == 0) return DC_OK;
  uint64_t bits = 0;
  dc__store(&bits, t->dtype, v); /* the CPU's conversion, little-endian low bytes */
  if (bits == 0 && dc_is_contiguous(t))
    return dc__cuda_fail(
        cudaMemsetAsync(dc__cuda_ptr(t), 0, (size_t)n * dc_dtype_size(t->dtype), dc__cuda_stream()),
        "fill: cudaMemsetAsync");
  const dc_tensor *ops[1] = {t};
  dc__cu_iter it;
  dc__cu_iter_setup(&it, 1, ops);
  fill_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(it, bits);
  return dc__cuda_launched("fill kernel");
}
