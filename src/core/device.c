/* Devices: names, the memory entries each backend hands to core (allocation and transfers),
 * element reads and writes through them, and per-device storage statistics. The cpu's entries
 * are core's own (host memory through the allocation hook); other devices' come from their
 * backend's registration (src/backend/registry.c). */
#include "core-impl.h"

#include <string.h>

static const char *const g_names[DC_DEVICE_COUNT] = {
#define DC_X(name, str) str,
    DC_DEVICE_LIST(DC_X)
#undef DC_X
};

static void *host_alloc(size_t n) { return dc__malloc(n); }
static void host_free(void *p) { dc__free(p); }
static int host_move(void *dst, const void *src, size_t n) {
  if (n) memcpy(dst, src, n);
  return DC_OK;
}
static int host_sync(void) { return DC_OK; }

const dc_device_mem dc__host_mem = {
    .version = DC_DEVICE_MEM_VERSION,
    .alloc = host_alloc,
    .free = host_free,
    .to_host = host_move,
    .from_host = host_move,
    .copy = host_move,
    .synchronize = host_sync,
};

static const dc_device_mem *g_mem[DC_DEVICE_COUNT] = {[DC_CPU] = &dc__host_mem};
static int64_t g_live[DC_DEVICE_COUNT], g_peak[DC_DEVICE_COUNT];
static char g_absent[DC_DEVICE_COUNT][192]; /* why a built-in device is not available */

void dc__device_set_absent(dc_device dev, const char *fmt, ...) {
  if ((int)dev < 0 || dev >= DC_DEVICE_COUNT) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(g_absent[dev], sizeof g_absent[dev], fmt, ap);
  va_end(ap);
}

const char *dc__device_absent_note(dc_device dev) {
  static _Thread_local char buf[224];
  if ((int)dev < 0 || dev >= DC_DEVICE_COUNT || !g_absent[dev][0]) return "";
  snprintf(buf, sizeof buf, " (%s: %s)", g_names[dev], g_absent[dev]);
  return buf;
}

const char *dc_device_name(dc_device dev) {
  return (int)dev >= 0 && dev < DC_DEVICE_COUNT ? g_names[dev] : "unknown";
}

int dc__device_mem_register(dc_device dev, const dc_device_mem *mem) {
  if ((int)dev < 0 || dev >= DC_DEVICE_COUNT || (dev == DC_CPU && mem != &dc__host_mem))
    return dc__errs(DC_ERR_ARG, "device registration: %s cannot take new memory entries",
                    dc_device_name(dev));
  if (!mem || mem->version != DC_DEVICE_MEM_VERSION)
    return dc__errs(DC_ERR_STATE,
                    "device registration: %s's memory entries are version %d, this "
                    "deepc needs %d; rebuild the backend against this deepc",
                    dc_device_name(dev), mem ? mem->version : -1, DC_DEVICE_MEM_VERSION);
  if (!mem->alloc || !mem->free || !mem->to_host || !mem->from_host || !mem->copy ||
      !mem->synchronize)
    return dc__errs(DC_ERR_STATE,
                    "device registration: %s's memory entries lack one of alloc, "
                    "free, to_host, from_host, copy, synchronize",
                    dc_device_name(dev));
  __atomic_store_n(&g_mem[dev], mem, __ATOMIC_RELEASE);
  return DC_OK;
}

static void (*g_registrar)(void);

void dc__device_set_registrar(void (*registrar)(void)) { g_registrar = registrar; }

bool dc__device_registered(dc_device dev) {
  return (int)dev >= 0 && dev < DC_DEVICE_COUNT && __atomic_load_n(&g_mem[dev], __ATOMIC_ACQUIRE);
}

const char *dc__devices_str(void) {
  static _Thread_local char buf[128];
  size_t used = 0;
  buf[0] = '\0';
  for (int d = 0; d < DC_DEVICE_COUNT; d++) {
    if (!dc__device_registered((dc_device)d)) continue;
    int w = snprintf(buf + used, sizeof buf - used, "%s%s", used ? ", " : "", g_names[d]);
    if (w < 0 || (size_t)w >= sizeof buf - used) break;
    used += (size_t)w;
  }
  return buf;
}

const dc_device_mem *dc__device_mem(dc_device dev) {
  if (dev != DC_CPU && g_registrar) g_registrar();
  const dc_device_mem *m = (int)dev >= 0 && dev < DC_DEVICE_COUNT
                               ? __atomic_load_n(&g_mem[dev], __ATOMIC_ACQUIRE)
                               : NULL;
  if (m) return m;
  return dc__err(DC_ERR_ARG, "device %s (%d) is not in this build of deepc, which has: %s%s",
                 dc_device_name(dev), (int)dev, dc__devices_str(), dc__device_absent_note(dev));
}

int dc__storage_read(const dc_tensor *t, size_t off, void *host, size_t n) {
  if (n == 0) return DC_OK; /* an empty view may sit at any offset (select of a 0-size dim) */
  const dc_device_mem *m = dc__device_mem(t->device);
  if (!m) return dc_last_status();
  DC__CHECK(off + n <= t->storage->nbytes, DC_ERR_STATE);
  return m->to_host(host, (const char *)t->storage->data + off, n);
}

int dc__storage_write(dc_tensor *t, size_t off, const void *host, size_t n) {
  if (n == 0) return DC_OK;
  const dc_device_mem *m = dc__device_mem(t->device);
  if (!m) return dc_last_status();
  DC__CHECK(off + n <= t->storage->nbytes, DC_ERR_STATE);
  t->storage->version++;
  return m->from_host((char *)t->storage->data + off, host, n);
}

void dc__device_bytes_add(dc_device dev, int64_t nbytes) {
  int64_t live = __atomic_add_fetch(&g_live[dev], nbytes, __ATOMIC_RELAXED);
  int64_t peak = __atomic_load_n(&g_peak[dev], __ATOMIC_RELAXED);
  while (live > peak && !__atomic_compare_exchange_n(&g_peak[dev], &peak, live, true,
                                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

int dc_device_memory(dc_device dev, int64_t *live_bytes, int64_t *peak_bytes) {
  if ((int)dev < 0 || dev >= DC_DEVICE_COUNT)
    return dc__errs(DC_ERR_ARG, "device_memory: invalid device %d", (int)dev);
  if (live_bytes) *live_bytes = __atomic_load_n(&g_live[dev], __ATOMIC_RELAXED);
  if (peak_bytes) *peak_bytes = __atomic_load_n(&g_peak[dev], __ATOMIC_RELAXED);
  return DC_OK;
}

void dc_device_memory_reset_peak(dc_device dev) {
  if ((int)dev < 0 || dev >= DC_DEVICE_COUNT) return;
  __atomic_store_n(&g_peak[dev], __atomic_load_n(&g_live[dev], __ATOMIC_RELAXED), __ATOMIC_RELAXED);
}
