/* The arithmetic of the CUDA optimizer kernels (optim.cu), one element at a time, in a form a C
 * compiler takes too: tests/unit/test_cuda_optim_rules.c runs these same functions on the host
 * against the CPU backend's kernels and checks the bits, so the math is verified without a GPU.
 * The launches, chunk tables and reductions over threads are optim.cu's. Everything here must be
 * compiled without floating-point contraction (nvcc -fmad=false, gcc -ffp-contract=off).
 * Letters: N elements of one slot or buffer, S slots of a step, C chunks of a launch. */
#ifndef DC_CUDA_OPTIM_RULES_CUH
#define DC_CUDA_OPTIM_RULES_CUH

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "../optim-kernels.h"
#ifdef __cplusplus
}
#endif

#include "../hd.h"

/* Elements per block of the fused step, scale and clamp launches (any size would do). */
#define DC__CU_OPTK_CHUNK 4096
/* Elements per partial of the norms: the CPU's DC__OPTK_CHUNK (cpu/optim/cpu-optim.h), so that
 * the partials, and hence the norms, have the CPU's bits. */
#define DC__CU_NORM_CHUNK 16384
/* Lanes of one norm partial: the CPU's eight accumulators plus the tail (lane 8). */
#define DC__CU_NORM_LANES 9

/* One parameter of a step as the device reads it: dc_optk_slot with its group's hyper-parameters
 * copied in and the index of its first chunk in the launch. */
typedef struct dc__cu_optk_slot {
  dc_optk_hparams hp;
  void *param;      /* [N] */
  const void *grad; /* [N] */
  void *buf[3];     /* [N] each, as dc_optk_slot */
  int64_t n;        /* N */
  int64_t first;    /* its first chunk of DC__CU_OPTK_CHUNK elements */
  double step_size, bias2_sqrt;
  int32_t dtype; /* DC_F32 or DC_F64 */
  bool init_buf;
} dc__cu_optk_slot;

/* One buffer of the clipping passes: dc_optk_buf with its first chunk (of DC__CU_OPTK_CHUNK
 * elements for scale/clamp, DC__CU_NORM_CHUNK for norms). */
typedef struct dc__cu_optk_buf {
  void *data; /* [N] */
  int64_t n, first;
  int32_t dtype;
} dc__cu_optk_buf;

/* The slot of the device table for s, whose chunks start at first. */
static inline dc__cu_optk_slot dc__cu_optk_slot_of(const dc_optk_slot *s, int64_t first) {
  dc__cu_optk_slot d;
  memset(&d, 0, sizeof d);
  d.hp = *s->hp;
  d.param = s->param;
  d.grad = s->grad;
  for (int k = 0; k < 3; k++) d.buf[k] = s->buf[k];
  d.n = s->n;
  d.first = first;
  d.step_size = s->step_size;
  d.bias2_sqrt = s->bias2_sqrt;
  d.dtype = (int32_t)s->dtype;
  d.init_buf = s->init_buf;
  return d;
}

/* Chunks of n elements. */
DC__HD int64_t dc__cu_optk_chunks(int64_t n, int64_t chunk) { return (n + chunk - 1) / chunk; }

/* The slot (or buffer) that chunk c belongs to: the last k with first_of(k) <= c (empty ones
 * share their successor's first). first is read through a stride of `stride` bytes. */
DC__HD int dc__cu_optk_owner(const char *table, size_t stride, size_t first_off, int n, int64_t c) {
  int lo = 0, hi = n - 1;
  while (lo < hi) {
    int mid = lo + (hi - lo + 1) / 2;
    int64_t f = *(const int64_t *)(table + (size_t)mid * stride + first_off);
    if (f <= c)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

/* How a norm's partials combine (cpu/optim/clip.c's kinds). */
typedef enum dc__cu_norm_kind {
  DC__CU_NORM_L2 = 0,
  DC__CU_NORM_L1,
  DC__CU_NORM_INF,
  DC__CU_NORM_NEGINF,
  DC__CU_NORM_L0,
  DC__CU_NORM_P
} dc__cu_norm_kind;

DC__HD dc__cu_norm_kind dc__cu_norm_kind_of(double p) {
  if (p == 2) return DC__CU_NORM_L2;
  if (p == 1) return DC__CU_NORM_L1;
  if (p == INFINITY) return DC__CU_NORM_INF;
  if (p == -INFINITY) return DC__CU_NORM_NEGINF;
  if (p == 0) return DC__CU_NORM_L0;
  return DC__CU_NORM_P;
}

/* The start value of one partial or of a buffer's norm. */
DC__HD double dc__cu_norm_init(dc__cu_norm_kind k) {
  return k == DC__CU_NORM_NEGINF ? INFINITY : 0.0;
}

/* The partial of one chunk from its lanes[DC__CU_NORM_LANES]: the CPU's pairwise sum of its
 * eight accumulators plus the tail; extremes and counts in any order (NaN wins); the p-norm's
 * sum is all in lane 0. */
DC__HD double dc__cu_norm_lanes_combine(const double *lane, dc__cu_norm_kind k) {
  switch (k) {
  case DC__CU_NORM_L2:
  case DC__CU_NORM_L1:
    return (((lane[0] + lane[1]) + (lane[2] + lane[3])) +
            ((lane[4] + lane[5]) + (lane[6] + lane[7]))) +
           lane[8];
  case DC__CU_NORM_INF:
  case DC__CU_NORM_NEGINF: {
    double r = dc__cu_norm_init(k);
    for (int j = 0; j < DC__CU_NORM_LANES; j++) {
      if (lane[j] != lane[j]) return lane[j];
      if (k == DC__CU_NORM_INF ? lane[j] > r : lane[j] < r) r = lane[j];
    }
    return r;
  }
  case DC__CU_NORM_L0: {
    double c = 0;
    for (int j = 0; j < DC__CU_NORM_LANES; j++) c += lane[j];
    return c;
  }
  case DC__CU_NORM_P:
    return lane[0];
  }
  return NAN;
}

/* acc (a buffer's partials so far, in chunk order) combined with the next partial v */
DC__HD double dc__cu_norm_combine(double acc, double v, dc__cu_norm_kind k) {
  if (k == DC__CU_NORM_INF || k == DC__CU_NORM_NEGINF) {
    if (acc != acc || v != v) return NAN;
    return (k == DC__CU_NORM_INF ? v > acc : v < acc) ? v : acc;
  }
  return acc + v;
}

/* The norm from the combined partials. */
DC__HD double dc__cu_norm_finish(double acc, dc__cu_norm_kind k, double p) {
  if (k == DC__CU_NORM_L2) return sqrt(acc);
  if (k == DC__CU_NORM_P) return pow(acc, 1.0 / p);
  return acc;
}

#define T float
#define FN(name) name##_f32
#define SQRT sqrtf
#include "optim-rules-body.cuh"
#undef T
#undef FN
#undef SQRT

#define T double
#define FN(name) name##_f64
#define SQRT sqrt
#include "optim-rules-body.cuh"
#undef T
#undef FN
#undef SQRT

#endif
