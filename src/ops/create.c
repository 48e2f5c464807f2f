/* Tensor constructors (zeros, ones, full, arange, linspace, eye, from data) on any device,
 * element access, fill and copies across devices. Values computed on the host (arange,
 * linspace, eye, from data) are made on the cpu and moved with one transfer. */
#include "../backend/backend.h"

#include <math.h>
#include <string.h>

dc_tensor *dc_empty_on(dc_shape s, dc_dtype dt, dc_device dev) { return dc__new(s, dt, dev); }
dc_tensor *dc_empty(dc_shape s, dc_dtype dt) { return dc__new(s, dt, DC_CPU); }

dc_tensor *dc_full_on(dc_shape s, double value, dc_dtype dt, dc_device dev) {
  const dc_backend *be = dc__backend(dev);
  dc_tensor *t = be ? dc__new(s, dt, dev) : NULL;
  if (t && be->ew->fill(t, value) != DC_OK) {
    dc_free(t);
    return NULL;
  }
  return t;
}

dc_tensor *dc_full(dc_shape s, double value, dc_dtype dt) {
  return dc_full_on(s, value, dt, DC_CPU);
}
dc_tensor *dc_zeros(dc_shape s, dc_dtype dt) { return dc_full(s, 0.0, dt); }
dc_tensor *dc_ones(dc_shape s, dc_dtype dt) { return dc_full(s, 1.0, dt); }
dc_tensor *dc_scalar(double value, dc_dtype dt) { return dc_full(DC_SCALAR_SHAPE, value, dt); }
dc_tensor *dc_zeros_on(dc_shape s, dc_dtype dt, dc_device dev) {
  return dc_full_on(s, 0.0, dt, dev);
}
dc_tensor *dc_ones_on(dc_shape s, dc_dtype dt, dc_device dev) {
  return dc_full_on(s, 1.0, dt, dev);
}
dc_tensor *dc_scalar_on(double value, dc_dtype dt, dc_device dev) {
  return dc_full_on(DC_SCALAR_SHAPE, value, dt, dev);
}

dc_tensor *dc__host_to(dc_tensor *t, dc_device dev) {
  if (!t || dev == DC_CPU) return t;
  dc_tensor *r = dc__new(dc_shape_of(t), t->dtype, dev);
  if (r && dc__transfer(r, t) != DC_OK) {
    dc_free(r);
    r = NULL;
  }
  dc_free(t);
  return r;
}

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
    return dc__err(DC_ERR_ARG, "arange: step %g goes away from end (start %g, end %g)", step, start,
                   end);
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
  if (steps < 0)
    return dc__err(DC_ERR_ARG, "linspace: steps must be >= 0, got %lld", (long long)steps);
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

dc_tensor *dc_arange_on(double start, double end, double step, dc_dtype dt, dc_device dev) {
  return dc__backend(dev) ? dc__host_to(dc_arange(start, end, step, dt), dev) : NULL;
}
dc_tensor *dc_linspace_on(double start, double end, int64_t steps, dc_dtype dt, dc_device dev) {
  return dc__backend(dev) ? dc__host_to(dc_linspace(start, end, steps, dt), dev) : NULL;
}
dc_tensor *dc_eye_on(int64_t n, int64_t m, dc_dtype dt, dc_device dev) {
  return dc__backend(dev) ? dc__host_to(dc_eye(n, m, dt), dev) : NULL;
}
dc_tensor *dc_from_data_on(const void *data, dc_shape s, dc_dtype dt, dc_device dev) {
  return dc__backend(dev) ? dc__host_to(dc_from_data(data, s, dt), dev) : NULL;
}

int dc_copy_to_buffer(const dc_tensor *t, void *out, size_t out_bytes) {
  if (!t || !out) return dc__errs(DC_ERR_ARG, "copy_to_buffer: NULL argument");
  size_t need = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
  if (out_bytes < need)
    return dc__errs(DC_ERR_ARG, "copy_to_buffer: buffer has %zu bytes, tensor needs %zu", out_bytes,
                    need);
  if (dc_is_contiguous(t))
    return dc__storage_read(t, (size_t)t->offset * dc_dtype_size(t->dtype), out, need);
  /* strided: gathered into a contiguous copy on t's device, then one transfer */
  const dc_backend *be = dc__backend(t->device);
  dc_tensor *c = be ? dc__new(dc_shape_of(t), t->dtype, t->device) : NULL;
  int rc = c ? be->ew->copy(c, t) : (int)dc_last_status();
  if (rc == DC_OK) rc = dc__storage_read(c, 0, out, need);
  dc_free(c);
  return rc;
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
  const dc_backend *be = dc__backend(dst->device);
  if (!be) return dc_last_status();
  if (dst->device == src->device) {
    dst->storage->version++;
    return be->ew->copy(dst, src);
  }
  /* across devices: broadcast and convert on the source's device, one transfer, then (for a
   * strided destination) a copy on the destination's */
  const dc_backend *sbe = dc__backend(src->device);
  if (!sbe) return dc_last_status();
  dc_tensor *a = dc__new(dc_shape_of(dst), dst->dtype, src->device);
  int rc = a ? sbe->ew->copy(a, src) : (int)dc_last_status();
  if (rc == DC_OK && dc_is_contiguous(dst)) {
    rc = dc__transfer(dst, a);
  } else if (rc == DC_OK) {
    dc_tensor *b = dc__new(dc_shape_of(dst), dst->dtype, dst->device);
    rc = b ? dc__transfer(b, a) : (int)dc_last_status();
    if (rc == DC_OK) {
      dst->storage->version++;
      rc = be->ew->copy(dst, b);
    }
    dc_free(b);
  }
  dc_free(a);
  return rc;
}
