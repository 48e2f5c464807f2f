/* The CUDA backend's memory entries: device memory from cudaMalloc through a caching allocator,
 * and transfers queued on the process's one stream. Sizes round up to size classes (512 bytes,
 * then four classes per power of two); a freed block goes to its class's free list and the next
 * request of that class takes it back, so a steady training step calls cudaMalloc no more. Reuse
 * needs no event: every kernel and copy runs on the one stream, in order. When cudaMalloc fails
 * the cache is returned to the driver and the request tried once more. */
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
      g_stats.held_bytes -= (int64_t)b->size;
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
    g_stats.held_bytes += (int64_t)size;
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

/* Host buffers here are pageable (dc__malloc): cudaMemcpyAsync from pageable memory returns once
 * the bytes are staged, so the source may be reused at once, as the contract asks. */
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
};
