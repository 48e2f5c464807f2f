/* float32 and bfloat16 2-D convolution through oneDNN 2.6 primitives (forward, backward data,
 * backward weights + bias). oneDNN picks the memory formats (format_tag any, usually nChw16c on
 * AVX-512); the API stays NCHW, so activations are reordered into reused scratch buffers only when
 * the chosen format differs. Primitives and reorders are cached per geometry (creation is slow).
 * The algorithm is direct or Winograd F(4x4, 3x3) per layer (conv_alg, dc_set_conv_algo).
 * Shapes: x [N, C, H, W], w [K, C/G, kH, kW] (oneDNN's [G, K/G, C/G, kH, kW] when grouped),
 * b [K], y [N, K, OH, OW]. bfloat16: every tensor bfloat16 (bias and gradients too), oneDNN
 * accumulating in float32 and rounding each output once. */
#include "nn-cpu.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#define CACHE_CAP 64
#define SMALL_REORDER ((size_t)256 << 10) /* bytes; see run_reorder */

/* One tensor argument of a primitive: the user's plain layout, the primitive's chosen one, and
 * the reorders between them (NULL when the layouts are equal, or not built yet). */
typedef struct conv_arg {
  dnnl_memory_desc_t user, prim;
  bool same;
  dnnl_primitive_t to_prim, to_user;
} conv_arg;

typedef struct conv_key {
  dc_conv2d_geom g;
  int64_t has_bias;
  int64_t bf16; /* 1: bfloat16 tensors */
} conv_key;

typedef struct conv_entry {
  conv_key key;
  int refs;     /* users outside the cache lock */
  bool evicted; /* dropped from the table, destroyed when refs reaches 0 */
  uint64_t last_use;
  dnnl_primitive_desc_t fwd_pd;
  dnnl_primitive_t fwd;
  conv_arg f_src, f_wei, f_bias, f_dst;
  dnnl_primitive_t bwd_data; /* NULL until first needed */
  conv_arg d_dsrc, d_wei, d_ddst;
  dnnl_primitive_t bwd_weights;
  conv_arg w_src, w_dwei, w_dbias, w_ddst;
} conv_entry;

static dnnl_engine_t g_engine;
static pthread_once_t g_engine_once = PTHREAD_ONCE_INIT;
static dnnl_status_t g_engine_status = dnnl_runtime_error;
static pthread_key_t g_stream_key; /* each thread's stream, destroyed when the thread exits */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static conv_entry *g_cache[CACHE_CAP];
static uint64_t g_clock;
static int64_t g_created;

static void stream_destroy(void *s) { dnnl_stream_destroy(s); }

static void engine_init(void) {
  if (pthread_key_create(&g_stream_key, stream_destroy) != 0) return;
  g_engine_status = dnnl_engine_create(&g_engine, dnnl_cpu, 0);
}

static dnnl_stream_t get_stream(void) {
  pthread_once(&g_engine_once, engine_init);
  if (g_engine_status != dnnl_success) return NULL;
  dnnl_stream_t s = pthread_getspecific(g_stream_key);
  if (!s) {
    if (dnnl_stream_create(&s, g_engine, dnnl_stream_default_flags) != dnnl_success) return NULL;
    if (pthread_setspecific(g_stream_key, s) != 0) {
      dnnl_stream_destroy(s);
      return NULL;
    }
  }
  return s;
}

int64_t dc__cpu_conv2d_dnnl_created(void) { return __atomic_load_n(&g_created, __ATOMIC_RELAXED); }

/* ---- building ---- */

static void arg_destroy(conv_arg *a) {
  if (a->to_prim) dnnl_primitive_destroy(a->to_prim);
  if (a->to_user) dnnl_primitive_destroy(a->to_user);
  a->to_prim = a->to_user = NULL;
}

static void entry_destroy(conv_entry *e) {
  conv_arg *args[] = {&e->f_src,  &e->f_wei, &e->f_bias, &e->f_dst,   &e->d_dsrc, &e->d_wei,
                      &e->d_ddst, &e->w_src, &e->w_dwei, &e->w_dbias, &e->w_ddst};
  for (size_t i = 0; i < sizeof args / sizeof *args; i++) arg_destroy(args[i]);
  if (e->fwd) dnnl_primitive_destroy(e->fwd);
  if (e->bwd_data) dnnl_primitive_destroy(e->bwd_data);
  if (e->bwd_weights) dnnl_primitive_destroy(e->bwd_weights);
  if (e->fwd_pd) dnnl_primitive_desc_destroy(e->fwd_pd);
  dc__free(e);
}

static dnnl_primitive_t make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to) {
  dnnl_primitive_desc_t pd;
  if (dnnl_reorder_primitive_desc_create(&pd, from, g_engine, to, g_engine, NULL) != dnnl_success)
    return NULL;
  dnnl_primitive_t p = NULL;
  if (dnnl_primitive_create(&p, pd) != dnnl_success) p = NULL;
  dnnl_primitive_desc_destroy(pd);
  return p;
}

/* Fills a from the primitive's chosen layout; input: build the user->prim reorder, else the
 * prim->user one (when the layouts differ). */
static bool arg_init(conv_arg *a, const dnnl_memory_desc_t *user, dnnl_primitive_desc_t pd,
                     dnnl_query_t what, int index, bool input) {
  const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, what, index);
  if (!md) return false;
  a->user = *user;
  a->prim = *md;
  a->same = dnnl_memory_desc_equal(user, md) != 0;
  if (a->same) return true;
  if (input)
    a->to_prim = make_reorder(user, md);
  else
    a->to_user = make_reorder(md, user);
  return input ? a->to_prim != NULL : a->to_user != NULL;
}

typedef struct conv_descs {
  dnnl_memory_desc_t src, wei, bias, dst; /* user layouts */
  dnnl_memory_desc_t any_src, any_wei, any_bias, any_dst;
  dnnl_dims_t strides, dilates, pad_l, pad_r;
} conv_descs;

static bool descs_init(conv_descs *d, const dc_conv2d_geom *g, bool bf16) {
  dnnl_dims_t src = {g->n, g->c, g->h, g->w}, dst = {g->n, g->k, g->oh, g->ow}, bias = {g->k};
  dnnl_dims_t wei = {g->k, g->c / g->groups, g->kh, g->kw};
  dnnl_dims_t gwei = {g->groups, g->k / g->groups, g->c / g->groups, g->kh, g->kw};
  bool grouped = g->groups > 1;
  dnnl_data_type_t f = bf16 ? dnnl_bf16 : dnnl_f32;
  bool ok =
      dnnl_memory_desc_init_by_tag(&d->src, 4, src, f, dnnl_nchw) == dnnl_success &&
      dnnl_memory_desc_init_by_tag(&d->dst, 4, dst, f, dnnl_nchw) == dnnl_success &&
      dnnl_memory_desc_init_by_tag(&d->bias, 1, bias, f, dnnl_x) == dnnl_success &&
      dnnl_memory_desc_init_by_tag(&d->wei, grouped ? 5 : 4, grouped ? gwei : wei, f,
                                   grouped ? dnnl_goihw : dnnl_oihw) == dnnl_success &&
      dnnl_memory_desc_init_by_tag(&d->any_src, 4, src, f, dnnl_format_tag_any) == dnnl_success &&
      dnnl_memory_desc_init_by_tag(&d->any_dst, 4, dst, f, dnnl_format_tag_any) == dnnl_success &&
      dnnl_memory_desc_init_by_tag(&d->any_bias, 1, bias, f, dnnl_format_tag_any) == dnnl_success &&
      dnnl_memory_desc_init_by_tag(&d->any_wei, grouped ? 5 : 4, grouped ? gwei : wei, f,
                                   dnnl_format_tag_any) == dnnl_success;
  for (int i = 0; i < 2; i++) {
    d->strides[i] = g->stride[i];
    d->dilates[i] = g->dilation[i] - 1; /* oneDNN counts the gaps */
    d->pad_l[i] = g->pad_l[i];
    d->pad_r[i] = g->pad_r[i];
  }
  return ok;
}

/* The oneDNN algorithm for this layer under g->algo (dc_set_conv_algo). Winograd needs 3x3,
 * stride 1, no dilation, no groups; AUTO also wants enough channels and 4x4 output tiles to
 * amortise the transforms (measured per layer on ResNet34 and VGG11: docs/performance.md). */
static dnnl_alg_kind_t conv_alg(const dc_conv2d_geom *g) {
  bool fits = g->kh == 3 && g->kw == 3 && g->stride[0] == 1 && g->stride[1] == 1 &&
              g->dilation[0] == 1 && g->dilation[1] == 1 && g->groups == 1;
  if (!fits || g->algo == DC_CONV_ALGO_DIRECT) return dnnl_convolution_direct;
  if (g->algo == DC_CONV_ALGO_WINOGRAD) return dnnl_convolution_winograd;
  int64_t tiles = g->n * ((g->oh + 3) / 4) * ((g->ow + 3) / 4);
  bool pays = g->c >= 16 && g->k >= 16 && g->oh >= 4 && g->ow >= 4 && tiles >= 64;
  return pays ? dnnl_convolution_winograd : dnnl_convolution_direct;
}

enum { FWD, BWD_DATA, BWD_WEIGHTS };

/* The primitive descriptor of one pass with algorithm alg (false when oneDNN has none). */
static bool pass_pd(conv_entry *e, const conv_descs *d, int pass, dnnl_alg_kind_t alg,
                    dnnl_primitive_desc_t *pd) {
  dnnl_convolution_desc_t cd;
  const dnnl_memory_desc_t *bias = e->key.has_bias ? &d->any_bias : NULL;
  dnnl_status_t st =
      pass == FWD
          ? dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_training, alg, &d->any_src,
                                                       &d->any_wei, bias, &d->any_dst, d->strides,
                                                       d->dilates, d->pad_l, d->pad_r)
      : pass == BWD_DATA
          ? dnnl_dilated_convolution_backward_data_desc_init(&cd, alg, &d->any_src, &d->any_wei,
                                                             &d->any_dst, d->strides, d->dilates,
                                                             d->pad_l, d->pad_r)
          : dnnl_dilated_convolution_backward_weights_desc_init(&cd, alg, &d->any_src, &d->any_wei,
                                                                bias, &d->any_dst, d->strides,
                                                                d->dilates, d->pad_l, d->pad_r);
  if (st != dnnl_success) return false;
  if (dnnl_primitive_desc_create(pd, &cd, NULL, g_engine, pass == FWD ? NULL : e->fwd_pd) !=
      dnnl_success) {
    *pd = NULL;
    return false;
  }
  return true;
}

/* The pass's descriptor with the layer's algorithm, else direct (Winograd is not offered on
 * every CPU). */
static bool pass_pd_any(conv_entry *e, const conv_descs *d, int pass, dnnl_primitive_desc_t *pd) {
  dnnl_alg_kind_t alg = conv_alg(&e->key.g);
  return pass_pd(e, d, pass, alg, pd) ||
         (alg != dnnl_convolution_direct && pass_pd(e, d, pass, dnnl_convolution_direct, pd));
}

static bool build_forward(conv_entry *e) {
  conv_descs d;
  if (!descs_init(&d, &e->key.g, e->key.bf16) || !pass_pd_any(e, &d, FWD, &e->fwd_pd)) return false;
  if (dnnl_primitive_create(&e->fwd, e->fwd_pd) != dnnl_success) {
    e->fwd = NULL;
    return false;
  }
  return arg_init(&e->f_src, &d.src, e->fwd_pd, dnnl_query_src_md, 0, true) &&
         arg_init(&e->f_wei, &d.wei, e->fwd_pd, dnnl_query_weights_md, 0, true) &&
         (!e->key.has_bias ||
          arg_init(&e->f_bias, &d.bias, e->fwd_pd, dnnl_query_weights_md, 1, true)) &&
         arg_init(&e->f_dst, &d.dst, e->fwd_pd, dnnl_query_dst_md, 0, false);
}

static bool build_backward_data(conv_entry *e) {
  conv_descs d;
  dnnl_primitive_desc_t pd;
  if (!descs_init(&d, &e->key.g, e->key.bf16) || !pass_pd_any(e, &d, BWD_DATA, &pd)) return false;
  bool ok = dnnl_primitive_create(&e->bwd_data, pd) == dnnl_success;
  if (!ok) e->bwd_data = NULL;
  ok = ok && arg_init(&e->d_dsrc, &d.src, pd, dnnl_query_diff_src_md, 0, false) &&
       arg_init(&e->d_wei, &d.wei, pd, dnnl_query_weights_md, 0, true) &&
       arg_init(&e->d_ddst, &d.dst, pd, dnnl_query_diff_dst_md, 0, true);
  dnnl_primitive_desc_destroy(pd);
  if (!ok) { /* leave the entry as unbuilt, so no later call uses half of it */
    if (e->bwd_data) dnnl_primitive_destroy(e->bwd_data);
    e->bwd_data = NULL;
    arg_destroy(&e->d_dsrc), arg_destroy(&e->d_wei), arg_destroy(&e->d_ddst);
  }
  return ok;
}

static bool build_backward_weights(conv_entry *e) {
  conv_descs d;
  dnnl_primitive_desc_t pd;
  if (!descs_init(&d, &e->key.g, e->key.bf16) || !pass_pd_any(e, &d, BWD_WEIGHTS, &pd))
    return false;
  bool ok = dnnl_primitive_create(&e->bwd_weights, pd) == dnnl_success;
  if (!ok) e->bwd_weights = NULL;
  ok = ok && arg_init(&e->w_src, &d.src, pd, dnnl_query_src_md, 0, true) &&
       arg_init(&e->w_dwei, &d.wei, pd, dnnl_query_diff_weights_md, 0, false) &&
       (!e->key.has_bias ||
        arg_init(&e->w_dbias, &d.bias, pd, dnnl_query_diff_weights_md, 1, false)) &&
       arg_init(&e->w_ddst, &d.dst, pd, dnnl_query_diff_dst_md, 0, true);
  dnnl_primitive_desc_destroy(pd);
  if (!ok) {
    if (e->bwd_weights) dnnl_primitive_destroy(e->bwd_weights);
    e->bwd_weights = NULL;
    arg_destroy(&e->w_src), arg_destroy(&e->w_dwei), arg_destroy(&e->w_dbias);
    arg_destroy(&e->w_ddst);
  }
  return ok;
}

/* ---- the cache ---- */

/* The entry for this geometry with the wanted primitives built (NULL when oneDNN cannot). */
static conv_entry *acquire(const dc_conv2d_geom *g, bool has_bias, bool bf16, bool bwd_data,
                           bool bwd_weights) {
  conv_key key;
  memset(&key, 0, sizeof key);
  key.g = *g;
  key.has_bias = has_bias;
  key.bf16 = bf16;
  pthread_mutex_lock(&g_lock);
  conv_entry *e = NULL;
  int slot = -1;
  for (int i = 0; i < CACHE_CAP; i++) {
    if (g_cache[i] && memcmp(&g_cache[i]->key, &key, sizeof key) == 0) {
      e = g_cache[i];
      break;
    }
    /* the slot for a new entry: the first empty one, else the least recently used */
    if (slot < 0 ||
        (g_cache[slot] && (!g_cache[i] || g_cache[i]->last_use < g_cache[slot]->last_use)))
      slot = i;
  }
  if (!e) {
    e = dc__calloc(1, sizeof *e);
    if (e) e->key = key;
    if (!e || !build_forward(e)) {
      if (e) entry_destroy(e);
      pthread_mutex_unlock(&g_lock);
      return NULL;
    }
    __atomic_add_fetch(&g_created, 1, __ATOMIC_RELAXED);
    conv_entry *old = g_cache[slot];
    if (old) {
      old->evicted = true;
      if (old->refs == 0) entry_destroy(old);
    }
    g_cache[slot] = e;
  }
  bool ok = (!bwd_data || e->bwd_data || build_backward_data(e)) &&
            (!bwd_weights || e->bwd_weights || build_backward_weights(e));
  if (ok) {
    e->refs++;
    e->last_use = ++g_clock;
  }
  pthread_mutex_unlock(&g_lock);
  return ok ? e : NULL;
}

static void release(conv_entry *e) {
  pthread_mutex_lock(&g_lock);
  if (--e->refs == 0 && e->evicted) entry_destroy(e);
  pthread_mutex_unlock(&g_lock);
}

/* ---- execution ---- */

static int run(dnnl_primitive_t p, dnnl_stream_t s, int nargs, const dnnl_exec_arg_t *args) {
  if (dnnl_primitive_execute(p, s, nargs, args) != dnnl_success ||
      dnnl_stream_wait(s) != dnnl_success)
    return dc__errs(DC_ERR_BACKEND, "conv2d: oneDNN failed to execute a convolution primitive");
  return DC_OK;
}

/* A reorder of `bytes`: small ones (weights) run on the calling thread alone, since waking the
 * team costs more than the copy (and much more on a busy machine). */
static int run_reorder(dnnl_primitive_t p, dnnl_stream_t s, dnnl_memory_t from, dnnl_memory_t to,
                       size_t bytes) {
  int threads = omp_get_max_threads();
  bool alone = bytes < SMALL_REORDER && threads > 1;
  if (alone) omp_set_num_threads(1);
  int rc = run(p, s, 2, (dnnl_exec_arg_t[]){{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}});
  if (alone) omp_set_num_threads(threads);
  return rc;
}

/* A memory object over data with layout md (NULL on failure). */
static dnnl_memory_t mem(const dnnl_memory_desc_t *md, void *data) {
  dnnl_memory_t m = NULL;
  if (dnnl_memory_create(&m, md, g_engine, data) != dnnl_success) return NULL;
  return m;
}

/* The primitive-side memory of an argument: the user's buffer when the layouts agree, else a
 * scratch buffer (*ws, to return) filled from the user's data when `fill`. */
static dnnl_memory_t prim_mem(const conv_arg *a, void *user_data, bool fill, dnnl_stream_t s,
                              void **ws, int *rc) {
  *ws = NULL;
  if (a->same) {
    if (!fill) dc__cpu_nn_hint_output(user_data, dnnl_memory_desc_get_size(&a->user));
    return mem(&a->prim, user_data);
  }
  *ws = dc__cpu_ws_get(dnnl_memory_desc_get_size(&a->prim));
  if (!*ws) {
    *rc = DC_ERR_NOMEM;
    return NULL;
  }
  dnnl_memory_t m = mem(&a->prim, *ws);
  if (m && fill) {
    dnnl_memory_t u = mem(&a->user, user_data);
    int r =
        u ? run_reorder(a->to_prim, s, u, m, dnnl_memory_desc_get_size(&a->user)) : DC_ERR_BACKEND;
    if (u) dnnl_memory_destroy(u);
    if (r != DC_OK) {
      *rc = r;
      dnnl_memory_destroy(m);
      return NULL;
    }
  }
  if (!m) *rc = DC_ERR_BACKEND;
  return m;
}

/* Copies a primitive-side output back to the user's buffer when the layouts differ. */
static int to_user(const conv_arg *a, dnnl_memory_t m, void *user_data, dnnl_stream_t s) {
  if (a->same) return DC_OK;
  dc__cpu_nn_hint_output(user_data, dnnl_memory_desc_get_size(&a->user));
  dnnl_memory_t u = mem(&a->user, user_data);
  if (!u) return DC_ERR_BACKEND;
  int r = run_reorder(a->to_user, s, m, u, dnnl_memory_desc_get_size(&a->user));
  dnnl_memory_destroy(u);
  return r;
}

static void drop(dnnl_memory_t *m, void **ws, int n) {
  for (int i = 0; i < n; i++) {
    if (m[i]) dnnl_memory_destroy(m[i]);
    dc__cpu_ws_put(ws[i]);
  }
}

static int backend_err(int rc) {
  if (rc == DC_ERR_NOMEM) return dc__errs(rc, "conv2d: out of memory for oneDNN scratch buffers");
  if (rc != DC_OK && (int)dc_last_status() != rc)
    return dc__errs(DC_ERR_BACKEND, "conv2d: oneDNN could not create a memory object");
  return rc;
}

/* y_prim: y is in the primitive's dst layout (the fused conv block's), else in NCHW */
static int forward(void *y, bool y_prim, const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                   const dc_conv2d_geom *g) {
  dnnl_stream_t s = get_stream();
  conv_entry *e = s ? acquire(g, b != NULL, x->dtype == DC_BF16, false, false) : NULL;
  if (!e) return DC_ERR_UNSUPPORTED;
  int rc = DC_OK;
  dnnl_memory_t m[4] = {0};
  void *ws[4] = {0};
  m[0] = prim_mem(&e->f_src, dc_data(x), true, s, &ws[0], &rc);
  if (m[0]) m[1] = prim_mem(&e->f_wei, dc_data(w), true, s, &ws[1], &rc);
  if (m[1] && b) m[2] = prim_mem(&e->f_bias, dc_data(b), true, s, &ws[2], &rc);
  if (m[1] && (m[2] || !b)) {
    if (y_prim) {
      m[3] = mem(&e->f_dst.prim, y);
      if (!m[3]) rc = DC_ERR_BACKEND;
    } else {
      m[3] = prim_mem(&e->f_dst, y, false, s, &ws[3], &rc);
    }
  }
  if (m[3]) {
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m[0]},
                               {DNNL_ARG_WEIGHTS, m[1]},
                               {DNNL_ARG_DST, m[3]},
                               {DNNL_ARG_BIAS, m[2]}};
    rc = run(e->fwd, s, b ? 4 : 3, args);
    if (rc == DC_OK && !y_prim) rc = to_user(&e->f_dst, m[3], y, s);
  } else if (rc == DC_OK) {
    rc = DC_ERR_BACKEND;
  }
  drop(m, ws, 4);
  release(e);
  return backend_err(rc);
}

int dc__cpu_conv2d_dnnl_forward(dc_tensor *y, const dc_tensor *x, const dc_tensor *w,
                                const dc_tensor *b, const dc_conv2d_geom *g) {
  return forward(dc_data(y), false, x, w, b, g);
}

int dc__cpu_conv2d_dnnl_forward_blocked(void *y, const dc_tensor *x, const dc_tensor *w,
                                        const dc_tensor *b, const dc_conv2d_geom *g) {
  return forward(y, true, x, w, b, g);
}

/* gy: NCHW, or (gy_prim) in the primitives' diff_dst layout, which conv_block_plan checked to be
 * the forward's dst layout */
static int backward(dc_tensor *gx, void *gw, dc_tensor *gb, const void *gy, bool gy_prim,
                    const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g) {
  dnnl_stream_t s = get_stream();
  /* with a frozen bias (gb NULL) the entry without bias serves: its forward pd is only a hint */
  bool has_bias = gb != NULL;
  conv_entry *e = s ? acquire(g, has_bias, x->dtype == DC_BF16, gx != NULL, gw != NULL) : NULL;
  if (!e) return DC_ERR_UNSUPPORTED;
  int rc = DC_OK;
  /* 0 diff_dst (data layout), 1 weights, 2 diff_src, 3 src, 4 diff_dst (weights layout),
   * 5 diff_weights, 6 diff_bias */
  dnnl_memory_t m[7] = {0};
  void *ws[7] = {0};
  if (gx) {
    m[0] = gy_prim ? mem(&e->d_ddst.prim, (void *)gy)
                   : prim_mem(&e->d_ddst, (void *)gy, true, s, &ws[0], &rc);
    if (!m[0] && rc == DC_OK) rc = DC_ERR_BACKEND;
    if (m[0]) m[1] = prim_mem(&e->d_wei, dc_data(w), true, s, &ws[1], &rc);
    if (m[1]) m[2] = prim_mem(&e->d_dsrc, dc_data(gx), false, s, &ws[2], &rc);
    if (m[2]) {
      dnnl_exec_arg_t args[3] = {
          {DNNL_ARG_DIFF_DST, m[0]}, {DNNL_ARG_WEIGHTS, m[1]}, {DNNL_ARG_DIFF_SRC, m[2]}};
      rc = run(e->bwd_data, s, 3, args);
      if (rc == DC_OK) rc = to_user(&e->d_dsrc, m[2], dc_data(gx), s);
    } else if (rc == DC_OK) {
      rc = DC_ERR_BACKEND;
    }
    /* free the diff_src scratch before the weights pass; keep diff_dst for reuse */
    drop(&m[1], &ws[1], 2);
    m[1] = m[2] = NULL;
    ws[1] = ws[2] = NULL;
  }
  if (gw && rc == DC_OK) {
    m[3] = prim_mem(&e->w_src, dc_data(x), true, s, &ws[3], &rc);
    if (m[3]) {
      if (m[0] && dnnl_memory_desc_equal(&e->w_ddst.prim, &e->d_ddst.prim)) {
        dnnl_memory_t reuse = NULL;
        void *h = NULL;
        if (dnnl_memory_get_data_handle(m[0], &h) == dnnl_success) reuse = mem(&e->w_ddst.prim, h);
        m[4] = reuse;
        if (!reuse) rc = DC_ERR_BACKEND;
      } else {
        m[4] = gy_prim ? mem(&e->w_ddst.prim, (void *)gy)
                       : prim_mem(&e->w_ddst, (void *)gy, true, s, &ws[4], &rc);
        if (!m[4] && rc == DC_OK) rc = DC_ERR_BACKEND;
      }
    }
    if (m[4]) m[5] = prim_mem(&e->w_dwei, gw, false, s, &ws[5], &rc);
    if (m[5] && has_bias) m[6] = prim_mem(&e->w_dbias, dc_data(gb), false, s, &ws[6], &rc);
    if (m[5] && (m[6] || !has_bias)) {
      dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, m[3]},
                                 {DNNL_ARG_DIFF_DST, m[4]},
                                 {DNNL_ARG_DIFF_WEIGHTS, m[5]},
                                 {DNNL_ARG_DIFF_BIAS, m[6]}};
      rc = run(e->bwd_weights, s, has_bias ? 4 : 3, args);
      if (rc == DC_OK) rc = to_user(&e->w_dwei, m[5], gw, s);
      if (rc == DC_OK && has_bias) rc = to_user(&e->w_dbias, m[6], dc_data(gb), s);
    } else if (rc == DC_OK) {
      rc = DC_ERR_BACKEND;
    }
  }
  drop(m, ws, 7);
  release(e);
  return backend_err(rc);
}

int dc__cpu_conv2d_dnnl_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                                 const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g) {
  if (!gx && !gw) return gb ? dc__cpu_conv2d_ref_backward(NULL, NULL, gb, gy, x, w, g) : DC_OK;
  int rc = backward(gx, gw ? dc_data(gw) : NULL, gb, dc_data(gy), false, x, w, g);
  if (rc == DC_OK && !gw && gb) rc = dc__cpu_conv2d_ref_backward(NULL, NULL, gb, gy, x, w, g);
  return rc;
}

int dc__cpu_conv2d_dnnl_backward_blocked(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb,
                                         const void *gy, const dc_tensor *x, const dc_tensor *w,
                                         const dc_conv2d_geom *g) {
  if (!gx && !gw && !gb) return DC_OK;
  /* the bias gradient comes from the weights pass, which then writes the weight gradient into
   * scratch when that is not wanted (frozen weights) */
  void *gwd = gw ? dc_data(gw) : gb ? dc__cpu_ws_get((size_t)dc_numel(w) * sizeof(float)) : NULL;
  if (!gwd && (gw || gb)) return dc__errs(DC_ERR_NOMEM, "conv2d: out of memory for scratch");
  int rc = backward(gx, gwd, gb, gy, true, x, w, g);
  if (!gw) dc__cpu_ws_put(gwd);
  return rc;
}

/* aBcd16b ([N][K/16][H][W][16]) with dims d: the layout the fused conv block's kernels read */
static bool is_blocked16(const dnnl_memory_desc_t *md, const dnnl_dims_t d) {
  dnnl_memory_desc_t b;
  return dnnl_memory_desc_init_by_tag(&b, 4, d, dnnl_f32, dnnl_aBcd16b) == dnnl_success &&
         dnnl_memory_desc_equal(md, &b);
}

int dc__cpu_conv2d_dnnl_blocked_plan(const dc_conv2d_geom *g, bool has_bias, size_t *bytes) {
  if (g->k % 16 || !get_stream()) return DC_ERR_UNSUPPORTED;
  conv_entry *e = acquire(g, has_bias, false, true, true);
  if (!e) return DC_ERR_UNSUPPORTED;
  dnnl_dims_t d = {g->n, g->k, g->oh, g->ow};
  bool ok = is_blocked16(&e->f_dst.prim, d) && is_blocked16(&e->d_ddst.prim, d) &&
            is_blocked16(&e->w_ddst.prim, d);
  *bytes = dnnl_memory_desc_get_size(&e->f_dst.prim);
  release(e);
  return ok ? DC_OK : DC_ERR_UNSUPPORTED;
}
