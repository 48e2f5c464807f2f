/* Autograd on the test device: float64 gradcheck with device leaves, the backward seed of a 0-d
 * device loss, PyTorch's rule that a 0-d cpu tensor mixes with any device (and that nothing else
 * does), anomaly mode finding a NaN on the device, printing and DOT export of device tensors.
 * Any host read of device memory faults here (src/backend/testdev). */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* x [3, 4] float64 on dev from a fixed draw, a leaf that requires grad */
static dc_tensor *leaf(dc_shape s, uint64_t seed, dc_device dev) {
  dc_manual_seed(seed);
  dc_tensor *x = dc_randn_on(s, DC_F64, dev);
  cr_assert(x && x->device == dev, "%s", dc_last_error());
  dc_requires_grad_(x, true);
  return x;
}

/* ---- functions checked by gradcheck (inputs on the test device) ---- */
static dc_tensor *f_mul_exp(dc_tensor *const *in, int n, void *ud) {
  return dc_mul(dc_exp(in[0]), dc_tanh(in[1]));
}
static dc_tensor *f_div_pow(dc_tensor *const *in, int n, void *ud) {
  return dc_div(in[0], dc_add_scalar(dc_square(in[1]), 1.0));
}
static dc_tensor *f_where_max(dc_tensor *const *in, int n, void *ud) {
  dc_tensor *m = dc_maximum(in[0], in[1]);
  return dc_where(dc_gt_scalar(in[0], 0.0), m, dc_sigmoid(in[1]));
}
static dc_tensor *f_reduce(dc_tensor *const *in, int n, void *ud) {
  int d = 1;
  dc_tensor *idx = NULL;
  dc_tensor *mx = dc_max_dim(in[0], 1, true, &idx);
  return dc_add(dc_logsumexp(in[0], &d, 1, true), dc_mul(mx, dc_mean(in[1], &d, 1, true)));
}
static dc_tensor *f_matmul_softmax(dc_tensor *const *in, int n, void *ud) {
  return dc_log_softmax(dc_matmul(in[0], dc_transpose(in[1], 0, 1)), 1);
}
static dc_tensor *f_scalar_mix(dc_tensor *const *in, int n, void *ud) {
  /* a 0-d cpu leaf times a device tensor: the gradient reaches both */
  return dc_mul(in[0], dc_sub(in[1], in[0]));
}

Test(testdev_autograd, gradcheck_float64_on_the_device) {
  struct {
    const char *name;
    dc_gradcheck_fn f;
  } cases[] = {{"mul/exp/tanh", f_mul_exp},
               {"div/square", f_div_pow},
               {"where/maximum/sigmoid", f_where_max},
               {"max_dim/logsumexp/mean", f_reduce},
               {"matmul/transpose/log_softmax", f_matmul_softmax}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    dc_scope_begin();
    dc_tensor *in[2] = {leaf(DC_SHAPE(3, 4), 1 + k, DC_TESTDEV),
                        leaf(DC_SHAPE(3, 4), 100 + k, DC_TESTDEV)};
    cr_assert(dc_gradcheck(cases[k].f, in, 2, NULL), "%s: %s", cases[k].name, dc_last_error());
    cr_assert(in[0]->grad == NULL, "%s: gradcheck leaves the inputs' grads as it found them",
              cases[k].name);
    dc_scope_end();
  }
  dc_scope_begin();
  dc_tensor *mix[2] = {dc_requires_grad_(dc_scalar(0.7, DC_F64), true),
                       leaf(DC_SHAPE(2, 3), 7, DC_TESTDEV)};
  cr_assert(dc_gradcheck(f_scalar_mix, mix, 2, NULL), "0-d cpu mix: %s", dc_last_error());
  dc_scope_end();
}

/* a deliberately wrong rule is caught on the device too: sum(x*x) checked against 3x */
static dc_tensor *f_wrong(dc_tensor *const *in, int n, void *ud) {
  dc_tensor *d = dc_detach(in[0]); /* x*x with one factor detached: the gradient is x, not 2x */
  return dc_mul(in[0], d);
}

Test(testdev_autograd, gradcheck_can_fail_on_the_device) {
  dc_scope_begin();
  dc_tensor *in[1] = {leaf(DC_SHAPE(4), 3, DC_TESTDEV)};
  cr_assert_not(dc_gradcheck(f_wrong, in, 1, NULL));
  cr_assert(strstr(dc_last_error(), "analytic gradient"), "%s", dc_last_error());
  dc_scope_end();
}

Test(testdev_autograd, seed_of_a_0d_device_loss) {
  dc_scope_begin();
  dc_tensor *x = leaf(DC_SHAPE(5), 4, DC_TESTDEV);
  dc_tensor *loss = dc_sum_all(dc_square(x));
  cr_assert_eq(loss->device, DC_TESTDEV);
  cr_assert_eq(dc_backward(loss), DC_OK, "%s", dc_last_error());
  cr_assert(x->grad && x->grad->device == DC_TESTDEV);
  for (int64_t i = 0; i < 5; i++)
    cr_assert_eq(dc_item_at(x->grad, i), 2 * dc_item_at(x, i)); /* exact: 2x in float64 */
  dc_scope_end();
}

Test(testdev_autograd, zero_d_cpu_tensors_mix_and_nothing_else_does) {
  dc_scope_begin();
  dc_tensor *x = leaf(DC_SHAPE(2, 3), 5, DC_TESTDEV);
  dc_tensor *s = dc_requires_grad_(dc_scalar(2.0, DC_F64), true);
  dc_tensor *y = dc_mul(x, s);
  cr_assert(y, "%s", dc_last_error());
  cr_assert_eq(y->device, DC_TESTDEV);
  dc_tensor *w = dc_where(dc_gt_scalar(x, 0.0), dc_scalar(1.0, DC_F64), x);
  cr_assert(w && w->device == DC_TESTDEV, "%s", dc_last_error());
  cr_assert_eq(dc_backward(dc_sum_all(dc_add(y, w))), DC_OK, "%s", dc_last_error());
  cr_assert(s->grad && s->grad->device == DC_CPU, "the 0-d leaf's gradient is on the cpu");
  double want = 0;
  for (int64_t i = 0; i < 6; i++) want += dc_item_at(x, i);
  cr_assert_float_eq(dc_item(s->grad), want, 1e-12);
  /* a 0-d cpu tensor that makes the dtype (float beside int) still follows the device */
  dc_tensor *k = dc_arange_on(0, 4, 1, DC_I64, DC_TESTDEV);
  dc_tensor *kf = dc_add(k, dc_scalar(0.5, DC_F32));
  cr_assert(kf && kf->device == DC_TESTDEV && kf->dtype == DC_F32, "%s", dc_last_error());
  cr_assert_eq(dc_item_at(kf, 3), 3.5);
  /* a dimensioned cpu tensor does not mix */
  dc_tensor *c = dc_ones(DC_SHAPE(3), DC_F64);
  cr_assert_null(dc_add(x, c));
  cr_assert(strstr(dc_last_error(), "different devices") && strstr(dc_last_error(), "cpu") &&
                strstr(dc_last_error(), "testdev"),
            "%s", dc_last_error());
  cr_assert_null(dc_where(dc_gt_scalar(x, 0.0), x, dc_ones(DC_SHAPE(2, 3), DC_F64)));
  /* nor do an nn op's parameters */
  dc_tensor *img = dc_randn_on(DC_SHAPE(1, 1, 4, 4), DC_F32, DC_TESTDEV);
  dc_tensor *kern = dc_randn(DC_SHAPE(2, 1, 3, 3), DC_F32);
  cr_assert_null(dc_conv2d_opt(img, kern, NULL, (dc_conv2d_opts){0}));
  cr_assert(strstr(dc_last_error(), "weight is on cpu"), "%s", dc_last_error());
  dc_scope_end();
}

Test(testdev_autograd, anomaly_mode_on_the_device) {
  bool prev = dc_set_detect_anomaly(true);
  dc_scope_begin();
  dc_tensor *x = leaf(DC_SHAPE(4), 6, DC_TESTDEV);
  dc_tensor *ok = dc_sum_all(dc_exp(x)); /* finite: passes */
  cr_assert(ok, "%s", dc_last_error());
  cr_assert_eq(dc_backward(ok), DC_OK, "%s", dc_last_error());
  dc_tensor *neg = dc_sub_scalar(dc_abs(x), 10.0); /* all negative */
  cr_assert_null(dc_log(neg));
  cr_assert(strstr(dc_last_error(), "anomaly: forward of 'log'") &&
                strstr(dc_last_error(), "NaN at element 0"),
            "%s", dc_last_error());
  /* backward: sqrt's gradient at 0 is infinite */
  dc_tensor *z = dc_requires_grad_(dc_zeros_on(DC_SHAPE(3), DC_F64, DC_TESTDEV), true);
  dc_tensor *r = dc_sum_all(dc_sqrt(z));
  cr_assert(r, "%s", dc_last_error());
  cr_assert_neq(dc_backward(r), DC_OK);
  cr_assert(strstr(dc_last_error(), "anomaly: backward of 'sqrt'") &&
                strstr(dc_last_error(), "+infinity"),
            "%s", dc_last_error());
  dc_scope_end();
  dc_set_detect_anomaly(prev);
}

/* Strided device views print through core's host view (the storage span the view reads, one
 * read): a transpose, a narrowed slice at an offset, an empty view; as their cpu twins do. */
Test(testdev_autograd, printing_strided_device_views) {
  dc_scope_begin();
  dc_tensor *h = dc_reshape(dc_arange(0, 24, 1, DC_F64), DC_SHAPE(4, 6)); /* [4, 6] */
  dc_tensor *d = dc_to_device(h, DC_TESTDEV);
  cr_assert(d, "%s", dc_last_error());
  dc_tensor *hv[3] = {dc_transpose(h, 0, 1), dc_narrow(dc_narrow(h, 1, 2, 3), 0, 1, 2),
                      dc_narrow(h, 0, 4, 0)};
  dc_tensor *dv[3] = {dc_transpose(d, 0, 1), dc_narrow(dc_narrow(d, 1, 2, 3), 0, 1, 2),
                      dc_narrow(d, 0, 4, 0)};
  for (int k = 0; k < 3; k++) {
    cr_assert(hv[k] && dv[k], "%s", dc_last_error());
    char *hs = dc_to_string(hv[k]), *ds = dc_to_string(dv[k]);
    cr_assert(hs && ds, "%s", dc_last_error());
    /* the device's string is the cpu's with device= before dtype= */
    const char *dt = strstr(hs, ", dtype=");
    cr_assert(dt, "%s", hs);
    char want[1024];
    snprintf(want, sizeof want, "%.*s, device='testdev'%s", (int)(dt - hs), hs, dt);
    cr_assert_str_eq(ds, want, "view %d", k);
    free(hs);
    free(ds);
  }
  dc_scope_end();
}

Test(testdev_autograd, printing_and_dot_of_device_tensors) {
  dc_scope_begin();
  float v[6] = {1.5f, -2.0f, 0.25f, 3.0f, 4.0f, -0.5f};
  dc_tensor *h = dc_from_data(v, DC_SHAPE(2, 3), DC_F32);
  dc_tensor *d = dc_requires_grad_(dc_to_device(h, DC_TESTDEV), true);
  char *hs = dc_to_string(h), *ds = dc_to_string(d);
  cr_assert(hs && ds, "%s", dc_last_error());
  /* the device's string is the cpu's with device= before requires_grad */
  const char *body_end = strrchr(hs, ')');
  size_t body = (size_t)(body_end - hs);
  cr_assert(strncmp(hs, ds, body) == 0, "cpu: %s\ntestdev: %s", hs, ds);
  cr_assert_str_eq(ds + body, ", device='testdev', requires_grad=True)", "%s", ds);
  free(hs);
  free(ds);
  dc_tensor *y = dc_sum_all(dc_relu(d));
  char *ys = dc_to_string(y);
  cr_assert(ys && strstr(ys, "tensor(8.7500, device='testdev', grad_fn=<"), "%s", ys);
  free(ys);
  cr_assert_eq(dc_backward(y), DC_OK, "%s", dc_last_error());
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  cr_assert_eq(dc_graph_dot(f, y, (dc_dot_opts){.values = true, .grads = true}), DC_OK, "%s",
               dc_last_error());
  fclose(f);
  cr_assert(strstr(buf, "relu") && strstr(buf, "1.5"), "%s", buf);
  free(buf);
  dc_scope_end();
}
