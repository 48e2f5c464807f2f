/* Indexing tests: gather, scatter_add, index_select (and its index_add backward kernel), one_hot,
 * cat and stack: values against hand-computed results, negative dims, strided inputs, dtype
 * promotion, bad input (int32 indices, out-of-range indices, shape mismatches, NULLs) and
 * float64 gradchecks of every differentiable op. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu-impl.h"

static dc_tensor *i64(const int64_t *v, dc_shape s) { return dc_from_data(v, s, DC_I64); }
static dc_tensor *f64(const double *v, dc_shape s) { return dc_from_data(v, s, DC_F64); }

static void expect_values(const dc_tensor *t, const double *want, int64_t n, const char *what) {
  cr_assert_not_null(t, "%s: %s", what, dc_last_error());
  cr_assert_eq(dc_numel(t), n, "%s: %lld elements, want %lld", what, (long long)dc_numel(t),
               (long long)n);
  for (int64_t i = 0; i < n; i++)
    cr_assert_float_eq(dc_item_at(t, i), want[i], 1e-12, "%s[%lld]: %g, want %g", what,
                       (long long)i, dc_item_at(t, i), want[i]);
}

static void expect_error(const void *r, const char *a, const char *b, const char *c) {
  cr_assert_null(r);
  const char *e = dc_last_error();
  cr_assert(strstr(e, a) && (!b || strstr(e, b)) && (!c || strstr(e, c)), "message: %s", e);
}

/* ---- gather / scatter_add ---- */

Test(gather, values_dims_and_strides) {
  dc_scope_begin();
  const double x[] = {1, 2, 3, 4, 5, 6}; /* [2, 3] */
  dc_tensor *t = f64(x, DC_SHAPE(2, 3));
  dc_tensor *ix = i64((int64_t[]){2, 0, 1, 1}, DC_SHAPE(2, 2));
  expect_values(dc_gather(t, 1, ix), (double[]){3, 1, 5, 5}, 4, "gather dim 1");
  expect_values(dc_gather(t, -1, ix), (double[]){3, 1, 5, 5}, 4, "gather dim -1");
  dc_tensor *i0 = i64((int64_t[]){1, 0, 1}, DC_SHAPE(1, 3));
  expect_values(dc_gather(t, 0, i0), (double[]){4, 2, 6}, 3, "gather dim 0");
  /* strided input: x^T is [3, 2] = {{1,4},{2,5},{3,6}} */
  dc_tensor *it = i64((int64_t[]){1, 0, 0}, DC_SHAPE(3, 1));
  expect_values(dc_gather(dc_transpose(t, 0, 1), 1, it), (double[]){4, 2, 3}, 3, "gather of x^T");
  /* int64 data too */
  dc_tensor *ti = i64((int64_t[]){10, 20, 30}, DC_SHAPE(3));
  expect_values(dc_gather(ti, 0, i64((int64_t[]){2, 2, 0}, DC_SHAPE(3))), (double[]){30, 30, 10}, 3,
                "gather int64");
  dc_scope_end();
}

Test(gather, bad_input) {
  dc_scope_begin();
  dc_tensor *t = dc_ones(DC_SHAPE(2, 5), DC_F32);
  expect_error(dc_gather(t, 1, i64((int64_t[]){0, 7}, DC_SHAPE(2, 1))), "gather", "7", "0..4");
  expect_error(dc_gather(t, 1, i64((int64_t[]){-1, 0}, DC_SHAPE(2, 1))), "gather", "-1", NULL);
  expect_error(dc_gather(t, 1, dc_zeros(DC_SHAPE(2, 1), DC_I32)), "gather", "int64", NULL);
  expect_error(dc_gather(t, 1, dc_zeros(DC_SHAPE(3, 1), DC_I64)), "gather", "dim 0", NULL);
  expect_error(dc_gather(t, 1, dc_zeros(DC_SHAPE(2), DC_I64)), "gather", "number of dims", NULL);
  expect_error(dc_gather(t, 2, dc_zeros(DC_SHAPE(2, 1), DC_I64)), "gather", "dim 2", NULL);
  dc_clear_error();
  cr_assert_null(dc_gather(NULL, 0, dc_zeros(DC_SHAPE(2, 1), DC_I64)));
  cr_assert_neq(dc_last_status(), DC_OK);
  dc_scope_end();
}

Test(scatter_add, values_duplicates_and_out_of_place) {
  dc_scope_begin();
  dc_tensor *x = dc_zeros(DC_SHAPE(2, 4), DC_F64);
  dc_tensor *ix = i64((int64_t[]){0, 0, 3, 1, 1, 1}, DC_SHAPE(2, 3));
  dc_tensor *src = f64((double[]){1, 2, 3, 4, 5, 6, 7, 8}, DC_SHAPE(2, 4)); /* larger than ix */
  expect_values(dc_scatter_add(x, 1, ix, src), (double[]){3, 0, 0, 3, 0, 18, 0, 0}, 8, "dim 1");
  cr_assert_float_eq(dc_item_at(x, 0), 0.0, 0, "scatter_add must not modify its input");
  dc_tensor *i0 = i64((int64_t[]){1, 0, 1, 1}, DC_SHAPE(1, 4));
  expect_values(dc_scatter_add(dc_ones(DC_SHAPE(2, 4), DC_F64), 0, i0, src),
                (double[]){1, 3, 1, 1, 2, 1, 4, 5}, 8, "dim 0");
  expect_error(dc_scatter_add(x, 1, i64((int64_t[]){4}, DC_SHAPE(1, 1)), src), "scatter_add", "4",
               "0..3");
  expect_error(dc_scatter_add(x, 1, ix, dc_ones(DC_SHAPE(2, 4), DC_F32)), "scatter_add", "float32",
               NULL);
  expect_error(dc_scatter_add(x, 1, ix, dc_ones(DC_SHAPE(2, 2), DC_F64)), "scatter_add", "src",
               NULL);
  dc_scope_end();
}

/* ---- index_select / index_add ---- */

Test(index_select, values_duplicates_strides) {
  dc_scope_begin();
  dc_tensor *x = dc_reshape(dc_arange(0, 24, 1, DC_F64), DC_SHAPE(2, 3, 4));
  dc_tensor *ix = i64((int64_t[]){2, 0, 2}, DC_SHAPE(3));
  dc_tensor *r = dc_index_select(x, 1, ix);
  cr_assert(dc_shape_equal(dc_shape_of(r), DC_SHAPE(2, 3, 4)));
  expect_values(dc_narrow(dc_select(r, 0, 1), 0, 0, 2), (double[]){20, 21, 22, 23, 12, 13, 14, 15},
                8, "dim 1");
  dc_tensor *r2 = dc_index_select(x, -1, i64((int64_t[]){3, 1}, DC_SHAPE(2)));
  expect_values(dc_select(r2, 0, 0), (double[]){3, 1, 7, 5, 11, 9}, 6, "dim -1");
  /* strided input (transposed) and strided index (every other element) */
  dc_tensor *xt = dc_transpose(x, 0, 2);                                           /* [4, 3, 2] */
  dc_tensor *is = dc_slice(i64((int64_t[]){1, 9, 0, 9}, DC_SHAPE(4)), 0, 0, 4, 2); /* {1, 0} */
  dc_tensor *r3 = dc_index_select(xt, 2, is);
  expect_values(dc_select(dc_select(r3, 0, 1), 0, 0), (double[]){13, 1}, 2, "strided");
  expect_error(dc_index_select(x, 1, i64((int64_t[]){3}, DC_SHAPE(1))), "index_select", "3",
               "0..2");
  expect_error(dc_index_select(x, 1, dc_zeros(DC_SHAPE(2, 2), DC_I64)), "index_select", "1-D",
               NULL);
  expect_error(dc_index_select(x, 1, dc_zeros(DC_SHAPE(2), DC_F32)), "index_select", "int64", NULL);
  dc_scope_end();
}

Test(index_add, contiguous_and_strided_kernels_agree) {
  dc_scope_begin();
  dc_manual_seed(2);
  /* out [5, 3000] += src [7, 3000] at rows index (duplicates): contiguous path with column
   * chunks, against the generic strided path on a transposed copy */
  dc_tensor *ix = i64((int64_t[]){4, 0, 4, 2, 4, 0, 1}, DC_SHAPE(7));
  dc_tensor *src = dc_randn(DC_SHAPE(7, 3000), DC_F32);
  dc_tensor *out = dc_zeros(DC_SHAPE(5, 3000), DC_F32);
  cr_assert_eq(dc__cpu_index.index_add(out, 0, ix, src), DC_OK, "%s", dc_last_error());
  dc_tensor *outt = dc_transpose(dc_contiguous(dc_zeros(DC_SHAPE(3000, 5), DC_F32)), 0, 1);
  dc_tensor *srct = dc_transpose(dc_contiguous(dc_transpose(src, 0, 1)), 0, 1);
  cr_assert_eq(dc__cpu_index.index_add(outt, 0, ix, srct), DC_OK);
  for (int64_t i = 0; i < 15000; i += 97) {
    int64_t row = i / 3000, col = i % 3000;
    double want = 0;
    for (int k = 0; k < 7; k++)
      if (((int64_t[]){4, 0, 4, 2, 4, 0, 1})[k] == row) want += dc_item_at(src, k * 3000 + col);
    cr_assert_float_eq(dc_item_at(out, i), want, 1e-5);
    cr_assert_float_eq(dc_item_at(outt, i), dc_item_at(out, i), 0);
  }
  cr_assert_neq(dc__cpu_index.index_add(out, 0, i64((int64_t[]){5}, DC_SHAPE(1)),
                                        dc_ones(DC_SHAPE(1, 3000), DC_F32)),
                DC_OK);
  cr_assert(strstr(dc_last_error(), "index_add") && strstr(dc_last_error(), "5"));
  dc_scope_end();
}

/* ---- one_hot ---- */

Test(one_hot, values_inference_and_bad_labels) {
  dc_scope_begin();
  dc_tensor *l = i64((int64_t[]){2, 0, 1}, DC_SHAPE(3));
  dc_tensor *o = dc_one_hot(l, 4);
  cr_assert(dc_shape_equal(dc_shape_of(o), DC_SHAPE(3, 4)));
  cr_assert_eq(o->dtype, DC_I64);
  expect_values(o, (double[]){0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0}, 12, "one_hot");
  dc_tensor *o2 = dc_one_hot(dc_reshape(l, DC_SHAPE(3, 1)), -1);
  cr_assert(dc_shape_equal(dc_shape_of(o2), DC_SHAPE(3, 1, 3)));
  expect_values(o2, (double[]){0, 0, 1, 1, 0, 0, 0, 1, 0}, 9, "inferred classes");
  dc_tensor *s = dc_one_hot(i64((int64_t[]){9, 3, 7, 1}, DC_SHAPE(2, 2)), 10);
  dc_tensor *st = dc_one_hot(dc_transpose(i64((int64_t[]){9, 3, 7, 1}, DC_SHAPE(2, 2)), 0, 1), 10);
  cr_assert_float_eq(dc_item_at(s, 9), 1.0, 0);
  cr_assert_float_eq(dc_item_at(st, 17), 1.0, 0); /* st[0][1] = one_hot(7) */
  expect_error(dc_one_hot(i64((int64_t[]){1, 12, 3}, DC_SHAPE(3)), 10), "one_hot", "label 12",
               "0..9");
  expect_error(dc_one_hot(i64((int64_t[]){-1}, DC_SHAPE(1)), 3), "one_hot", "label -1", NULL);
  expect_error(dc_one_hot(dc_zeros(DC_SHAPE(3), DC_F32), 3), "one_hot", "int64", NULL);
  expect_error(dc_one_hot(dc_zeros(DC_SHAPE(0), DC_I64), -1), "one_hot", "empty", NULL);
  dc_scope_end();
}

/* ---- cat / stack ---- */

Test(cat, dims_promotion_and_legacy_empty) {
  dc_scope_begin();
  dc_tensor *a = f64((double[]){1, 2, 3, 4}, DC_SHAPE(2, 2));
  dc_tensor *b = f64((double[]){5, 6}, DC_SHAPE(2, 1));
  dc_tensor *r = dc_cat((dc_tensor *[]){a, b}, 2, 1);
  cr_assert(dc_shape_equal(dc_shape_of(r), DC_SHAPE(2, 3)));
  expect_values(r, (double[]){1, 2, 5, 3, 4, 6}, 6, "cat dim 1");
  expect_values(dc_cat((dc_tensor *[]){a, b}, 2, -1), (double[]){1, 2, 5, 3, 4, 6}, 6, "cat -1");
  dc_tensor *r0 = dc_cat((dc_tensor *[]){a, dc_transpose(a, 0, 1)}, 2, 0);
  expect_values(r0, (double[]){1, 2, 3, 4, 1, 3, 2, 4}, 8, "cat of a strided input");
  /* float32 + int64 -> float32; float32 + float64 -> float64 */
  dc_tensor *f = dc_ones(DC_SHAPE(2), DC_F32), *n = i64((int64_t[]){7, 8}, DC_SHAPE(2));
  dc_tensor *p = dc_cat((dc_tensor *[]){f, n}, 2, 0);
  cr_assert_eq(p->dtype, DC_F32);
  expect_values(p, (double[]){1, 1, 7, 8}, 4, "promoted");
  cr_assert_eq(dc_cat((dc_tensor *[]){f, dc_ones(DC_SHAPE(1), DC_F64)}, 2, 0)->dtype, DC_F64);
  /* torch skips legacy empty [0] inputs next to other ranks */
  dc_tensor *e = dc_cat((dc_tensor *[]){dc_zeros(DC_SHAPE(0), DC_F64), a}, 2, 0);
  cr_assert(dc_shape_equal(dc_shape_of(e), DC_SHAPE(2, 2)), "%s", dc_last_error());
  dc_scope_end();
}

Test(cat, bad_input) {
  dc_scope_begin();
  dc_tensor *a = dc_ones(DC_SHAPE(2, 3), DC_F32), *b = dc_ones(DC_SHAPE(4, 2), DC_F32);
  expect_error(dc_cat((dc_tensor *[]){a, a, b}, 3, 1), "cat", "tensor 2", "dim 0");
  expect_error(dc_cat((dc_tensor *[]){a, dc_ones(DC_SHAPE(2, 3, 1), DC_F32)}, 2, 0), "cat",
               "tensor 1", "dims");
  expect_error(dc_cat((dc_tensor *[]){a}, 1, 2), "cat", "dim 2", NULL);
  expect_error(dc_cat((dc_tensor *[]){dc_scalar(1, DC_F32)}, 1, 0), "cat", "0-d", NULL);
  expect_error(dc_cat(NULL, 0, 0), "cat", "non-empty", NULL);
  dc_clear_error();
  expect_error(dc_cat((dc_tensor *[]){a, NULL}, 2, 0), "cat", "tensor 1", "NULL");
  dc_scope_end();
}

Test(stack, dims_and_bad_input) {
  dc_scope_begin();
  dc_tensor *a = f64((double[]){1, 2, 3}, DC_SHAPE(3)), *b = f64((double[]){4, 5, 6}, DC_SHAPE(3));
  dc_tensor *s0 = dc_stack((dc_tensor *[]){a, b}, 2, 0);
  cr_assert(dc_shape_equal(dc_shape_of(s0), DC_SHAPE(2, 3)));
  expect_values(s0, (double[]){1, 2, 3, 4, 5, 6}, 6, "stack 0");
  dc_tensor *s1 = dc_stack((dc_tensor *[]){a, b}, 2, -1);
  cr_assert(dc_shape_equal(dc_shape_of(s1), DC_SHAPE(3, 2)));
  expect_values(s1, (double[]){1, 4, 2, 5, 3, 6}, 6, "stack -1");
  dc_tensor *s2 = dc_stack((dc_tensor *[]){s0, dc_transpose(s1, 0, 1)}, 2, 1);
  cr_assert(dc_shape_equal(dc_shape_of(s2), DC_SHAPE(2, 2, 3)));
  expect_values(s2, (double[]){1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6}, 12, "stack of strided");
  expect_error(dc_stack((dc_tensor *[]){a, dc_ones(DC_SHAPE(4), DC_F64)}, 2, 0), "stack",
               "tensor 1", "[4]");
  expect_error(dc_stack((dc_tensor *[]){a, b}, 2, 2), "stack", "dim 2", NULL);
  dc_scope_end();
}

Test(cat, many_inputs) {
  dc_scope_begin();
  dc_tensor *ts[100];
  for (int k = 0; k < 100; k++) ts[k] = dc_full(DC_SHAPE(1, 2), k, DC_F32);
  dc_tensor *r = dc_cat(ts, 100, 0);
  cr_assert(dc_shape_equal(dc_shape_of(r), DC_SHAPE(100, 2)));
  cr_assert_float_eq(dc_item_at(r, 2 * 77 + 1), 77.0, 0);
  dc_tensor *s = dc_stack(ts, 100, 1);
  cr_assert(dc_shape_equal(dc_shape_of(s), DC_SHAPE(1, 100, 2)));
  cr_assert_float_eq(dc_item_at(s, 2 * 42), 42.0, 0);
  dc_scope_end();
}

/* ---- float64 gradchecks ---- */

typedef struct ix_case {
  int op, dim;
  dc_tensor *index;
} ix_case;

static dc_tensor *ix_fn(dc_tensor *const *in, int n, void *ud) {
  const ix_case *c = ud;
  switch (c->op) {
  case 0:
    return dc_gather(in[0], c->dim, c->index);
  case 1:
    return dc_scatter_add(in[0], c->dim, c->index, in[1]);
  case 2:
    return dc_index_select(in[0], c->dim, c->index);
  case 3:
    return dc_cat(in, n, c->dim);
  default:
    return dc_stack(in, n, c->dim);
  }
}

static dc_tensor *leaf(dc_shape s) { return dc_requires_grad_(dc_randn(s, DC_F64), true); }

Test(gradcheck, gather_scatter_index_select) {
  dc_scope_begin();
  dc_manual_seed(12);
  dc_tensor *x = leaf(DC_SHAPE(3, 4));
  ix_case g1 = {0, 1, i64((int64_t[]){0, 3, 3, 1, 2, 2}, DC_SHAPE(3, 2))};
  cr_assert(dc_gradcheck(ix_fn, &x, 1, &g1), "gather: %s", dc_last_error());
  ix_case g0 = {0, 0, i64((int64_t[]){2, 2, 0, 1}, DC_SHAPE(1, 4))};
  cr_assert(dc_gradcheck(ix_fn, &x, 1, &g0), "gather dim 0: %s", dc_last_error());
  dc_tensor *xs[2] = {leaf(DC_SHAPE(3, 4)), leaf(DC_SHAPE(3, 3))}; /* src larger than index */
  ix_case s1 = {1, 1, i64((int64_t[]){0, 0, 3, 1, 1, 2}, DC_SHAPE(3, 2))};
  cr_assert(dc_gradcheck(ix_fn, xs, 2, &s1), "scatter_add: %s", dc_last_error());
  ix_case i1 = {2, 1, i64((int64_t[]){3, 0, 3, 3}, DC_SHAPE(4))};
  cr_assert(dc_gradcheck(ix_fn, &x, 1, &i1), "index_select: %s", dc_last_error());
  dc_tensor *xt = dc_requires_grad_(dc_contiguous(dc_detach(dc_transpose(x, 0, 1))), true);
  ix_case i0 = {2, 0, i64((int64_t[]){1, 1}, DC_SHAPE(2))};
  cr_assert(dc_gradcheck(ix_fn, &xt, 1, &i0), "index_select dim 0: %s", dc_last_error());
  dc_scope_end();
}

Test(gradcheck, cat_and_stack) {
  dc_scope_begin();
  dc_manual_seed(13);
  dc_tensor *c[3] = {leaf(DC_SHAPE(2, 3)), leaf(DC_SHAPE(2, 1)), leaf(DC_SHAPE(2, 2))};
  ix_case c1 = {3, 1, NULL}, cm = {3, -1, NULL};
  cr_assert(dc_gradcheck(ix_fn, c, 3, &c1), "cat: %s", dc_last_error());
  cr_assert(dc_gradcheck(ix_fn, c, 3, &cm), "cat -1: %s", dc_last_error());
  dc_tensor *s[3] = {leaf(DC_SHAPE(2, 3)), leaf(DC_SHAPE(2, 3)), leaf(DC_SHAPE(2, 3))};
  for (int d = -3; d <= 2; d++) {
    ix_case sc = {4, d, NULL};
    cr_assert(dc_gradcheck(ix_fn, s, 3, &sc), "stack dim %d: %s", d, dc_last_error());
  }
  dc_scope_end();
}

Test(autograd, cat_of_mixed_dtypes_returns_each_input_its_dtype) {
  dc_scope_begin();
  dc_tensor *a = dc_requires_grad_(dc_ones(DC_SHAPE(2), DC_F32), true);
  dc_tensor *b = dc_requires_grad_(dc_ones(DC_SHAPE(3), DC_F64), true);
  dc_tensor *r = dc_cat((dc_tensor *[]){a, b}, 2, 0);
  cr_assert_eq(r->dtype, DC_F64);
  cr_assert_eq(dc_backward(dc_sum_all(dc_mul(r, r))), DC_OK, "%s", dc_last_error());
  cr_assert_eq(a->grad->dtype, DC_F32);
  cr_assert_eq(b->grad->dtype, DC_F64);
  cr_assert_float_eq(dc_item_at(a->grad, 1), 2.0, 1e-7);
  cr_assert_str_eq(dc_grad_fn_name(r), "cat");
  dc_scope_end();
}
