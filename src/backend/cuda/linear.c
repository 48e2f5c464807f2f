/* The CUDA backend's fused linear (linalg->linear, DC_CAP_LINEAR): out [M, N] contiguous =
 * x [M, K] . w [N, K]^T + bias [N] (bias may be NULL) as one cuBLASLt product, the bias added in
 * its epilogue (CUBLASLT_EPILOGUE_BIAS). float32 (FP32 compute, TF32 only with the backend's
 * switch) and bfloat16 under the autocast contract (bf16 x, w, bias and out, float32
 * accumulation, each output rounded to bf16 once). float64, and any product cuBLASLt's heuristic
 * offers no algorithm for, take the unfused route: bias broadcast into out, then gemm_batched
 * with beta 1 (one rounding as well: cuBLAS reads C in its accumulator type).
 * cuBLASLt is dlopen'ed on first use, as cuBLAS is (linalg.c, docs/cuda.md). The algorithm of
 * each shape is cached (a small LRU table; cuBLASLt's heuristic call costs tens of us). */
#include "cuda-impl.h"

#include <cublasLt.h>
#include <dlfcn.h>
#include <pthread.h>

#define DC__LT_STR_(x) #x
#define DC__LT_STR(x) DC__LT_STR_(x)
#define CUBLASLT_SONAME "libcublasLt.so." DC__LT_STR(CUBLAS_VER_MAJOR)
#define NCACHE 32
#define WORKSPACE_BYTES ((size_t)32 << 20) /* what cuBLASLt may use on Hopper */

static struct {
  __typeof__(&cublasLtCreate) create;
  __typeof__(&cublasLtMatmulDescCreate) desc_create;
  __typeof__(&cublasLtMatmulDescDestroy) desc_destroy;
  __typeof__(&cublasLtMatmulDescSetAttribute) desc_set;
  __typeof__(&cublasLtMatrixLayoutCreate) layout_create;
  __typeof__(&cublasLtMatrixLayoutDestroy) layout_destroy;
  __typeof__(&cublasLtMatmulPreferenceCreate) pref_create;
  __typeof__(&cublasLtMatmulPreferenceDestroy) pref_destroy;
  __typeof__(&cublasLtMatmulPreferenceSetAttribute) pref_set;
  __typeof__(&cublasLtMatmulAlgoGetHeuristic) heuristic;
  __typeof__(&cublasLtMatmul) matmul;
  __typeof__(&cublasLtGetStatusName) status_name;
  __typeof__(&cublasLtGetStatusString) status_string;
} g_lt;
static cublasLtHandle_t g_handle;
static cublasStatus_t g_handle_status = CUBLAS_STATUS_NOT_INITIALIZED;
static char g_load_error[256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* the cache */

static void *sym(void *lib, const char *name) {
  void *p = dlsym(lib, name);
  if (!p && !g_load_error[0])
    snprintf(g_load_error, sizeof g_load_error, "%s has no %s", CUBLASLT_SONAME, name);
  return p;
}

static void load_lt(void) {
  void *lib = dlopen(CUBLASLT_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *e = dlerror();
    snprintf(g_load_error, sizeof g_load_error, "cannot load %s: %s", CUBLASLT_SONAME, e ? e : "?");
    return;
  }
  *(void **)&g_lt.create = sym(lib, "cublasLtCreate");
  *(void **)&g_lt.desc_create = sym(lib, "cublasLtMatmulDescCreate");
  *(void **)&g_lt.desc_destroy = sym(lib, "cublasLtMatmulDescDestroy");
  *(void **)&g_lt.desc_set = sym(lib, "cublasLtMatmulDescSetAttribute");
  *(void **)&g_lt.layout_create = sym(lib, "cublasLtMatrixLayoutCreate");
  *(void **)&g_lt.layout_destroy = sym(lib, "cublasLtMatrixLayoutDestroy");
  *(void **)&g_lt.pref_create = sym(lib, "cublasLtMatmulPreferenceCreate");
  *(void **)&g_lt.pref_destroy = sym(lib, "cublasLtMatmulPreferenceDestroy");
  *(void **)&g_lt.pref_set = sym(lib, "cublasLtMatmulPreferenceSetAttribute");
  *(void **)&g_lt.heuristic = sym(lib, "cublasLtMatmulAlgoGetHeuristic");
  *(void **)&g_lt.matmul = sym(lib, "cublasLtMatmul");
  *(void **)&g_lt.status_name = sym(lib, "cublasLtGetStatusName");
  *(void **)&g_lt.status_string = sym(lib, "cublasLtGetStatusString");
  if (g_load_error[0]) return;
  g_handle_status = g_lt.create(&g_handle);
}

static int lt_fail(cublasStatus_t st, const char *what) {
  return dc__errs(DC_ERR_BACKEND, "cuda linear: %s failed: %s (%s)", what, g_lt.status_name(st),
                  g_lt.status_string(st));
}

static int bad_args(const char *what, const dc_tensor *out, const dc_tensor *x,
                    const dc_tensor *w) {
  char so[96], sx[96], sw[96];
  return dc__errs(DC_ERR_ARG,
                  "linear: %s (out %s %s, x %s %s, w %s %s); the caller must pass a contiguous "
                  "2-D out [M, N], x [M, K], w [N, K] and bias [N], all float32, all float64 or "
                  "all bfloat16",
                  what, dc_shape_str(dc_shape_of(out), so, sizeof so), dc_dtype_name(out->dtype),
                  dc_shape_str(dc_shape_of(x), sx, sizeof sx), dc_dtype_name(x->dtype),
                  dc_shape_str(dc_shape_of(w), sw, sizeof sw), dc_dtype_name(w->dtype));
}

/* ---- one product's description and its cached algorithm ---- */

/* Column-major: D [N, M] (ld N) = op(A) op(B) + bias, A the stored w, B the stored x. */
typedef struct lt_key {
  int dtype, tf32, bias;
  int ta, tb;                    /* CUBLAS_OP_T for A / B */
  int64_t m, n, k, lda, ldb;     /* sizes and leading dims, elements */
  int align_a, align_b, align_d; /* pointer alignment, bytes (up to 256) */
} lt_key;

typedef struct lt_entry {
  bool used, none; /* none: the heuristic offered no algorithm (the unfused route) */
  uint64_t last_use;
  lt_key key;
  cublasLtMatmulAlgo_t algo;
} lt_entry;

static lt_entry g_cache[NCACHE];
static uint64_t g_clock;

static int align_of(const void *p) {
  uintptr_t u = (uintptr_t)p;
  int a = 1;
  while (a < 256 && (u & (uintptr_t)(2 * a - 1)) == 0) a *= 2;
  return a;
}

/* The descriptors of k (each NULL on entry, destroyed by desc_free) */
typedef struct lt_desc {
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t a, b, d;
} lt_desc;

static void desc_free(lt_desc *d) {
  if (d->op) g_lt.desc_destroy(d->op);
  if (d->a) g_lt.layout_destroy(d->a);
  if (d->b) g_lt.layout_destroy(d->b);
  if (d->d) g_lt.layout_destroy(d->d);
}

#define LT(call, what)                                                                             \
  do {                                                                                             \
    cublasStatus_t st_ = (call);                                                                   \
    if (st_ != CUBLAS_STATUS_SUCCESS) return lt_fail(st_, what);                                   \
  } while (0)

static int desc_make(lt_desc *d, const lt_key *k, const void *bias) {
  cudaDataType_t ty = k->dtype == DC_BF16 ? CUDA_R_16BF : CUDA_R_32F;
  cublasComputeType_t ct = k->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  LT(g_lt.desc_create(&d->op, ct, CUDA_R_32F), "cublasLtMatmulDescCreate");
  cublasOperation_t ta = (cublasOperation_t)k->ta, tb = (cublasOperation_t)k->tb;
  LT(g_lt.desc_set(d->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "set TRANSA");
  LT(g_lt.desc_set(d->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "set TRANSB");
  if (k->bias) {
    cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS; /* bias [N]: one per row of D */
    LT(g_lt.desc_set(d->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep), "set EPILOGUE");
    LT(g_lt.desc_set(d->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias),
       "set BIAS_POINTER");
  }
  /* stored A: [N, K] (op N) or [K, N] (op T); stored B: [K, M] or [M, K] */
  bool at = k->ta == CUBLAS_OP_T, bt = k->tb == CUBLAS_OP_T;
  LT(g_lt.layout_create(&d->a, ty, (uint64_t)(at ? k->k : k->n), (uint64_t)(at ? k->n : k->k),
                        k->lda),
     "cublasLtMatrixLayoutCreate (w)");
  LT(g_lt.layout_create(&d->b, ty, (uint64_t)(bt ? k->m : k->k), (uint64_t)(bt ? k->k : k->m),
                        k->ldb),
     "cublasLtMatrixLayoutCreate (x)");
  LT(g_lt.layout_create(&d->d, ty, (uint64_t)k->n, (uint64_t)k->m, k->n),
     "cublasLtMatrixLayoutCreate (out)");
  return DC_OK;
}

/* The heuristic's first algorithm for k; e->none when it has none. */
static int choose(lt_entry *e, const lt_desc *d, const lt_key *k) {
  cublasLtMatmulPreference_t pref = NULL;
  LT(g_lt.pref_create(&pref), "cublasLtMatmulPreferenceCreate");
  size_t ws = WORKSPACE_BYTES;
  uint32_t al[3] = {(uint32_t)k->align_a, (uint32_t)k->align_b, (uint32_t)k->align_d};
  cublasStatus_t st = g_lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = g_lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof al[0]);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = g_lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof al[1]);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = g_lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof al[2]);
  if (st == CUBLAS_STATUS_SUCCESS)
    st = g_lt.pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], sizeof al[2]);
  if (st != CUBLAS_STATUS_SUCCESS) {
    g_lt.pref_destroy(pref);
    return lt_fail(st, "cublasLtMatmulPreferenceSetAttribute");
  }
  cublasLtMatmulHeuristicResult_t r;
  memset(&r, 0, sizeof r);
  int n = 0;
  st = g_lt.heuristic(g_handle, d->op, d->a, d->b, d->d, d->d, pref, 1, &r, &n);
  g_lt.pref_destroy(pref);
  e->none = st != CUBLAS_STATUS_SUCCESS || n < 1 || r.state != CUBLAS_STATUS_SUCCESS;
  if (!e->none) e->algo = r.algo;
  return DC_OK;
}

/* The cached entry of k (chosen, evicting the least recently used, when missing); lock held. */
static int lookup(lt_entry **out, const lt_desc *d, const lt_key *k) {
  lt_entry *lru = &g_cache[0];
  for (int i = 0; i < NCACHE; i++) {
    lt_entry *e = &g_cache[i];
    if (e->used && memcmp(&e->key, k, sizeof *k) == 0) {
      e->last_use = ++g_clock;
      *out = e;
      return DC_OK;
    }
    if (!e->used || (lru->used && e->last_use < lru->last_use)) lru = e;
  }
  memset(lru, 0, sizeof *lru);
  int rc = choose(lru, d, k);
  if (rc != DC_OK) return rc;
  lru->key = *k;
  lru->used = true;
  lru->last_use = ++g_clock;
  *out = lru;
  return DC_OK;
}

/* ---- the two routes ---- */

/* out = bias broadcast (or 0), then out = x . w^T + out through gemm_batched */
static int unfused(dc_tensor *out, const dc_tensor *x, const dc_tensor *w, const dc_tensor *bias) {
  int rc = bias ? dc__cuda_copy(out, bias) : DC_OK;
  return rc == DC_OK ? dc__cuda_gemm_batched(out, x, w, false, true, 1.0f, bias ? 1.0f : 0.0f) : rc;
}

/* *done false when cuBLASLt has no algorithm for this product (the caller goes unfused) */
static int fused(bool *done, dc_tensor *out, const dc__cuda_mat *X, const dc__cuda_mat *W,
                 const void *bias) {
  lt_key k;
  memset(&k, 0, sizeof k); /* padding bytes too: keys compare with memcmp */
  int64_t lda, ldb;
  k.dtype = (int)out->dtype;
  k.tf32 = out->dtype == DC_F32 && dc__cuda_allow_tf32();
  k.bias = bias != NULL;
  k.ta = dc__cuda_blas_col_major(W, &lda) ? CUBLAS_OP_T : CUBLAS_OP_N;
  k.tb = dc__cuda_blas_col_major(X, &ldb) ? CUBLAS_OP_T : CUBLAS_OP_N;
  k.m = X->rows;
  k.n = W->cols;
  k.k = X->cols;
  k.lda = lda;
  k.ldb = ldb;
  k.align_a = align_of(W->data);
  k.align_b = align_of(X->data);
  k.align_d = align_of(dc__cuda_ptr(out));
  lt_desc d = {0};
  int rc = desc_make(&d, &k, bias);
  if (rc != DC_OK) {
    desc_free(&d);
    return rc;
  }
  pthread_mutex_lock(&g_lock);
  lt_entry *e = NULL;
  rc = lookup(&e, &d, &k);
  cublasLtMatmulAlgo_t algo;
  memset(&algo, 0, sizeof algo);
  bool none = rc != DC_OK || e->none;
  if (!none) algo = e->algo;
  pthread_mutex_unlock(&g_lock);
  void *ws = rc == DC_OK && !none ? dc__cuda_mem.alloc(WORKSPACE_BYTES) : NULL;
  if (rc == DC_OK && !none && ws) {
    float one = 1.0f, zero = 0.0f;
    void *pd = dc__cuda_ptr(out);
    cublasStatus_t st = g_lt.matmul(g_handle, d.op, &one, W->data, d.a, X->data, d.b, &zero, pd,
                                    d.d, pd, d.d, &algo, ws, WORKSPACE_BYTES, dc__cuda_stream());
    if (st == CUBLAS_STATUS_SUCCESS)
      *done = true;
    else if (st != CUBLAS_STATUS_NOT_SUPPORTED)
      rc = lt_fail(st, "cublasLtMatmul");
  }
  if (ws) dc__cuda_mem.free(ws); /* back to the cache: later work on the one stream follows */
  desc_free(&d);
  return rc;
}

static int check(const dc_tensor *out, const dc_tensor *x, const dc_tensor *w,
                 const dc_tensor *bias) {
  if (out->ndim != 2 || x->ndim != 2 || w->ndim != 2)
    return bad_args("operands must be 2-D", out, x, w);
  dc_dtype t = out->dtype;
  if (x->dtype != t || w->dtype != t || (bias && bias->dtype != t) ||
      (t != DC_F32 && t != DC_F64 && t != DC_BF16))
    return bad_args("dtypes (bias included) must all be float32, all float64 or all bfloat16", out,
                    x, w);
  if (x->shape[1] != w->shape[1] || out->shape[0] != x->shape[0] || out->shape[1] != w->shape[0])
    return bad_args("inner or outer dims do not match", out, x, w);
  if (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0]))
    return bad_args("bias must be 1-D [N]", out, x, w);
  if (dc_numel(out) > 0 && !dc_is_contiguous(out))
    return bad_args("out must be contiguous", out, x, w);
  return DC_OK;
}

int dc__cuda_linear(dc_tensor *out, const dc_tensor *x, const dc_tensor *w, const dc_tensor *bias) {
  int rc = check(out, x, w, bias);
  if (rc != DC_OK || dc_numel(out) == 0) return rc;
  int64_t m = x->shape[0], n = w->shape[0], k = x->shape[1];
  if (out->dtype == DC_F64 || k == 0 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
    return unfused(out, x, w, bias); /* gemm_batched says what it cannot do */
  pthread_once(&g_once, load_lt);
  if (g_load_error[0]) return dc__errs(DC_ERR_BACKEND, "cuda linear: %s", g_load_error);
  if (g_handle_status != CUBLAS_STATUS_SUCCESS) return lt_fail(g_handle_status, "cublasLtCreate");
  dc__cuda_mat X, W;
  rc = dc__cuda_blas_operand(x, false, &X);
  if (rc != DC_OK) return rc;
  rc = dc__cuda_blas_operand(w, true, &W);
  /* a contiguous, 16-byte aligned copy of a bias with another stride or a view's offset */
  dc_tensor *bc = NULL;
  if (rc == DC_OK && bias &&
      ((bias->stride[0] != 1 && n > 1) || ((uintptr_t)dc__cuda_ptr(bias) & 15u) != 0)) {
    bc = dc__new(dc_shape_of(bias), bias->dtype, bias->device);
    rc = bc ? dc__cuda_copy(bc, bias) : (int)dc_last_status();
  }
  bool done = false;
  if (rc == DC_OK) rc = fused(&done, out, &X, &W, bias ? dc__cuda_ptr(bc ? bc : bias) : NULL);
  if (rc == DC_OK && !done) rc = unfused(out, x, w, bias);
  dc_free(bc);
  dc_free(X.tmp);
  dc_free(W.tmp);
  return rc;
}
