/* The CPU backend table: host memory (core's, through the library's allocation hook: statistics,
 * fault injection, a user allocator, the block cache) and the CPU kernel families, each defined
 * in its own file (copy.c, unary.c, binary.c, reduce.c, gemm.c, index.c, random.c, nn/...). */
#include "cpu-impl.h"

const dc_backend dc__cpu_backend = {
    .version = DC_BACKEND_VERSION,
    .name = "cpu",
    .device = DC_CPU,
    .mem = &dc__host_mem,
    .caps = DC_CAP_BIT(DC_CAP_LINEAR) | DC_CAP_BIT(DC_CAP_BATCH_NORM_RELU) |
            DC_CAP_BIT(DC_CAP_CONV_BLOCK) | DC_CAP_BIT(DC_CAP_FUSED_OPTIM),
    /* oneDNN bfloat16 matmul (gemm.c) and convolution (nn/conv_dnnl.c), float32 accumulation */
    .bf16 = DC_BF16_BIT(DC_BF16_GEMM) | DC_BF16_BIT(DC_BF16_CONV),
    .ew = &dc__cpu_ew,
    .red = &dc__cpu_red,
    .linalg = &dc__cpu_linalg,
    .index = &dc__cpu_index,
    .rand = &dc__cpu_rand,
    .nn = &dc__cpu_nn,
    .optim = &dc__cpu_optim,
};
