/* Refcounted storage: one buffer on one device, shared by a tensor and all its views. Memory
 * comes from the device's entries (device.c); the bytes are counted per device. */
#include "core-impl.h"

dc_storage *dc__storage_new(size_t nbytes, dc_device dev) {
  const dc_device_mem *m = dc__device_mem(dev);
  if (!m) return NULL;
  dc_storage *s = dc__malloc(sizeof *s);
  if (!s) return NULL;
  s->data = m->alloc(nbytes ? nbytes : 1);
  if (!s->data) {
    dc__free(s);
    return dc__err(DC_ERR_NOMEM, "out of memory: cannot allocate a %zu-byte tensor on %s", nbytes,
                   dc_device_name(dev));
  }
  dc__device_bytes_add(dev, (int64_t)nbytes);
  s->nbytes = nbytes;
  s->device = dev;
  s->refcount = 1;
  s->version = 0;
  s->free_fn = NULL;
  s->free_ud = NULL;
  return s;
}

void dc__storage_retain(dc_storage *s) { __atomic_add_fetch(&s->refcount, 1, __ATOMIC_RELAXED); }

void dc__storage_release(dc_storage *s) {
  if (!s) return;
  if (__atomic_sub_fetch(&s->refcount, 1, __ATOMIC_ACQ_REL) != 0) return;
  if (s->free_fn) {
    s->free_fn(s->data, s->free_ud);
  } else {
    dc__device_bytes_add(s->device, -(int64_t)s->nbytes);
    dc__device_mem(s->device)->free(s->data);
  }
  dc__free(s);
}
