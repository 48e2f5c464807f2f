/* Element access and byte moves between devices: the host pointer of a cpu tensor, element
 * reads that synchronise on any device, transfers of contiguous tensors across devices and
 * moving a tensor's storage to another device in place. Kernel work (gathering strided
 * tensors, dtype conversion) is left to src/ops. */
#include "core-impl.h"

#include <math.h>
#include <string.h>

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
  if (!t || i < 0 || i >= dc_numel(t)) {
    dc__err(DC_ERR_ARG, "item_at: index %lld out of range (or tensor NULL)", (long long)i);
    return NAN;
  }
  size_t z = dc_dtype_size(t->dtype);
  if (t->device == DC_CPU)
    return dc__load((const char *)t->storage->data + (size_t)flat_offset(t, i) * z, t->dtype);
  char buf[16];
  if (dc__storage_read(t, (size_t)flat_offset(t, i) * z, buf, z) != DC_OK) return NAN;
  return dc__load(buf, t->dtype);
}

double dc_item(const dc_tensor *t) {
  if (!t) {
    dc__err(DC_ERR_ARG, "item: tensor is NULL");
    return NAN;
  }
  if (dc_numel(t) != 1) {
    char b[128];
    dc__err(DC_ERR_ARG,
            "item: only one-element tensors can be converted to a number, this one "
            "has shape %s",
            dc_shape_str(dc_shape_of(t), b, sizeof b));
    return NAN;
  }
  return dc_item_at(t, 0);
}

int dc__transfer(dc_tensor *dst, const dc_tensor *src) {
  size_t z = dc_dtype_size(src->dtype), n = (size_t)dc_numel(src) * z;
  DC__CHECK(dst->dtype == src->dtype && dc_numel(dst) == dc_numel(src), DC_ERR_STATE);
  char *d = (char *)dst->storage->data + (size_t)dst->offset * z;
  const char *s = (const char *)src->storage->data + (size_t)src->offset * z;
  const dc_device_mem *dm = dc__device_mem(dst->device), *sm = dc__device_mem(src->device);
  if (!dm || !sm) return dc_last_status();
  dst->storage->version++;
  if (src->device == dst->device) return dm->copy(d, s, n);
  if (src->device == DC_CPU) return dm->from_host(d, s, n);
  if (dst->device == DC_CPU) return sm->to_host(d, s, n);
  void *host = dc__malloc(n ? n : 1); /* device to device: staged through the host */
  if (!host) return DC_ERR_NOMEM;
  int rc = sm->to_host(host, s, n);
  if (rc == DC_OK) rc = dm->from_host(d, host, n);
  dc__free(host);
  return rc;
}

int dc_move_to_device_(dc_tensor *t, dc_device dev) {
  if (!t) return dc__errs(DC_ERR_ARG, "move_to_device_: tensor is NULL");
  const dc_device_mem *dm = dc__device_mem(dev);
  if (!dm) return dc_last_status();
  if (t->device == dev) return DC_OK;
  dc_storage *old = t->storage;
  dc_storage *s = dc__storage_new(old->nbytes, dev);
  if (!s) return dc_last_status();
  dc_tensor src = *t, dst = *t; /* whole-storage byte views */
  src.offset = dst.offset = 0;
  src.ndim = dst.ndim = 1;
  src.dtype = dst.dtype = DC_U8;
  src.shape[0] = dst.shape[0] = (int64_t)old->nbytes;
  src.stride[0] = dst.stride[0] = 1;
  dst.storage = s;
  dst.device = dev;
  int rc = dc__transfer(&dst, &src);
  if (rc != DC_OK) {
    dc__storage_release(s);
    return rc;
  }
  s->version = old->version + 1;
  t->storage = s;
  t->device = dev;
  dc__storage_release(old);
  return DC_OK;
}

dc_tensor *dc__host_view(const dc_tensor *t) {
  int64_t span = 1; /* elements from t's offset to the last one it reads */
  for (int d = 0; d < t->ndim; d++) {
    if (t->shape[d] == 0) span = 0;
    DC__CHECK(t->stride[d] >= 0, NULL);
  }
  for (int d = 0; d < t->ndim && span; d++) span += (t->shape[d] - 1) * t->stride[d];
  dc_tensor *h = dc__new(DC_SHAPE(span), t->dtype, DC_CPU); /* [span] */
  if (!h) return NULL;
  size_t z = dc_dtype_size(t->dtype);
  dc_tensor *v = NULL;
  if (dc__storage_read(t, (size_t)t->offset * z, h->storage->data, (size_t)span * z) == DC_OK)
    v = dc__alias(h, t->ndim, t->shape, t->stride, 0); /* t's shape and strides */
  dc_free(h);
  return v;
}
