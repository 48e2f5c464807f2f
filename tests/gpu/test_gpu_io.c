/* Checkpoints and weight files with tensors on the GPU: the cases of
 * tests/unit/device_io_cases.h on cuda (a checkpoint written from GPU tensors is the cpu's file
 * byte for byte, and loads onto the cpu, and back, bit for bit). Skips without a GPU. */
#define _GNU_SOURCE
#include "gpu.h"

#define IO_DEV DC_CUDA
#define IO_SUITE gpu_io
#define IO_REQUIRE() GPU_OR_SKIP()
#include "../unit/device_io_cases.h"
