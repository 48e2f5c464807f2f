/* CPU fused multi-tensor optimizer step: every parameter of a step is cut into fixed chunks and
 * one OpenMP loop runs them all, each chunk through vectorised block kernels (fused-body.h,
 * target_clones for AVX-512/AVX2). Also the plain reference loop and the kernel table.
 * Floating-point contraction is off so that every ISA clone rounds like the reference. */
#pragma GCC optimize("fp-contract=off")

#include "cpu-optim.h"

#include <math.h>

#define DC__OPTK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

#define T float
#define FN(name) name##_f32
#define SQRT sqrtf
#include "fused-body.h"
#undef T
#undef FN
#undef SQRT

#define T double
#define FN(name) name##_f64
#define SQRT sqrt
#include "fused-body.h"
#undef T
#undef FN
#undef SQRT

bool dc__optk_plan_chunks(const int64_t *sizes, int n, int64_t **first, int64_t *nchunks,
                          int64_t *total) {
  int64_t *f = dc__malloc(sizeof *f * (size_t)(n + 1));
  if (!f) return false;
  int64_t c = 0, t = 0;
  for (int k = 0; k < n; k++) {
    f[k] = c;
    c += (sizes[k] + DC__OPTK_CHUNK - 1) / DC__OPTK_CHUNK;
    t += sizes[k];
  }
  f[n] = c;
  *first = f;
  *nchunks = c;
  *total = t;
  return true;
}

int dc__optk_chunk_owner(const int64_t *first, int n, int64_t c) {
  int lo = 0, hi = n - 1; /* the last k with first[k] <= c; empty buffers share first[] values */
  while (lo < hi) {
    int mid = lo + (hi - lo + 1) / 2;
    if (first[mid] <= c)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

static int cpu_optim_step(dc_optk_rule rule, const dc_optk_slot *slots, int nslots) {
  if (nslots <= 0) return DC_OK;
  int64_t *sizes = dc__malloc(sizeof *sizes * (size_t)nslots);
  if (!sizes) return DC_ERR_NOMEM;
  for (int k = 0; k < nslots; k++) sizes[k] = slots[k].n;
  int64_t *first, nchunks, total;
  bool ok = dc__optk_plan_chunks(sizes, nslots, &first, &nchunks, &total);
  dc__free(sizes);
  if (!ok) return DC_ERR_NOMEM;
#pragma omp parallel for schedule(static) if (total >= DC__PAR_MIN)
  for (int64_t c = 0; c < nchunks; c++) {
    int k = dc__optk_chunk_owner(first, nslots, c);
    const dc_optk_slot *s = &slots[k];
    int64_t off = (c - first[k]) * DC__OPTK_CHUNK;
    int64_t len = s->n - off < DC__OPTK_CHUNK ? s->n - off : DC__OPTK_CHUNK;
    if (s->dtype == DC_F32)
      chunk_f32(rule, s, off, len);
    else
      chunk_f64(rule, s, off, len);
  }
  dc__free(first);
  return DC_OK;
}

static int cpu_optim_step_ref(dc_optk_rule rule, const dc_optk_slot *slots, int nslots) {
  for (int k = 0; k < nslots; k++) {
    if (slots[k].dtype == DC_F32)
      ref_f32(rule, &slots[k]);
    else
      ref_f64(rule, &slots[k]);
  }
  return DC_OK;
}

const struct dc_optim_kernels dc__cpu_optim = {
    .version = DC_OPTIM_KERNELS_VERSION,
    .step = cpu_optim_step,
    .step_ref = cpu_optim_step_ref,
    .norms = dc__cpu_optk_norms,
    .scale = dc__cpu_optk_scale,
    .clamp = dc__cpu_optk_clamp,
};
