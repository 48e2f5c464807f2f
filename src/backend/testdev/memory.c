/* The test device's memory entries: host memory from the allocation hook (dc__malloc: 64-byte
 * aligned, counted, fault-injectable) handed out as encoded pointers (testdev-impl.h) that the
 * host cannot dereference. Transfers decode and memcpy; everything is synchronous. */
#include "testdev-impl.h"

#include <string.h>

static void *tdev_alloc(size_t nbytes) { return dc__tdev_encode(dc__malloc(nbytes)); }

static void tdev_free(void *p) { dc__free(dc__tdev_decode(p)); }

static int tdev_to_host(void *host, const void *src, size_t n) {
  if (n) memcpy(host, dc__tdev_decode(src), n);
  return DC_OK;
}

static int tdev_from_host(void *dst, const void *host, size_t n) {
  if (n) memcpy(dc__tdev_decode(dst), host, n);
  return DC_OK;
}

static int tdev_copy(void *dst, const void *src, size_t n) {
  if (n) memcpy(dc__tdev_decode(dst), dc__tdev_decode(src), n);
  return DC_OK;
}

static int tdev_synchronize(void) { return DC_OK; }

const dc_device_mem dc__testdev_mem = {
    .version = DC_DEVICE_MEM_VERSION,
    .alloc = tdev_alloc,
    .free = tdev_free,
    .to_host = tdev_to_host,
    .from_host = tdev_from_host,
    .copy = tdev_copy,
    .synchronize = tdev_synchronize,
};
