/* The CUDA index family against the CPU's: gather, scatter_add (repeated indices), index_select
 * and index_add on float32/float64/int64, and the out-of-range error that leaves out untouched.
 * Skips without a GPU. */
#include "gpu.h"

TestSuite(gpu_index, .init = gpu_scope_in, .fini = gpu_scope_out);

/* int64 indices in [0, size) (repeats included), shape s, on the cpu */
static dc_tensor *indices(dc_shape s, int64_t size, uint64_t seed) {
  dc_manual_seed(seed);
  dc_tensor *t = dc_randint(0, size, s, DC_I64);
  cr_assert(t, "%s", dc_last_error());
  return t;
}

Test(gpu_index, gather_scatter_select_add) {
  GPU_OR_SKIP();
  dc_dtype dts[3] = {DC_F32, DC_F64, DC_I64};
  for (int k = 0; k < 3; k++)
    for (int dim = 0; dim < 2; dim++) {
      dc_tensor *x = inputs(DC_SHAPE(6, 7), dts[k], 91, false), *xg = to_gpu(x);
      dc_tensor *ix = indices(DC_SHAPE(5, 4), dim ? 7 : 6, 92), *ixg = to_gpu(ix);
      dc_tensor *o = dc__new(DC_SHAPE(5, 4), dts[k], DC_CPU),
                *og = dc__new(DC_SHAPE(5, 4), dts[k], DC_CUDA);
      cr_assert_eq(cpu_be()->index->gather(o, x, dim, ix), DC_OK, "%s", dc_last_error());
      cr_assert_eq(gpu_be()->index->gather(og, xg, dim, ixg), DC_OK, "%s", dc_last_error());
      expect_close(o, og, EXACT, "gather");
      dc_tensor *src = inputs(DC_SHAPE(5, 4), dts[k], 93, false), *srcg = to_gpu(src);
      cr_assert_eq(cpu_be()->index->scatter_add(x, dim, ix, src), DC_OK, "%s", dc_last_error());
      cr_assert_eq(gpu_be()->index->scatter_add(xg, dim, ixg, srcg), DC_OK, "%s", dc_last_error());
      expect_close(x, xg, dts[k] == DC_F32 ? 1e-6 : 0.0, 0.0, "scatter_add");
      dc_tensor *row = indices(DC_SHAPE(9), dim ? 7 : 6, 94), *rowg = to_gpu(row);
      dc_shape ss = DC_SHAPE(6, 7);
      ss.d[dim] = 9;
      dc_tensor *sel = dc__new(ss, dts[k], DC_CPU), *selg = dc__new(ss, dts[k], DC_CUDA);
      cr_assert_eq(cpu_be()->index->index_select(sel, x, dim, row), DC_OK, "%s", dc_last_error());
      cr_assert_eq(gpu_be()->index->index_select(selg, xg, dim, rowg), DC_OK, "%s",
                   dc_last_error());
      expect_close(sel, selg, EXACT, "index_select");
      cr_assert_eq(cpu_be()->index->index_add(x, dim, row, sel), DC_OK, "%s", dc_last_error());
      cr_assert_eq(gpu_be()->index->index_add(xg, dim, rowg, selg), DC_OK, "%s", dc_last_error());
      expect_close(x, xg, dts[k] == DC_F32 ? 1e-6 : 0.0, 0.0, "index_add");
    }
}

Test(gpu_index, bad_index_is_an_error) {
  GPU_OR_SKIP();
  dc_tensor *x = to_gpu(inputs(DC_SHAPE(4, 3), DC_F32, 95, false));
  int64_t bad[3] = {0, 4, 1};
  dc_tensor *ix = dc_from_data_on(bad, DC_SHAPE(3), DC_I64, DC_CUDA);
  dc_tensor *src = to_gpu(inputs(DC_SHAPE(3, 3), DC_F32, 96, false));
  dc_tensor *before = dc_to_device(x, DC_CPU);
  cr_assert_eq(gpu_be()->index->index_add(x, 0, ix, src), DC_ERR_ARG);
  cr_expect(strstr(dc_last_error(), "index_add: index 4 is out of range for dim 0 of size 4"), "%s",
            dc_last_error());
  expect_close(before, x, EXACT, "out untouched after a bad index");
  dc_tensor *sel = dc__new(DC_SHAPE(3, 3), DC_F32, DC_CUDA);
  cr_assert_eq(gpu_be()->index->index_select(sel, x, 0, ix), DC_ERR_ARG);
  cr_expect(strstr(dc_last_error(), "index 4"), "%s", dc_last_error());
}
