/* Shared by the GPU tests (tests/gpu/test_gpu_*.c, ctest -L gpu): the skip where no GPU answers
 * (prints "SKIP: no CUDA device", which tests/gpu/CMakeLists.txt turns into ctest's Skipped),
 * host values of a tensor on any device, inputs with the special values, and the comparison of
 * a cuda result with the CPU's within a named tolerance (printing both values). */
#ifndef DC_TEST_GPU_H
#define DC_TEST_GPU_H

#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "../unit/tensor_bytes.h"

/* float32 results of kernels whose math differs by an ulp or two from the CPU's (own exp,
 * libmvec) */
#define TOL_F32 1e-5, 1e-6
#define TOL_F64 1e-12, 1e-13
#define EXACT 0.0, 0.0

#define GPU_OR_SKIP()                                                                              \
  do {                                                                                             \
    if (!dc_device_available(DC_CUDA)) {                                                           \
      dc_device d_;                                                                                \
      dc_device_parse("cuda", &d_);                                                                \
      fprintf(stderr, "SKIP: no CUDA device here: %s\n", dc_last_error());                         \
      cr_skip_test("no CUDA device");                                                              \
    }                                                                                              \
  } while (0)

static inline void gpu_scope_in(void) { dc_scope_begin(); }
static inline void gpu_scope_out(void) { dc_scope_end(); }

static inline const dc_backend *cpu_be(void) { return dc__backend(DC_CPU); }
static inline const dc_backend *gpu_be(void) {
  const dc_backend *be = dc__backend(DC_CUDA);
  cr_assert(be, "%s", dc_last_error());
  return be;
}

/* the host values of t (any device, any layout) as doubles, row-major; caller frees */
static inline double *host_values(const dc_tensor *t) {
  int64_t n = dc_numel(t);
  dc_tensor *h = dc_to_device((dc_tensor *)t, DC_CPU);
  cr_assert(h, "to cpu: %s", dc_last_error());
  dc_tensor *c = dc_contiguous(h);
  cr_assert(c, "%s", dc_last_error());
  double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
  const char *p = (const char *)c->storage->data + (size_t)c->offset * dc_dtype_size(c->dtype);
  for (int64_t i = 0; i < n; i++)
    v[i] = dc__load(p + (size_t)i * dc_dtype_size(c->dtype), c->dtype);
  return v;
}

/* cpu and gpu agree elementwise: |a - b| <= atol + rtol |a|, NaN with NaN, inf with inf */
static inline void expect_close(const dc_tensor *cpu, const dc_tensor *gpu, double rtol,
                                double atol, const char *what) {
  cr_assert_eq(dc_numel(cpu), dc_numel(gpu), "%s: %lld vs %lld elements", what,
               (long long)dc_numel(cpu), (long long)dc_numel(gpu));
  cr_assert_eq(cpu->dtype, gpu->dtype, "%s: dtypes %s vs %s", what, dc_dtype_name(cpu->dtype),
               dc_dtype_name(gpu->dtype));
  double *a = host_values(cpu), *b = host_values(gpu);
  int64_t n = dc_numel(cpu), bad = 0;
  for (int64_t i = 0; i < n; i++) {
    bool ok = (isnan(a[i]) && isnan(b[i])) || a[i] == b[i] ||
              (isfinite(a[i]) && fabs(a[i] - b[i]) <= atol + rtol * fabs(a[i]));
    if (!ok && bad++ < 4)
      cr_log_error("%s (%s): element %lld: cpu %.17g, cuda %.17g", what, dc_dtype_name(cpu->dtype),
                   (long long)i, a[i], b[i]);
  }
  free(a);
  free(b);
  cr_expect_eq(bad, 0, "%s (%s): %lld of %lld elements differ", what, dc_dtype_name(cpu->dtype),
               (long long)bad, (long long)n);
}

/* n values in [-3, 3) from the seeded generator, the first few special (0, -0, +-inf, NaN,
 * +-1) when with_special; dtype dt on the cpu */
static inline dc_tensor *inputs(dc_shape s, dc_dtype dt, uint64_t seed, bool with_special) {
  dc_manual_seed(seed);
  dc_tensor *u = dc_rand(s, DC_F64);
  cr_assert(u, "%s", dc_last_error());
  double *p = (double *)u->storage->data + u->offset;
  int64_t n = dc_numel(u);
  static const double special[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, 1.0, -1.0, 0.5};
  for (int64_t i = 0; i < n; i++) p[i] = 6.0 * p[i] - 3.0;
  if (with_special)
    for (int64_t i = 0; i < n && i < 8; i++) p[i] = special[i];
  dc_tensor *t = dc__new(s, dt, DC_CPU);
  cr_assert(t && cpu_be()->ew->copy(t, u) == DC_OK, "%s", dc_last_error());
  return t;
}

static inline dc_tensor *to_gpu(dc_tensor *t) {
  dc_tensor *g = dc_to_device(t, DC_CUDA);
  cr_assert(g, "to cuda: %s", dc_last_error());
  return g;
}

static inline dc_tensor *empty_like_on(const dc_tensor *t, dc_dtype dt, dc_device dev) {
  dc_tensor *o = dc__new(dc_shape_of(t), dt, dev);
  cr_assert(o, "%s", dc_last_error());
  return o;
}

#endif
