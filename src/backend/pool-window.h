/* Average pooling's window: the clipped window of one output and its divisor
 * (count_include_pad, divisor_override), the one formula of the CPU's kernels (cpu/nn/pool.c)
 * and the CUDA ones (cuda/pool-math.h, pool.cu). Plain C, and a __host__ __device__ function
 * when nvcc compiles it. */
#ifndef DC_POOL_WINDOW_H
#define DC_POOL_WINDOW_H

#include <stdint.h>

#include "nn-kernels.h"

#include "hd.h"

/* The clipped window of output (oh, ow) and its divisor (0: the window is empty). */
typedef struct dc__pool_win {
  int64_t h0, h1, w0, w1;
  double div;
} dc__pool_win;

DC__HD dc__pool_win dc__pool_avg_window(const dc_pool2d_geom *g, int64_t oh, int64_t ow) {
  dc__pool_win a;
  a.h0 = oh * g->stride[0] - g->pad[0];
  a.w0 = ow * g->stride[1] - g->pad[1];
  a.h1 = a.h0 + g->kernel[0] < g->h + g->pad[0] ? a.h0 + g->kernel[0] : g->h + g->pad[0];
  a.w1 = a.w0 + g->kernel[1] < g->w + g->pad[1] ? a.w0 + g->kernel[1] : g->w + g->pad[1];
  int64_t pool_size = (a.h1 - a.h0) * (a.w1 - a.w0);
  if (a.h0 < 0) a.h0 = 0;
  if (a.w0 < 0) a.w0 = 0;
  if (a.h1 > g->h) a.h1 = g->h;
  if (a.w1 > g->w) a.w1 = g->w;
  if (a.h0 >= a.h1 || a.w0 >= a.w1)
    a.div = 0;
  else if (g->divisor)
    a.div = (double)g->divisor;
  else
    a.div = (double)(g->count_include_pad ? pool_size : (a.h1 - a.h0) * (a.w1 - a.w0));
  return a;
}

#endif
