/* CUDA random draws against the CPU's: the same (seed, counter) gives the same uniform bits in
 * float32 and float64, contiguous or strided, and the same normals within an ulp. Also through
 * the public API: dc_rand_on(cuda) equals dc_rand after the same seed. Skips without a GPU. */
#include "gpu.h"

TestSuite(gpu_random, .init = gpu_scope_in, .fini = gpu_scope_out);

Test(gpu_random, uniform_bits_and_normals_match_cpu) {
  GPU_OR_SKIP();
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int k = 0; k < 2; k++) {
    dc_tensor *c = dc__new(DC_SHAPE(1000, 3), dts[k], DC_CPU);
    dc_tensor *g = dc__new(DC_SHAPE(1000, 3), dts[k], DC_CUDA);
    cr_assert_eq(cpu_be()->rand->uniform(c, 1234, 77, -2.0, 3.0), DC_OK);
    cr_assert_eq(gpu_be()->rand->uniform(g, 1234, 77, -2.0, 3.0), DC_OK, "%s", dc_last_error());
    expect_close(c, g, EXACT, "uniform");
    dc_tensor *ct = dc_transpose(c, 0, 1), *gt = dc_transpose(g, 0, 1);
    cr_assert_eq(cpu_be()->rand->uniform(ct, 99, 5, 0.0, 1.0), DC_OK);
    cr_assert_eq(gpu_be()->rand->uniform(gt, 99, 5, 0.0, 1.0), DC_OK, "%s", dc_last_error());
    expect_close(c, g, EXACT, "uniform into a transposed view");
    cr_assert_eq(cpu_be()->rand->normal(c, 1234, 77, 0.5, 2.0), DC_OK);
    cr_assert_eq(gpu_be()->rand->normal(g, 1234, 77, 0.5, 2.0), DC_OK, "%s", dc_last_error());
    expect_close(c, g, k ? 1e-14 : 1e-7, k ? 1e-14 : 1e-7, "normal");
  }
  dc_manual_seed(5);
  dc_tensor *h = dc_rand(DC_SHAPE(257), DC_F32);
  dc_manual_seed(5);
  dc_tensor *d = dc_rand_on(DC_SHAPE(257), DC_F32, DC_CUDA);
  cr_assert(h && d, "%s", dc_last_error());
  expect_close(h, d, EXACT, "dc_rand_on(cuda) after the same seed");
}
