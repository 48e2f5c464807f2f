/* CPU GEMM through oneDNN (placeholder until the linalg family lands). */
#include "cpu-impl.h"

static int cpu_gemm_batched(dc_tensor *out, const dc_tensor *a, const dc_tensor *b, bool ta,
                            bool tb, float alpha, float beta) {
  return dc__errs(DC_ERR_UNSUPPORTED, "matmul: the CPU GEMM kernel is not built");
}

const dc_linalg_kernels dc__cpu_linalg = {.gemm_batched = cpu_gemm_batched};
