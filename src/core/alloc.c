/* The single allocation hook: every byte deepc allocates goes through here, with statistics and
 * fault injection (make the Nth allocation fail) for tests. */
#include "core-impl.h"

#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdlib.h>
#include <string.h>

#define DC__ALIGN 64
/* A small header before each block records its size for statistics. */
#define DC__HDR 64

static void *default_alloc(size_t size, size_t align, void *ud) {
  (void)ud;
  void *p = NULL;
  if (posix_memalign(&p, align, size) != 0) return NULL;
  return p;
}
static void default_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

static dc_allocator g_alloc = {default_alloc, default_free, NULL};
static int64_t g_live, g_peak, g_blocks, g_total, g_fail_at;

/* ---- block cache ----
 * A training step allocates the same activation and gradient buffers every step. Handing large
 * blocks back to the C library makes it return the memory to the kernel and fault it in again
 * on the next step (in this VM that halves the speed of a [64, 1024] x [1024, 256] product), so
 * freed blocks of at least CACHE_MIN bytes are kept in size classes (eighths of a power of two)
 * and reused. The cache holds at most g_cache_cap bytes (DEEPC_ALLOC_CACHE_MB, default 1024; 0
 * turns it off, as does a build under AddressSanitizer so that use-after-free stays visible).
 * Statistics count the bytes callers hold, not the cache. */
#define CACHE_MIN ((size_t)32 << 10)
#define CACHE_SUB 8
#define CACHE_CLASSES (CACHE_SUB * 48)

static pthread_mutex_t g_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_cache_once = PTHREAD_ONCE_INIT;
static void *g_cache_list[CACHE_CLASSES]; /* next pointer stored after the size in the header */
static size_t g_cache_bytes, g_cache_cap;

#if defined(__SANITIZE_ADDRESS__)
#define CACHE_DEFAULT_MB 0
#else
#define CACHE_DEFAULT_MB 1024
#endif

static void cache_init(void) {
  const char *e = getenv("DEEPC_ALLOC_CACHE_MB");
  char *end = NULL;
  long long mb = e && *e ? strtoll(e, &end, 10) : CACHE_DEFAULT_MB;
  if (e && *e && (*end || mb < 0)) mb = CACHE_DEFAULT_MB;
  g_cache_cap = (size_t)mb << 20;
#ifdef __GLIBC__
  /* The same reasoning for what oneDNN allocates inside its kernels (packing buffers): keep the
   * heap from being trimmed after every product and its buffers below 32 MiB off mmap, which
   * costs a fresh page fault per page on each call (a [2048, 2048]^2 product runs at 228
   * instead of 413 GF/s). Off with the cache. */
  if (g_cache_cap) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
  }
#endif
}

/* the class index and its block size for a request of total bytes; false when not cached */
static bool cache_class(size_t total, int *cls, size_t *size) {
  if (total < CACHE_MIN || total > ((size_t)1 << 46)) return false;
  int e = 63 - __builtin_clzll((unsigned long long)total); /* 2^e <= total < 2^(e+1) */
  size_t step = (size_t)1 << (e - 3);
  size_t sub = (total - ((size_t)1 << e) + step - 1) / step; /* 0..8 */
  *size = ((size_t)1 << e) + sub * step;
  *cls = (e - 15) * CACHE_SUB + (int)sub; /* sub 8 is the next power's sub 0: same size */
  return true;
}

static void cache_link(char *b, void *next) { memcpy(b + sizeof(size_t), &next, sizeof next); }
static void *cache_next(const char *b) {
  void *next;
  memcpy(&next, b + sizeof(size_t), sizeof next);
  return next;
}

static void cache_release_locked(void) {
  for (int i = 0; i < CACHE_CLASSES; i++)
    while (g_cache_list[i]) {
      char *b = g_cache_list[i];
      g_cache_list[i] = cache_next(b);
      g_alloc.free(b, g_alloc.ud);
    }
  g_cache_bytes = 0;
}

void dc_alloc_release_cache(void) {
  pthread_mutex_lock(&g_cache_lock);
  cache_release_locked();
  pthread_mutex_unlock(&g_cache_lock);
}

void dc_set_allocator(const dc_allocator *a) {
  dc_alloc_release_cache(); /* cached blocks belong to the allocator being replaced */
  if (a && a->alloc && a->free)
    g_alloc = *a;
  else
    g_alloc = (dc_allocator){default_alloc, default_free, NULL};
}

dc_alloc_stats dc_alloc_get_stats(void) {
  dc_alloc_stats s;
  s.live_bytes = __atomic_load_n(&g_live, __ATOMIC_RELAXED);
  s.peak_bytes = __atomic_load_n(&g_peak, __ATOMIC_RELAXED);
  s.live_blocks = __atomic_load_n(&g_blocks, __ATOMIC_RELAXED);
  s.total_allocs = __atomic_load_n(&g_total, __ATOMIC_RELAXED);
  pthread_mutex_lock(&g_cache_lock);
  s.cached_bytes = (int64_t)g_cache_bytes;
  pthread_mutex_unlock(&g_cache_lock);
  return s;
}

void dc_alloc_reset_peak(void) { __atomic_store_n(&g_peak, g_live, __ATOMIC_RELAXED); }

void dc_alloc_fail_at(int64_t nth) { __atomic_store_n(&g_fail_at, nth, __ATOMIC_RELAXED); }

void *dc__malloc(size_t n) {
  if (__atomic_load_n(&g_fail_at, __ATOMIC_RELAXED) > 0 &&
      __atomic_sub_fetch(&g_fail_at, 1, __ATOMIC_RELAXED) == 0)
    return dc__err(DC_ERR_NOMEM, "out of memory: allocation of %zu bytes failed (injected)", n);
  if (n > SIZE_MAX - DC__HDR) return dc__err(DC_ERR_NOMEM, "out of memory: %zu bytes requested", n);
  pthread_once(&g_cache_once, cache_init);
  int cls;
  size_t size = n + DC__HDR;
  char *p = NULL;
  if (g_cache_cap && cache_class(size, &cls, &size)) {
    pthread_mutex_lock(&g_cache_lock);
    if ((p = g_cache_list[cls])) {
      g_cache_list[cls] = cache_next(p);
      g_cache_bytes -= size;
    }
    pthread_mutex_unlock(&g_cache_lock);
  }
  if (!p) p = g_alloc.alloc(size, DC__ALIGN, g_alloc.ud);
  if (!p) return dc__err(DC_ERR_NOMEM, "out of memory: allocation of %zu bytes failed", n);
  memcpy(p, &n, sizeof n);
  int64_t live = __atomic_add_fetch(&g_live, (int64_t)n, __ATOMIC_RELAXED);
  int64_t peak = __atomic_load_n(&g_peak, __ATOMIC_RELAXED);
  while (live > peak && !__atomic_compare_exchange_n(&g_peak, &peak, live, true, __ATOMIC_RELAXED,
                                                     __ATOMIC_RELAXED)) {
  }
  __atomic_add_fetch(&g_blocks, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&g_total, 1, __ATOMIC_RELAXED);
  return p + DC__HDR;
}

void *dc__calloc(size_t n, size_t size) {
  if (size && n > SIZE_MAX / size)
    return dc__err(DC_ERR_NOMEM, "out of memory: %zu x %zu bytes overflows", n, size);
  void *p = dc__malloc(n * size);
  if (p) memset(p, 0, n * size);
  return p;
}

void *dc__realloc(void *p, size_t old_n, size_t n) {
  void *q = dc__malloc(n);
  if (!q) return NULL;
  if (p) {
    memcpy(q, p, old_n < n ? old_n : n);
    dc__free(p);
  }
  return q;
}

void dc__free(void *p) {
  if (!p) return;
  char *b = (char *)p - DC__HDR;
  size_t n;
  memcpy(&n, b, sizeof n);
  __atomic_sub_fetch(&g_live, (int64_t)n, __ATOMIC_RELAXED);
  __atomic_sub_fetch(&g_blocks, 1, __ATOMIC_RELAXED);
  int cls;
  size_t size;
  if (g_cache_cap && cache_class(n + DC__HDR, &cls, &size)) {
    pthread_mutex_lock(&g_cache_lock);
    bool keep = g_cache_bytes + size <= g_cache_cap;
    if (keep) {
      cache_link(b, g_cache_list[cls]);
      g_cache_list[cls] = b;
      g_cache_bytes += size;
    }
    pthread_mutex_unlock(&g_cache_lock);
    if (keep) return;
  }
  g_alloc.free(b, g_alloc.ud);
}

size_t dc__malloc_size(const void *p) {
  size_t n;
  memcpy(&n, (const char *)p - DC__HDR, sizeof n);
  return n;
}

char *dc__strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = dc__malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

bool dc__mul_overflow(int64_t a, int64_t b, int64_t *out) {
  return __builtin_mul_overflow(a, b, out);
}
