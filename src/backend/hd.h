/* What the arithmetic headers shared by the CPU and CUDA kernels (pwloss-math.h, pool-window.h,
 * the cuda math headers, cuda/optim-rules.cuh) need to compile both ways: DC__HD marks a function
 * for host and device under nvcc (plain static inline in C), and the element load/store of a
 * float32 or float64 array by index. */
#ifndef DC_BACKEND_HD_H
#define DC_BACKEND_HD_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __CUDACC__
#define DC__HD static inline __host__ __device__
#else
#define DC__HD static inline
#endif

DC__HD double dc__hd_ld(const void *p, int64_t i, bool f64) {
  return f64 ? ((const double *)p)[i] : (double)((const float *)p)[i];
}
DC__HD void dc__hd_st(void *p, int64_t i, bool f64, double v) {
  if (f64)
    ((double *)p)[i] = v;
  else
    ((float *)p)[i] = (float)v;
}

#endif
