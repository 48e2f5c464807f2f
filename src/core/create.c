/* Tensor constructors (zeros, ones, full, arange, linspace, eye, from data) and element access. */
#include "../backend/backend.h"

#include <math.h>
#include <string.h>

dc_tensor *dc_empty(dc_shape s, dc_dtype dt) { return dc__new(s, dt, DC_CPU); }

dc_tensor *dc_full(dc_shape s, double value, dc_dtype dt) {
  dc_tensor *t = dc__new(s, dt, DC_CPU);
  if (t && dc__backend(DC_CPU)->ew->fill(t, value) != DC_OK) {
    dc_free(t);
    return NULL;
  }
  return t;
}

dc_tensor *dc_zeros(dc_shape s, dc_dtype dt) { return dc_full(s, 0.0, dt); }
dc_tensor *dc_ones(dc_shape s, dc_dtype dt) { return dc_full(s, 1.0, dt); }
dc_tensor *dc_scalar(double value, dc_dtype dt) { return dc_full(DC_SCALAR_SHAPE, value, dt); }

dc_tensor *dc_empty_like(const dc_tensor *t) {
  return t ? dc__new(dc_shape_of(t), t->dtype, t->device) : dc__err(DC_ERR_ARG, "empty_like: NULL");
}
dc_tensor *dc_zeros_like(const dc_tensor *t) {
  dc_tensor *r = dc_empty_like(t);
  if (r && dc_fill_(r, 0.0) != DC_OK) {
    dc_free(r);
    return NULL;
  }
  return r;
}
dc_tensor *dc_ones_like(const dc_tensor *t) {
  dc_tensor *r = dc_empty_like(t);
  if (r && dc_fill_(r, 1.0) != DC_OK) {
    dc_free(r);
    return NULL;
  }
  return r;
}

dc_tensor *dc_arange(double start, double end, double step, dc_dtype dt) {
  if (step == 0 || !isfinite(start) || !isfinite(end) || !isfinite(step))
    return dc__err(DC_ERR_ARG, "arange: need finite start/end and a non-zero step, got %g, %g, %g",
                   start, end, step);
  if ((end - start) / step < 0)
    return dc__err(DC_ERR_ARG, "arange: step %g goes away from end (start %g, end %g)", step,
                   start, end);
  double nf = ceil((end - start) / step);
  if (nf > 1e12) return dc__err(DC_ERR_ARG, "arange: %g elements is too many", nf);
  int64_t n = (int64_t)nf;
  dc_tensor *t = dc__new(DC_SHAPE(n), dt, DC_CPU);
  if (!t) return NULL;
  size_t z = dc_dtype_size(dt);
  for (int64_t i = 0; i < n; i++)
    dc__store((char *)t->storage->data + (size_t)i * z, dt, start + (double)i * step);
  return t;
}

dc_tensor *dc_linspace(double start, double end, int64_t steps, dc_dtype dt) {
  if (steps < 0) return dc__err(DC_ERR_ARG, "linspace: steps must be >= 0, got %lld", (long long)steps);
  dc_tensor *t = dc__new(DC_SHAPE(steps), dt, DC_CPU);
  if (!t) return NULL;
  size_t z = dc_dtype_size(dt);
  double step = steps > 1 ? (end - start) / (double)(steps - 1) : 0.0;
  /* Like PyTorch: the first half counts up from start, the second half down from end. */
  for (int64_t i = 0; i < steps; i++) {
    double v = i < steps / 2 ? start + step * (double)i : end - step * (double)(steps - 1 - i);
    dc__store((char *)t->storage->data + (size_t)i * z, dt, v);
  }
  return t;
}

dc_tensor *dc_eye(int64_t n, int64_t m, dc_dtype dt) {
  if (m < 0) m = n;
  dc_tensor *t = dc_zeros(DC_SHAPE(n, m), dt);
  if (!t) return NULL;
  size_t z = dc_dtype_size(dt);
  for (int64_t i = 0; i < n && i < m; i++)
    dc__store((char *)t->storage->data + (size_t)(i * m + i) * z, dt, 1.0);
  return t;
}

dc_tensor *dc_from_data(const void *data, dc_shape s, dc_dtype dt) {
  if (!data) return dc__err(DC_ERR_ARG, "from_data: data is NULL");
  dc_tensor *t = dc__new(s, dt, DC_CPU);
  if (t) memcpy(t->storage->data, data, (size_t)dc_numel(t) * dc_dtype_size(dt));
  return t;
}

void *dc_data(const dc_tensor *t) {
  if (!t || t->device != DC_CPU) return NULL;
  return (char *)t->storage->data + (size_t)t->offset * dc_dtype_size(t->dtype);
}

/* Storage offset of the element at a flat row-major index. */
static int64_t flat_offset(const dc_tensor *t, int64_t i) {
  int64_t off = t->offset;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (i % t->shape[d]) * t->stride[d];
    i /= t->shape[d];
  }
  return off;
}

double dc_item_at(const dc_tensor *t, int64_t i) {
  if (!t || t->device != DC_CPU || i < 0 || i >= dc_numel(t)) {
    dc__err(DC_ERR_ARG, "item_at: index %lld out of range (or tensor NULL / not on cpu)",
            (long long)i);
    return NAN;
  }
  return dc__load((const char *)t->storage->data + (size_t)flat_offset(t, i) * dc_dtype_size(t->dtype),
                  t->dtype);
}

double dc_item(const dc_tensor *t) {
  if (!t) {
    dc__err(DC_ERR_ARG, "item: tensor is NULL");
    return NAN;
  }
  if (dc_numel(t) != 1) {
    char b[128];
    dc__err(DC_ERR_ARG, "item: only one-element tensors can be converted to a number, this one "
                        "has shape %s", dc_shape_str(dc_shape_of(t), b, sizeof b));
    return NAN;
  }
  return dc_item_at(t, 0);
}

int dc_copy_to_buffer(const dc_tensor *t, void *out, size_t out_bytes) {
  if (!t || !out) return dc__errs(DC_ERR_ARG, "copy_to_buffer: NULL argument");
  size_t need = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
  if (out_bytes < need)
    return dc__errs(DC_ERR_ARG, "copy_to_buffer: buffer has %zu bytes, tensor needs %zu", out_bytes,
                    need);
  if (t->device != DC_CPU)
    return dc__errs(DC_ERR_UNSUPPORTED, "copy_to_buffer: move the tensor to the cpu first");
  if (dc_is_contiguous(t)) {
    memcpy(out, dc_data(t), need);
    return DC_OK;
  }
  size_t z = dc_dtype_size(t->dtype);
  for (int64_t i = 0, n = dc_numel(t); i < n; i++)
    memcpy((char *)out + (size_t)i * z, (const char *)t->storage->data + (size_t)flat_offset(t, i) * z, z);
  return DC_OK;
}

int dc_fill_(dc_tensor *t, double value) {
  if (!t) return dc__errs(DC_ERR_ARG, "fill_: tensor is NULL");
  const dc_backend *be = dc__backend(t->device);
  if (!be) return dc_last_status();
  t->storage->version++;
  return be->ew->fill(t, value);
}

int dc_copy_(dc_tensor *dst, const dc_tensor *src) {
  if (!dst || !src) return dc__errs(DC_ERR_ARG, "copy_: NULL argument");
  dc_shape out;
  if (!dc__broadcast_shapes("copy_", dc_shape_of(dst), dc_shape_of(src), &out)) return DC_ERR_ARG;
  if (!dc_shape_equal(out, dc_shape_of(dst))) {
    char a[128], b[128];
    return dc__errs(DC_ERR_ARG, "copy_: source of shape %s cannot be broadcast to destination %s",
                    dc_shape_str(dc_shape_of(src), a, sizeof a),
                    dc_shape_str(dc_shape_of(dst), b, sizeof b));
  }
  if (dst->device != src->device)
    return dc__errs(DC_ERR_UNSUPPORTED, "copy_: source and destination are on different devices");
  const dc_backend *be = dc__backend(dst->device);
  if (!be) return dc_last_status();
  dst->storage->version++;
  return be->ew->copy(dst, src);
}
