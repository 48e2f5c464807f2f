/* The per-element rules of the CUDA conv block (conv_block.c, conv_block.cu) as __host__
 * __device__ functions, which tests/unit/test_cuda_bf16_math.c also runs on the host: the
 * pooling's argmax as the op keeps it (uint8, the position 0..3 row-major in the 2x2 window, as
 * the CPU's conv block) from and to pool.cu's int32 plane index (h * OW + w), and the ReLU's
 * gradient mask (a NaN passes, as bnorm-math.h's dc__cubn_dy).
 * Letters: OW the convolution's output width; (oi, oj) a pooled output's row and column. */
#ifndef DC_CUDA_CONV_BLOCK_MATH_H
#define DC_CUDA_CONV_BLOCK_MATH_H

#include "../hd.h"

/* the window position of plane index ix (inside window (oi, oj) of a 2x2 stride-2 pooling) */
DC__HD uint8_t dc__cb_win_pos(int32_t ix, int64_t ow, int64_t oi, int64_t oj) {
  return (uint8_t)((ix / ow - 2 * oi) * 2 + (ix % ow - 2 * oj));
}
/* ... and back */
DC__HD int32_t dc__cb_plane_idx(uint8_t k, int64_t ow, int64_t oi, int64_t oj) {
  return (int32_t)((2 * oi + (k >> 1)) * ow + 2 * oj + (k & 1));
}
/* whether the ReLU passes a gradient where its output is r: r > 0, or NaN */
DC__HD bool dc__cb_relu_passes(float r) { return !(r <= 0.0f); }

#endif
