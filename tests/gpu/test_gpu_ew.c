/* The CUDA elementwise family against the CPU's: every unary and binary op on float32, float64
 * and the integer dtypes (special values included), broadcasting, strided views, copy between
 * every dtype pair, fill, where and axpy. Skips without a GPU. */
#include "gpu.h"

TestSuite(gpu_ew, .init = gpu_scope_in, .fini = gpu_scope_out);

static const char *const g_un_names[] = {
#define DC_X(n) #n,
    DC_UNARY_LIST(DC_X)
#undef DC_X
};
static const char *const g_bin_names[] = {
#define DC_X(n) #n,
    DC_BINARY_LIST(DC_X)
#undef DC_X
};

static bool un_is_cmp(int op) {
  return op == DC_UN_GT_SCALAR || op == DC_UN_LT_SCALAR || op == DC_UN_EQ_SCALAR;
}

static void unary_case(dc_dtype dt, double rtol, double atol, double p0, double p1) {
  dc_tensor *x = inputs(DC_SHAPE(7, 33), dt, 11, dc_dtype_is_float(dt)), *xg = to_gpu(x);
  double p[2] = {p0, p1};
  for (int op = 0; op < DC_UNARY_COUNT; op++) {
    if (!dc_dtype_is_float(dt) && !(dc__unary_int_kernel((dc_unary_op)op) || un_is_cmp(op)))
      continue;
    dc_dtype odt = un_is_cmp(op) ? DC_BOOL : dt;
    if (!dc_dtype_is_float(dt) && op == DC_UN_POW_SCALAR) p[0] = 3.0;
    dc_tensor *o = empty_like_on(x, odt, DC_CPU), *og = empty_like_on(x, odt, DC_CUDA);
    cr_assert_eq(cpu_be()->ew->unary((dc_unary_op)op, o, x, p), DC_OK, "%s", dc_last_error());
    cr_assert_eq(gpu_be()->ew->unary((dc_unary_op)op, og, xg, p), DC_OK, "%s: %s", g_un_names[op],
                 dc_last_error());
    expect_close(o, og, rtol, atol, g_un_names[op]);
    p[0] = p0;
  }
}

Test(gpu_ew, unary_every_op) {
  GPU_OR_SKIP();
  unary_case(DC_F32, TOL_F32, 0.5, 2.0);
  unary_case(DC_F64, TOL_F64, 0.5, 2.0);
  unary_case(DC_F32, TOL_F32, -1.5, -2.0); /* clamp lo > hi, negative powers */
  unary_case(DC_I64, EXACT, 2.0, 5.0);
  unary_case(DC_I32, EXACT, 2.0, 5.0);
  unary_case(DC_U8, EXACT, 2.0, 5.0);
  unary_case(DC_BF16, 1e-2, 1e-2, 0.5, 2.0);
}

static bool bin_is_cmp(int op) { return op >= DC_BIN_EQ && op <= DC_BIN_GE; }
static bool bin_float_only(int op) {
  return op == DC_BIN_DIV || op == DC_BIN_POW || op >= DC_BIN_RELU_BWD;
}

/* a [4, 1, 9] op b [5, 1] (broadcast to [4, 5, 9]), and again with a transposed view */
static void binary_case(dc_dtype dt, double rtol, double atol) {
  dc_tensor *a = inputs(DC_SHAPE(4, 1, 9), dt, 21, dc_dtype_is_float(dt));
  dc_tensor *b = inputs(DC_SHAPE(5, 1), dt, 22, false);
  dc_tensor *ag = to_gpu(a), *bg = to_gpu(b);
  for (int op = 0; op < DC_BINARY_COUNT; op++) {
    if (!dc_dtype_is_float(dt) && bin_float_only(op)) continue;
    dc_dtype odt = bin_is_cmp(op) ? DC_BOOL : dt;
    dc_tensor *o = dc__new(DC_SHAPE(4, 5, 9), odt, DC_CPU);
    dc_tensor *og = dc__new(DC_SHAPE(4, 5, 9), odt, DC_CUDA);
    cr_assert_eq(cpu_be()->ew->binary((dc_binary_op)op, o, a, b), DC_OK, "%s", dc_last_error());
    cr_assert_eq(gpu_be()->ew->binary((dc_binary_op)op, og, ag, bg), DC_OK, "%s: %s",
                 g_bin_names[op], dc_last_error());
    expect_close(o, og, rtol, atol, g_bin_names[op]);
  }
  /* strided: a^T [9, 4] op itself */
  dc_tensor *m = inputs(DC_SHAPE(4, 9), dt, 23, false), *mg = to_gpu(m);
  dc_tensor *mt = dc_transpose(m, 0, 1), *mtg = dc_transpose(mg, 0, 1);
  dc_tensor *o = dc__new(DC_SHAPE(9, 4), dt, DC_CPU), *og = dc__new(DC_SHAPE(9, 4), dt, DC_CUDA);
  cr_assert_eq(cpu_be()->ew->binary(DC_BIN_MUL, o, mt, mt), DC_OK);
  cr_assert_eq(gpu_be()->ew->binary(DC_BIN_MUL, og, mtg, mtg), DC_OK, "%s", dc_last_error());
  expect_close(o, og, rtol, atol, "MUL of transposed views");
}

Test(gpu_ew, binary_every_op_broadcast) {
  GPU_OR_SKIP();
  binary_case(DC_F32, TOL_F32);
  binary_case(DC_F64, TOL_F64);
  binary_case(DC_I64, EXACT);
  binary_case(DC_I32, EXACT);
  binary_case(DC_U8, EXACT);
}

/* the rules the brief names: RELU_BWD passes a where b is NaN; ERF in float32 through double */
Test(gpu_ew, relu_bwd_nan_and_erf) {
  GPU_OR_SKIP();
  float av[4] = {1.5f, 2.5f, -3.0f, 4.0f}, bv[4] = {NAN, -1.0f, 0.0f, 2.0f};
  dc_tensor *a = dc_from_data_on(av, DC_SHAPE(4), DC_F32, DC_CUDA);
  dc_tensor *b = dc_from_data_on(bv, DC_SHAPE(4), DC_F32, DC_CUDA);
  dc_tensor *o = dc__new(DC_SHAPE(4), DC_F32, DC_CUDA);
  cr_assert_eq(gpu_be()->ew->binary(DC_BIN_RELU_BWD, o, a, b), DC_OK, "%s", dc_last_error());
  float r[4];
  cr_assert_eq(dc_copy_to_buffer(o, r, sizeof r), DC_OK);
  cr_expect(r[0] == 1.5f && r[1] == 0.0f && r[2] == 0.0f && r[3] == 4.0f, "%g %g %g %g",
            (double)r[0], (double)r[1], (double)r[2], (double)r[3]);
  float xv[3] = {0.8f, 1.0f, -0.3f};
  dc_tensor *x = dc_from_data_on(xv, DC_SHAPE(3), DC_F32, DC_CUDA);
  dc_tensor *e = dc__new(DC_SHAPE(3), DC_F32, DC_CUDA);
  cr_assert_eq(gpu_be()->ew->unary(DC_UN_ERF, e, x, NULL), DC_OK);
  cr_assert_eq(dc_copy_to_buffer(e, r, 3 * sizeof(float)), DC_OK);
  for (int i = 0; i < 3; i++)
    cr_expect_eq(r[i], (float)erf((double)xv[i]), "erf(%g): %.9g vs %.9g", (double)xv[i],
                 (double)r[i], (double)(float)erf((double)xv[i]));
}

Test(gpu_ew, copy_every_dtype_pair_and_fill) {
  GPU_OR_SKIP();
  for (int sd = 0; sd < DC_DTYPE_COUNT; sd++) {
    dc_tensor *s = inputs(DC_SHAPE(3, 17), (dc_dtype)sd, 31, false), *sg = to_gpu(s);
    for (int dd = 0; dd < DC_DTYPE_COUNT; dd++) {
      dc_tensor *o = dc__new(DC_SHAPE(2, 3, 17), (dc_dtype)dd, DC_CPU);
      dc_tensor *og = dc__new(DC_SHAPE(2, 3, 17), (dc_dtype)dd, DC_CUDA);
      cr_assert_eq(cpu_be()->ew->copy(o, s), DC_OK, "%s", dc_last_error());
      cr_assert_eq(gpu_be()->ew->copy(og, sg), DC_OK, "%s", dc_last_error());
      char what[64];
      snprintf(what, sizeof what, "copy %s -> %s (broadcast)", dc_dtype_name((dc_dtype)sd),
               dc_dtype_name((dc_dtype)dd));
      expect_close(o, og, EXACT, what);
    }
    dc_tensor *o = empty_like_on(s, (dc_dtype)sd, DC_CPU),
              *og = empty_like_on(s, (dc_dtype)sd, DC_CUDA);
    cr_assert_eq(cpu_be()->ew->fill(o, 2.75), DC_OK);
    cr_assert_eq(gpu_be()->ew->fill(og, 2.75), DC_OK, "%s", dc_last_error());
    expect_close(o, og, EXACT, "fill");
  }
}

Test(gpu_ew, where_and_axpy) {
  GPU_OR_SKIP();
  dc_dtype dts[3] = {DC_F32, DC_F64, DC_I64};
  for (int k = 0; k < 3; k++) {
    dc_tensor *c = inputs(DC_SHAPE(6, 1), DC_BOOL, 41, false);
    dc_tensor *a = inputs(DC_SHAPE(6, 8), dts[k], 42, false),
              *b = inputs(DC_SHAPE(8), dts[k], 43, false);
    dc_tensor *cg = to_gpu(c), *ag = to_gpu(a), *bg = to_gpu(b);
    dc_tensor *o = empty_like_on(a, dts[k], DC_CPU), *og = empty_like_on(a, dts[k], DC_CUDA);
    cr_assert_eq(cpu_be()->ew->where(o, c, a, b), DC_OK);
    cr_assert_eq(gpu_be()->ew->where(og, cg, ag, bg), DC_OK, "%s", dc_last_error());
    expect_close(o, og, EXACT, "where");
    cr_assert_eq(cpu_be()->ew->axpy(o, a, -2.0, b), DC_OK);
    cr_assert_eq(gpu_be()->ew->axpy(og, ag, -2.0, bg), DC_OK, "%s", dc_last_error());
    expect_close(o, og, dts[k] == DC_F32 ? 1e-6 : 0.0, 0.0, "axpy");
  }
}
