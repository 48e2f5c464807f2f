/* The CUDA nn entries of nn.cu: dropout masks, mask application and hardtanh (gradient 0 at NaN)
 * against the CPU's (convolution, pooling, batch norm and the losses have their own files).
 * Skips without a GPU. */
#include "gpu.h"

#include "backend/nn-kernels.h"

TestSuite(gpu_nn, .init = gpu_scope_in, .fini = gpu_scope_out);

Test(gpu_nn, dropout_and_hardtanh_match_cpu) {
  GPU_OR_SKIP();
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int k = 0; k < 2; k++) {
    dc_tensor *u = dc__new(DC_SHAPE(64, 8), dts[k], DC_CPU),
              *ug = dc__new(DC_SHAPE(64, 8), dts[k], DC_CUDA);
    cr_assert_eq(cpu_be()->rand->uniform(u, 3, 0, 0.0, 1.0), DC_OK);
    cr_assert_eq(gpu_be()->rand->uniform(ug, 3, 0, 0.0, 1.0), DC_OK);
    cr_assert_eq(cpu_be()->nn->dropout_mask(u, 0.3), DC_OK);
    cr_assert_eq(gpu_be()->nn->dropout_mask(ug, 0.3), DC_OK, "%s", dc_last_error());
    expect_close(u, ug, EXACT, "dropout_mask");
    dc_tensor *x = inputs(DC_SHAPE(64, 8, 4), dts[k], 101, true), *xg = to_gpu(x);
    dc_tensor *y = empty_like_on(x, dts[k], DC_CPU), *yg = empty_like_on(x, dts[k], DC_CUDA);
    cr_assert_eq(cpu_be()->nn->apply_mask(y, x, u, 4), DC_OK);
    cr_assert_eq(gpu_be()->nn->apply_mask(yg, xg, ug, 4), DC_OK, "%s", dc_last_error());
    expect_close(y, yg, EXACT, "apply_mask");
    cr_assert_eq(cpu_be()->nn->hardtanh_forward(y, x, -1.0, 2.0), DC_OK);
    cr_assert_eq(gpu_be()->nn->hardtanh_forward(yg, xg, -1.0, 2.0), DC_OK, "%s", dc_last_error());
    expect_close(y, yg, EXACT, "hardtanh");
    dc_tensor *gy = inputs(DC_SHAPE(64, 8, 4), dts[k], 102, false), *gyg = to_gpu(gy);
    cr_assert_eq(cpu_be()->nn->hardtanh_backward(y, gy, x, -1.0, 2.0), DC_OK);
    cr_assert_eq(gpu_be()->nn->hardtanh_backward(yg, gyg, xg, -1.0, 2.0), DC_OK, "%s",
                 dc_last_error());
    expect_close(y, yg, EXACT, "hardtanh_backward (0 at NaN)");
  }
}
