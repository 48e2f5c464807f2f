/* Devices: names, the memory entries each backend hands to core (allocation and transfers),
 * element reads and writes through them, and per-device storage statistics. The cpu's entries
 * are core's own (host memory through the allocation hook); other devices' come from their
 * backend's registration (src/backend/registry.c). */
#include "core-impl.h"

#include <stdlib.h>
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
/* storages of at least one byte made: the "driver allocations" of a device without a cache */
static int64_t g_storages[DC_DEVICE_COUNT];
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
  if (!mem->host_alloc_pinned != !mem->host_free_pinned ||
      (mem->from_host_async && (!mem->copy_done || !mem->ticket_free)))
    return dc__errs(DC_ERR_STATE,
                    "device registration: %s's memory entries have host_alloc_pinned without "
                    "host_free_pinned (or the reverse), or from_host_async without copy_done "
                    "and ticket_free",
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

static void raise_peak(int64_t *peak_p, int64_t live) {
  int64_t peak = __atomic_load_n(peak_p, __ATOMIC_RELAXED);
  while (live > peak && !__atomic_compare_exchange_n(peak_p, &peak, live, true, __ATOMIC_RELAXED,
                                                     __ATOMIC_RELAXED)) {
  }
}

void dc__device_bytes_add(dc_device dev, int64_t nbytes) {
  int64_t live = __atomic_add_fetch(&g_live[dev], nbytes, __ATOMIC_RELAXED);
  raise_peak(&g_peak[dev], live);
  if (nbytes > 0) __atomic_add_fetch(&g_storages[dev], 1, __ATOMIC_RELAXED);
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
  const dc_device_mem *m = dc__device_registered(dev) ? g_mem[dev] : NULL;
  if (m && m->cache_stats) {
    dc__cache_stats cs;
    m->cache_stats(&cs, true);
  }
}

int dc_device_memory_stats(dc_device dev, dc_memory_stats *s) {
  if ((int)dev < 0 || dev >= DC_DEVICE_COUNT || !s)
    return dc__errs(DC_ERR_ARG, "device_memory_stats: invalid device %d or NULL output", (int)dev);
  *s = (dc_memory_stats){
      .allocated_bytes = __atomic_load_n(&g_live[dev], __ATOMIC_RELAXED),
      .peak_allocated_bytes = __atomic_load_n(&g_peak[dev], __ATOMIC_RELAXED),
      .reserved_bytes = __atomic_load_n(&g_live[dev], __ATOMIC_RELAXED),
      .peak_reserved_bytes = __atomic_load_n(&g_peak[dev], __ATOMIC_RELAXED),
      .device_mallocs = __atomic_load_n(&g_storages[dev], __ATOMIC_RELAXED),
  };
  const dc_device_mem *m = dc__device_registered(dev) ? g_mem[dev] : NULL;
  if (m && m->cache_stats) {
    dc__cache_stats cs;
    m->cache_stats(&cs, false);
    s->reserved_bytes = cs.reserved_bytes;
    s->peak_reserved_bytes = cs.peak_reserved_bytes;
    s->device_mallocs = cs.device_mallocs;
  }
  return DC_OK;
}

int dc_device_empty_cache(dc_device dev) {
  const dc_device_mem *m = dc__device_mem(dev);
  if (!m) return dc_last_status();
  return m->empty_cache ? m->empty_cache() : DC_OK;
}

/* ---- asynchronous copies from page-locked host memory ---- */

bool dc__device_async_copies(dc_device dev) {
  const dc_device_mem *m = dc__device_mem(dev);
  return m && m->from_host_async && m->host_alloc_pinned;
}

void *dc__host_alloc_pinned(dc_device dev, size_t nbytes) {
  const dc_device_mem *m = dc__device_mem(dev);
  if (!m) return NULL;
  return m->host_alloc_pinned ? m->host_alloc_pinned(nbytes) : dc__malloc(nbytes);
}

void dc__host_free_pinned(dc_device dev, void *p) {
  if (!p) return;
  const dc_device_mem *m = dc__device_mem(dev);
  if (m && m->host_free_pinned)
    m->host_free_pinned(p);
  else
    dc__free(p);
}

int dc__storage_write_async(dc_storage *s, size_t off, const void *host, size_t n,
                            dc__copy_ticket **ticket) {
  *ticket = NULL;
  if (n == 0) return DC_OK;
  const dc_device_mem *m = dc__device_mem(s->device);
  if (!m) return dc_last_status();
  DC__CHECK(off + n <= s->nbytes, DC_ERR_STATE);
  s->version++;
  void *dst = (char *)s->data + off;
  return m->from_host_async ? m->from_host_async(dst, host, n, ticket) : m->from_host(dst, host, n);
}

int dc__copy_ticket_done(dc_device dev, dc__copy_ticket *ticket, bool wait) {
  if (!ticket) return 1;
  const dc_device_mem *m = dc__device_mem(dev);
  if (!m) return (int)dc_last_status();
  return m->copy_done(ticket, wait);
}

void dc__copy_ticket_free(dc_device dev, dc__copy_ticket *ticket) {
  if (!ticket) return;
  const dc_device_mem *m = dc__device_mem(dev);
  if (m) m->ticket_free(ticket);
}

/* ---- the TF32 switch: -1 until set (then DEEPC_ALLOW_TF32 decides) ---- */
static int g_tf32 = -1;

void dc_set_allow_tf32(bool on) { __atomic_store_n(&g_tf32, on ? 1 : 0, __ATOMIC_RELAXED); }

bool dc_allow_tf32(void) {
  int v = __atomic_load_n(&g_tf32, __ATOMIC_RELAXED);
  if (v >= 0) return v == 1;
  const char *env = getenv("DEEPC_ALLOW_TF32");
  return env && strcmp(env, "1") == 0;
}
