/* CUDA pooling kernels: max / avg pooling (padding, dilation, ceil-mode windows,
 * count_include_pad, divisor_override), adaptive avg / max pooling and the backward passes, with
 * the CPU's rules (cpu/nn/pool.c). The per-element arithmetic is pool-math.h's, which the host
 * test checks against the CPU; this file only launches it. Forward: one thread per output.
 * Backward: one thread per input position, gathering from the windows that can hold it in
 * output order (no atomics), so the result is deterministic and equals the CPU's scatter bit for
 * bit. Tensors are contiguous float32 or float64 (idx int32).
 * Shapes: x, gx [P, H, W] (P = N*C planes), y, gy, idx [P, OH, OW]. */
#include "kern.cuh"
#include "pool-math.h"

enum pool_fwd { FWD_MAX, FWD_AVG, FWD_ADAPTIVE_AVG, FWD_ADAPTIVE_MAX };
enum pool_bwd { BWD_MAX, BWD_AVG, BWD_ADAPTIVE_AVG };

__device__ inline void st(char *y, bool f64, int64_t i, double v) {
  if (f64)
    ((double *)y)[i] = v;
  else
    ((float *)y)[i] = (float)v;
}

/* y [P, OH, OW] (and idx for the max kinds, may be NULL) from x [P, H, W] */
__global__ void pool_fwd_k(char *y, int32_t *idx, const char *x, dc_pool2d_geom g, bool f64,
                           int kind) {
  int64_t n = g.planes * g.oh * g.ow;
  DC__CU_FOR(o, n) {
    int64_t ow = o % g.ow, t = o / g.ow, oh = t % g.oh, p = t / g.oh;
    int32_t b = 0;
    double v = 0;
    switch (kind) {
    case FWD_MAX:
      v = dc__pool_max_at(&g, x, f64, p, oh, ow, &b);
      break;
    case FWD_AVG:
      v = dc__pool_avg_at(&g, x, f64, p, oh, ow);
      break;
    case FWD_ADAPTIVE_AVG:
    case FWD_ADAPTIVE_MAX:
      v = dc__pool_adaptive_at(&g, x, f64, p, oh, ow, kind == FWD_ADAPTIVE_MAX, &b);
      break;
    }
    st(y, f64, o, v);
    if (idx) idx[o] = b;
  }
}

/* gx [P, H, W] (=) from gy [P, OH, OW] (and idx for max) */
__global__ void pool_bwd_k(char *gx, const char *gy, const int32_t *idx, dc_pool2d_geom g, bool f64,
                           int kind) {
  int64_t n = g.planes * g.h * g.w;
  DC__CU_FOR(i, n) {
    int64_t iw = i % g.w, t = i / g.w, ih = t % g.h, p = t / g.h;
    double v = 0;
    switch (kind) {
    case BWD_MAX:
      v = dc__pool_max_grad_at(&g, gy, idx, f64, p, ih, iw);
      break;
    case BWD_AVG:
      v = dc__pool_avg_grad_at(&g, gy, f64, p, ih, iw);
      break;
    case BWD_ADAPTIVE_AVG:
      v = dc__pool_adaptive_avg_grad_at(&g, gy, f64, p, ih, iw);
      break;
    }
    st(gx, f64, i, v);
  }
}

static int fwd(int kind, dc_tensor *y, dc_tensor *idx, const dc_tensor *x, const dc_pool2d_geom *g,
               const char *what) {
  int64_t n = g->planes * g->oh * g->ow;
  if (n == 0) return DC_OK;
  pool_fwd_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      dc__cuda_ptr(y), idx ? (int32_t *)dc__cuda_ptr(idx) : NULL, dc__cuda_ptr(x), *g,
      x->dtype == DC_F64, kind);
  return dc__cuda_launched(what);
}

static int bwd(int kind, dc_tensor *gx, const dc_tensor *gy, const dc_tensor *idx,
               const dc_pool2d_geom *g, const char *what) {
  int64_t n = g->planes * g->h * g->w;
  if (n == 0) return DC_OK;
  if (g->oh * g->ow == 0) return dc__cuda_fill(gx, 0.0);
  pool_bwd_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      dc__cuda_ptr(gx), dc__cuda_ptr(gy), idx ? (const int32_t *)dc__cuda_ptr(idx) : NULL, *g,
      gx->dtype == DC_F64, kind);
  return dc__cuda_launched(what);
}

extern "C" int dc__cuda_max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                                           const dc_pool2d_geom *g) {
  return fwd(FWD_MAX, y, idx, x, g, "max_pool2d kernel");
}

extern "C" int dc__cuda_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x,
                                           const dc_pool2d_geom *g) {
  return fwd(FWD_AVG, y, NULL, x, g, "avg_pool2d kernel");
}

extern "C" int dc__cuda_adaptive_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x,
                                                    const dc_pool2d_geom *g) {
  return fwd(FWD_ADAPTIVE_AVG, y, NULL, x, g, "adaptive_avg_pool2d kernel");
}

extern "C" int dc__cuda_adaptive_max_pool2d_forward(dc_tensor *y, dc_tensor *idx,
                                                    const dc_tensor *x, const dc_pool2d_geom *g) {
  return fwd(FWD_ADAPTIVE_MAX, y, idx, x, g, "adaptive_max_pool2d kernel");
}

extern "C" int dc__cuda_max_pool2d_backward(dc_tensor *gx, const dc_tensor *gy,
                                            const dc_tensor *idx, const dc_pool2d_geom *g) {
  return bwd(BWD_MAX, gx, gy, idx, g, "max_pool2d backward kernel");
}

extern "C" int dc__cuda_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy,
                                            const dc_pool2d_geom *g) {
  return bwd(BWD_AVG, gx, gy, NULL, g, "avg_pool2d backward kernel");
}

extern "C" int dc__cuda_adaptive_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy,
                                                     const dc_pool2d_geom *g) {
  return bwd(BWD_ADAPTIVE_AVG, gx, gy, NULL, g, "adaptive_avg_pool2d backward kernel");
}
