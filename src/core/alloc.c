/* The single allocation hook: every byte deepc allocates goes through here, with statistics and
 * fault injection (make the Nth allocation fail) for tests. */
#include "core-impl.h"

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

void dc_set_allocator(const dc_allocator *a) {
  if (a && a->alloc && a->free) g_alloc = *a;
  else g_alloc = (dc_allocator){default_alloc, default_free, NULL};
}

dc_alloc_stats dc_alloc_get_stats(void) {
  dc_alloc_stats s;
  s.live_bytes = __atomic_load_n(&g_live, __ATOMIC_RELAXED);
  s.peak_bytes = __atomic_load_n(&g_peak, __ATOMIC_RELAXED);
  s.live_blocks = __atomic_load_n(&g_blocks, __ATOMIC_RELAXED);
  s.total_allocs = __atomic_load_n(&g_total, __ATOMIC_RELAXED);
  return s;
}

void dc_alloc_reset_peak(void) { __atomic_store_n(&g_peak, g_live, __ATOMIC_RELAXED); }

void dc_alloc_fail_at(int64_t nth) { __atomic_store_n(&g_fail_at, nth, __ATOMIC_RELAXED); }

void *dc__malloc(size_t n) {
  if (__atomic_load_n(&g_fail_at, __ATOMIC_RELAXED) > 0 &&
      __atomic_sub_fetch(&g_fail_at, 1, __ATOMIC_RELAXED) == 0)
    return dc__err(DC_ERR_NOMEM, "out of memory: allocation of %zu bytes failed (injected)", n);
  if (n > SIZE_MAX - DC__HDR)
    return dc__err(DC_ERR_NOMEM, "out of memory: %zu bytes requested", n);
  char *p = g_alloc.alloc(n + DC__HDR, DC__ALIGN, g_alloc.ud);
  if (!p) return dc__err(DC_ERR_NOMEM, "out of memory: allocation of %zu bytes failed", n);
  memcpy(p, &n, sizeof n);
  int64_t live = __atomic_add_fetch(&g_live, (int64_t)n, __ATOMIC_RELAXED);
  int64_t peak = __atomic_load_n(&g_peak, __ATOMIC_RELAXED);
  while (live > peak &&
         !__atomic_compare_exchange_n(&g_peak, &peak, live, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
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
  g_alloc.free(b, g_alloc.ud);
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
