/* CPU gather / scatter_add / index_select / index_add. Every index is checked before it is used
 * (an out-of-range one is an error naming the op, the value and the valid range). Adds run
 * race-free and in a fixed order: each thread owns whole rows of the output along `dim`, so
 * results never depend on the thread count. The ops layer (src/ops/index.c) checks shapes.
 * Dimension letters: O the dims before `dim`, S x's size along dim, L the index length, I the
 * dims after `dim`. */
#include "cpu-impl.h"

#include <string.h>

/* ---- iteration over all dims but `dim` ---- */

/* Up to 3 operands seen with one iteration shape; row r = one coordinate of the other dims. */
typedef struct idx_iter {
  int nd;                         /* dims other than `dim` */
  int64_t shape[DC_MAX_DIMS];     /* their sizes */
  int64_t stride[3][DC_MAX_DIMS]; /* their strides per operand */
  int64_t base[3];                /* storage offset per operand */
  int64_t dstride[3];             /* stride along `dim` per operand */
  int64_t rows;                   /* product of shape[] */
} idx_iter;

/* shape: the iteration shape (ndim dims); ops[k] must have at least those sizes. */
static void iter_setup(idx_iter *it, int ndim, const int64_t *shape, int dim, int nops,
                       const dc_tensor *const *ops) {
  it->nd = 0;
  it->rows = 1;
  for (int k = 0; k < nops; k++) {
    it->base[k] = ops[k]->offset;
    it->dstride[k] = ndim ? ops[k]->stride[dim] : 0;
  }
  for (int d = 0; d < ndim; d++) {
    if (d == dim) continue;
    it->shape[it->nd] = shape[d];
    for (int k = 0; k < nops; k++) it->stride[k][it->nd] = ops[k]->stride[d];
    it->rows *= shape[d];
    it->nd++;
  }
}

static inline void iter_row(const idx_iter *it, int nops, int64_t r, int64_t *off) {
  for (int k = 0; k < nops; k++) off[k] = it->base[k];
  for (int d = it->nd - 1; d >= 0; d--) {
    int64_t c = r % it->shape[d];
    r /= it->shape[d];
    for (int k = 0; k < nops; k++) off[k] += c * it->stride[k][d];
  }
}

static int bad_index(const char *op, int64_t value, int dim, int64_t size) {
  return dc__errs(DC_ERR_ARG,
                  "%s: index %lld is out of range for dim %d of size %lld (valid "
                  "indices are 0..%lld)",
                  op, (long long)value, dim, (long long)size, (long long)size - 1);
}

/* Checks a 1-D int64 index [L] against size; DC_OK or the error. */
static int check_index_1d(const char *op, const dc_tensor *index, int dim, int64_t size) {
  const int64_t *ix = (const int64_t *)index->storage->data + index->offset;
  int64_t n = index->ndim ? index->shape[0] : 1, st = index->ndim ? index->stride[0] : 0;
  for (int64_t i = 0; i < n; i++)
    if (ix[i * st] < 0 || ix[i * st] >= size) return bad_index(op, ix[i * st], dim, size);
  return DC_OK;
}

/* dst = src for one element of size z (a pure copy works for every dtype) */
static inline void copy_elem(char *dst, const char *src, size_t z) {
  switch (z) {
  case 8:
    memcpy(dst, src, 8);
    break;
  case 4:
    memcpy(dst, src, 4);
    break;
  case 2:
    memcpy(dst, src, 2);
    break;
  default:
    *dst = *src;
    break;
  }
}

/* *dst += *src for one element of dtype dt */
static inline void add_elem(char *dst, const char *src, dc_dtype dt) {
  switch (dt) {
  case DC_F32:
    *(float *)dst += *(const float *)src;
    break;
  case DC_F64:
    *(double *)dst += *(const double *)src;
    break;
  case DC_I64:
    *(int64_t *)dst += *(const int64_t *)src;
    break;
  case DC_I32:
    *(int32_t *)dst += *(const int32_t *)src;
    break;
  case DC_U8:
    *(uint8_t *)dst = (uint8_t)(*(uint8_t *)dst + *(const uint8_t *)src);
    break;
  case DC_BOOL:
    *(uint8_t *)dst = *(uint8_t *)dst || *(const uint8_t *)src;
    break;
  case DC_BF16:
  case DC_F16:
  case DC_DTYPE_COUNT:
    dc__store(dst, dt, dc__load(dst, dt) + dc__load(src, dt));
    break;
  }
}

/* ---- gather: out [index shape] = x[..., index[...], ...] along dim ---- */

static int cpu_gather(dc_tensor *out, const dc_tensor *x, int dim, const dc_tensor *index) {
  if (dc_numel(index) == 0) return DC_OK;
  const dc_tensor *ops[3] = {out, index, x};
  idx_iter it;
  iter_setup(&it, index->ndim, index->shape, dim, 3, ops);
  int64_t len = index->ndim ? index->shape[dim] : 1, size = x->ndim ? x->shape[dim] : 1;
  size_t z = dc_dtype_size(x->dtype);
  const int64_t *ix = index->storage->data;
  int64_t bad = 0;
  bool failed = false;
#pragma omp parallel for schedule(static) if (it.rows * len >= DC__PAR_MIN && it.rows > 1)
  for (int64_t r = 0; r < it.rows; r++) {
    int64_t off[3];
    iter_row(&it, 3, r, off);
    for (int64_t j = 0; j < len; j++) {
      int64_t v = ix[off[1] + j * it.dstride[1]];
      if (DC__UNLIKELY(v < 0 || v >= size)) {
#pragma omp critical(dc_index_error)
        {
          if (!failed) bad = v;
          failed = true;
        }
        break;
      }
      copy_elem(DC__PTR(out, off[0] + j * it.dstride[0]), DC__PTR(x, off[2] + v * it.dstride[2]),
                z);
    }
  }
  return failed ? bad_index("gather", bad, dim, size) : DC_OK;
}

/* ---- scatter_add: out[..., index[...], ...] += src[...] along dim (out already holds x) ---- */

static int cpu_scatter_add(dc_tensor *out, int dim, const dc_tensor *index, const dc_tensor *src) {
  if (dc_numel(index) == 0) return DC_OK;
  const dc_tensor *ops[3] = {out, index, src};
  idx_iter it;
  iter_setup(&it, index->ndim, index->shape, dim, 3, ops);
  int64_t len = index->ndim ? index->shape[dim] : 1, size = out->ndim ? out->shape[dim] : 1;
  const int64_t *ix = index->storage->data;
  int64_t bad = 0;
  bool failed = false;
  /* check first: a bad index must leave no partial sums behind it in the same row */
#pragma omp parallel for schedule(static) if (it.rows * len >= DC__PAR_MIN && it.rows > 1)
  for (int64_t r = 0; r < it.rows; r++) {
    int64_t off[3];
    iter_row(&it, 3, r, off);
    for (int64_t j = 0; j < len; j++) {
      int64_t v = ix[off[1] + j * it.dstride[1]];
      if (DC__UNLIKELY(v < 0 || v >= size)) {
#pragma omp critical(dc_index_error)
        {
          if (!failed) bad = v;
          failed = true;
        }
        break;
      }
    }
  }
  if (failed) return bad_index("scatter_add", bad, dim, size);
    /* rows differ in a dim other than `dim`, so no two rows touch the same element of out */
#pragma omp parallel for schedule(static) if (it.rows * len >= DC__PAR_MIN && it.rows > 1)
  for (int64_t r = 0; r < it.rows; r++) {
    int64_t off[3];
    iter_row(&it, 3, r, off);
    for (int64_t j = 0; j < len; j++) {
      int64_t v = ix[off[1] + j * it.dstride[1]];
      add_elem(DC__PTR(out, off[0] + v * it.dstride[0]), DC__PTR(src, off[2] + j * it.dstride[2]),
               out->dtype);
    }
  }
  return DC_OK;
}

/* ---- index_select: out [O, L, I] = x [O, S, I] at rows index [L] ---- */

static int cpu_index_select(dc_tensor *out, const dc_tensor *x, int dim, const dc_tensor *index) {
  int64_t size = x->ndim ? x->shape[dim] : 1;
  int rc = check_index_1d("index_select", index, dim, size);
  if (rc != DC_OK || dc_numel(out) == 0) return rc;
  const int64_t *ix = (const int64_t *)index->storage->data + index->offset;
  int64_t len = index->ndim ? index->shape[0] : 1, ist = index->ndim ? index->stride[0] : 0;
  size_t z = dc_dtype_size(x->dtype);
  if (dc_is_contiguous(x) && dc_is_contiguous(out)) {
    int64_t o = 1, in = 1;
    for (int d = 0; d < dim; d++) o *= x->shape[d];
    for (int d = dim + 1; d < x->ndim; d++) in *= x->shape[d];
    const char *xp = DC__PTR(x, x->offset);
    char *op = DC__PTR(out, out->offset);
#pragma omp parallel for schedule(static) if (o * len * in >= DC__PAR_MIN && o * len > 1)
    for (int64_t t = 0; t < o * len; t++) {
      int64_t oi = t / len, i = t % len;
      memcpy(op + (size_t)(t * in) * z, xp + (size_t)((oi * size + ix[i * ist]) * in) * z,
             (size_t)in * z);
    }
    return DC_OK;
  }
  const dc_tensor *ops[2] = {out, x};
  idx_iter it;
  iter_setup(&it, out->ndim, out->shape, dim, 2, ops);
#pragma omp parallel for schedule(static) if (it.rows * len >= DC__PAR_MIN && it.rows > 1)
  for (int64_t r = 0; r < it.rows; r++) {
    int64_t off[2];
    iter_row(&it, 2, r, off);
    for (int64_t j = 0; j < len; j++)
      copy_elem(DC__PTR(out, off[0] + j * it.dstride[0]),
                DC__PTR(x, off[1] + ix[j * ist] * it.dstride[1]), z);
  }
  return DC_OK;
}

/* ---- index_add: out [O, S, I] rows index [L] += src [O, L, I] ---- */

/* dst [n] += src [n], typed */
static void add_run(char *dst, const char *src, int64_t n, dc_dtype dt) {
  if (dt == DC_F32) {
    float *d = (float *)dst;
    const float *s = (const float *)src;
    for (int64_t k = 0; k < n; k++) d[k] += s[k];
  } else if (dt == DC_F64) {
    double *d = (double *)dst;
    const double *s = (const double *)src;
    for (int64_t k = 0; k < n; k++) d[k] += s[k];
  } else {
    size_t z = dc_dtype_size(dt);
    for (int64_t k = 0; k < n; k++) add_elem(dst + (size_t)k * z, src + (size_t)k * z, dt);
  }
}

/* Columns of I handled per task in the contiguous path (keeps tasks when O is 1). */
#define INDEX_ADD_CHUNK 1024

static int cpu_index_add(dc_tensor *out, int dim, const dc_tensor *index, const dc_tensor *src) {
  int64_t size = out->ndim ? out->shape[dim] : 1;
  int rc = check_index_1d("index_add", index, dim, size);
  if (rc != DC_OK || dc_numel(src) == 0) return rc;
  const int64_t *ix = (const int64_t *)index->storage->data + index->offset;
  int64_t len = index->ndim ? index->shape[0] : 1, ist = index->ndim ? index->stride[0] : 0;
  size_t z = dc_dtype_size(out->dtype);
  if (dc_is_contiguous(src) && dc_is_contiguous(out)) {
    int64_t o = 1, in = 1;
    for (int d = 0; d < dim; d++) o *= out->shape[d];
    for (int d = dim + 1; d < out->ndim; d++) in *= out->shape[d];
    int64_t nch = (in + INDEX_ADD_CHUNK - 1) / INDEX_ADD_CHUNK;
    char *op = DC__PTR(out, out->offset);
    const char *sp = DC__PTR(src, src->offset);
    /* a task owns columns [c0, c0 + n) of one o and adds the L source rows in index order */
#pragma omp parallel for schedule(static) if (o * len * in >= DC__PAR_MIN && o * nch > 1)
    for (int64_t t = 0; t < o * nch; t++) {
      int64_t oi = t / nch, c0 = (t % nch) * INDEX_ADD_CHUNK;
      int64_t n = in - c0 < INDEX_ADD_CHUNK ? in - c0 : INDEX_ADD_CHUNK;
      for (int64_t i = 0; i < len; i++)
        add_run(op + (size_t)((oi * size + ix[i * ist]) * in + c0) * z,
                sp + (size_t)((oi * len + i) * in + c0) * z, n, out->dtype);
    }
    return DC_OK;
  }
  const dc_tensor *ops[2] = {out, src};
  idx_iter it;
  iter_setup(&it, src->ndim, src->shape, dim, 2, ops);
#pragma omp parallel for schedule(static) if (it.rows * len >= DC__PAR_MIN && it.rows > 1)
  for (int64_t r = 0; r < it.rows; r++) {
    int64_t off[2];
    iter_row(&it, 2, r, off);
    for (int64_t j = 0; j < len; j++)
      add_elem(DC__PTR(out, off[0] + ix[j * ist] * it.dstride[0]),
               DC__PTR(src, off[1] + j * it.dstride[1]), out->dtype);
  }
  return DC_OK;
}

const dc_index_kernels dc__cpu_index = {
    .gather = cpu_gather,
    .scatter_add = cpu_scatter_add,
    .index_select = cpu_index_select,
    .index_add = cpu_index_add,
};
