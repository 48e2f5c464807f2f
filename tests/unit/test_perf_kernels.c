/* The speed paths of issue 9 against the plain code they replace: the AVX-512 2x2 max pooling
 * against the portable kernel (values and argmax indices bit for bit, NaN and ties included, row
 * widths around the 16-lane blocks). */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/nn/nn-cpu.h"

/* y and the input gradient of a 2x2 max pool of x with gradient gy (positions of the maxima). */
static void pool_run(dc_tensor *x, dc_tensor *gy, dc_tensor **y, dc_tensor **gx) {
  dc_zero_grad(x);
  *y = dc_max_pool2d_f(x, .kernel = {2, 2});
  cr_assert_not_null(*y, "%s", dc_last_error());
  cr_assert_eq(dc_backward(*y, .grad = gy), DC_OK, "%s", dc_last_error());
  *gx = dc_clone(x->grad);
}

static void assert_bitwise(const dc_tensor *a, const dc_tensor *b, const char *what) {
  cr_assert_eq(dc_numel(a), dc_numel(b));
  const float *pa = dc_data(a), *pb = dc_data(b);
  for (int64_t i = 0; i < dc_numel(a); i++) {
    bool same = (isnan(pa[i]) && isnan(pb[i])) || memcmp(&pa[i], &pb[i], sizeof *pa) == 0;
    cr_assert(same, "%s: element %lld: %g vs %g", what, (long long)i, pa[i], pb[i]);
  }
}

Test(perf_kernels, max_pool_2x2_avx512_matches_portable) {
  static const int64_t widths[] = {2, 7, 28, 31, 32, 33, 64, 66};
  for (size_t k = 0; k < sizeof widths / sizeof *widths; k++) {
    dc_scope_begin();
    dc_manual_seed(k + 1);
    int64_t W = widths[k], H = 6;
    dc_tensor *x = dc_randn(DC_SHAPE(2, 3, H, W), DC_F32);
    float *p = dc_data(x);
    /* ties (a rounded copy of the data) and NaNs in some windows */
    for (int64_t i = 0; i < dc_numel(x); i++) {
      if (i % 5 == 0) p[i] = roundf(p[i]);
      if (i % 37 == 3) p[i] = NAN;
    }
    dc_requires_grad_(x, true);
    dc_tensor *y0, *g0, *y1, *g1;
    dc_tensor *gy = dc_randn(DC_SHAPE(2, 3, H / 2, W / 2), DC_F32);
    dc__cpu_pool_scalar = true;
    pool_run(x, gy, &y0, &g0);
    dc__cpu_pool_scalar = false;
    pool_run(x, gy, &y1, &g1);
    assert_bitwise(y1, y0, "max pool values");
    assert_bitwise(g1, g0, "max pool gradient (argmax positions)");
    dc_zero_grad(x);
    dc_scope_end();
  }
}
