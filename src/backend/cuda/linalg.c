/* CUDA batched GEMM through cuBLAS (cublasGemmStridedBatchedEx) with the CPU's contract
 * (cpu/gemm.c): out [B, M, N] contiguous = alpha * op(a) op(b) + beta * out, float32, float64 or
 * bfloat16 (every operand one dtype), batch stride 0 broadcasting a or b. float32 uses FP32
 * compute, without TF32 unless DEEPC_ALLOW_TF32=1 (PyTorch's default for matmul); bfloat16 is
 * the autocast contract: bf16 operands, float32 accumulation (CUBLAS_COMPUTE_32F), each output
 * rounded to bf16 once. Row-major products are computed as the
 * column-major out^T = op(b)^T op(a)^T; an operand with neither unit row nor unit column stride
 * is first copied contiguous on the device.
 * cuBLAS is loaded on first use (dlopen), not linked: its 500 MB of libraries would otherwise be
 * mapped and relocated by every deepc process, GPU or not (each Criterion test is an exec). */
#include "cuda-impl.h"

#include <cublas_v2.h>
#include <dlfcn.h>
#include <pthread.h>

#define DC__STR_(x) #x
#define DC__STR(x) DC__STR_(x)
#define CUBLAS_SONAME "libcublas.so." DC__STR(CUBLAS_VER_MAJOR)

static struct {
  __typeof__(&cublasCreate_v2) create;
  __typeof__(&cublasSetStream_v2) set_stream;
  __typeof__(&cublasGemmStridedBatchedEx) gemm;
  __typeof__(&cublasGetStatusName) status_name;
  __typeof__(&cublasGetStatusString) status_string;
} g_blas;
static cublasHandle_t g_handle;
static cublasStatus_t g_handle_status = CUBLAS_STATUS_NOT_INITIALIZED;
static char g_load_error[256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void *sym(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p && !g_load_error[0])
    snprintf(g_load_error, sizeof g_load_error, "%s has no %s", CUBLAS_SONAME, name);
  return p;
}

static void load_blas(void) {
  void *lib = dlopen(CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *e = dlerror();
    snprintf(g_load_error, sizeof g_load_error, "cannot load %s: %s", CUBLAS_SONAME, e ? e : "?");
    return;
  }
  *(void **)&g_blas.create = sym(lib, "cublasCreate_v2");
  *(void **)&g_blas.set_stream = sym(lib, "cublasSetStream_v2");
  *(void **)&g_blas.gemm = sym(lib, "cublasGemmStridedBatchedEx");
  *(void **)&g_blas.status_name = sym(lib, "cublasGetStatusName");
  *(void **)&g_blas.status_string = sym(lib, "cublasGetStatusString");
  if (g_load_error[0]) return;
  g_handle_status = g_blas.create(&g_handle);
  if (g_handle_status == CUBLAS_STATUS_SUCCESS)
    g_handle_status = g_blas.set_stream(g_handle, dc__cuda_stream());
}

static int blas_fail(cublasStatus_t st, const char *what) {
  return dc__errs(DC_ERR_BACKEND, "cuda gemm_batched: %s failed: %s (%s)", what,
                  g_blas.status_name(st), g_blas.status_string(st));
}

int dc__cuda_blas_operand(const dc_tensor *t, bool tr, dc__cuda_mat *m) {
  m->tmp = NULL;
  for (;;) {
    int d = t->ndim;
    int64_t r = t->shape[d - 2], c = t->shape[d - 1], sr = t->stride[d - 2], sc = t->stride[d - 1];
    m->batch = d == 3 ? t->shape[0] : 1;
    m->sb = d == 3 && t->shape[0] > 1 ? t->stride[0] : 0;
    /* a size-1 dim may have any stride: pick the one cuBLAS accepts */
    if (c == 1) sc = 1;
    if (r == 1) sr = c > 1 ? c : 1;
    bool fits = (sc == 1 && sr >= (c > 1 ? c : 1)) || (sr == 1 && sc >= (r > 1 ? r : 1));
    if (!fits && !m->tmp) { /* a contiguous copy on the device, then decode that */
      m->tmp = dc__new(dc_shape_of(t), t->dtype, t->device);
      if (!m->tmp) return dc_last_status();
      int rc = dc__cuda_copy(m->tmp, t);
      if (rc != DC_OK) {
        dc_free(m->tmp);
        m->tmp = NULL;
        return rc;
      }
      t = m->tmp;
      continue;
    }
    m->data = dc__cuda_ptr(t);
    m->rows = tr ? c : r;
    m->cols = tr ? r : c;
    m->sr = tr ? sc : sr;
    m->sc = tr ? sr : sc;
    return DC_OK;
  }
}

bool dc__cuda_blas_col_major(const dc__cuda_mat *m, int64_t *ld) {
  if (m->sc == 1 && m->sr >= (m->cols > 1 ? m->cols : 1)) {
    *ld = m->sr > 0 ? m->sr : 1;
    return false;
  }
  *ld = m->sc > 0 ? m->sc : 1;
  return true;
}

static int bad_args(const char *what, const dc_tensor *out, const dc_tensor *a,
                    const dc_tensor *b) {
  char so[96], sa[96], sb[96];
  return dc__errs(
      DC_ERR_ARG,
      "gemm_batched: %s (out %s %s, a %s %s, b %s %s); the caller must pass 2-D or "
      "3-D float32/float64/bfloat16 operands with matching inner dims and a contiguous out",
      what, dc_shape_str(dc_shape_of(out), so, sizeof so), dc_dtype_name(out->dtype),
      dc_shape_str(dc_shape_of(a), sa, sizeof sa), dc_dtype_name(a->dtype),
      dc_shape_str(dc_shape_of(b), sb, sizeof sb), dc_dtype_name(b->dtype));
}

static int run(dc_tensor *out, const dc__cuda_mat *A, const dc__cuda_mat *Bm, int64_t B,
               float alpha, float beta) {
  int64_t M = A->rows, K = A->cols, N = Bm->cols;
  bool f64 = out->dtype == DC_F64, bf16 = out->dtype == DC_BF16;
  if (K == 0) { /* out = beta * out: cuBLAS wants k >= 1 */
    if (beta == 0.0f) return dc__cuda_fill(out, 0.0);
    double p[2] = {(double)beta, 0.0};
    return dc__cuda_unary(DC_UN_MUL_SCALAR, out, out, p);
  }
  int64_t lda, ldb;
  cublasOperation_t opa = dc__cuda_blas_col_major(A, &lda) ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t opb = dc__cuda_blas_col_major(Bm, &ldb) ? CUBLAS_OP_T : CUBLAS_OP_N;
  cudaDataType_t ty = f64 ? CUDA_R_64F : bf16 ? CUDA_R_16BF : CUDA_R_32F;
  /* bf16: float32 accumulation and float alpha/beta (the TF32 switch is float32's only) */
  cublasComputeType_t ct = f64                              ? CUBLAS_COMPUTE_64F
                           : !bf16 && dc__cuda_allow_tf32() ? CUBLAS_COMPUTE_32F_FAST_TF32
                                                            : CUBLAS_COMPUTE_32F;
  double alpha64 = alpha, beta64 = beta;
  const void *pa = f64 ? (const void *)&alpha64 : (const void *)&alpha;
  const void *pb = f64 ? (const void *)&beta64 : (const void *)&beta;
  if (M > INT32_MAX || N > INT32_MAX || K > INT32_MAX || lda > INT32_MAX || ldb > INT32_MAX ||
      B > INT32_MAX)
    return dc__errs(DC_ERR_UNSUPPORTED, "gemm_batched: a dim above 2^31 is not yet on cuda");
  cublasStatus_t st = g_blas.gemm(
      g_handle, opb, opa, (int)N, (int)M, (int)K, pa, Bm->data, ty, (int)ldb, Bm->sb, A->data, ty,
      (int)lda, A->sb, pb, dc__cuda_ptr(out), ty, (int)N, M * N, (int)B, ct, CUBLAS_GEMM_DEFAULT);
  return st == CUBLAS_STATUS_SUCCESS ? DC_OK : blas_fail(st, "cublasGemmStridedBatchedEx");
}

int dc__cuda_gemm_batched(dc_tensor *out, const dc_tensor *a, const dc_tensor *b, bool ta, bool tb,
                          float alpha, float beta) {
  if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3 || out->ndim < 2 || out->ndim > 3)
    return bad_args("operands must be 2-D or 3-D", out, a, b);
  if (out->dtype != a->dtype || out->dtype != b->dtype ||
      (out->dtype != DC_F32 && out->dtype != DC_F64 && out->dtype != DC_BF16))
    return bad_args("dtypes must all be float32, all float64 or all bfloat16", out, a, b);
  if (dc_numel(out) > 0 && !dc_is_contiguous(out))
    return bad_args("out must be contiguous", out, a, b);
  pthread_once(&g_once, load_blas);
  if (g_load_error[0]) return dc__errs(DC_ERR_BACKEND, "cuda gemm_batched: %s", g_load_error);
  if (g_handle_status != CUBLAS_STATUS_SUCCESS) return blas_fail(g_handle_status, "cublasCreate");
  dc__cuda_mat A, Bm;
  int rc = dc__cuda_blas_operand(a, ta, &A);
  if (rc != DC_OK) return rc;
  rc = dc__cuda_blas_operand(b, tb, &Bm);
  if (rc != DC_OK) {
    dc_free(A.tmp);
    return rc;
  }
  int64_t B = out->ndim == 3 ? out->shape[0] : 1;
  if (A.cols != Bm.rows || out->shape[out->ndim - 2] != A.rows ||
      out->shape[out->ndim - 1] != Bm.cols)
    rc = bad_args("inner or outer dims do not match", out, a, b);
  else if ((A.batch != 1 && A.batch != B) || (Bm.batch != 1 && Bm.batch != B))
    rc = bad_args("batch sizes must equal out's or be 1", out, a, b);
  else if (dc_numel(out) > 0)
    rc = run(out, &A, &Bm, B, alpha, beta);
  dc_free(A.tmp);
  dc_free(Bm.tmp);
  return rc;
}
