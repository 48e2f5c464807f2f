/* CUDA reductions (sum, mean, max, min, logsumexp over a dim mask), arg-max/min along one dim
 * and softmax/log-softmax, with the CPU's semantics (cpu/reduce.c): float32 and float64 only,
 * accumulation in double, NaN wins max/min, logsumexp shifted by the row maximum (0 for rows of
 * all +-inf), first index on ties. Deterministic: each output is reduced by one block (or one
 * thread for short rows) in a fixed order. x is contiguous (the ops layer makes it so).
 * Dimension letters: M outputs, R reduced elements per output, O/D/I the dims before, along
 * and after `dim`. */
#include "kern.cuh"

/* x's dims split into kept (M) and reduced (R) ones, with x's strides */
typedef struct red_geom {
  int nk, nr;
  int64_t ks[DC_MAX_DIMS], kst[DC_MAX_DIMS]; /* kept sizes, strides */
  int64_t rs[DC_MAX_DIMS], rst[DC_MAX_DIMS]; /* reduced sizes, strides */
  int64_t M, R;
} red_geom;

__device__ inline int64_t geom_off(int n, const int64_t *size, const int64_t *stride, int64_t i) {
  int64_t off = 0;
  for (int d = n - 1; d >= 0; d--) {
    off += (i % size[d]) * stride[d];
    i /= size[d];
  }
  return off;
}

__device__ inline double ld(const char *x, bool f64, int64_t i) {
  return f64 ? ((const double *)x)[i] : (double)((const float *)x)[i];
}

__device__ inline double combine(int op, double a, double v) {
  switch (op) {
  case DC_RED_MAX:
    return (v > a || isnan(v)) ? v : a;
  case DC_RED_MIN:
    return (v < a || isnan(v)) ? v : a;
  default:
    return a + v;
  }
}

__device__ inline double init_of(int op) {
  return op == DC_RED_MAX ? -INFINITY : op == DC_RED_MIN ? INFINITY : 0.0;
}

/* one pass of op over output m's R elements by one thread (shift: logsumexp's maximum) */
__device__ inline double run_serial(const red_geom &g, const char *x, bool f64, int op,
                                    int64_t base, double shift) {
  double a = init_of(op == DC_RED_LOGSUMEXP ? DC_RED_SUM : op);
  for (int64_t r = 0; r < g.R; r++) {
    double v = ld(x, f64, base + geom_off(g.nr, g.rs, g.rst, r));
    a = op == DC_RED_LOGSUMEXP ? a + exp(v - shift) : combine(op, a, v);
  }
  return a;
}

__device__ inline double finish(int op, const red_geom &g, double a, double mx) {
  if (op == DC_RED_MEAN) return g.R > 0 ? a / (double)g.R : NAN;
  if (op == DC_RED_LOGSUMEXP) return g.R > 0 ? mx + log(a) : -INFINITY;
  return a;
}

__device__ inline double lse_shift(double mx) { return isfinite(mx) ? mx : (isnan(mx) ? mx : 0.0); }

/* short rows: one thread per output */
__global__ void reduce_thread_k(red_geom g, const char *x, bool f64, char *out, int op) {
  DC__CU_FOR(m, g.M) {
    int64_t base = geom_off(g.nk, g.ks, g.kst, m);
    double mx = 0.0;
    if (op == DC_RED_LOGSUMEXP) mx = lse_shift(run_serial(g, x, f64, DC_RED_MAX, base, 0.0));
    double v = finish(op, g, run_serial(g, x, f64, op, base, mx), mx);
    if (f64)
      ((double *)out)[m] = v;
    else
      ((float *)out)[m] = (float)v;
  }
}

/* block-wide combine of each thread's partial in a fixed tree order; every thread gets it */
__device__ inline double block_combine(double v, int op, double *sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = DC__CU_THREADS / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s) sh[threadIdx.x] = combine(op, sh[threadIdx.x], sh[threadIdx.x + s]);
    __syncthreads();
  }
  double r = sh[0];
  __syncthreads();
  return r;
}

/* long rows: one block per output */
__global__ void reduce_block_k(red_geom g, const char *x, bool f64, char *out, int op) {
  __shared__ double sh[DC__CU_THREADS];
  for (int64_t m = blockIdx.x; m < g.M; m += gridDim.x) {
    int64_t base = geom_off(g.nk, g.ks, g.kst, m);
    double mx = 0.0;
    if (op == DC_RED_LOGSUMEXP) {
      double a = -INFINITY;
      for (int64_t r = threadIdx.x; r < g.R; r += blockDim.x)
        a = combine(DC_RED_MAX, a, ld(x, f64, base + geom_off(g.nr, g.rs, g.rst, r)));
      mx = lse_shift(block_combine(a, DC_RED_MAX, sh));
    }
    int cop = op == DC_RED_LOGSUMEXP || op == DC_RED_MEAN ? DC_RED_SUM : op;
    double a = init_of(cop);
    for (int64_t r = threadIdx.x; r < g.R; r += blockDim.x) {
      double v = ld(x, f64, base + geom_off(g.nr, g.rs, g.rst, r));
      a = op == DC_RED_LOGSUMEXP ? a + exp(v - mx) : combine(cop, a, v);
    }
    double v = finish(op, g, block_combine(a, cop, sh), mx);
    if (threadIdx.x == 0) {
      if (f64)
        ((double *)out)[m] = v;
      else
        ((float *)out)[m] = (float)v;
    }
  }
}

static int float_only(const char *op, const dc_tensor *x) {
  return dc__errs(DC_ERR_ARG, "%s: dtype %s not supported by the cuda kernel (float32, float64)",
                  op, dc_dtype_name(x->dtype));
}

extern "C" int dc__cuda_reduce(dc_reduce_op op, dc_tensor *out, const dc_tensor *x, uint32_t mask) {
  DC__CHECK(dc_is_contiguous(x) && dc_is_contiguous(out), DC_ERR_STATE);
  if (x->dtype != DC_F32 && x->dtype != DC_F64) return float_only("reduce", x);
  red_geom g;
  memset(&g, 0, sizeof g);
  g.R = 1;
  int64_t stride[DC_MAX_DIMS], st = 1; /* x's contiguous strides */
  for (int d = x->ndim - 1; d >= 0; d--) {
    stride[d] = st;
    st *= x->shape[d];
  }
  for (int d = 0; d < x->ndim; d++) {
    if ((mask >> d) & 1u) {
      g.rs[g.nr] = x->shape[d];
      g.rst[g.nr++] = stride[d];
      g.R *= x->shape[d];
    } else {
      g.ks[g.nk] = x->shape[d];
      g.kst[g.nk++] = stride[d];
    }
  }
  g.M = dc_numel(out);
  if (g.M == 0) return DC_OK;
  cudaStream_t s = dc__cuda_stream();
  bool f64 = x->dtype == DC_F64;
  if (dc_numel(x) == 0) { /* R == 0: the CPU's values for an empty reduction */
    double v = op == DC_RED_MEAN ? NAN : op == DC_RED_LOGSUMEXP ? -INFINITY : 0.0;
    return dc__cuda_fill(out, v);
  }
  if (g.R < 256 || g.M >= 65536)
    reduce_thread_k<<<dc__cu_blocks(g.M), DC__CU_THREADS, 0, s>>>(g, dc__cuda_ptr(x), f64,
                                                                  dc__cuda_ptr(out), (int)op);
  else
    reduce_block_k<<<(unsigned)(g.M < (1 << 20) ? g.M : (1 << 20)), DC__CU_THREADS, 0, s>>>(
        g, dc__cuda_ptr(x), f64, dc__cuda_ptr(out), (int)op);
  return dc__cuda_launched("reduce kernel");
}

/* ---- arg-max/min: x [O, D, I]; values, indices [O, I] ---- */

__global__ void arg_reduce_k(const char *x, int xdt, int xz, int64_t O, int64_t D, int64_t I,
                             bool is_max, char *vals, int vdt, int vz, int64_t *idx) {
  DC__CU_FOR(oi, O * I) {
    int64_t o = oi / I, i = oi % I, best_k = 0;
    double best = dc__cu_load<double>(x + (o * D * I + i) * xz, xdt);
    for (int64_t k = 1; k < D && !isnan(best); k++) {
      double v = dc__cu_load<double>(x + (o * D * I + k * I + i) * xz, xdt);
      if (isnan(v) || (is_max ? v > best : v < best)) {
        best = v;
        best_k = k;
      }
    }
    if (idx) idx[oi] = best_k;
    if (vals) dc__cu_store<double>(vals + oi * vz, vdt, best);
  }
}

extern "C" int dc__cuda_arg_reduce(bool is_max, dc_tensor *values, dc_tensor *indices,
                                   const dc_tensor *x, int dim) {
  DC__CHECK(dc_is_contiguous(x), DC_ERR_STATE);
  int64_t O = 1, D = x->shape[dim], I = 1;
  for (int d = 0; d < dim; d++) O *= x->shape[d];
  for (int d = dim + 1; d < x->ndim; d++) I *= x->shape[d];
  if (O * I == 0 || D == 0) return DC_OK;
  char *vp = values ? dc__cuda_ptr(values) : NULL;
  int64_t *ip = indices ? (int64_t *)dc__cuda_ptr(indices) : NULL;
  arg_reduce_k<<<dc__cu_blocks(O * I), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      dc__cuda_ptr(x), (int)x->dtype, (int)dc_dtype_size(x->dtype), O, D, I, is_max, vp,
      values ? (int)values->dtype : 0, values ? (int)dc_dtype_size(values->dtype) : 0, ip);
  return dc__cuda_launched("arg_reduce kernel");
}

/* ---- softmax / log-softmax over D of x, y [O, D, I]: one thread per row ----
 * float32 as the CPU's row kernel: float maximum and exponentials, double sum; log-softmax as
 * (x - max) - log(sum). */
template <typename T>
__global__ void softmax_k(T *y, const T *x, int64_t O, int64_t D, int64_t I, bool lg) {
  DC__CU_FOR(oi, O * I) {
    int64_t o = oi / I, i = oi % I, base = o * D * I + i;
    T m = (T)-INFINITY;
    for (int64_t k = 0; k < D; k++) {
      T v = x[base + k * I];
      m = v > m ? v : m;
    }
    if (isinf(m) && m < 0) m = 0; /* all -inf: keep exp finite */
    double s = 0;
    for (int64_t k = 0; k < D; k++) s += (double)exp(x[base + k * I] - m);
    T ls = (T)log(s), inv = (T)(1.0 / s);
    for (int64_t k = 0; k < D; k++) {
      T v = x[base + k * I] - m;
      y[base + k * I] = lg ? v - ls : exp(v) * inv;
    }
  }
}

extern "C" int dc__cuda_softmax(dc_tensor *out, const dc_tensor *x, int dim, bool lg) {
  DC__CHECK(dc_is_contiguous(x) && dc_is_contiguous(out), DC_ERR_STATE);
  if (x->dtype != DC_F32 && x->dtype != DC_F64) return float_only("softmax", x);
  int64_t O = 1, D = x->shape[dim], I = 1;
  for (int d = 0; d < dim; d++) O *= x->shape[d];
  for (int d = dim + 1; d < x->ndim; d++) I *= x->shape[d];
  if (O * I * D == 0) return DC_OK;
  unsigned nb = dc__cu_blocks(O * I);
  cudaStream_t s = dc__cuda_stream();
  if (x->dtype == DC_F32)
    softmax_k<float><<<nb, DC__CU_THREADS, 0, s>>>((float *)dc__cuda_ptr(out),
                                                   (const float *)dc__cuda_ptr(x), O, D, I, lg);
  else
    softmax_k<double><<<nb, DC__CU_THREADS, 0, s>>>((double *)dc__cuda_ptr(out),
                                                    (const double *)dc__cuda_ptr(x), O, D, I, lg);
  return dc__cuda_launched("softmax kernel");
}
