/* The CUDA backend's memory entries: device memory from cudaMalloc through a caching allocator,
 * and transfers queued on the process's stream. Sizes round up to size classes (512 bytes,
 * then four classes per power of two); a freed block goes to its class's free list and the next
 * request of that class takes it back, so a steady training step calls cudaMalloc no more. When
 * cudaMalloc fails the cache is returned to the driver and the request tried once more.
 * Asynchronous copies from page-locked memory (the loader's pinned buffers) run on a second,
 * copy stream, ordered both ways by events: the copy waits for the work queued on the compute
 * stream before it (its destination may be a block that work still reads or writes), and the
 * compute stream waits for the copy. So a block is never used by both streams at once and reuse
 * needs no per-block event (what PyTorch's record_stream is for): every free is a host call
 * ordered after the work queued on it, and every copy after all of that. */
#include "cuda-impl.h"

#include <pthread.h>

#define MIN_BLOCK 512
#define NCLASS 256    /* class = 4 * log2 + quarter step (size_class) */
#define NBUCKET 16384 /* live blocks by address: chained hash */

typedef struct block {
  void *p;
  size_t size; /* rounded */
  int cls;
  struct block *next;
} block;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static block *g_free[NCLASS];  /* cached blocks per class */
static block *g_live[NBUCKET]; /* handed-out blocks */
static dc__cuda_mem_stats g_stats;

static void held_add(int64_t bytes) {
  g_stats.held_bytes += bytes;
  if (g_stats.held_bytes > g_stats.peak_held_bytes) g_stats.peak_held_bytes = g_stats.held_bytes;
}

/* n rounded up to its class; *cls gets the class index. */
static size_t size_class(size_t n, int *cls) {
  if (n <= MIN_BLOCK) {
    *cls = 0;
    return MIN_BLOCK;
  }
  int e = 63 - __builtin_clzll((unsigned long long)(n - 1)); /* 2^e < n <= 2^(e+1), e >= 9 */
  size_t step = (size_t)1 << (e - 2);
  size_t m = (n + step - 1) / step; /* 5..8 */
  *cls = e * 4 + (int)(m - 5);
  return m * step;
}

static size_t bucket(const void *p) { return ((uintptr_t)p >> 9) * 2654435761u % NBUCKET; }

/* cudaFree of every cached block (lock held) */
static void release_cache(void) {
  for (int c = 0; c < NCLASS; c++) {
    while (g_free[c]) {
      block *b = g_free[c];
      g_free[c] = b->next;
      cudaFree(b->p);
      held_add(-(int64_t)b->size);
      g_stats.cached_bytes -= (int64_t)b->size;
      dc__free(b);
    }
  }
}

static void *cuda_alloc(size_t nbytes) {
  int cls;
  size_t size = size_class(nbytes, &cls);
  if (cls >= NCLASS) return NULL;
  pthread_mutex_lock(&g_lock);
  block *b = g_free[cls];
  if (b) {
    g_free[cls] = b->next;
    g_stats.cached_bytes -= (int64_t)b->size;
  } else {
    b = dc__malloc(sizeof *b);
    void *p = NULL;
    cudaError_t e = b ? cudaMalloc(&p, size) : cudaErrorMemoryAllocation;
    if (b && e == cudaErrorMemoryAllocation) { /* give the cache back and try once more */
      cudaGetLastError();
      release_cache();
      e = cudaMalloc(&p, size);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      dc__free(b);
      pthread_mutex_unlock(&g_lock);
      return NULL;
    }
    *b = (block){.p = p, .size = size, .cls = cls};
    g_stats.device_mallocs++;
    held_add((int64_t)size);
  }
  size_t h = bucket(b->p);
  b->next = g_live[h];
  g_live[h] = b;
  pthread_mutex_unlock(&g_lock);
  return b->p;
}

static void cuda_free(void *p) {
  if (!p) return;
  pthread_mutex_lock(&g_lock);
  block **pp = &g_live[bucket(p)];
  while (*pp && (*pp)->p != p) pp = &(*pp)->next;
  block *b = *pp;
  if (b) {
    *pp = b->next;
    b->next = g_free[b->cls];
    g_free[b->cls] = b;
    g_stats.cached_bytes += (int64_t)b->size;
  }
  pthread_mutex_unlock(&g_lock);
}

int dc__cuda_empty_cache(void) {
  cudaError_t e = cudaStreamSynchronize(dc__cuda_stream());
  pthread_mutex_lock(&g_lock);
  release_cache();
  pthread_mutex_unlock(&g_lock);
  return dc__cuda_fail(e, "empty_cache: cudaStreamSynchronize");
}

void dc__cuda_mem_stats_get(dc__cuda_mem_stats *s) {
  pthread_mutex_lock(&g_lock);
  *s = g_stats;
  pthread_mutex_unlock(&g_lock);
}

static void cuda_cache_stats(dc__cache_stats *s, bool reset_peak) {
  pthread_mutex_lock(&g_lock);
  if (reset_peak) g_stats.peak_held_bytes = g_stats.held_bytes;
  *s = (dc__cache_stats){.reserved_bytes = g_stats.held_bytes,
                         .peak_reserved_bytes = g_stats.peak_held_bytes,
                         .device_mallocs = g_stats.device_mallocs};
  pthread_mutex_unlock(&g_lock);
}

/* ---- page-locked host memory and the copy stream ---- */

static void *cuda_host_alloc_pinned(size_t nbytes) {
  void *p = NULL;
  if (cudaHostAlloc(&p, nbytes ? nbytes : 1, cudaHostAllocDefault) != cudaSuccess) {
    cudaGetLastError();
    return NULL;
  }
  return p;
}

static void cuda_host_free_pinned(void *p) {
  if (p) cudaFreeHost(p);
}

static pthread_once_t g_copy_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_copy_lock = PTHREAD_MUTEX_INITIALIZER; /* g_compute_tail */
static cudaStream_t g_copy_stream;
static cudaEvent_t g_compute_tail; /* recorded on the compute stream before each copy */
static cudaError_t g_copy_err;

static void copy_stream_init(void) {
  g_copy_err = cudaStreamCreateWithFlags(&g_copy_stream, cudaStreamNonBlocking);
  if (g_copy_err == cudaSuccess)
    g_copy_err = cudaEventCreateWithFlags(&g_compute_tail, cudaEventDisableTiming);
}

struct dc__copy_ticket {
  cudaEvent_t done; /* recorded on the copy stream after the copy */
};

static int cuda_from_host_async(void *dst, const void *host, size_t n, dc__copy_ticket **ticket) {
  *ticket = NULL;
  pthread_once(&g_copy_once, copy_stream_init);
  if (g_copy_err != cudaSuccess)
    return dc__cuda_fail(g_copy_err, "from_host_async: making the copy stream");
  dc__copy_ticket *t = dc__malloc(sizeof *t);
  if (!t) return DC_ERR_NOMEM;
  cudaError_t e = cudaEventCreateWithFlags(&t->done, cudaEventDisableTiming);
  if (e != cudaSuccess) {
    dc__free(t);
    return dc__cuda_fail(e, "from_host_async: cudaEventCreateWithFlags");
  }
  cudaStream_t s = dc__cuda_stream();
  pthread_mutex_lock(&g_copy_lock);
  e = cudaEventRecord(g_compute_tail, s); /* the copy after the work queued so far */
  if (e == cudaSuccess) e = cudaStreamWaitEvent(g_copy_stream, g_compute_tail, 0);
  if (e == cudaSuccess && n)
    e = cudaMemcpyAsync(dst, host, n, cudaMemcpyHostToDevice, g_copy_stream);
  if (e == cudaSuccess) e = cudaEventRecord(t->done, g_copy_stream);
  if (e == cudaSuccess) e = cudaStreamWaitEvent(s, t->done, 0); /* later work after the copy */
  pthread_mutex_unlock(&g_copy_lock);
  if (e != cudaSuccess) {
    cudaEventDestroy(t->done);
    dc__free(t);
    return dc__cuda_fail(e, "from_host_async: queueing the copy");
  }
  pthread_mutex_lock(&g_lock);
  g_stats.async_copies++;
  pthread_mutex_unlock(&g_lock);
  *ticket = t;
  return DC_OK;
}

static int cuda_copy_done(dc__copy_ticket *t, bool wait) {
  cudaError_t e = wait ? cudaEventSynchronize(t->done) : cudaEventQuery(t->done);
  if (e == cudaSuccess) return 1;
  if (!wait && e == cudaErrorNotReady) {
    cudaGetLastError();
    return 0;
  }
  return dc__cuda_fail(e, wait ? "copy_done: cudaEventSynchronize" : "copy_done: cudaEventQuery");
}

static void cuda_ticket_free(dc__copy_ticket *t) {
  if (!t) return;
  cudaEventDestroy(t->done); /* released once the event completes */
  dc__free(t);
}

/* Other host buffers are pageable (dc__malloc): cudaMemcpyAsync from pageable memory returns
 * once the bytes are staged, so the source may be reused at once, as the contract asks. */
static int cuda_from_host(void *dst, const void *host, size_t n) {
  if (!n) return DC_OK;
  return dc__cuda_fail(cudaMemcpyAsync(dst, host, n, cudaMemcpyHostToDevice, dc__cuda_stream()),
                       "from_host: cudaMemcpyAsync");
}

static int cuda_to_host(void *host, const void *src, size_t n) {
  if (!n) return DC_OK;
  cudaStream_t s = dc__cuda_stream();
  int rc = dc__cuda_fail(cudaMemcpyAsync(host, src, n, cudaMemcpyDeviceToHost, s),
                         "to_host: cudaMemcpyAsync");
  if (rc != DC_OK) return rc;
  return dc__cuda_fail(cudaStreamSynchronize(s), "to_host: cudaStreamSynchronize");
}

static int cuda_copy(void *dst, const void *src, size_t n) {
  if (!n) return DC_OK;
  return dc__cuda_fail(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, dc__cuda_stream()),
                       "copy: cudaMemcpyAsync");
}

static void *cuda_native_stream(void) { return (void *)dc__cuda_stream(); }

static int cuda_synchronize(void) {
  return dc__cuda_fail(cudaStreamSynchronize(dc__cuda_stream()), "cudaStreamSynchronize");
}

const dc_device_mem dc__cuda_mem = {
    .version = DC_DEVICE_MEM_VERSION,
    .alloc = cuda_alloc,
    .free = cuda_free,
    .to_host = cuda_to_host,
    .from_host = cuda_from_host,
    .copy = cuda_copy,
    .synchronize = cuda_synchronize,
    .host_alloc_pinned = cuda_host_alloc_pinned,
    .host_free_pinned = cuda_host_free_pinned,
    .from_host_async = cuda_from_host_async,
    .copy_done = cuda_copy_done,
    .ticket_free = cuda_ticket_free,
    .cache_stats = cuda_cache_stats,
    .empty_cache = dc__cuda_empty_cache,
    .native_stream = cuda_native_stream,
};
