/* The CPU backend table: 64-byte aligned host memory and the CPU kernel families, each defined
 * in its own file (copy.c, unary.c, binary.c, reduce.c, gemm.c, index.c, random.c, nn/...). */
#include "cpu-impl.h"

static void *cpu_alloc(size_t n) {
  void *p = NULL;
  size_t rounded = (n + 63) & ~(size_t)63;
  if (posix_memalign(&p, 64, rounded) != 0) return NULL;
  return p;
}

static void cpu_free(void *p) { free(p); }

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
