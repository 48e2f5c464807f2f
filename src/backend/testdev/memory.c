/* The test device's memory entries: host memory from the allocation hook (dc__malloc: 64-byte
 * aligned, counted, fault-injectable) handed out as encoded pointers (testdev-impl.h) that the
 * host cannot dereference. Transfers decode and memcpy. The asynchronous copy from "pinned"
 * host memory emulates CUDA's contract so that its users' mistakes show: the bytes land at once
 * (work queued later sees them, as the compute stream waits for the copy), but the copy counts
 * as still reading its host buffer until copy_done is asked twice or waits; then the buffer
 * must still hold what it held when the copy was queued, else copy_done fails (the buffer was
 * reused too early: on a GPU the batch would have been corrupted). A ticket freed before its
 * copy was done is checked two asynchronous calls later, or at synchronize. */
#include "testdev-impl.h"

#include <pthread.h>
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

static int64_t g_pinned_live, g_async_copies;

int64_t dc__testdev_pinned_live(void) { return __atomic_load_n(&g_pinned_live, __ATOMIC_RELAXED); }
int64_t dc__testdev_async_copies(void) {
  return __atomic_load_n(&g_async_copies, __ATOMIC_RELAXED);
}

static void *tdev_host_alloc_pinned(size_t nbytes) {
  void *p = dc__malloc(nbytes);
  if (p) __atomic_add_fetch(&g_pinned_live, 1, __ATOMIC_RELAXED);
  return p;
}

static void tdev_host_free_pinned(void *p) {
  if (!p) return;
  __atomic_sub_fetch(&g_pinned_live, 1, __ATOMIC_RELAXED);
  dc__free(p);
}

struct dc__copy_ticket {
  const void *host;
  size_t n;
  uint64_t hash; /* of host's bytes when the copy was queued */
  int queries;   /* copy_done calls without wait so far */
  bool done;
  int ticks;                    /* orphans: asynchronous calls left before it completes */
  struct dc__copy_ticket *next; /* orphans: freed before done, still "reading" host */
};

static uint64_t fnv1a(const void *p, size_t n) {
  const unsigned char *b = p;
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
  return h;
}

/* The copy finishes reading t->host: its bytes must not have changed since it was queued. */
static int complete(dc__copy_ticket *t) {
  t->done = true;
  if (fnv1a(t->host, t->n) == t->hash) return DC_OK;
  return dc__errs(DC_ERR_STATE,
                  "testdev: the pinned host buffer %p of an asynchronous copy (%zu bytes) was "
                  "written before copy_done reported the copy finished; wait for the copy "
                  "before reusing the buffer",
                  t->host, t->n);
}

/* Tickets freed before their copy was done keep "reading" their buffer for two more
 * asynchronous calls (or until synchronize), and are checked then. */
static pthread_mutex_t g_orphan_mu = PTHREAD_MUTEX_INITIALIZER;
static dc__copy_ticket *g_orphans;

static int advance_orphans(bool all) {
  int rc = DC_OK;
  pthread_mutex_lock(&g_orphan_mu);
  for (dc__copy_ticket **pp = &g_orphans; *pp;) {
    dc__copy_ticket *t = *pp;
    if (!all && --t->ticks > 0) {
      pp = &t->next;
      continue;
    }
    *pp = t->next;
    int r = complete(t);
    if (rc == DC_OK) rc = r;
    dc__free(t);
  }
  pthread_mutex_unlock(&g_orphan_mu);
  return rc;
}

static int tdev_synchronize(void) { return advance_orphans(true); }

static int tdev_from_host_async(void *dst, const void *host, size_t n, dc__copy_ticket **ticket) {
  *ticket = NULL;
  int rc = advance_orphans(false);
  if (rc != DC_OK) return rc;
  dc__copy_ticket *t = dc__malloc(sizeof *t);
  if (!t) return DC_ERR_NOMEM;
  *t = (dc__copy_ticket){.host = host, .n = n, .hash = fnv1a(host, n)};
  if (n) memcpy(dc__tdev_decode(dst), host, n);
  __atomic_add_fetch(&g_async_copies, 1, __ATOMIC_RELAXED);
  *ticket = t;
  return DC_OK;
}

static int tdev_copy_done(dc__copy_ticket *t, bool wait) {
  int rc = advance_orphans(false);
  if (rc != DC_OK) return rc;
  if (t->done) return 1;
  if (!wait && t->queries++ == 0) return 0; /* the first query finds the copy under way */
  rc = complete(t);
  return rc == DC_OK ? 1 : rc;
}

static void tdev_ticket_free(dc__copy_ticket *t) {
  if (!t) return;
  if (t->done) {
    dc__free(t);
    return;
  }
  t->ticks = 2;
  pthread_mutex_lock(&g_orphan_mu);
  t->next = g_orphans;
  g_orphans = t;
  pthread_mutex_unlock(&g_orphan_mu);
}

const dc_device_mem dc__testdev_mem = {
    .version = DC_DEVICE_MEM_VERSION,
    .alloc = tdev_alloc,
    .free = tdev_free,
    .to_host = tdev_to_host,
    .from_host = tdev_from_host,
    .copy = tdev_copy,
    .synchronize = tdev_synchronize,
    .host_alloc_pinned = tdev_host_alloc_pinned,
    .host_free_pinned = tdev_host_free_pinned,
    .from_host_async = tdev_from_host_async,
    .copy_done = tdev_copy_done,
    .ticket_free = tdev_ticket_free,
};
