/* Deterministic block-wide sums for the CUDA kernels (bnorm.cu, loss.cu, xent.cu): K double
 * partials per thread combined in a fixed tree order, never with float atomics, so a result does
 * not depend on timing. Blocks must have DC__CU_THREADS threads. */
#ifndef DC_CUDA_BLOCKSUM_CUH
#define DC_CUDA_BLOCKSUM_CUH

#include "kern.cuh"

/* v [K]: this thread's partials in, the block's sums out (every thread gets them);
 * sh [K * DC__CU_THREADS] shared scratch. Every thread of the block must call it. */
template <int K> __device__ inline void dc__cu_block_sum(double *v, double *sh) {
  const int T = DC__CU_THREADS, t = (int)threadIdx.x;
  for (int k = 0; k < K; k++) sh[k * T + t] = v[k];
  __syncthreads();
  for (int s = T / 2; s > 0; s >>= 1) {
    if (t < s)
      for (int k = 0; k < K; k++) sh[k * T + t] += sh[k * T + t + s];
    __syncthreads();
  }
  for (int k = 0; k < K; k++) v[k] = sh[k * T];
  __syncthreads();
}

/* One block: out[k] = the sum over b < nb of part[b * K + k] (thread t takes b = t, t + T, ...
 * in order, then the tree). */
template <int K> __global__ void dc__cu_sum_parts_k(double *out, const double *part, int64_t nb) {
  __shared__ double sh[K * DC__CU_THREADS];
  double v[K];
  for (int k = 0; k < K; k++) v[k] = 0.0;
  for (int64_t b = threadIdx.x; b < nb; b += blockDim.x)
    for (int k = 0; k < K; k++) v[k] += part[b * K + k];
  dc__cu_block_sum<K>(v, sh);
  if (threadIdx.x == 0)
    for (int k = 0; k < K; k++) out[k] = v[k];
}

#endif
