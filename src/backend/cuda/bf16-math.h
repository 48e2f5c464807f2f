/* bfloat16 arithmetic shared by the CUDA kernels (conv.cu) and their host test
 * (tests/unit/test_cuda_bf16_math.c): core's float32 -> bf16 rounding (dc__f32_to_bf16: round to
 * nearest even, a NaN quieted with its sign and top payload bits kept) as __host__ __device__
 * functions, so a kernel's bf16 stores have the CPU's bits (CUDA's __float2bfloat16_rn gives
 * every NaN one canonical pattern), and the per-lane sum of the bf16 convolution bias gradient.
 * Letters: N batch, K channels, S = OH * OW positions per channel. */
#ifndef DC_CUDA_BF16_MATH_H
#define DC_CUDA_BF16_MATH_H

#include <string.h>

#include "../hd.h"

DC__HD uint16_t dc__hd_f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
  return (uint16_t)(u >> 16);
}

DC__HD float dc__hd_bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Lane `lane` of `lanes` of channel c's bias gradient: the double sum of gy [N, K, S] over the
 * channel's positions j = lane, lane + lanes, ... < N * S (in that order). */
DC__HD double dc__hd_bgrad_lane(const uint16_t *gy, int64_t n, int64_t k, int64_t s, int64_t c,
                                int64_t lane, int64_t lanes) {
  double acc = 0.0;
  for (int64_t j = lane; j < n * s; j += lanes)
    acc += (double)dc__hd_bf16_to_f32(gy[(j / s) * k * s + c * s + j % s]);
  return acc;
}

#endif
