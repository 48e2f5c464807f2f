/* The CUDA backend built on a machine without a GPU or driver (here and in CI): cuda is simply
 * not available, asking for it says why ("no CUDA device: cudaGetDeviceCount: ..."), and
 * nothing else fails. On a machine with a GPU there is nothing to check. Labels gpu and unit. */
#include "gpu.h"

TestSuite(gpu_absent, .init = gpu_scope_in, .fini = gpu_scope_out);

Test(gpu_absent, absent_gpu_is_not_an_error_and_says_why) {
  if (dc_device_available(DC_CUDA)) return; /* test_gpu_register.c covers this machine */
  dc_device d = DC_CPU;
  cr_assert_eq(dc_device_parse("cuda", &d), DC_ERR_ARG);
  cr_expect(strstr(dc_last_error(), "no CUDA device"), "%s", dc_last_error());
  cr_expect(strstr(dc_last_error(), "cpu"), "names what there is: %s", dc_last_error());
  cr_expect_null(dc_zeros_on(DC_SHAPE(2), DC_F32, DC_CUDA));
  cr_expect(strstr(dc_last_error(), "no CUDA device"), "%s", dc_last_error());
  cr_assert_not_null(dc_zeros(DC_SHAPE(2), DC_F32), "the cpu still works: %s", dc_last_error());
}
