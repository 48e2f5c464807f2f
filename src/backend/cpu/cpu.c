/* The CPU backend table: 64-byte aligned host memory and the CPU kernel families, each defined
 * in its own file (copy.c, unary.c, binary.c, reduce.c, gemm.c, index.c, random.c, nn/...). */
#include "cpu-impl.h"

/* Bytes of tensor storage held now and at most. Storage goes through the library's allocation
 * hook like every other allocation (statistics, fault injection, a user allocator, the block
 * cache that keeps large buffers from being faulted in again every training step). */
static int64_t g_tensor_live, g_tensor_peak;

static void *cpu_alloc(size_t n) {
  void *p = dc__malloc(n);
  if (!p) return NULL;
  int64_t live = __atomic_add_fetch(&g_tensor_live, (int64_t)n, __ATOMIC_RELAXED);
  int64_t peak = __atomic_load_n(&g_tensor_peak, __ATOMIC_RELAXED);
  while (live > peak && !__atomic_compare_exchange_n(&g_tensor_peak, &peak, live, true,
                                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return p;
}

static void cpu_free(void *p) {
  if (!p) return;
  __atomic_sub_fetch(&g_tensor_live, (int64_t)dc__malloc_size(p), __ATOMIC_RELAXED);
  dc__free(p);
}

int64_t dc__cpu_tensor_bytes_peak(void) { return __atomic_load_n(&g_tensor_peak, __ATOMIC_RELAXED); }

const dc_backend dc__cpu_backend = {
    .version = DC_BACKEND_VERSION,
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .ew = &dc__cpu_ew,
    .red = &dc__cpu_red,
    .linalg = &dc__cpu_linalg,
    .index = &dc__cpu_index,
    .rand = &dc__cpu_rand,
    .nn = DC__CPU_NN,
    .optim = DC__CPU_OPTIM,
};

#ifndef DC_WITH_CUDA
const dc_backend *dc__backend(dc_device dev) {
  if (dev == DC_CPU) return &dc__cpu_backend;
  return dc__err(DC_ERR_UNSUPPORTED, "device %s is not built into this deepc (configure with CUDA "
                                     "to use it)", dev == DC_CUDA ? "cuda" : "unknown");
}
#endif
