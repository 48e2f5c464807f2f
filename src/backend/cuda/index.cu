/* CUDA gather / scatter_add / index_select / index_add with the CPU's contract (cpu/index.c):
 * every index is checked on the device before it is used, and an out-of-range one is the same
 * error naming the op, the value and the valid range (the check reads one flag back, so these
 * ops synchronise). Adds are deterministic without atomics: one thread owns one position of the
 * dims other than `dim` and adds the index entries in order, as the CPU's rows do.
 * Dimension letters: O the dims before `dim`, S the indexed tensor's size along dim, L the
 * index length, I the dims after `dim`. */
#include "kern.cuh"

/* Up to 3 operands over one iteration shape (all dims, `dim` included), strides per operand. */
typedef struct ix_geom {
  int ndim, dim;
  int64_t shape[DC_MAX_DIMS]; /* [D] iteration shape */
  int64_t st[3][DC_MAX_DIMS]; /* [3][D] element strides */
  char *p[3];                 /* element 0 of each operand */
  int esz[3], dt[3];
  int64_t numel; /* product of shape, `dim` excluded when rows */
} ix_geom;

typedef struct ix_flag { /* device: the first bad index seen */
  int bad;
  int64_t value;
} ix_flag;

static void geom_init(ix_geom *g, int ndim, const int64_t *shape, int dim, int nops,
                      const dc_tensor *const *ops, bool rows) {
  memset(g, 0, sizeof *g);
  g->ndim = ndim;
  g->dim = dim;
  g->numel = 1;
  for (int d = 0; d < ndim; d++) {
    g->shape[d] = shape[d];
    if (!rows || d != dim) g->numel *= shape[d];
  }
  for (int k = 0; k < nops; k++) {
    for (int d = 0; d < ndim; d++) g->st[k][d] = ops[k]->ndim ? ops[k]->stride[d] : 0;
    g->p[k] = dc__cuda_ptr(ops[k]);
    g->esz[k] = (int)dc_dtype_size(ops[k]->dtype);
    g->dt[k] = (int)ops[k]->dtype;
  }
}

/* element offsets of every operand at linear e over the shape (`dim` skipped when rows) */
__device__ inline void geom_at(const ix_geom &g, int64_t e, bool rows, int64_t *off) {
  off[0] = off[1] = off[2] = 0;
  for (int d = g.ndim - 1; d >= 0; d--) {
    if (rows && d == g.dim) continue;
    int64_t c = e % g.shape[d];
    e /= g.shape[d];
    for (int k = 0; k < 3; k++) off[k] += c * g.st[k][d];
  }
}

__device__ inline void note_bad(ix_flag *f, int64_t v) {
  if (atomicExch(&f->bad, 1) == 0) f->value = v;
}

/* *dst += *src with the CPU's add_elem per dtype */
__device__ inline void add_elem(char *dst, const char *src, int dt) {
  switch (dt) {
  case DC_F32:
    *(float *)dst += *(const float *)src;
    break;
  case DC_F64:
    *(double *)dst += *(const double *)src;
    break;
  case DC_I64:
    *(uint64_t *)dst += *(const uint64_t *)src;
    break;
  case DC_I32:
    *(uint32_t *)dst += *(const uint32_t *)src;
    break;
  case DC_U8:
    *(uint8_t *)dst = (uint8_t)(*(uint8_t *)dst + *(const uint8_t *)src);
    break;
  case DC_BOOL:
    *(uint8_t *)dst = *(uint8_t *)dst || *(const uint8_t *)src;
    break;
  default:
    dc__cu_store<double>(dst, dt, dc__cu_load<double>(dst, dt) + dc__cu_load<double>(src, dt));
    break;
  }
}

/* ---- flag handling on the host ---- */

static ix_flag *flag_new(void) {
  ix_flag *f = (ix_flag *)dc__cuda_mem.alloc(sizeof(ix_flag));
  if (f && cudaMemsetAsync(f, 0, sizeof *f, dc__cuda_stream()) != cudaSuccess) {
    dc__cuda_mem.free(f);
    return NULL;
  }
  return f;
}

/* Reads the flag back (synchronises) and frees it: DC_OK, or the CPU's out-of-range error. */
static int flag_end(ix_flag *f, const char *op, int dim, int64_t size) {
  int rc = dc__cuda_launched(op);
  ix_flag h = {0, 0};
  if (rc == DC_OK) rc = dc__cuda_mem.to_host(&h, f, sizeof h);
  dc__cuda_mem.free(f);
  if (rc != DC_OK || !h.bad) return rc;
  return dc__errs(DC_ERR_ARG,
                  "%s: index %lld is out of range for dim %d of size %lld (valid indices are "
                  "0..%lld)",
                  op, (long long)h.value, dim, (long long)size, (long long)size - 1);
}

/* every element of an int64 index (any layout) in [0, size) */
__global__ void check_k(ix_geom g, int64_t size, ix_flag *f) {
  DC__CU_FOR(e, g.numel) {
    int64_t off[3];
    geom_at(g, e, false, off);
    int64_t v = ((const int64_t *)g.p[0])[off[0]];
    if (v < 0 || v >= size) note_bad(f, v);
  }
}

static int check_index(const char *op, const dc_tensor *index, int dim, int64_t size, ix_flag *f) {
  ix_geom g;
  const dc_tensor *ops[1] = {index};
  int64_t one = 1;
  geom_init(&g, index->ndim ? index->ndim : 1, index->ndim ? index->shape : &one, 0, 1, ops, false);
  if (g.numel == 0) return DC_OK;
  check_k<<<dc__cu_blocks(g.numel), DC__CU_THREADS, 0, dc__cuda_stream()>>>(g, size, f);
  return dc__cuda_launched(op);
}

/* ---- gather: out [index shape] = x[..., index[...], ...] along dim; operands out, index, x ----
 */

__global__ void gather_k(ix_geom g, int64_t size, ix_flag *f) {
  DC__CU_FOR(e, g.numel) {
    int64_t off[3];
    geom_at(g, e, false, off);
    int64_t j = 0, r = e; /* j: the coordinate along dim */
    for (int d = g.ndim - 1; d >= 0; d--) {
      if (d == g.dim) j = r % g.shape[d];
      r /= g.shape[d];
    }
    int64_t v = ((const int64_t *)g.p[1])[off[1]];
    if (v < 0 || v >= size) {
      note_bad(f, v);
      continue;
    }
    int64_t xo = off[2] + (v - j) * g.st[2][g.dim];
    dc__cu_copy_raw(g.p[0] + off[0] * g.esz[0], g.p[2] + xo * g.esz[2], g.esz[0]);
  }
}

extern "C" int dc__cuda_gather(dc_tensor *out, const dc_tensor *x, int dim,
                               const dc_tensor *index) {
  if (dc_numel(index) == 0) return DC_OK;
  int64_t size = x->ndim ? x->shape[dim] : 1;
  ix_flag *f = flag_new();
  if (!f) return dc__errs(DC_ERR_NOMEM, "gather: no device memory for the index check");
  const dc_tensor *ops[3] = {out, index, x};
  ix_geom g;
  int64_t one = 1;
  geom_init(&g, index->ndim ? index->ndim : 1, index->ndim ? index->shape : &one,
            index->ndim ? dim : 0, 3, ops, false);
  gather_k<<<dc__cu_blocks(g.numel), DC__CU_THREADS, 0, dc__cuda_stream()>>>(g, size, f);
  return flag_end(f, "gather", dim, size);
}

/* ---- scatter_add: out[..., index[...], ...] += src[...]; operands out, index, src; one thread
 * per row of the index's other dims ---- */

__global__ void scatter_add_k(ix_geom g, int64_t len) {
  DC__CU_FOR(r, g.numel) {
    int64_t off[3];
    geom_at(g, r, true, off);
    for (int64_t j = 0; j < len; j++) {
      int64_t v = ((const int64_t *)g.p[1])[off[1] + j * g.st[1][g.dim]];
      add_elem(g.p[0] + (off[0] + v * g.st[0][g.dim]) * g.esz[0],
               g.p[2] + (off[2] + j * g.st[2][g.dim]) * g.esz[2], g.dt[0]);
    }
  }
}

extern "C" int dc__cuda_scatter_add(dc_tensor *out, int dim, const dc_tensor *index,
                                    const dc_tensor *src) {
  if (dc_numel(index) == 0) return DC_OK;
  int64_t size = out->ndim ? out->shape[dim] : 1, len = index->ndim ? index->shape[dim] : 1;
  ix_flag *f = flag_new();
  if (!f) return dc__errs(DC_ERR_NOMEM, "scatter_add: no device memory for the index check");
  int rc = check_index("scatter_add", index, dim, size, f);
  rc = rc == DC_OK ? flag_end(f, "scatter_add", dim, size) : (dc__cuda_mem.free(f), rc);
  if (rc != DC_OK) return rc; /* a bad index leaves out untouched */
  const dc_tensor *ops[3] = {out, index, src};
  ix_geom g;
  int64_t one = 1;
  geom_init(&g, index->ndim ? index->ndim : 1, index->ndim ? index->shape : &one,
            index->ndim ? dim : 0, 3, ops, true);
  if (!index->ndim) g.st[0][0] = g.st[1][0] = g.st[2][0] = 0;
  scatter_add_k<<<dc__cu_blocks(g.numel), DC__CU_THREADS, 0, dc__cuda_stream()>>>(g, len);
  return dc__cuda_launched("scatter_add kernel");
}

/* ---- index_select: out [O, L, I] = x [O, S, I] at rows index [L]; operands out, x ---- */

__global__ void index_select_k(ix_geom g, const int64_t *ix, int64_t ist) {
  DC__CU_FOR(e, g.numel) {
    int64_t off[3], r = e, j = 0;
    geom_at(g, e, false, off);
    for (int d = g.ndim - 1; d >= 0; d--) {
      if (d == g.dim) j = r % g.shape[d];
      r /= g.shape[d];
    }
    int64_t xo = off[1] + (ix[j * ist] - j) * g.st[1][g.dim];
    dc__cu_copy_raw(g.p[0] + off[0] * g.esz[0], g.p[1] + xo * g.esz[1], g.esz[0]);
  }
}

extern "C" int dc__cuda_index_select(dc_tensor *out, const dc_tensor *x, int dim,
                                     const dc_tensor *index) {
  int64_t size = x->ndim ? x->shape[dim] : 1;
  ix_flag *f = flag_new();
  if (!f) return dc__errs(DC_ERR_NOMEM, "index_select: no device memory for the index check");
  int rc = check_index("index_select", index, dim, size, f);
  rc = rc == DC_OK ? flag_end(f, "index_select", dim, size) : (dc__cuda_mem.free(f), rc);
  if (rc != DC_OK || dc_numel(out) == 0) return rc;
  const dc_tensor *ops[2] = {out, x};
  ix_geom g;
  int64_t one = 1;
  geom_init(&g, out->ndim ? out->ndim : 1, out->ndim ? out->shape : &one, out->ndim ? dim : 0, 2,
            ops, false);
  if (!out->ndim) g.st[0][0] = g.st[1][0] = 0;
  int64_t ist = index->ndim ? index->stride[0] : 0;
  index_select_k<<<dc__cu_blocks(g.numel), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      g, (const int64_t *)dc__cuda_ptr(index), ist);
  return dc__cuda_launched("index_select kernel");
}

/* ---- index_add: out [O, S, I] rows index [L] += src [O, L, I]; operands out, src; one thread
 * per (O, I) position, adding the L rows in index order ---- */

__global__ void index_add_k(ix_geom g, const int64_t *ix, int64_t ist, int64_t len) {
  DC__CU_FOR(r, g.numel) {
    int64_t off[3];
    geom_at(g, r, true, off);
    for (int64_t j = 0; j < len; j++)
      add_elem(g.p[0] + (off[0] + ix[j * ist] * g.st[0][g.dim]) * g.esz[0],
               g.p[1] + (off[1] + j * g.st[1][g.dim]) * g.esz[1], g.dt[0]);
  }
}

extern "C" int dc__cuda_index_add(dc_tensor *out, int dim, const dc_tensor *index,
                                  const dc_tensor *src) {
  int64_t size = out->ndim ? out->shape[dim] : 1;
  ix_flag *f = flag_new();
  if (!f) return dc__errs(DC_ERR_NOMEM, "index_add: no device memory for the index check");
  int rc = check_index("index_add", index, dim, size, f);
  rc = rc == DC_OK ? flag_end(f, "index_add", dim, size) : (dc__cuda_mem.free(f), rc);
  if (rc != DC_OK || dc_numel(src) == 0) return rc;
  const dc_tensor *ops[2] = {out, src};
  ix_geom g;
  int64_t one = 1, len = index->ndim ? index->shape[0] : 1;
  geom_init(&g, src->ndim ? src->ndim : 1, src->ndim ? src->shape : &one, src->ndim ? dim : 0, 2,
            ops, true);
  if (!src->ndim) g.st[0][0] = g.st[1][0] = 0;
  int64_t ist = index->ndim ? index->stride[0] : 0;
  index_add_k<<<dc__cu_blocks(g.numel), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      g, (const int64_t *)dc__cuda_ptr(index), ist, len);
  return dc__cuda_launched("index_add kernel");
}
