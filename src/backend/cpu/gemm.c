/* CPU GEMM: float32 products go through oneDNN's matmul primitive (cached per shape, strides,
 * alpha/beta and thread count, since creating one costs 0.1-4 ms); float64 and tiny float32
 * products go through a cache-blocked C kernel; a naive kernel is kept as the test oracle.
 * Transposes and broadcast batches are strides; operands oneDNN cannot read are packed first.
 * Dimension letters: B batch, M rows of the output, N its columns, K the summed dim. */
#include "cpu-impl.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

int dc__cpu_gemm_force = DC__GEMM_AUTO;

/* onednn_prepare's answer for a product oneDNN is not given (a bfloat16 one it cannot stride
 * over); not a dc_status (those are >= 0) */
#define GEMM_NO_DNNL (-1)

/* float32 products with at most this many multiply-adds skip oneDNN (its call costs more). */
#define GEMM_SMALL_MACS (40 * 40 * 40)

/* One logical operand [B, R, C] as strides over a typed buffer (batch stride 0: broadcast). */
typedef struct gemm_mat {
  const char *data;   /* element [0, 0, 0] */
  dc_dtype dt;        /* DC_F32, DC_F64 or DC_BF16 */
  int64_t sb, sr, sc; /* strides in elements: batch, row, column */
} gemm_mat;

/* out [B, M, N] (contiguous) = alpha * a [B, M, K] . b [B, K, N] + bias [N] + beta * out */
typedef struct gemm_args {
  int64_t B, M, N, K;
  gemm_mat a, b;
  const char *bias; /* [N] of out's dtype, or NULL */
  int64_t sbias;    /* its stride in elements */
  char *out;
  dc_dtype dt; /* of out */
  float alpha, beta;
} gemm_args;

static inline double elem_load(const char *p, dc_dtype dt, int64_t off) {
  return dt == DC_F32    ? (double)((const float *)p)[off]
         : dt == DC_BF16 ? (double)dc__bf16_to_f32(((const uint16_t *)p)[off])
                         : ((const double *)p)[off];
}

static inline double mat_load(const gemm_mat *m, int64_t off) {
  return elem_load(m->data, m->dt, off);
}

static inline double bias_at(const gemm_args *g, int64_t j) {
  return g->bias ? elem_load(g->bias, g->dt, j * g->sbias) : 0.0;
}

/* ---- argument decoding ---- */

/* Reads t as logical [B?, R, C] (transposed when tr) into m; its batch size goes to *nb. */
static void decode(const dc_tensor *t, bool tr, gemm_mat *m, int64_t *nb, int64_t *rows,
                   int64_t *cols) {
  int d = t->ndim;
  int64_t r = t->shape[d - 2], c = t->shape[d - 1], sr = t->stride[d - 2], sc = t->stride[d - 1];
  if (tr) {
    int64_t x = r;
    r = c;
    c = x;
    x = sr;
    sr = sc;
    sc = x;
  }
  *nb = d == 3 ? t->shape[0] : 1;
  m->sb = d == 3 && t->shape[0] > 1 ? t->stride[0] : 0;
  m->sr = sr;
  m->sc = sc;
  m->dt = t->dtype;
  m->data = DC__PTR(t, t->offset);
  *rows = r;
  *cols = c;
}

static int bad_args(const char *what, const dc_tensor *out, const dc_tensor *a, const dc_tensor *b,
                    bool ta, bool tb) {
  char so[96], sa[96], sb[96];
  return dc__errs(DC_ERR_ARG,
                  "gemm_batched: %s (out %s %s, a %s %s%s, b %s %s%s); the caller must pass 2-D "
                  "or 3-D float32/float64 operands with matching inner dims and a contiguous out",
                  what, dc_shape_str(dc_shape_of(out), so, sizeof so), dc_dtype_name(out->dtype),
                  dc_shape_str(dc_shape_of(a), sa, sizeof sa), dc_dtype_name(a->dtype),
                  ta ? " transposed" : "", dc_shape_str(dc_shape_of(b), sb, sizeof sb),
                  dc_dtype_name(b->dtype), tb ? " transposed" : "");
}

static int make_args(gemm_args *g, dc_tensor *out, const dc_tensor *a, const dc_tensor *b, bool ta,
                     bool tb, float alpha, float beta) {
  if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3 || out->ndim < 2 || out->ndim > 3)
    return bad_args("operands must be 2-D or 3-D", out, a, b, ta, tb);
  if (!dc_dtype_is_float(out->dtype) || out->dtype != a->dtype || out->dtype != b->dtype ||
      (out->dtype != DC_F32 && out->dtype != DC_F64 && out->dtype != DC_BF16))
    return bad_args("dtypes must all be float32, all float64 or all bfloat16", out, a, b, ta, tb);
  if (dc_numel(out) > 0 && !dc_is_contiguous(out))
    return bad_args("out must be contiguous", out, a, b, ta, tb);
  int64_t ba, bb, ka, kb;
  decode(a, ta, &g->a, &ba, &g->M, &ka);
  decode(b, tb, &g->b, &bb, &kb, &g->N);
  g->B = out->ndim == 3 ? out->shape[0] : 1;
  g->K = ka;
  if (ka != kb || out->shape[out->ndim - 2] != g->M || out->shape[out->ndim - 1] != g->N)
    return bad_args("inner or outer dims do not match", out, a, b, ta, tb);
  if ((ba != 1 && ba != g->B) || (bb != 1 && bb != g->B))
    return bad_args("batch sizes must equal out's or be 1", out, a, b, ta, tb);
  g->out = DC__PTR(out, out->offset);
  g->dt = out->dtype;
  g->alpha = alpha;
  g->beta = beta;
  return DC_OK;
}

/* out = bias + beta * out (the K == 0 product, which oneDNN does not accept) */
static void scale_out(const gemm_args *g) {
  for (int64_t r = 0; r < g->B * g->M; r++)
    for (int64_t j = 0; j < g->N; j++) {
      int64_t o = r * g->N + j;
      if (g->dt == DC_F32) {
        float *c = (float *)g->out;
        c[o] = (float)(bias_at(g, j) + (g->beta == 0.0f ? 0.0 : (double)g->beta * c[o]));
      } else {
        double *c = (double *)g->out;
        c[o] = bias_at(g, j) + (g->beta == 0.0f ? 0.0 : (double)g->beta * c[o]);
      }
    }
}

/* ---- naive reference (test oracle): double accumulation, any strides, one thread ---- */

static void gemm_naive(const gemm_args *g) {
  for (int64_t bi = 0; bi < g->B; bi++)
    for (int64_t i = 0; i < g->M; i++)
      for (int64_t j = 0; j < g->N; j++) {
        double s = 0.0;
        for (int64_t p = 0; p < g->K; p++)
          s += mat_load(&g->a, bi * g->a.sb + i * g->a.sr + p * g->a.sc) *
               mat_load(&g->b, bi * g->b.sb + p * g->b.sr + j * g->b.sc);
        int64_t o = (bi * g->M + i) * g->N + j;
        s = g->alpha * s + bias_at(g, j);
        if (g->dt == DC_F32) {
          float *c = (float *)g->out;
          c[o] = (float)(s + (g->beta == 0.0f ? 0.0 : (double)g->beta * c[o]));
        } else if (g->dt == DC_BF16) { /* summed in double, rounded once */
          uint16_t *c = (uint16_t *)g->out;
          double prev = g->beta == 0.0f ? 0.0 : (double)g->beta * dc__bf16_to_f32(c[o]);
          c[o] = dc__f32_to_bf16((float)(s + prev));
        } else {
          double *c = (double *)g->out;
          c[o] = s + (g->beta == 0.0f ? 0.0 : (double)g->beta * c[o]);
        }
      }
}

int dc__cpu_gemm_ref(dc_tensor *out, const dc_tensor *a, const dc_tensor *b, bool ta, bool tb,
                     float alpha, float beta) {
  gemm_args g = {0};
  int rc = make_args(&g, out, a, b, ta, tb, alpha, beta);
  if (rc == DC_OK) gemm_naive(&g);
  return rc;
}

/* ---- cache-blocked kernel (float64, and float32 computed in double) ----
 * Goto-style: for each task (batch, MC rows, NC columns) the K dim is walked in KC slices; a
 * slice of a is packed as [MC/MR][KC][MR] and of b as [NC/NR][KC][NR], both zero-padded, and an
 * MR x NR register tile is accumulated per pair. Every output element is owned by one task and
 * summed in a fixed order, so results do not depend on the thread count. */
enum { MR = 8, NR = 16, KC = 256, MC = 128, NC = 256 };

/* Eight doubles as one GCC vector (a zmm register with AVX-512, two ymm with AVX2): written
 * this way so the compiler emits broadcast-FMA tiles instead of shuffling the accumulators. */
typedef double gemm_v8d __attribute__((vector_size(64)));

/* acc [MR, NR] = ap [kc, MR] . bp [kc, NR] */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
micro_tile(int64_t kc, const double *restrict ap, const double *restrict bp, double *restrict acc) {
  gemm_v8d c[MR][NR / 8];
  for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = (gemm_v8d){0};
  for (int64_t p = 0; p < kc; p++) {
    gemm_v8d b0, b1;
    memcpy(&b0, bp + p * NR, sizeof b0);
    memcpy(&b1, bp + p * NR + 8, sizeof b1);
    for (int i = 0; i < MR; i++) {
      double a = ap[p * MR + i];
      gemm_v8d av = {a, a, a, a, a, a, a, a};
      c[i][0] += av * b0;
      c[i][1] += av * b1;
    }
  }
  memcpy(acc, c, sizeof c);
}

/* dst [width] = n elements of m from element off with stride st, then zeros */
static inline void load_run(double *dst, const gemm_mat *m, int64_t off, int64_t st, int64_t n,
                            int width) {
  int64_t i = 0;
  if (m->dt == DC_F32) {
    const float *src = (const float *)m->data + off;
    for (; i < n; i++) dst[i] = src[i * st];
  } else {
    const double *src = (const double *)m->data + off;
    for (; i < n; i++) dst[i] = src[i * st];
  }
  for (; i < width; i++) dst[i] = 0.0;
}

/* dst [kc][width] = the [n, kc] block of m at element off (n <= width rows with stride sn, kc
 * columns with stride sk) transposed, zero-padded to width; reads run along the unit stride. */
static void pack_panel(double *dst, const gemm_mat *m, int64_t off, int64_t sn, int64_t sk,
                       int64_t n, int64_t kc, int width) {
  if (sk != 1 || n == 1) {
    for (int64_t p = 0; p < kc; p++) load_run(dst + p * width, m, off + p * sk, sn, n, width);
    return;
  }
  for (int64_t p = 0; p < kc; p++)
    for (int64_t i = n; i < width; i++) dst[p * width + i] = 0.0;
  for (int64_t i = 0; i < n; i++) { /* row i of the block is contiguous: read it in order */
    if (m->dt == DC_F32) {
      const float *src = (const float *)m->data + off + i * sn;
      for (int64_t p = 0; p < kc; p++) dst[p * width + i] = src[p];
    } else {
      const double *src = (const double *)m->data + off + i * sn;
      for (int64_t p = 0; p < kc; p++) dst[p * width + i] = src[p];
    }
  }
}

/* dst [ceil(rows/MR)][kc][MR] from m's rows r0.., columns p0.. (a's layout: rows = M) */
static void pack_a(double *dst, const gemm_mat *m, int64_t base, int64_t r0, int64_t rows,
                   int64_t p0, int64_t kc) {
  for (int64_t ib = 0; ib < rows; ib += MR, dst += kc * MR)
    pack_panel(dst, m, base + (r0 + ib) * m->sr + p0 * m->sc, m->sr, m->sc,
               rows - ib < MR ? rows - ib : MR, kc, MR);
}

/* dst [ceil(cols/NR)][kc][NR] from m's rows p0.., columns c0.. (b's layout: rows = K) */
static void pack_b(double *dst, const gemm_mat *m, int64_t base, int64_t p0, int64_t kc, int64_t c0,
                   int64_t cols) {
  for (int64_t jb = 0; jb < cols; jb += NR, dst += kc * NR)
    pack_panel(dst, m, base + p0 * m->sr + (c0 + jb) * m->sc, m->sc, m->sr,
               cols - jb < NR ? cols - jb : NR, kc, NR);
}

/* out tile [rows <= MR, cols <= NR] at (i0, j0) of batch bi = alpha * acc + beta * out, plus
 * the bias when first (the first K slice) */
static void store_tile(const gemm_args *g, int64_t bi, int64_t i0, int64_t j0, int64_t rows,
                       int64_t cols, const double *acc, float beta, bool first) {
  double bias[NR]; /* [cols] */
  for (int64_t j = 0; j < cols; j++) bias[j] = first ? bias_at(g, j0 + j) : 0.0;
  for (int64_t i = 0; i < rows; i++) {
    int64_t o = (bi * g->M + i0 + i) * g->N + j0;
    const double *s = acc + i * NR;
    if (g->dt == DC_F32) {
      float *c = (float *)g->out + o;
      for (int64_t j = 0; j < cols; j++)
        c[j] = (float)(g->alpha * s[j] + bias[j] + (beta == 0.0f ? 0.0 : (double)beta * c[j]));
    } else {
      double *c = (double *)g->out + o;
      for (int64_t j = 0; j < cols; j++)
        c[j] = g->alpha * s[j] + bias[j] + (beta == 0.0f ? 0.0 : (double)beta * c[j]);
    }
  }
}

/* Task t of B x mt x nt: batch bi, MC rows from i0, NC columns from j0; pa, pb pack buffers. */
static void blocked_task(const gemm_args *g, int64_t t, int64_t mt, int64_t nt, double *pa,
                         double *pb) {
  int64_t bi = t / (mt * nt), r = t % (mt * nt), i0 = (r / nt) * MC, j0 = (r % nt) * NC;
  int64_t mc = g->M - i0 < MC ? g->M - i0 : MC, nc = g->N - j0 < NC ? g->N - j0 : NC;
  double acc[MR * NR];
  int64_t abase = bi * g->a.sb, bbase = bi * g->b.sb;
  for (int64_t p0 = 0; p0 < g->K; p0 += KC) {
    int64_t kc = g->K - p0 < KC ? g->K - p0 : KC;
    float beta = p0 == 0 ? g->beta : 1.0f; /* later K slices add to the partial sums */
    pack_a(pa, &g->a, abase, i0, mc, p0, kc);
    pack_b(pb, &g->b, bbase, p0, kc, j0, nc);
    for (int64_t jb = 0; jb < nc; jb += NR)
      for (int64_t ib = 0; ib < mc; ib += MR) {
        micro_tile(kc, pa + ib * kc, pb + jb * kc, acc);
        int64_t rows = mc - ib < MR ? mc - ib : MR, cols = nc - jb < NR ? nc - jb : NR;
        store_tile(g, bi, i0 + ib, j0 + jb, rows, cols, acc, beta, p0 == 0);
      }
  }
}

/* Pack buffers up to this many doubles live on the stack (tiny products skip malloc). */
#define GEMM_STACK_DOUBLES 2048

static int gemm_blocked(const gemm_args *g) {
  int64_t mt = (g->M + MC - 1) / MC, nt = (g->N + NC - 1) / NC, ntask = g->B * mt * nt;
  int64_t kc = g->K < KC ? g->K : KC;
  int64_t mcp = ((g->M < MC ? g->M : MC) + MR - 1) / MR * MR;
  int64_t ncp = ((g->N < NC ? g->N : NC) + NR - 1) / NR * NR;
  double macs = (double)g->B * (double)g->M * (double)g->N * (double)g->K;
  bool par = macs >= 1e6 && ntask > 1 && !omp_in_parallel() && omp_get_max_threads() > 1;
  int nthr = par ? omp_get_max_threads() : 1;
  size_t per = (size_t)((mcp + ncp) * kc); /* doubles of pack buffer per thread */
  double stack_buf[GEMM_STACK_DOUBLES] __attribute__((aligned(64)));
  double *buf = per * (size_t)nthr <= GEMM_STACK_DOUBLES
                    ? stack_buf
                    : dc__malloc(sizeof(double) * per * (size_t)nthr);
  if (!buf) return dc_last_status();
  if (!par) {
    for (int64_t t = 0; t < ntask; t++) blocked_task(g, t, mt, nt, buf, buf + mcp * kc);
  } else {
#pragma omp parallel for schedule(static) num_threads(nthr)
    for (int64_t t = 0; t < ntask; t++) {
      double *pa = buf + per * (size_t)omp_get_thread_num();
      blocked_task(g, t, mt, nt, pa, pa + mcp * kc);
    }
  }
  if (buf != stack_buf) dc__free(buf);
  return DC_OK;
}

/* ---- oneDNN float32 path ---- */

static pthread_once_t g_dnnl_once = PTHREAD_ONCE_INIT;
static dnnl_engine_t g_engine;
static pthread_key_t g_stream_key; /* per-thread dnnl_stream_t (streams are not thread-safe) */
static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void stream_destroy(void *s) { dnnl_stream_destroy((dnnl_stream_t)s); }

static void dnnl_init(void) {
  if (dnnl_engine_create(&g_engine, dnnl_cpu, 0) != dnnl_success) g_engine = NULL;
  if (pthread_key_create(&g_stream_key, stream_destroy) != 0) g_engine = NULL;
}

static dnnl_stream_t thread_stream(void) {
  dnnl_stream_t s = pthread_getspecific(g_stream_key);
  if (s) return s;
  if (dnnl_stream_create(&s, g_engine, dnnl_stream_default_flags) != dnnl_success) return NULL;
  if (pthread_setspecific(g_stream_key, s) != 0) {
    dnnl_stream_destroy(s);
    return NULL;
  }
  return s;
}

/* What makes two float32 products share a primitive. Zeroed before filling (memcmp'd). */
typedef struct mm_key {
  int64_t ba, bb, b, m, n, k; /* batch of a, of b (1 = broadcast), of out; sizes */
  int64_t as[3], bs[3];       /* strides of a [B, M, K] and b [B, K, N] */
  float alpha, beta;
  int64_t bias; /* 1 when a contiguous bias [N] is added */
  int64_t nthr; /* oneDNN fixes its thread count when the primitive is made */
  int64_t bf16; /* 1: every operand bfloat16 (float32 accumulation, dst rounded once) */
} mm_key;

typedef struct mm_entry {
  mm_key key;
  dnnl_primitive_t prim;
  size_t scratch; /* bytes of user scratchpad it needs */
  uint64_t last_use;
  int users; /* executions in flight (never evicted while > 0) */
} mm_entry;

#define MM_CACHE_SIZE 96
static mm_entry g_cache[MM_CACHE_SIZE];
static int g_cache_n;
static uint64_t g_cache_clock;

static void md_init(dnnl_memory_desc_t *md, int64_t nb, int64_t r, int64_t c, const int64_t *st,
                    int64_t bf16) {
  dnnl_dims_t dims = {nb, r, c}, strides = {st[0], st[1], st[2]};
  dnnl_memory_desc_init_by_strides(md, 3, dims, bf16 ? dnnl_bf16 : dnnl_f32, strides);
}

/* Makes the primitive for key k; NULL when oneDNN refuses (the caller falls back). */
static dnnl_primitive_t mm_create(const mm_key *k, size_t *scratch) {
  dnnl_memory_desc_t a, b, c, bias;
  int64_t cs[3] = {k->m * k->n, k->n, 1}, bs[3] = {k->n, k->n, 1};
  md_init(&a, k->ba, k->m, k->k, k->as, k->bf16);
  md_init(&b, k->bb, k->k, k->n, k->bs, k->bf16);
  md_init(&c, k->b, k->m, k->n, cs, k->bf16);
  md_init(&bias, 1, 1, k->n, bs, k->bf16);
  dnnl_matmul_desc_t desc;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t prim = NULL;
  if (dnnl_matmul_desc_init(&desc, &a, &b, k->bias ? &bias : NULL, &c) != dnnl_success) return NULL;
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
  bool ok = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == 0;
  if (ok && k->alpha != 1.0f)
    ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &k->alpha) == dnnl_success;
  if (ok && k->beta != 0.0f) {
    ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, k->beta) == 0 &&
         dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
  }
  if (ok) ok = dnnl_primitive_desc_create(&pd, &desc, attr, g_engine, NULL) == dnnl_success;
  if (ok) {
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    ok = impl && strncmp(impl, "ref", 3) != 0; /* the reference impl is slower than ours */
  }
  if (ok) {
    *scratch =
        dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    ok = dnnl_primitive_create(&prim, pd) == dnnl_success;
  }
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (po) dnnl_post_ops_destroy(po);
  dnnl_primitive_attr_destroy(attr);
  return ok ? prim : NULL;
}

/* Finds or makes the entry for k and marks it in use; NULL when oneDNN refuses the product. */
static mm_entry *mm_acquire(const mm_key *k) {
  pthread_mutex_lock(&g_cache_lock);
  mm_entry *e = NULL;
  for (int i = 0; i < g_cache_n; i++)
    if (memcmp(&g_cache[i].key, k, sizeof *k) == 0) {
      e = &g_cache[i];
      break;
    }
  if (!e) {
    size_t scratch = 0;
    dnnl_primitive_t prim = mm_create(k, &scratch);
    if (prim) {
      if (g_cache_n < MM_CACHE_SIZE) {
        e = &g_cache[g_cache_n++];
      } else { /* evict the least recently used entry not in use */
        for (int i = 0; i < MM_CACHE_SIZE; i++)
          if (g_cache[i].users == 0 && (!e || g_cache[i].last_use < e->last_use)) e = &g_cache[i];
        if (e) dnnl_primitive_destroy(e->prim);
      }
      if (e) {
        e->key = *k;
        e->prim = prim;
        e->scratch = scratch;
        e->users = 0;
      } else {
        dnnl_primitive_destroy(prim); /* every slot busy: rare; run the C kernel instead */
      }
    }
  }
  if (e) {
    e->users++;
    e->last_use = ++g_cache_clock;
  }
  pthread_mutex_unlock(&g_cache_lock);
  return e;
}

static void mm_release(mm_entry *e) {
  pthread_mutex_lock(&g_cache_lock);
  e->users--;
  pthread_mutex_unlock(&g_cache_lock);
}

/* Strides oneDNN's fast matmuls accept: one of the two matrix dims unit-strided, the other at
 * least as long as the rows it steps over; size-1 dims are given canonical strides. */
static bool dnnl_layout(int64_t r, int64_t c, int64_t *sr, int64_t *sc) {
  if (c == 1) *sc = 1;
  if (r == 1) *sr = *sc == 1 ? c : 1;
  if (*sc == 1 && *sr >= c) return true;
  return *sr == 1 && *sc >= r;
}

/* dst [nb, r, c] contiguous float32 from m */
static void pack_plain(float *dst, const gemm_mat *m, int64_t nb, int64_t r, int64_t c) {
  for (int64_t bi = 0; bi < nb; bi++)
    for (int64_t i = 0; i < r; i++)
      for (int64_t j = 0; j < c; j++)
        *dst++ = (float)mat_load(m, bi * m->sb + i * m->sr + j * m->sc);
}

/* Operands as oneDNN will read them: the cache key and data pointers, packing into tmp[]
 * (freed by the caller) what oneDNN cannot stride over. */
static int onednn_prepare(const gemm_args *g, mm_key *k, const void **ptr, float **tmp) {
  memset(k, 0, sizeof *k);
  k->b = g->B;
  k->ba = g->a.sb ? g->B : 1;
  k->bb = g->b.sb ? g->B : 1;
  k->m = g->M;
  k->n = g->N;
  k->k = g->K;
  ptr[0] = g->a.data;
  ptr[1] = g->b.data;
  ptr[2] = g->bias;
  int64_t asr = g->a.sr, asc = g->a.sc, bsr = g->b.sr, bsc = g->b.sc;
  int64_t asb = g->a.sb, bsb = g->b.sb;
  k->bf16 = g->dt == DC_BF16;
  if (k->bf16 && (!dnnl_layout(g->M, g->K, &asr, &asc) || !dnnl_layout(g->K, g->N, &bsr, &bsc) ||
                  (g->bias && g->sbias != 1 && g->N > 1)))
    return GEMM_NO_DNNL; /* packed through float32 instead (gemm_bf16_f32) */
  if (!dnnl_layout(g->M, g->K, &asr, &asc)) {
    if (!(tmp[0] = dc__malloc(sizeof(float) * (size_t)(k->ba * g->M * g->K)))) return DC_ERR_NOMEM;
    pack_plain(tmp[0], &g->a, k->ba, g->M, g->K);
    ptr[0] = tmp[0];
    asr = g->K;
    asc = 1;
    asb = g->M * g->K;
  }
  if (!dnnl_layout(g->K, g->N, &bsr, &bsc)) {
    if (!(tmp[1] = dc__malloc(sizeof(float) * (size_t)(k->bb * g->K * g->N)))) return DC_ERR_NOMEM;
    pack_plain(tmp[1], &g->b, k->bb, g->K, g->N);
    ptr[1] = tmp[1];
    bsr = g->N;
    bsc = 1;
    bsb = g->K * g->N;
  }
  if (g->bias && g->sbias != 1 && g->N > 1) {
    if (!(tmp[2] = dc__malloc(sizeof(float) * (size_t)g->N))) return DC_ERR_NOMEM;
    for (int64_t j = 0; j < g->N; j++) tmp[2][j] = (float)bias_at(g, j);
    ptr[2] = tmp[2];
  }
  /* b shared by all batches and a's batches stacked as rows: one [B*M, K] . [K, N] product */
  if (k->bb == 1 && k->ba == k->b && k->b > 1 && asc == 1 && asb == g->M * asr) {
    k->m *= k->b;
    k->b = k->ba = 1;
  }
  /* a broadcast batch has one matrix: give it the stride of a dense one */
  k->as[0] = k->ba > 1 ? asb : (asr * k->m > asc * k->k ? asr * k->m : asc * k->k);
  k->as[1] = asr;
  k->as[2] = asc;
  k->bs[0] = k->bb > 1 ? bsb : (bsr * k->k > bsc * k->n ? bsr * k->k : bsc * k->n);
  k->bs[1] = bsr;
  k->bs[2] = bsc;
  k->alpha = g->alpha;
  k->beta = g->beta;
  k->bias = g->bias != NULL;
  k->nthr = omp_in_parallel() ? 1 : omp_get_max_threads();
  return DC_OK;
}

/* Runs entry e on src ptr[0], weights ptr[1], bias ptr[2] (or NULL) into out. */
static int onednn_execute(const mm_entry *e, dnnl_stream_t stream, const void *const *ptr,
                          void *out) {
  const mm_key *k = &e->key;
  void *scratch = e->scratch ? dc__malloc(e->scratch) : NULL;
  if (e->scratch && !scratch) return DC_ERR_NOMEM;
  dnnl_memory_desc_t md[5];
  int64_t cs[3] = {k->m * k->n, k->n, 1}, bs[3] = {k->n, k->n, 1};
  md_init(&md[0], k->ba, k->m, k->k, k->as, k->bf16);
  md_init(&md[1], k->bb, k->k, k->n, k->bs, k->bf16);
  md_init(&md[2], k->b, k->m, k->n, cs, k->bf16);
  md_init(&md[3], 1, 1, k->n, bs, k->bf16);
  dnnl_memory_desc_init_by_tag(&md[4], 1, (dnnl_dims_t){(int64_t)e->scratch}, dnnl_u8, dnnl_a);
  const int arg_of[5] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST, DNNL_ARG_BIAS,
                         DNNL_ARG_SCRATCHPAD};
  void *data[5] = {(void *)ptr[0], (void *)ptr[1], out, (void *)ptr[2], scratch};
  dnnl_exec_arg_t args[5];
  int nargs = 0;
  bool ok = true;
  for (int i = 0; i < 5 && ok; i++) {
    if ((i == 3 && !k->bias) || (i == 4 && !e->scratch)) continue;
    args[nargs].arg = arg_of[i];
    ok = dnnl_memory_create(&args[nargs].memory, &md[i], g_engine, data[i]) == dnnl_success;
    if (ok) nargs++;
  }
  ok = ok && dnnl_primitive_execute(e->prim, stream, nargs, args) == dnnl_success &&
       dnnl_stream_wait(stream) == dnnl_success;
  for (int i = 0; i < nargs; i++) dnnl_memory_destroy(args[i].memory);
  dc__free(scratch);
  if (ok) return DC_OK;
  return dc__errs(DC_ERR_BACKEND,
                  "matmul: oneDNN failed to run a [%lld, %lld] x [%lld, %lld] "
                  "product",
                  (long long)k->m, (long long)k->k, (long long)k->k, (long long)k->n);
}

/* A large unbatched product without bias goes to oneDNN's BLAS-style sgemm: its JIT kernel beats
 * the matmul primitive on square and wide products (2 threads, bench/gemm_bench.c: 2048^3 410 vs
 * 351 GF/s, 1024^3 400 vs 375), while the primitive stays ahead on tall, narrow ones (N <= 64).
 * sgemm may split K between threads, so its float32 sums can differ in the last bits between
 * thread counts (as MKL's do in PyTorch); it is reproducible at a fixed thread count. Below
 * SGEMM_MIN_MACS (which every layer of the course networks is) the primitive keeps results
 * independent of the thread count. */
#define SGEMM_MIN_MACS ((double)(1 << 27))

static bool use_sgemm(const mm_key *k) {
  if (k->bf16) return false;
  double macs = (double)k->m * (double)k->n * (double)k->k;
  return k->b == 1 && !k->bias && macs >= SGEMM_MIN_MACS && (k->n >= 128 || k->m <= 4 * k->n);
}

/* out [m, n] contiguous = alpha * a [m, k] . b [k, n] + beta * out, strides from k */
static int sgemm_run(const mm_key *k, const void *const *ptr, void *out) {
  char ta = k->as[2] == 1 ? 'N' : 'T', tb = k->bs[2] == 1 ? 'N' : 'T';
  dnnl_dim_t lda = ta == 'N' ? k->as[1] : k->as[2], ldb = tb == 'N' ? k->bs[1] : k->bs[2];
  if (dnnl_sgemm(ta, tb, k->m, k->n, k->k, k->alpha, ptr[0], lda, ptr[1], ldb, k->beta, out,
                 k->n) == dnnl_success)
    return DC_OK;
  return dc__errs(DC_ERR_BACKEND,
                  "matmul: oneDNN sgemm failed on a [%lld, %lld] x [%lld, %lld] product",
                  (long long)k->m, (long long)k->k, (long long)k->k, (long long)k->n);
}

static int gemm_run(gemm_args *g);

/* A bfloat16 product oneDNN does not take (strides, size, no primitive): its operands widened
 * to contiguous float32 (exact), the float32 product, the result rounded to bfloat16 once. */
static int gemm_bf16_f32(const gemm_args *g) {
  int64_t ba = g->a.sb ? g->B : 1, bb = g->b.sb ? g->B : 1, no = g->B * g->M * g->N;
  float *a = dc__malloc(sizeof(float) * (size_t)(ba * g->M * g->K + 1));
  float *b = dc__malloc(sizeof(float) * (size_t)(bb * g->K * g->N + 1));
  float *bias = g->bias ? dc__malloc(sizeof(float) * (size_t)g->N) : NULL;
  float *out = dc__malloc(sizeof(float) * (size_t)(no + 1));
  int rc = a && b && out && (bias || !g->bias) ? DC_OK : DC_ERR_NOMEM;
  if (rc == DC_OK) {
    pack_plain(a, &g->a, ba, g->M, g->K);
    pack_plain(b, &g->b, bb, g->K, g->N);
    for (int64_t j = 0; bias && j < g->N; j++) bias[j] = (float)bias_at(g, j);
    const uint16_t *o16 = (const uint16_t *)g->out;
    for (int64_t i = 0; g->beta != 0.0f && i < no; i++) out[i] = dc__bf16_to_f32(o16[i]);
    gemm_args f = *g;
    f.a = (gemm_mat){(const char *)a, DC_F32, ba > 1 ? g->M * g->K : 0, g->K, 1};
    f.b = (gemm_mat){(const char *)b, DC_F32, bb > 1 ? g->K * g->N : 0, g->N, 1};
    f.bias = (const char *)bias;
    f.sbias = 1;
    f.out = (char *)out;
    f.dt = DC_F32;
    rc = gemm_run(&f);
  }
  uint16_t *o16 = (uint16_t *)g->out;
  for (int64_t i = 0; rc == DC_OK && i < no; i++) o16[i] = dc__f32_to_bf16(out[i]);
  dc__free(a);
  dc__free(b);
  dc__free(bias);
  dc__free(out);
  return rc;
}

/* The fallback for a product oneDNN does not run. */
static int gemm_fallback(const gemm_args *g) {
  return g->dt == DC_BF16 ? gemm_bf16_f32(g) : gemm_blocked(g);
}

static int gemm_onednn(gemm_args *g) {
  pthread_once(&g_dnnl_once, dnnl_init);
  dnnl_stream_t stream = g_engine ? thread_stream() : NULL;
  if (!stream) return gemm_fallback(g);
  mm_key k;
  const void *ptr[3];
  float *tmp[3] = {NULL, NULL, NULL};
  int rc = onednn_prepare(g, &k, ptr, tmp);
  if (rc == GEMM_NO_DNNL) {
    rc = gemm_fallback(g);
  } else if (rc == DC_OK && use_sgemm(&k)) {
    rc = sgemm_run(&k, ptr, g->out);
  } else if (rc == DC_OK) {
    mm_entry *e = mm_acquire(&k);
    rc = e ? onednn_execute(e, stream, ptr, g->out) : gemm_fallback(g);
    if (e) mm_release(e);
  }
  for (int i = 0; i < 3; i++) dc__free(tmp[i]);
  return rc;
}

/* ---- the kernel-table entries ---- */

static int gemm_run(gemm_args *g) {
  if (g->B == 0 || g->M == 0 || g->N == 0) return DC_OK;
  if (g->K == 0) {
    scale_out(g);
    return DC_OK;
  }
  if (g->dt == DC_F64 || dc__cpu_gemm_force == DC__GEMM_BLOCKED) return gemm_fallback(g);
  double macs = (double)g->B * (double)g->M * (double)g->N * (double)g->K;
  if (dc__cpu_gemm_force == DC__GEMM_AUTO && macs <= GEMM_SMALL_MACS) return gemm_fallback(g);
  return gemm_onednn(g);
}

static int cpu_gemm_batched(dc_tensor *out, const dc_tensor *a, const dc_tensor *b, bool ta,
                            bool tb, float alpha, float beta) {
  gemm_args g = {0};
  int rc = make_args(&g, out, a, b, ta, tb, alpha, beta);
  return rc == DC_OK ? gemm_run(&g) : rc;
}

static int cpu_linear(dc_tensor *out, const dc_tensor *x, const dc_tensor *w,
                      const dc_tensor *bias) {
  gemm_args g = {0};
  int rc = make_args(&g, out, x, w, false, true, 1.0f, 0.0f);
  if (rc != DC_OK) return rc;
  if (bias) {
    if (bias->ndim != 1 || bias->shape[0] != g.N || bias->dtype != out->dtype)
      return bad_args("bias must be 1-D [N] of out's dtype", out, x, w, false, true);
    g.bias = DC__PTR(bias, bias->offset);
    g.sbias = bias->stride[0];
  }
  return gemm_run(&g);
}

const dc_linalg_kernels dc__cpu_linalg = {.gemm_batched = cpu_gemm_batched, .linear = cpu_linear};
