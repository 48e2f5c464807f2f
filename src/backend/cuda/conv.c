/* The CUDA backend's 2-D convolution through cuDNN 9's C API (the legacy cudnnConvolution*
 * calls): forward, backward data, backward filter, float32, float64 and bfloat16, groups,
 * stride, dilation. One cuDNN handle per process on the backend's stream; the descriptors and the
 * algorithm of each direction are cached per geometry (a small LRU table); workspaces come from
 * the caching allocator. Asymmetric padding (padding="same" with an even kernel) is an explicit
 * zero-padded copy of the input (conv.cu) and a crop of its gradient. The bias add (conv.cu) and
 * the bias gradient (the backend's deterministic sum in double) are not cuDNN's.
 * Algorithms: cuDNN's heuristic order (cudnnGet*Algorithm_v7), the first deterministic one whose
 * workspace can be allocated, so backward runs repeat bit for bit (docs/cuda.md); only when no
 * deterministic one fits, the first that does. float32 runs
 * without TF32 (CUDNN_FMA_MATH) unless the backend's TF32 switch is on.
 * bfloat16 is the autocast contract (every operand bf16, float32 accumulation, each output
 * rounded once): cuDNN's PSEUDO_BFLOAT16 configuration (bf16 tensors, float compute,
 * CUDNN_TENSOR_OP_MATH); the bias is broadcast into y first and the convolution accumulated onto
 * it (beta 1), and its gradient is conv.cu's double sum rounded once.
 * Shapes: x [N, C, H, W], w [K, C/G, kH, kW], b [K], y [N, K, OH, OW]. */
#include "cuda-impl.h"

#include <cudnn.h>
#include <pthread.h>

#define NCACHE 32

/* What a cached entry is keyed by: the geometry cuDNN sees (after explicit padding) */
typedef struct conv_key {
  int dt, tf32; /* dt: the dc_dtype */
  int n, c, h, w, k, kh, kw, groups;
  int pad[2], stride[2], dilation[2];
} conv_key;

typedef struct conv_entry {
  bool used;
  uint64_t last_use;
  conv_key key;
  cudnnTensorDescriptor_t x, y;
  cudnnFilterDescriptor_t w;
  cudnnConvolutionDescriptor_t conv;
  bool have_fwd, have_data, have_filter; /* algorithm chosen */
  cudnnConvolutionFwdAlgo_t fwd;
  cudnnConvolutionBwdDataAlgo_t data;
  cudnnConvolutionBwdFilterAlgo_t filter;
} conv_entry;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* the handle and the cache */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static cudnnHandle_t g_handle;
static cudnnStatus_t g_handle_status = CUDNN_STATUS_NOT_INITIALIZED;
static const char *g_handle_what = "cudnnCreate";
static conv_entry g_cache[NCACHE];
static uint64_t g_clock;

static void make_handle(void) {
  g_handle_status = cudnnCreate(&g_handle);
  if (g_handle_status != CUDNN_STATUS_SUCCESS) return;
  g_handle_what = "cudnnSetStream";
  g_handle_status = cudnnSetStream(g_handle, dc__cuda_stream());
}

/* DC_ERR_BACKEND naming the op, the cuDNN call and cuDNN's own words */
static int dnn_fail(cudnnStatus_t st, const char *op, const char *what) {
  char last[256] = "";
  cudnnGetLastErrorString(last, sizeof last);
  return dc__errs(DC_ERR_BACKEND, "cuda %s: %s failed: %s%s%s", op, what, cudnnGetErrorString(st),
                  last[0] ? ": " : "", last);
}

#define DNN(call, op)                                                                              \
  do {                                                                                             \
    cudnnStatus_t st_ = (call);                                                                    \
    if (st_ != CUDNN_STATUS_SUCCESS) return dnn_fail(st_, op, #call);                              \
  } while (0)

/* ---- the cache ---- */

static bool asymmetric(const dc_conv2d_geom *g) {
  return g->pad_l[0] != g->pad_r[0] || g->pad_l[1] != g->pad_r[1];
}

static bool fits_int(int64_t v) { return v >= 0 && v <= INT32_MAX; }

/* The key of g; false when a size does not fit cuDNN's int descriptors. */
static bool make_key(conv_key *k, const dc_conv2d_geom *g, dc_dtype dt) {
  bool asym = asymmetric(g);
  int64_t h = asym ? g->h + g->pad_l[0] + g->pad_r[0] : g->h;
  int64_t w = asym ? g->w + g->pad_l[1] + g->pad_r[1] : g->w;
  int64_t v[] = {g->n,
                 g->c,
                 h,
                 w,
                 g->k,
                 g->kh,
                 g->kw,
                 g->groups,
                 g->stride[0],
                 g->stride[1],
                 g->dilation[0],
                 g->dilation[1],
                 g->pad_l[0],
                 g->pad_l[1],
                 g->n * g->c * h * w,
                 g->n * g->k * g->oh * g->ow};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    if (!fits_int(v[i])) return false;
  memset(k, 0, sizeof *k); /* padding bytes too: keys compare with memcmp */
  *k = (conv_key){.dt = (int)dt,
                  .tf32 = dt == DC_F32 && dc__cuda_allow_tf32(),
                  .n = (int)g->n,
                  .c = (int)g->c,
                  .h = (int)h,
                  .w = (int)w,
                  .k = (int)g->k,
                  .kh = (int)g->kh,
                  .kw = (int)g->kw,
                  .groups = (int)g->groups,
                  .pad = {asym ? 0 : (int)g->pad_l[0], asym ? 0 : (int)g->pad_l[1]},
                  .stride = {(int)g->stride[0], (int)g->stride[1]},
                  .dilation = {(int)g->dilation[0], (int)g->dilation[1]}};
  return true;
}

static void destroy_entry(conv_entry *e) {
  if (e->x) cudnnDestroyTensorDescriptor(e->x);
  if (e->y) cudnnDestroyTensorDescriptor(e->y);
  if (e->w) cudnnDestroyFilterDescriptor(e->w);
  if (e->conv) cudnnDestroyConvolutionDescriptor(e->conv);
  memset(e, 0, sizeof *e);
}

static int build_entry(conv_entry *e, const conv_key *k, const dc_conv2d_geom *g, const char *op) {
  bool f64 = k->dt == DC_F64, bf16 = k->dt == DC_BF16;
  cudnnDataType_t dt = f64 ? CUDNN_DATA_DOUBLE : bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  cudnnDataType_t compute = f64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  DNN(cudnnCreateTensorDescriptor(&e->x), op);
  DNN(cudnnCreateTensorDescriptor(&e->y), op);
  DNN(cudnnCreateFilterDescriptor(&e->w), op);
  DNN(cudnnCreateConvolutionDescriptor(&e->conv), op);
  DNN(cudnnSetTensor4dDescriptor(e->x, CUDNN_TENSOR_NCHW, dt, k->n, k->c, k->h, k->w), op);
  DNN(cudnnSetFilter4dDescriptor(e->w, dt, CUDNN_TENSOR_NCHW, k->k, k->c / k->groups, k->kh, k->kw),
      op);
  DNN(cudnnSetConvolution2dDescriptor(e->conv, k->pad[0], k->pad[1], k->stride[0], k->stride[1],
                                      k->dilation[0], k->dilation[1], CUDNN_CROSS_CORRELATION,
                                      compute),
      op);
  DNN(cudnnSetConvolutionGroupCount(e->conv, k->groups), op);
  /* float32: FMA kernels only, or tensor cores (TF32) when allowed, as PyTorch's allow_tf32;
   * bfloat16: tensor cores */
  cudnnMathType_t math = f64               ? CUDNN_DEFAULT_MATH
                         : k->tf32 || bf16 ? CUDNN_TENSOR_OP_MATH
                                           : CUDNN_FMA_MATH;
  DNN(cudnnSetConvolutionMathType(e->conv, math), op);
  int n, c, oh, ow;
  DNN(cudnnGetConvolution2dForwardOutputDim(e->conv, e->x, e->w, &n, &c, &oh, &ow), op);
  if (n != g->n || c != g->k || oh != g->oh || ow != g->ow)
    return dc__errs(DC_ERR_BACKEND,
                    "cuda %s: cuDNN's output %dx%dx%dx%d differs from deepc's %lldx%lldx%lldx%lld "
                    "(a bug: please report the geometry)",
                    op, n, c, oh, ow, (long long)g->n, (long long)g->k, (long long)g->oh,
                    (long long)g->ow);
  DNN(cudnnSetTensor4dDescriptor(e->y, CUDNN_TENSOR_NCHW, dt, n, c, oh, ow), op);
  e->key = *k;
  e->used = true;
  return DC_OK;
}

/* The cached entry of g (made, evicting the least recently used, when missing); lock held. */
static int lookup(conv_entry **out, const dc_conv2d_geom *g, dc_dtype dt, const char *op) {
  conv_key k;
  if (!make_key(&k, g, dt))
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "%s: a size or tensor above 2^31 elements is not yet on cuda (cuDNN's 4-D "
                    "descriptors take int); split the batch",
                    op);
  conv_entry *lru = &g_cache[0];
  for (int i = 0; i < NCACHE; i++) {
    conv_entry *e = &g_cache[i];
    if (e->used && memcmp(&e->key, &k, sizeof k) == 0) {
      e->last_use = ++g_clock;
      *out = e;
      return DC_OK;
    }
    if (!e->used || (lru->used && e->last_use < lru->last_use)) lru = e;
  }
  destroy_entry(lru);
  int rc = build_entry(lru, &k, g, op);
  if (rc != DC_OK) {
    destroy_entry(lru);
    return rc;
  }
  lru->last_use = ++g_clock;
  *out = lru;
  return DC_OK;
}

/* ---- workspace ---- */

typedef struct workspace {
  void *p;
  size_t size;
} workspace;

/* false when the allocator cannot give size bytes */
static bool ws_get(workspace *ws, size_t size) {
  ws->size = size;
  ws->p = size ? dc__cuda_mem.alloc(size) : NULL;
  return !size || ws->p;
}

/* back to the caching allocator: later work on the one stream runs after this call's */
static void ws_put(workspace *ws) {
  if (ws->p) dc__cuda_mem.free(ws->p);
  ws->p = NULL;
}

static int ws_nomem(const char *op, size_t size) {
  return dc__errs(DC_ERR_NOMEM,
                  "%s: out of device memory for a cuDNN workspace of %zu bytes; use a smaller "
                  "batch",
                  op, size);
}

/* ---- algorithm choice: the first deterministic candidate (heuristic order) whose workspace
 * can be allocated; that workspace serves the call. ---- */

/* pass 0 takes deterministic algorithms only; pass 1 (when cuDNN offers none that fits) any */
static bool usable(cudnnStatus_t st, cudnnDeterminism_t det, int pass) {
  return st == CUDNN_STATUS_SUCCESS && (pass == 1 || det == CUDNN_DETERMINISTIC);
}

static int no_algo(const char *op, const char *dir, int n) {
  return dc__errs(DC_ERR_BACKEND,
                  "cuda %s: cuDNN offers no %s algorithm whose workspace fits in device memory "
                  "(%d candidates); use a smaller batch",
                  op, dir, n);
}

static int choose_fwd(conv_entry *e, workspace *ws, const char *op) {
  cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  int n = 0;
  DNN(cudnnGetConvolutionForwardAlgorithm_v7(g_handle, e->x, e->w, e->conv, e->y,
                                             CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf),
      op);
  for (int i = 0; i < 2 * n; i++) {
    const cudnnConvolutionFwdAlgoPerf_t *q = &perf[i % n];
    size_t size = 0;
    if (!usable(q->status, q->determinism, i / n) ||
        cudnnGetConvolutionForwardWorkspaceSize(g_handle, e->x, e->w, e->conv, e->y, q->algo,
                                                &size) != CUDNN_STATUS_SUCCESS ||
        !ws_get(ws, size))
      continue;
    e->fwd = q->algo;
    e->have_fwd = true;
    return DC_OK;
  }
  return no_algo(op, "forward", n);
}

static int choose_data(conv_entry *e, workspace *ws, const char *op) {
  cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  int n = 0;
  DNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(g_handle, e->w, e->y, e->conv, e->x,
                                                  CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf),
      op);
  for (int i = 0; i < 2 * n; i++) {
    const cudnnConvolutionBwdDataAlgoPerf_t *q = &perf[i % n];
    size_t size = 0;
    if (!usable(q->status, q->determinism, i / n) ||
        cudnnGetConvolutionBackwardDataWorkspaceSize(g_handle, e->w, e->y, e->conv, e->x, q->algo,
                                                     &size) != CUDNN_STATUS_SUCCESS ||
        !ws_get(ws, size))
      continue;
    e->data = q->algo;
    e->have_data = true;
    return DC_OK;
  }
  return no_algo(op, "backward-data", n);
}

static int choose_filter(conv_entry *e, workspace *ws, const char *op) {
  cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int n = 0;
  DNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
          g_handle, e->x, e->y, e->conv, e->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, perf),
      op);
  for (int i = 0; i < 2 * n; i++) {
    const cudnnConvolutionBwdFilterAlgoPerf_t *q = &perf[i % n];
    size_t size = 0;
    if (!usable(q->status, q->determinism, i / n) ||
        cudnnGetConvolutionBackwardFilterWorkspaceSize(g_handle, e->x, e->y, e->conv, e->w, q->algo,
                                                       &size) != CUDNN_STATUS_SUCCESS ||
        !ws_get(ws, size))
      continue;
    e->filter = q->algo;
    e->have_filter = true;
    return DC_OK;
  }
  return no_algo(op, "backward-filter", n);
}

/* ---- the three directions (lock held); x is the padded input when padding is explicit ---- */

typedef struct scale {
  float f[2];
  double d[2];
} scale;

static const void *one(const scale *s, bool f64) { return f64 ? (const void *)&s->d[1] : &s->f[1]; }
static const void *zero(const scale *s, bool f64) {
  return f64 ? (const void *)&s->d[0] : &s->f[0];
}
static const scale g_scale = {{0.0f, 1.0f}, {0.0, 1.0}};

/* y = conv(x, w), or y += conv(x, w) with accumulate (beta 1) */
static int run_fwd(conv_entry *e, dc_tensor *y, const dc_tensor *x, const dc_tensor *w,
                   bool accumulate) {
  const char *op = "conv2d";
  bool f64 = e->key.dt == DC_F64;
  workspace ws = {0};
  if (!e->have_fwd) {
    int rc = choose_fwd(e, &ws, op);
    if (rc != DC_OK) return rc;
  } else {
    size_t size = 0;
    DNN(cudnnGetConvolutionForwardWorkspaceSize(g_handle, e->x, e->w, e->conv, e->y, e->fwd, &size),
        op);
    if (!ws_get(&ws, size)) return ws_nomem(op, size);
  }
  cudnnStatus_t st = cudnnConvolutionForward(
      g_handle, one(&g_scale, f64), e->x, dc__cuda_ptr(x), e->w, dc__cuda_ptr(w), e->conv, e->fwd,
      ws.p, ws.size, accumulate ? one(&g_scale, f64) : zero(&g_scale, f64), e->y, dc__cuda_ptr(y));
  ws_put(&ws);
  return st == CUDNN_STATUS_SUCCESS ? DC_OK : dnn_fail(st, op, "cudnnConvolutionForward");
}

static int run_data(conv_entry *e, dc_tensor *gx, const dc_tensor *gy, const dc_tensor *w) {
  const char *op = "conv2d backward (input)";
  bool f64 = e->key.dt == DC_F64;
  workspace ws = {0};
  if (!e->have_data) {
    int rc = choose_data(e, &ws, op);
    if (rc != DC_OK) return rc;
  } else {
    size_t size = 0;
    DNN(cudnnGetConvolutionBackwardDataWorkspaceSize(g_handle, e->w, e->y, e->conv, e->x, e->data,
                                                     &size),
        op);
    if (!ws_get(&ws, size)) return ws_nomem(op, size);
  }
  cudnnStatus_t st = cudnnConvolutionBackwardData(
      g_handle, one(&g_scale, f64), e->w, dc__cuda_ptr(w), e->y, dc__cuda_ptr(gy), e->conv, e->data,
      ws.p, ws.size, zero(&g_scale, f64), e->x, dc__cuda_ptr(gx));
  ws_put(&ws);
  return st == CUDNN_STATUS_SUCCESS ? DC_OK : dnn_fail(st, op, "cudnnConvolutionBackwardData");
}

static int run_filter(conv_entry *e, dc_tensor *gw, const dc_tensor *gy, const dc_tensor *x) {
  const char *op = "conv2d backward (weight)";
  bool f64 = e->key.dt == DC_F64;
  workspace ws = {0};
  if (!e->have_filter) {
    int rc = choose_filter(e, &ws, op);
    if (rc != DC_OK) return rc;
  } else {
    size_t size = 0;
    DNN(cudnnGetConvolutionBackwardFilterWorkspaceSize(g_handle, e->x, e->y, e->conv, e->w,
                                                       e->filter, &size),
        op);
    if (!ws_get(&ws, size)) return ws_nomem(op, size);
  }
  cudnnStatus_t st = cudnnConvolutionBackwardFilter(
      g_handle, one(&g_scale, f64), e->x, dc__cuda_ptr(x), e->y, dc__cuda_ptr(gy), e->conv,
      e->filter, ws.p, ws.size, zero(&g_scale, f64), e->w, dc__cuda_ptr(gw));
  ws_put(&ws);
  return st == CUDNN_STATUS_SUCCESS ? DC_OK : dnn_fail(st, op, "cudnnConvolutionBackwardFilter");
}

/* ---- entries ---- */

/* x's dtype is float32, float64 or bfloat16 and t's (w, y, a gradient; NULL: none) the same */
static int check_dtype(const dc_tensor *x, const dc_tensor *t, const char *op) {
  dc_dtype d = x->dtype;
  if (d != DC_F32 && d != DC_F64 && d != DC_BF16)
    return dc__errs(DC_ERR_ARG, "%s: cuda convolution takes float32, float64 or bfloat16, got %s",
                    op, dc_dtype_name(d));
  if (t && t->dtype != d)
    return dc__errs(DC_ERR_ARG,
                    "%s: cuda convolution takes every operand in x's dtype %s, got %s beside it",
                    op, dc_dtype_name(d), dc_dtype_name(t->dtype));
  return DC_OK;
}

/* x zero-padded to [N, C, Hp, Wp] when the padding is asymmetric (*xp NULL otherwise) */
static int pad_input(dc_tensor **xp, const dc_tensor *x, const dc_conv2d_geom *g) {
  *xp = NULL;
  if (!asymmetric(g)) return DC_OK;
  *xp = dc__new(
      DC_SHAPE(g->n, g->c, g->h + g->pad_l[0] + g->pad_r[0], g->w + g->pad_l[1] + g->pad_r[1]),
      x->dtype, x->device);
  if (!*xp) return dc_last_status();
  int rc = dc__cuda_conv_pad(*xp, x, g);
  if (rc != DC_OK) {
    dc_free(*xp);
    *xp = NULL;
  }
  return rc;
}

static int handle(const char *op) {
  pthread_once(&g_once, make_handle);
  return g_handle_status == CUDNN_STATUS_SUCCESS ? DC_OK
                                                 : dnn_fail(g_handle_status, op, g_handle_what);
}

int dc__cuda_conv2d_forward(dc_tensor *y, const dc_tensor *x, const dc_tensor *w,
                            const dc_tensor *b, const dc_conv2d_geom *g) {
  int rc = check_dtype(x, w, "conv2d");
  if (rc == DC_OK) rc = check_dtype(x, y, "conv2d");
  if (rc == DC_OK && b) rc = check_dtype(x, b, "conv2d");
  if (rc != DC_OK || dc_numel(y) == 0) return rc;
  /* bfloat16: y = b, then y += conv (cuDNN's float accumulator, one rounding) */
  bool bias_first = b && x->dtype == DC_BF16;
  if (g->c == 0) { /* no input channels: y is the bias */
    if (bias_first) return dc__cuda_conv_bias_fill(y, b, g);
    rc = dc__cuda_fill(y, 0.0);
    return rc == DC_OK && b ? dc__cuda_conv_bias_add(y, b, g) : rc;
  }
  rc = handle("conv2d");
  if (rc != DC_OK) return rc;
  dc_tensor *xp = NULL;
  rc = pad_input(&xp, x, g);
  if (rc != DC_OK) return rc;
  if (bias_first) rc = dc__cuda_conv_bias_fill(y, b, g);
  pthread_mutex_lock(&g_lock);
  conv_entry *e = NULL;
  if (rc == DC_OK) rc = lookup(&e, g, x->dtype, "conv2d");
  if (rc == DC_OK) rc = run_fwd(e, y, xp ? xp : x, w, bias_first);
  pthread_mutex_unlock(&g_lock);
  dc_free(xp);
  if (rc == DC_OK && b && !bias_first) rc = dc__cuda_conv_bias_add(y, b, g);
  return rc;
}

/* gb [K] = gy summed over N, OH, OW (the backend's reduction: double, fixed order) */
static int bias_grad(dc_tensor *gb, const dc_tensor *gy, const dc_conv2d_geom *g) {
  if (dc_numel(gy) == 0) return dc__cuda_fill(gb, 0.0);
  if (gb->dtype == DC_BF16) return dc__cuda_conv_bias_grad_bf16(gb, gy, g);
  dc_tensor *t = dc__new(DC_SHAPE(1, g->k, 1, 1), gb->dtype, gb->device);
  if (!t) return dc_last_status();
  int rc = dc__cuda_reduce(DC_RED_SUM, t, gy, (1u << 0) | (1u << 2) | (1u << 3));
  if (rc == DC_OK)
    rc = dc__cuda_fail(cudaMemcpyAsync(dc__cuda_ptr(gb), dc__cuda_ptr(t),
                                       (size_t)g->k * dc_dtype_size(gb->dtype),
                                       cudaMemcpyDeviceToDevice, dc__cuda_stream()),
                       "conv2d backward (bias): cudaMemcpyAsync");
  dc_free(t);
  return rc;
}

/* gx and gw through cuDNN (lock held) */
static int backward_dnn(dc_tensor *gx, dc_tensor *gw, const dc_tensor *gy, const dc_tensor *x,
                        const dc_tensor *w, const dc_conv2d_geom *g) {
  conv_entry *e = NULL;
  int rc = lookup(&e, g, x->dtype, "conv2d backward");
  if (rc != DC_OK) return rc;
  bool asym = asymmetric(g);
  if (gx) {
    dc_tensor *gxp = asym ? dc__new(DC_SHAPE(g->n, g->c, g->h + g->pad_l[0] + g->pad_r[0],
                                             g->w + g->pad_l[1] + g->pad_r[1]),
                                    gx->dtype, gx->device)
                          : NULL;
    if (asym && !gxp) return dc_last_status();
    rc = run_data(e, gxp ? gxp : gx, gy, w);
    if (rc == DC_OK && gxp) rc = dc__cuda_conv_crop(gx, gxp, g);
    dc_free(gxp);
    if (rc != DC_OK) return rc;
  }
  if (gw) {
    dc_tensor *xp = NULL;
    rc = pad_input(&xp, x, g);
    if (rc == DC_OK) rc = run_filter(e, gw, gy, xp ? xp : x);
    dc_free(xp);
  }
  return rc;
}

int dc__cuda_conv2d_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                             const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g) {
  const char *op = "conv2d backward";
  int rc = check_dtype(x, gy, op);
  if (rc == DC_OK) rc = check_dtype(x, w, op);
  if (rc == DC_OK && gx) rc = check_dtype(x, gx, op);
  if (rc == DC_OK && gw) rc = check_dtype(x, gw, op);
  if (rc == DC_OK && gb) rc = check_dtype(x, gb, op);
  if (rc == DC_OK && gb) rc = bias_grad(gb, gy, g);
  if (rc != DC_OK || (!gx && !gw)) return rc;
  if (dc_numel(gy) == 0 || g->c == 0) { /* nothing flows: zero gradients */
    if (gx && dc_numel(gx)) rc = dc__cuda_fill(gx, 0.0);
    if (rc == DC_OK && gw && dc_numel(gw)) rc = dc__cuda_fill(gw, 0.0);
    return rc;
  }
  rc = handle("conv2d backward");
  if (rc != DC_OK) return rc;
  pthread_mutex_lock(&g_lock);
  rc = backward_dnn(gx, gw, gy, x, w, g);
  pthread_mutex_unlock(&g_lock);
  return rc;
}
