/* The CUDA reduction family against the CPU's: every reduction over several dim masks (short
 * rows by thread, long ones by block), NaN and +-inf rows, arg-max/min ties, softmax and
 * log-softmax along each dim. Skips without a GPU. */
#include "gpu.h"

TestSuite(gpu_reduce, .init = gpu_scope_in, .fini = gpu_scope_out);

static const char *const g_names[] = {
#define DC_X(n) #n,
    DC_REDUCE_LIST(DC_X)
#undef DC_X
};

static void reduce_case(dc_shape s, dc_dtype dt, double rtol, double atol, bool special) {
  dc_tensor *x = inputs(s, dt, 51, special), *xg = to_gpu(x);
  for (uint32_t mask = 1; mask < (1u << s.ndim); mask++)
    for (int op = 0; op < DC_REDUCE_COUNT; op++) {
      dc_shape os = s;
      for (int d = 0; d < s.ndim; d++)
        if ((mask >> d) & 1u) os.d[d] = 1;
      dc_tensor *o = dc__new(os, dt, DC_CPU), *og = dc__new(os, dt, DC_CUDA);
      cr_assert_eq(cpu_be()->red->reduce((dc_reduce_op)op, o, x, mask), DC_OK);
      cr_assert_eq(gpu_be()->red->reduce((dc_reduce_op)op, og, xg, mask), DC_OK, "%s",
                   dc_last_error());
      char what[64];
      snprintf(what, sizeof what, "%s mask 0x%x", g_names[op], mask);
      expect_close(o, og, rtol, atol, what);
    }
}

Test(gpu_reduce, every_op_every_mask) {
  GPU_OR_SKIP();
  reduce_case(DC_SHAPE(3, 5, 7), DC_F32, 1e-6, 1e-6, true);
  reduce_case(DC_SHAPE(3, 5, 7), DC_F64, TOL_F64, false);
  reduce_case(DC_SHAPE(2, 700, 3), DC_F32, 1e-6, 1e-5, false); /* block path */
  reduce_case(DC_SHAPE(2, 700, 3), DC_F64, TOL_F64, true);
}

Test(gpu_reduce, arg_reduce_and_softmax) {
  GPU_OR_SKIP();
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int k = 0; k < 2; k++) {
    dc_tensor *x = inputs(DC_SHAPE(4, 6, 5), dts[k], 61, k == 1), *xg = to_gpu(x);
    for (int dim = 0; dim < 3; dim++) {
      dc_shape os = DC_SHAPE(4, 6, 5);
      os.d[dim] = 1;
      for (int mx = 0; mx < 2; mx++) {
        dc_tensor *v = dc__new(os, dts[k], DC_CPU), *vg = dc__new(os, dts[k], DC_CUDA);
        dc_tensor *i = dc__new(os, DC_I64, DC_CPU), *ig = dc__new(os, DC_I64, DC_CUDA);
        cr_assert_eq(cpu_be()->red->arg_reduce(mx, v, i, x, dim), DC_OK);
        cr_assert_eq(gpu_be()->red->arg_reduce(mx, vg, ig, xg, dim), DC_OK, "%s", dc_last_error());
        expect_close(v, vg, EXACT, "arg_reduce values");
        expect_close(i, ig, EXACT, "arg_reduce indices");
      }
      for (int lg = 0; lg < 2; lg++) {
        dc_tensor *o = empty_like_on(x, dts[k], DC_CPU), *og = empty_like_on(x, dts[k], DC_CUDA);
        cr_assert_eq(cpu_be()->red->softmax(o, x, dim, lg), DC_OK);
        cr_assert_eq(gpu_be()->red->softmax(og, xg, dim, lg), DC_OK, "%s", dc_last_error());
        expect_close(o, og, k ? 1e-12 : 1e-5, k ? 1e-13 : 1e-6, lg ? "log_softmax" : "softmax");
      }
    }
  }
  /* ties: the first index */
  float tv[4] = {2.0f, 5.0f, 5.0f, 1.0f};
  dc_tensor *t = dc_from_data_on(tv, DC_SHAPE(4), DC_F32, DC_CUDA);
  dc_tensor *ti = dc__new(DC_SHAPE(1), DC_I64, DC_CUDA);
  cr_assert_eq(gpu_be()->red->arg_reduce(true, NULL, ti, t, 0), DC_OK, "%s", dc_last_error());
  int64_t idx = -1;
  cr_assert_eq(dc_copy_to_buffer(ti, &idx, sizeof idx), DC_OK);
  cr_expect_eq(idx, 1, "argmax of a tie: %lld, the first is 1", (long long)idx);
}
