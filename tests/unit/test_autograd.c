/* Autograd engine tests: gradients of leaves and intermediates, accumulation, retain_grad,
 * freed graphs, non-scalar outputs, no_grad, detach, broadcasting, gradcheck of reductions and
 * softmax, gradcheck catching a wrong gradient, and flat memory over 10,000 scoped steps. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <string.h>

static dc_tensor *leaf(double v) { return dc_requires_grad_(dc_scalar(v, DC_F64), true); }

Test(autograd, polynomial_and_accumulation) {
  dc_scope_begin();
  dc_tensor *x = leaf(2.0);
  dc_tensor *y = dc_add(dc_mul(x, x), dc_mul_scalar(x, 3.0)); /* x^2 + 3x */
  cr_assert_eq(dc_backward(y, .retain_graph = true), DC_OK, "%s", dc_last_error());
  cr_assert_float_eq(dc_item(x->grad), 7.0, 1e-12);
  cr_assert_eq(dc_backward(y), DC_OK);
  cr_assert_float_eq(dc_item(x->grad), 14.0, 1e-12); /* accumulates */
  cr_assert_neq(dc_backward(y), DC_OK);              /* graph freed */
  cr_assert(strstr(dc_last_error(), "second time") != NULL, "%s", dc_last_error());
  dc_zero_grad(x);
  cr_assert_null(x->grad);
  dc_scope_end();
}

Test(autograd, retain_grad_of_intermediate) {
  dc_scope_begin();
  dc_tensor *a = leaf(1.5), *b = leaf(-0.5);
  dc_tensor *s = dc_add(a, b);
  dc_retain_grad(s);
  dc_tensor *y = dc_mul(s, s); /* dy/ds = 2s = 2 */
  cr_assert_eq(dc_backward(y), DC_OK);
  cr_assert_float_eq(dc_item(s->grad), 2.0, 1e-12);
  cr_assert_float_eq(dc_item(a->grad), 2.0, 1e-12);
  cr_assert_str_eq(dc_grad_fn_name(y), "mul");
  dc_scope_end();
}

Test(autograd, non_scalar_needs_grad_argument) {
  dc_scope_begin();
  dc_tensor *x = dc_requires_grad_(dc_ones(DC_SHAPE(3), DC_F64), true);
  dc_tensor *y = dc_mul_scalar(x, 2.0);
  cr_assert_neq(dc_backward(y), DC_OK);
  cr_assert(strstr(dc_last_error(), "one-element") != NULL);
  dc_tensor *g = dc_full(DC_SHAPE(3), 0.5, DC_F64);
  cr_assert_eq(dc_backward(y, .grad = g), DC_OK, "%s", dc_last_error());
  cr_assert_float_eq(dc_item_at(x->grad, 2), 1.0, 1e-12);
  dc_tensor *c = dc_ones(DC_SHAPE(2), DC_F64);
  cr_assert_neq(dc_backward(c), DC_OK);
  cr_assert(strstr(dc_last_error(), "does not require grad") != NULL);
  dc_scope_end();
}

Test(autograd, no_grad_and_detach) {
  dc_scope_begin();
  dc_tensor *x = leaf(3.0);
  dc_no_grad_begin();
  dc_tensor *y = dc_mul(x, x);
  dc_no_grad_end();
  cr_assert_not(y->requires_grad);
  cr_assert_null(y->grad_fn);
  dc_tensor *d = dc_detach(x);
  cr_assert_not(d->requires_grad);
  cr_assert_eq(d->storage, x->storage);
  dc_tensor *z = dc_mul(x, dc_detach(x)); /* dz/dx = detach(x) = 3 */
  dc_backward(z);
  cr_assert_float_eq(dc_item(x->grad), 3.0, 1e-12);
  dc_scope_end();
}

Test(autograd, broadcast_gradients_sum_back) {
  dc_scope_begin();
  dc_tensor *a = dc_requires_grad_(dc_ones(DC_SHAPE(3, 1), DC_F64), true);
  dc_tensor *b = dc_requires_grad_(dc_ones(DC_SHAPE(1, 4), DC_F64), true);
  dc_tensor *y = dc_sum_all(dc_add(a, b));
  cr_assert_eq(dc_backward(y), DC_OK, "%s", dc_last_error());
  cr_assert_eq(a->grad->shape[0], 3);
  cr_assert_eq(a->grad->shape[1], 1);
  cr_assert_float_eq(dc_item_at(a->grad, 0), 4.0, 1e-12);
  cr_assert_float_eq(dc_item_at(b->grad, 3), 3.0, 1e-12);
  dc_scope_end();
}

Test(autograd, shared_subexpression_and_views) {
  dc_scope_begin();
  dc_tensor *x = dc_requires_grad_(dc_arange(1, 7, 1, DC_F64), true);
  dc_tensor *m = dc_view(x, DC_SHAPE(2, 3));
  dc_tensor *t = dc_transpose(m, 0, 1);                          /* [3, 2] */
  dc_tensor *y = dc_sum_all(dc_mul(t, dc_slice(t, 0, 0, 3, 1))); /* sum x^2 */
  cr_assert_eq(dc_backward(y), DC_OK, "%s", dc_last_error());
  for (int i = 0; i < 6; i++) cr_assert_float_eq(dc_item_at(x->grad, i), 2.0 * (i + 1), 1e-12);
  dc_scope_end();
}

/* ---- gradcheck ---- */
typedef struct red_case {
  int kind;
  int dims[2];
  int nd;
  bool keep;
} red_case;

static dc_tensor *red_fn(dc_tensor *const *in, int n, void *ud) {
  const red_case *c = ud;
  dc_tensor *x = in[0];
  switch (c->kind) {
  case 0:
    return dc_sum(x, c->dims, c->nd, c->keep);
  case 1:
    return dc_mean(x, c->dims, c->nd, c->keep);
  case 2:
    return dc_amax(x, c->dims, c->nd, c->keep);
  case 3:
    return dc_logsumexp(x, c->dims, c->nd, c->keep);
  case 4:
    return dc_var(x, c->dims, c->nd, 1, c->keep);
  case 5:
    return dc_std(x, c->dims, c->nd, 0, c->keep);
  case 6:
    return dc_softmax(x, c->dims[0]);
  case 7:
    return dc_log_softmax(x, c->dims[0]);
  case 8:
    return dc_max_dim(x, c->dims[0], c->keep, NULL);
  case 9:
    return dc_amin(x, c->dims, c->nd, c->keep);
  default:
    return NULL;
  }
}

Test(autograd, gradcheck_reductions_and_softmax) {
  dc_scope_begin();
  dc_manual_seed(1);
  dc_tensor *x = dc_requires_grad_(dc_randn(DC_SHAPE(3, 4, 5), DC_F64), true);
  dc_tensor *xt = dc_requires_grad_(dc_contiguous(dc_detach(dc_transpose(x, 0, 2))), true);
  red_case cases[] = {
      {0, {1, 0}, 1, false}, {0, {0, 2}, 2, true},   {0, {0}, 0, false},    {1, {2, 0}, 1, true},
      {1, {0, 1}, 2, false}, {2, {1, 0}, 1, false},  {3, {2, 0}, 1, false}, {3, {0, 1}, 2, true},
      {4, {1, 0}, 1, false}, {5, {0, 2}, 2, true},   {6, {1, 0}, 1, false}, {6, {2, 0}, 1, false},
      {7, {0, 0}, 1, false}, {7, {-1, 0}, 1, false}, {8, {1, 0}, 1, false}, {8, {2, 0}, 1, true},
      {9, {2, 0}, 1, true},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    cr_assert(dc_gradcheck(red_fn, &x, 1, &cases[k]), "case %zu: %s", k, dc_last_error());
    cr_assert(dc_gradcheck(red_fn, &xt, 1, &cases[k]), "case %zu (transposed): %s", k,
              dc_last_error());
  }
  dc_scope_end();
}

static dc_tensor *wrong_fn(dc_tensor *const *in, int n, void *ud) {
  return dc_mul(in[0], dc_detach(in[0])); /* analytic x, true derivative 2x */
}

Test(autograd, gradcheck_catches_a_wrong_gradient) {
  dc_scope_begin();
  dc_tensor *x = dc_requires_grad_(dc_arange(1, 4, 1, DC_F64), true);
  cr_assert_not(dc_gradcheck(wrong_fn, &x, 1, NULL));
  cr_assert(strstr(dc_last_error(), "analytic") != NULL);
  dc_tensor *f = dc_requires_grad_(dc_ones(DC_SHAPE(2), DC_F32), true);
  cr_assert_not(dc_gradcheck(wrong_fn, &f, 1, NULL));
  cr_assert(strstr(dc_last_error(), "float64") != NULL);
  dc_scope_end();
}

Test(autograd, reductions_values) {
  dc_scope_begin();
  double v[6] = {1, 5, 3, 4, 2, 6};
  dc_tensor *x = dc_from_data(v, DC_SHAPE(2, 3), DC_F64);
  cr_assert_float_eq(dc_item(dc_sum_all(x)), 21.0, 1e-12);
  dc_tensor *s = dc_sum(x, DC_DIMS(0), false);
  cr_assert_float_eq(dc_item_at(s, 1), 7.0, 1e-12);
  dc_tensor *idx = NULL;
  dc_tensor *m = dc_max_dim(x, 1, false, &idx);
  cr_assert_float_eq(dc_item_at(m, 0), 5.0, 0);
  cr_assert_eq(dc_item_at(idx, 1), 2.0);
  cr_assert_eq(dc_item(dc_argmax(x, DC_ALL_DIMS, false)), 5.0);
  cr_assert_float_eq(dc_item_at(dc_var(x, DC_DIMS(1), 1, false), 0), 4.0, 1e-12);
  cr_assert_float_eq(dc_item(dc_logsumexp(x, DC_NO_DIMS, false)),
                     log(exp(1) + exp(5) + exp(3) + exp(4) + exp(2) + exp(6)), 1e-12);
  cr_assert_null(dc_sum(x, DC_DIMS(2), false));
  cr_assert(strstr(dc_last_error(), "sum") && strstr(dc_last_error(), "out of range"));
  cr_assert_null(dc_sum(x, DC_DIMS(1, 1), false));
  dc_scope_end();
}

/* Memory stays flat over 10,000 training steps of a linear model when each step is a scope. */
Test(autograd, ten_thousand_scoped_steps_flat_memory) {
  dc_manual_seed(0);
  dc_tensor *w = dc_requires_grad_(dc_zeros(DC_SHAPE(4, 1), DC_F32), true);
  dc_tensor *x = dc_randn(DC_SHAPE(16, 4), DC_F32);
  dc_tensor *y = dc_randn(DC_SHAPE(16, 1), DC_F32);
  int64_t live_at_100 = 0, tensors_at_100 = 0;
  for (int step = 0; step < 10000; step++) {
    dc_scope_begin();
    dc_tensor *err = dc_sub(dc_matmul(x, w), y);
    dc_tensor *loss = dc_mean_all(dc_mul(err, err));
    cr_assert_eq(dc_backward(loss), DC_OK, "%s", dc_last_error());
    dc_no_grad_begin();
    dc_copy_(w, dc_sub(w, dc_mul_scalar(w->grad, 0.01)));
    dc_no_grad_end();
    dc_zero_grad(w);
    dc_scope_end();
    if (step == 100) {
      live_at_100 = dc_alloc_get_stats().live_bytes;
      tensors_at_100 = dc_live_tensors();
    }
  }
  cr_assert_eq(dc_alloc_get_stats().live_bytes, live_at_100);
  cr_assert_eq(dc_live_tensors(), tensors_at_100);
  dc_free(w);
  dc_free(x);
  dc_free(y);
}

/* ---- gradcheck of every view / copy op (float64) ---- */
static dc_tensor *view_fn(dc_tensor *const *in, int n, void *ud) {
  dc_tensor *x = in[0]; /* [2, 3, 4] */
  switch (*(int *)ud) {
  case 0:
    return dc_reshape(x, DC_SHAPE(4, -1));
  case 1:
    return dc_view(x, DC_SHAPE(6, 4));
  case 2:
    return dc_permute(x, (int[]){2, 0, 1}, 3);
  case 3:
    return dc_transpose(x, 0, 2);
  case 4:
    return dc_narrow(x, 2, 1, 2);
  case 5:
    return dc_slice(x, 2, 0, 4, 3);
  case 6:
    return dc_select(x, 1, 2);
  case 7:
    return dc_expand(dc_narrow(x, 0, 0, 1), DC_SHAPE(5, 3, 4));
  case 8:
    return dc_squeeze(dc_narrow(x, 1, 1, 1), 1);
  case 9:
    return dc_unsqueeze(x, 1);
  case 10:
    return dc_flatten(dc_transpose(x, 1, 2), 0, 1);
  case 11:
    return dc_contiguous(dc_transpose(x, 0, 1));
  case 12:
    return dc_clone(x);
  case 13:
    return dc_to_dtype(dc_to_dtype(x, DC_F32), DC_F64);
  default:
    return NULL;
  }
}

Test(autograd, gradcheck_views_and_copies) {
  dc_scope_begin();
  dc_manual_seed(2);
  dc_tensor *x = dc_requires_grad_(dc_randn(DC_SHAPE(2, 3, 4), DC_F64), true);
  for (int k = 0; k <= 13; k++) {
    /* the float32 round trip needs a step far above float32 rounding */
    dc_gradcheck_opts o = {.eps = k == 13 ? 1e-2 : 0, .atol = k == 13 ? 1e-4 : 0};
    cr_assert(dc_gradcheck_opt(view_fn, &x, 1, &k, o), "view case %d: %s", k, dc_last_error());
  }
  dc_scope_end();
}
