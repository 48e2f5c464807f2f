/* The CUDA optimizer kernel family (optim-kernels.h): the fused multi-tensor step, its
 * reference loop, and the gradient-clipping passes (norms, scale, clamp). A step is one launch
 * for every slot, like PyTorch's fused Adam: a table of the slots (pointers, sizes, scalars) is
 * copied to device memory from the caching allocator, and each block takes one fixed chunk of
 * one slot. The per-element arithmetic is optim-rules.cuh's, shared with its host test; this
 * file is compiled with -fmad=false (cmake/cuda.cmake) so that it rounds like the CPU. */
#include "kern.cuh"

#include "optim-rules.cuh"

/* ---- kernels ---- */

/* Block c of a step: chunk c of the slot that owns it (grid = every chunk of every slot). */
__global__ void optk_step_k(dc_optk_rule rule, const dc__cu_optk_slot *slots, int nslots) {
  int64_t c = blockIdx.x;
  int k = dc__cu_optk_owner((const char *)slots, sizeof *slots, offsetof(dc__cu_optk_slot, first),
                            nslots, c);
  const dc__cu_optk_slot s = slots[k]; /* registers: the stores below cannot alias it */
  int64_t off = (c - s.first) * DC__CU_OPTK_CHUNK;
  int64_t end = s.n - off < DC__CU_OPTK_CHUNK ? s.n : off + DC__CU_OPTK_CHUNK;
  if (s.dtype == DC_F32)
    for (int64_t i = off + threadIdx.x; i < end; i += blockDim.x)
      dc__cu_optk_update_f32(rule, &s, i);
  else
    for (int64_t i = off + threadIdx.x; i < end; i += blockDim.x)
      dc__cu_optk_update_f64(rule, &s, i);
}

/* The reference: one slot, one thread per element (grid-stride). */
__global__ void optk_ref_k(dc_optk_rule rule, const dc__cu_optk_slot s) {
  if (s.dtype == DC_F32) {
    DC__CU_FOR(i, s.n) dc__cu_optk_update_f32(rule, &s, i);
  } else {
    DC__CU_FOR(i, s.n) dc__cu_optk_update_f64(rule, &s, i);
  }
}

/* Scale (is_scale: x *= a) or clamp (to [a, b]) chunk blockIdx.x of the buffers. */
__global__ void optk_inplace_k(const dc__cu_optk_buf *bufs, int nbufs, bool is_scale, double a,
                               double b) {
  int64_t c = blockIdx.x;
  int k = dc__cu_optk_owner((const char *)bufs, sizeof *bufs, offsetof(dc__cu_optk_buf, first),
                            nbufs, c);
  const dc__cu_optk_buf f = bufs[k];
  int64_t off = (c - f.first) * DC__CU_OPTK_CHUNK;
  int64_t end = f.n - off < DC__CU_OPTK_CHUNK ? f.n : off + DC__CU_OPTK_CHUNK;
  for (int64_t i = off + threadIdx.x; i < end; i += blockDim.x) {
    if (f.dtype == DC_F32) {
      if (is_scale)
        dc__cu_optk_scale_f32((float *)f.data, i, a);
      else
        dc__cu_optk_clamp_f32((float *)f.data, i, a, b);
    } else {
      if (is_scale)
        dc__cu_optk_scale_f64((double *)f.data, i, a);
      else
        dc__cu_optk_clamp_f64((double *)f.data, i, a, b);
    }
  }
}

/* Chunks per block of the norms; a block is NORM_CPB x DC__CU_NORM_LANES threads. */
#define NORM_CPB 32

/* part[c] = the partial of norm chunk c (of DC__CU_NORM_CHUNK elements), nchunks in all: lane j
 * of each chunk in its own thread, the lanes combined in fixed order by the chunk's lane 0. */
__global__ void optk_norm_partials_k(const dc__cu_optk_buf *bufs, int nbufs, int64_t nchunks,
                                     dc__cu_norm_kind kind, double p, double *part) {
  __shared__ double lanes[NORM_CPB * DC__CU_NORM_LANES];
  int local = (int)threadIdx.x / DC__CU_NORM_LANES, j = (int)threadIdx.x % DC__CU_NORM_LANES;
  int64_t c = (int64_t)blockIdx.x * NORM_CPB + local;
  if (c < nchunks) {
    int k = dc__cu_optk_owner((const char *)bufs, sizeof *bufs, offsetof(dc__cu_optk_buf, first),
                              nbufs, c);
    const dc__cu_optk_buf f = bufs[k];
    int64_t off = (c - f.first) * DC__CU_NORM_CHUNK;
    int64_t n = f.n - off < DC__CU_NORM_CHUNK ? f.n - off : DC__CU_NORM_CHUNK;
    lanes[threadIdx.x] = f.dtype == DC_F32
                             ? dc__cu_norm_lane_f32((const float *)f.data + off, n, j, kind, p)
                             : dc__cu_norm_lane_f64((const double *)f.data + off, n, j, kind, p);
  }
  __syncthreads();
  if (c < nchunks && j == 0)
    part[c] = dc__cu_norm_lanes_combine(&lanes[local * DC__CU_NORM_LANES], kind);
}

/* ---- host side ---- */

/* A device copy of the host table h (bytes), from the caching allocator; NULL (error set) when
 * there is no memory or the copy fails. The copy from pageable memory returns once staged. */
static void *table_to_device(const void *h, size_t bytes, const char *what) {
  void *d = dc__cuda_mem.alloc(bytes);
  if (!d) {
    (void)dc__errs(DC_ERR_NOMEM, "%s: no device memory for the %zu-byte table of its buffers", what,
                   bytes);
    return NULL;
  }
  if (dc__cuda_mem.from_host(d, h, bytes) != DC_OK) {
    dc__cuda_mem.free(d);
    return NULL;
  }
  return d;
}

/* Grid sizes are int: a launch of more chunks than that is refused. */
static int check_chunks(int64_t nchunks, const char *what) {
  if (nchunks <= INT32_MAX) return DC_OK;
  return dc__errs(DC_ERR_ARG,
                  "%s: %lld chunks are more than one launch takes; step fewer "
                  "parameters at once",
                  what, (long long)nchunks);
}

static int cuda_optim_step(dc_optk_rule rule, const dc_optk_slot *slots, int nslots) {
  if (nslots <= 0) return DC_OK;
  dc__cu_optk_slot *h = (dc__cu_optk_slot *)dc__malloc(sizeof *h * (size_t)nslots);
  if (!h) return DC_ERR_NOMEM;
  int64_t c = 0;
  for (int k = 0; k < nslots; k++) {
    h[k] = dc__cu_optk_slot_of(&slots[k], c);
    c += dc__cu_optk_chunks(slots[k].n, DC__CU_OPTK_CHUNK);
  }
  int rc = check_chunks(c, "optim step");
  void *d =
      rc == DC_OK && c > 0 ? table_to_device(h, sizeof *h * (size_t)nslots, "optim step") : NULL;
  dc__free(h);
  if (rc != DC_OK || c == 0) return rc;
  if (!d) return dc_last_status();
  optk_step_k<<<(unsigned)c, DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      rule, (const dc__cu_optk_slot *)d, nslots);
  rc = dc__cuda_launched("optim step kernel");
  dc__cuda_mem.free(d); /* reused only by work queued after this launch on the one stream */
  return rc;
}

static int cuda_optim_step_ref(dc_optk_rule rule, const dc_optk_slot *slots, int nslots) {
  for (int k = 0; k < nslots; k++) {
    if (slots[k].n == 0) continue;
    optk_ref_k<<<dc__cu_blocks(slots[k].n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
        rule, dc__cu_optk_slot_of(&slots[k], 0));
    int rc = dc__cuda_launched("optim step_ref kernel");
    if (rc != DC_OK) return rc;
  }
  return DC_OK;
}

/* The device table of bufs with chunks of `chunk` elements; *nchunks gets their count. NULL
 * with *nchunks 0 when there is nothing to do; NULL with an error status otherwise. */
static void *bufs_to_device(const dc_optk_buf *bufs, int nbufs, int64_t chunk, int64_t *nchunks,
                            int64_t *first, const char *what, int *rc) {
  dc__cu_optk_buf *h = (dc__cu_optk_buf *)dc__malloc(sizeof *h * (size_t)nbufs);
  *rc = h ? DC_OK : DC_ERR_NOMEM;
  if (!h) return NULL;
  int64_t c = 0;
  for (int k = 0; k < nbufs; k++) {
    h[k].data = bufs[k].data;
    h[k].n = bufs[k].n;
    h[k].first = c;
    h[k].dtype = (int32_t)bufs[k].dtype;
    if (first) first[k] = c;
    c += dc__cu_optk_chunks(bufs[k].n, chunk);
  }
  if (first) first[nbufs] = c;
  *nchunks = c;
  *rc = check_chunks(c, what);
  void *d = *rc == DC_OK && c > 0 ? table_to_device(h, sizeof *h * (size_t)nbufs, what) : NULL;
  dc__free(h);
  if (*rc == DC_OK && c > 0 && !d) *rc = dc_last_status();
  return d;
}

static int cuda_optk_norms(const dc_optk_buf *bufs, int nbufs, double p, double *norms) {
  if (nbufs <= 0) return DC_OK;
  dc__cu_norm_kind kind = dc__cu_norm_kind_of(p);
  int64_t *first = (int64_t *)dc__malloc(sizeof *first * (size_t)(nbufs + 1)), nchunks = 0;
  if (!first) return DC_ERR_NOMEM;
  int rc;
  void *d = bufs_to_device(bufs, nbufs, DC__CU_NORM_CHUNK, &nchunks, first, "clip norms", &rc);
  double *part = NULL, *dpart = NULL;
  if (rc == DC_OK && nchunks > 0) {
    part = (double *)dc__malloc(sizeof *part * (size_t)nchunks);
    dpart = (double *)dc__cuda_mem.alloc(sizeof *dpart * (size_t)nchunks);
    if (!part || !dpart)
      rc =
          dc__errs(DC_ERR_NOMEM, "clip norms: no memory for %lld partial sums", (long long)nchunks);
  }
  if (rc == DC_OK && nchunks > 0) {
    unsigned blocks = (unsigned)((nchunks + NORM_CPB - 1) / NORM_CPB);
    optk_norm_partials_k<<<blocks, NORM_CPB * DC__CU_NORM_LANES, 0, dc__cuda_stream()>>>(
        (const dc__cu_optk_buf *)d, nbufs, nchunks, kind, p, dpart);
    rc = dc__cuda_launched("clip norms kernel");
    if (rc == DC_OK) rc = dc__cuda_mem.to_host(part, dpart, sizeof *part * (size_t)nchunks);
  }
  /* the partials of each buffer in chunk order, on the host, as the CPU combines them */
  for (int b = 0; b < nbufs && rc == DC_OK; b++) {
    double acc = dc__cu_norm_init(kind);
    for (int64_t c = first[b]; c < first[b + 1]; c++) acc = dc__cu_norm_combine(acc, part[c], kind);
    norms[b] = dc__cu_norm_finish(acc, kind, p);
  }
  dc__cuda_mem.free(dpart);
  dc__cuda_mem.free(d);
  dc__free(part);
  dc__free(first);
  return rc;
}

/* One launch over every buffer: scale (is_scale) or clamp to [lo, hi]. */
static int inplace_pass(const dc_optk_buf *bufs, int nbufs, bool is_scale, double a, double b) {
  if (nbufs <= 0) return DC_OK;
  const char *what = is_scale ? "clip scale" : "clip clamp";
  int64_t nchunks = 0;
  int rc;
  void *d = bufs_to_device(bufs, nbufs, DC__CU_OPTK_CHUNK, &nchunks, NULL, what, &rc);
  if (rc != DC_OK || nchunks == 0) return rc;
  optk_inplace_k<<<(unsigned)nchunks, DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      (const dc__cu_optk_buf *)d, nbufs, is_scale, a, b);
  rc = dc__cuda_launched(is_scale ? "clip scale kernel" : "clip clamp kernel");
  dc__cuda_mem.free(d);
  return rc;
}

static int cuda_optk_scale(const dc_optk_buf *bufs, int nbufs, double coef) {
  return inplace_pass(bufs, nbufs, true, coef, 0);
}

static int cuda_optk_clamp(const dc_optk_buf *bufs, int nbufs, double lo, double hi) {
  return inplace_pass(bufs, nbufs, false, lo, hi);
}

const struct dc_optim_kernels dc__cuda_optim = {
    DC_OPTIM_KERNELS_VERSION, cuda_optim_step, cuda_optim_step_ref,
    cuda_optk_norms,          cuda_optk_scale, cuda_optk_clamp,
};
