/* The CUDA backend's table: the memory entries (memory.c) and one kernel family per file
 * (ew.cu, reduce.cu, linalg.c and linear.c, index.cu, random.cu, nn.c with conv.c, pool.cu,
 * nn.cu, bnorm.cu, loss.cu, xent.cu; optim.cu). Fused capabilities: LINEAR (linear.c, cuBLASLt's
 * bias epilogue), batch norm + ReLU (bnorm.cu), CONV_BLOCK (conv_block.c, composed of the
 * backend's conv, batch norm and pooling) and FUSED_OPTIM (optim.cu's multi-tensor step and
 * clipping passes). Registered by the
 * registry when dc__cuda_probe (register.c) finds a GPU. */
#include "cuda-impl.h"

const dc_elementwise_kernels dc__cuda_ew = {
    .copy = dc__cuda_copy,
    .fill = dc__cuda_fill,
    .unary = dc__cuda_unary,
    .binary = dc__cuda_binary,
    .where = dc__cuda_where,
    .axpy = dc__cuda_axpy,
};

const dc_reduce_kernels dc__cuda_red = {
    .reduce = dc__cuda_reduce,
    .arg_reduce = dc__cuda_arg_reduce,
    .softmax = dc__cuda_softmax,
};

const dc_linalg_kernels dc__cuda_linalg = {.gemm_batched = dc__cuda_gemm_batched,
                                           .linear = dc__cuda_linear};

const dc_index_kernels dc__cuda_index = {
    .gather = dc__cuda_gather,
    .scatter_add = dc__cuda_scatter_add,
    .index_select = dc__cuda_index_select,
    .index_add = dc__cuda_index_add,
};

const dc_random_kernels dc__cuda_rand = {.uniform = dc__cuda_uniform, .normal = dc__cuda_normal};

const dc_backend dc__cuda_backend = {
    .version = DC_BACKEND_VERSION,
    .name = "cuda",
    .device = DC_CUDA,
    .mem = &dc__cuda_mem,
    .caps = DC_CAP_BIT(DC_CAP_LINEAR) | DC_CAP_BIT(DC_CAP_BATCH_NORM_RELU) |
            DC_CAP_BIT(DC_CAP_CONV_BLOCK) | DC_CAP_BIT(DC_CAP_FUSED_OPTIM),
    .bf16 = DC_BF16_BIT(DC_BF16_GEMM) | DC_BF16_BIT(DC_BF16_CONV), /* linalg.c, linear.c, conv.c */
    .ew = &dc__cuda_ew,
    .red = &dc__cuda_red,
    .linalg = &dc__cuda_linalg,
    .index = &dc__cuda_index,
    .rand = &dc__cuda_rand,
    .nn = &dc__cuda_nn,
    .optim = &dc__cuda_optim,
};
