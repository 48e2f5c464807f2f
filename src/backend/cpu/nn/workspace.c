/* Memory helpers of the CPU nn kernels: scratch buffers (oneDNN's blocked copies of activations)
 * pooled and reused across calls, because first-touching fresh pages costs far more than the copy
 * itself (large ones 2 MiB-aligned with transparent huge pages), and the huge-page hint for large
 * fresh outputs. */
#include "nn-cpu.h"

#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

#define WS_SLOTS 64
#define WS_HUGE ((size_t)2 << 20)
#define WS_KEEP_MAX ((size_t)512 << 20) /* bytes the pool keeps for reuse at most */

typedef struct ws_slot {
  void *p;  /* aligned buffer, NULL when the slot is empty */
  size_t n; /* usable bytes */
  bool busy;
} ws_slot;

static ws_slot g_slots[WS_SLOTS];
static size_t g_kept;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* The raw dc__malloc block is stored in the word before the aligned pointer. */
static void *ws_alloc(size_t n) {
  size_t align = n >= WS_HUGE ? WS_HUGE : 64;
  char *raw = dc__malloc(n + align + 64);
  if (!raw) return NULL;
  uintptr_t a = ((uintptr_t)raw + 64 + align - 1) & ~(uintptr_t)(align - 1);
  char *p = (char *)a;
  memcpy(p - sizeof raw, &raw, sizeof raw);
#ifdef MADV_HUGEPAGE
  if (align == WS_HUGE) madvise(p, n & ~(WS_HUGE - 1), MADV_HUGEPAGE);
#endif
  return p;
}

static void ws_free(void *p) {
  char *raw;
  memcpy(&raw, (char *)p - sizeof raw, sizeof raw);
  dc__free(raw);
}

void *dc__cpu_ws_get(size_t n) {
  if (n == 0) n = 1;
  pthread_mutex_lock(&g_lock);
  int best = -1, empty = -1, spare = -1;
  for (int i = 0; i < WS_SLOTS; i++) {
    ws_slot *s = &g_slots[i];
    if (!s->p) {
      if (empty < 0) empty = i;
    } else if (!s->busy) {
      if (s->n >= n && (best < 0 || s->n < g_slots[best].n)) best = i;
      if (s->n < n && (spare < 0 || s->n < g_slots[spare].n)) spare = i;
    }
  }
  if (best >= 0) {
    g_slots[best].busy = true;
    pthread_mutex_unlock(&g_lock);
    return g_slots[best].p;
  }
  if (empty < 0 && spare >= 0) { /* replace the smallest idle buffer that is too small */
    ws_free(g_slots[spare].p);
    g_kept -= g_slots[spare].n;
    g_slots[spare].p = NULL;
    empty = spare;
  }
  void *p = ws_alloc(n);
  if (p && empty >= 0 && g_kept + n <= WS_KEEP_MAX) {
    g_slots[empty] = (ws_slot){.p = p, .n = n, .busy = true};
    g_kept += n;
  }
  pthread_mutex_unlock(&g_lock);
  return p;
}

void dc__cpu_ws_put(void *p) {
  if (!p) return;
  pthread_mutex_lock(&g_lock);
  for (int i = 0; i < WS_SLOTS; i++)
    if (g_slots[i].p == p) {
      g_slots[i].busy = false;
      pthread_mutex_unlock(&g_lock);
      return;
    }
  pthread_mutex_unlock(&g_lock);
  ws_free(p); /* a one-off buffer (pool full) */
}

/* glibc serves blocks of this size or more with a fresh mmap each time (its dynamic threshold
 * stops there), so such outputs are always first-touched; smaller ones get recycled heap. */
#define HINT_MIN ((size_t)32 << 20)

void dc__cpu_nn_hint_output(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
  if (n < HINT_MIN) return;
  uintptr_t a = ((uintptr_t)p + WS_HUGE - 1) & ~(uintptr_t)(WS_HUGE - 1);
  uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(WS_HUGE - 1);
  if (e > a) madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
  (void)p, (void)n;
#endif
}
