/* The test device's backend table (built with -DDC_TESTDEV=ON, the default of test builds):
 * memory the host cannot read (memory.c) and the CPU kernels run through shadow frames
 * (wrap_*.c), with the CPU's capabilities so that the layers above plan the same fused ops and
 * give the CPU's results bit for bit. Registered by the registry's builtins. */
#include "testdev-impl.h"

#include "../nn-kernels.h"
#include "../optim-kernels.h"

const dc_backend dc__testdev_backend = {
    .version = DC_BACKEND_VERSION,
    .name = "testdev",
    .device = DC_TESTDEV,
    .mem = &dc__testdev_mem,
    .caps = DC_CAP_BIT(DC_CAP_LINEAR) | DC_CAP_BIT(DC_CAP_BATCH_NORM_RELU) |
            DC_CAP_BIT(DC_CAP_CONV_BLOCK) | DC_CAP_BIT(DC_CAP_FUSED_OPTIM),
    .bf16 = DC_BF16_BIT(DC_BF16_GEMM) | DC_BF16_BIT(DC_BF16_CONV), /* the CPU's */
    .ew = &dc__testdev_ew,
    .red = &dc__testdev_red,
    .linalg = &dc__testdev_linalg,
    .index = &dc__testdev_index,
    .rand = &dc__testdev_rand,
    .nn = &dc__testdev_nn,
    .optim = &dc__testdev_optim,
};
