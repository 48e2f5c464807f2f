/* Autocast (include/deepc/autocast.h): the region stack (nesting, disabled regions, one state
 * per device, refused dtypes and depths), the dtype each list gives (lower precision, float32,
 * promote; float64 and integers untouched), bfloat16 inputs to ops whose kernels are float32
 * only, float32 gradients on float32 parameters, a few SGD steps of a small CNN that train, and
 * a float64 gradcheck inside a region. Shapes: N batch, C channels, K classes. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>

#define DT(t) ((t) ? (int)(t)->dtype : -1)
#define ASSERT_DT(t, want)                                                                         \
  cr_assert_eq(DT(t), (int)(want), "%s: got %s, want %s (%s)", #t,                                 \
               (t) ? dc_dtype_name((t)->dtype) : "NULL", dc_dtype_name(want), dc_last_error())

static void open_bf16(void) { cr_assert_eq(dc_autocast_push(DC_CPU, DC_BF16, true), DC_OK); }
static void close_region(void) { cr_assert_eq(dc_autocast_pop(), DC_OK, "%s", dc_last_error()); }

Test(autocast, push_pop_and_refusals) {
  cr_assert(!dc_autocast_enabled(DC_CPU));
  cr_assert_eq(dc_autocast_dtype(DC_CPU), DC_F32);
  cr_assert_eq(dc_autocast_pop(), DC_ERR_STATE);
  cr_assert(strstr(dc_last_error(), "no autocast region"), "%s", dc_last_error());
  cr_assert_eq(dc_autocast_push(DC_CPU, DC_F16, true), DC_ERR_ARG);
  cr_assert(strstr(dc_last_error(), "float16"), "%s", dc_last_error());
  cr_assert_eq(dc_autocast_push(DC_CPU, (dc_dtype)99, true), DC_ERR_ARG);
  cr_assert_eq(dc_autocast_push((dc_device)99, DC_BF16, true), DC_ERR_ARG);
  cr_assert(!dc_autocast_enabled(DC_CPU), "a refused push changed the state");
  for (int i = 0; i < DC_AUTOCAST_MAX_DEPTH; i++) open_bf16();
  cr_assert_eq(dc_autocast_push(DC_CPU, DC_BF16, true), DC_ERR_STATE);
  for (int i = 0; i < DC_AUTOCAST_MAX_DEPTH; i++) close_region();
  cr_assert(!dc_autocast_enabled(DC_CPU));
}

Test(autocast, nesting_disabled_and_per_device) {
  dc_scope_begin();
  dc_tensor *a = dc_randn(DC_SHAPE(3, 4), DC_F32), *b = dc_randn(DC_SHAPE(4, 2), DC_F32);
  open_bf16();
  cr_assert(dc_autocast_enabled(DC_CPU));
  cr_assert_eq(dc_autocast_dtype(DC_CPU), DC_BF16);
  ASSERT_DT(dc_matmul(a, b), DC_BF16);
  cr_assert_eq(dc_autocast_push(DC_CPU, DC_BF16, false), DC_OK); /* enabled=False inside */
  cr_assert(!dc_autocast_enabled(DC_CPU));
  ASSERT_DT(dc_matmul(a, b), DC_F32);
  open_bf16(); /* on again, three deep */
  ASSERT_DT(dc_matmul(a, b), DC_BF16);
  close_region();
  ASSERT_DT(dc_matmul(a, b), DC_F32);
  close_region();
  ASSERT_DT(dc_matmul(a, b), DC_BF16);
  close_region();
  ASSERT_DT(dc_matmul(a, b), DC_F32);
  /* a region for another device leaves the cpu's tensors alone */
  cr_assert_eq(dc_autocast_push(DC_CUDA, DC_BF16, true), DC_OK);
  cr_assert(dc_autocast_enabled(DC_CUDA));
  cr_assert(!dc_autocast_enabled(DC_CPU));
  ASSERT_DT(dc_matmul(a, b), DC_F32);
  close_region();
  dc_scope_end();
}

Test(autocast, list_dtypes) {
  dc_scope_begin();
  dc_manual_seed(1);
  dc_tensor *x = dc_randn(DC_SHAPE(2, 3, 6, 6), DC_F32),
            *w = dc_randn(DC_SHAPE(4, 3, 3, 3), DC_F32);
  dc_tensor *cb = dc_randn(DC_SHAPE(4), DC_F32);
  dc_tensor *lw = dc_randn(DC_SHAPE(5, 8), DC_F32), *lb = dc_randn(DC_SHAPE(5), DC_F32);
  dc_tensor *v = dc_randn(DC_SHAPE(2, 8), DC_F32), *t = dc_randn(DC_SHAPE(2, 5), DC_F32);
  dc_tensor *a3 = dc_randn(DC_SHAPE(2, 3, 4), DC_F32), *b3 = dc_randn(DC_SHAPE(2, 4, 5), DC_F32);
  dc_tensor *d = dc_randn(DC_SHAPE(3, 3), DC_F64);
  int64_t yv[2] = {1, 4};
  dc_tensor *y = dc_from_data(yv, DC_SHAPE(2), DC_I64);
  open_bf16();
  /* lower precision: float32 in, bfloat16 out */
  dc_tensor *conv = dc_conv2d_f(x, w, cb, .padding = {1, 1});
  ASSERT_DT(conv, DC_BF16);
  dc_tensor *lin = dc_linear(v, lw, lb);
  ASSERT_DT(lin, DC_BF16);
  ASSERT_DT(dc_linear(v, lw, NULL), DC_BF16);
  ASSERT_DT(dc_bmm(a3, b3), DC_BF16);
  ASSERT_DT(dc_matmul(a3, b3), DC_BF16);
  /* float32 list: bfloat16 (or float32) in, float32 out */
  ASSERT_DT(dc_cross_entropy(lin, y), DC_F32);
  ASSERT_DT(dc_nll_loss(dc_log_softmax(lin, 1), y), DC_F32);
  ASSERT_DT(dc_mse_loss(lin, t, DC_REDUCTION_MEAN), DC_F32);
  ASSERT_DT(dc_l1_loss(lin, t, DC_REDUCTION_SUM), DC_F32);
  ASSERT_DT(dc_smooth_l1_loss(lin, t, DC_REDUCTION_MEAN, 1.0), DC_F32);
  ASSERT_DT(dc_binary_cross_entropy_with_logits(lin, dc_sigmoid(t), NULL, NULL, DC_REDUCTION_MEAN),
            DC_F32);
  /* the others run in their inputs' (promoted) dtype, as torch 1.13's cpu autocast */
  ASSERT_DT(dc_relu(conv), DC_BF16);
  ASSERT_DT(dc_relu(x), DC_F32);
  ASSERT_DT(dc_softmax(lin, 1), DC_BF16);
  ASSERT_DT(dc_exp(lin), DC_BF16);
  ASSERT_DT(dc_sum(lin, NULL, 0, false), DC_BF16);
  ASSERT_DT(dc_add(lin, t), DC_F32);
  ASSERT_DT(dc_add(conv, conv), DC_BF16);
  ASSERT_DT(dc_max_pool2d_f(conv, .kernel = {2}), DC_BF16);
  ASSERT_DT(dc_avg_pool2d_f(conv, .kernel = {2}), DC_BF16);
  ASSERT_DT(dc_adaptive_avg_pool2d(conv, 1, 1), DC_BF16);
  ASSERT_DT(dc_dropout(conv, 0.5, true), DC_BF16);
  ASSERT_DT(dc_reshape(conv, DC_SHAPE(2, -1)), DC_BF16);
  ASSERT_DT(dc_cat((dc_tensor *[]){conv, conv}, 2, 1), DC_BF16);
  /* batch norm: bfloat16 x, float32 weight, bias and running statistics -> bfloat16; the
   * statistics stay float32 and are updated */
  dc_tensor *rm = dc_zeros(DC_SHAPE(4), DC_F32), *rv = dc_ones(DC_SHAPE(4), DC_F32);
  dc_tensor *bw = dc_ones(DC_SHAPE(4), DC_F32), *bb = dc_zeros(DC_SHAPE(4), DC_F32);
  ASSERT_DT(dc_batch_norm(conv, rm, rv, bw, bb, true, 0.1, 1e-5), DC_BF16);
  ASSERT_DT(rm, DC_F32);
  cr_assert(dc_item_at(rm, 0) != 0.0, "the running mean was not updated");
  /* float64 and integers are never cast */
  ASSERT_DT(dc_matmul(d, d), DC_F64);
  ASSERT_DT(dc_mse_loss(d, d, DC_REDUCTION_MEAN), DC_F64);
  ASSERT_DT(dc_add(y, y), DC_I64);
  ASSERT_DT(dc_mul(y, y), DC_I64);
  ASSERT_DT(dc_argmax(lin, 1, false), DC_I64);
  /* mixed float64 and float32 in a lower-precision op is refused, as by torch */
  cr_assert_null(dc_matmul(d, dc_randn(DC_SHAPE(3, 3), DC_F32)));
  close_region();
  dc_scope_end();
}

/* Outside any region: bfloat16 inputs to ops whose cpu kernels are float32 only compute in
 * float32 and round once: equal to the float32 op on the upcast input, rounded. */
Test(autocast, bf16_inputs_round_once) {
  dc_scope_begin();
  dc_manual_seed(2);
  dc_tensor *x = dc_to_dtype(dc_randn(DC_SHAPE(2, 3, 6, 6), DC_F32), DC_BF16);
  dc_tensor *w = dc_to_dtype(dc_randn(DC_SHAPE(4, 3, 3, 3), DC_F32), DC_BF16);
  dc_tensor *x32 = dc_to_dtype(x, DC_F32), *w32 = dc_to_dtype(w, DC_F32);
  dc_tensor *pairs[][2] = {
      {dc_conv2d_f(x, w, NULL), dc_to_dtype(dc_conv2d_f(x32, w32, NULL), DC_BF16)},
      {dc_max_pool2d_f(x, .kernel = {2}),
       dc_to_dtype(dc_max_pool2d_f(x32, .kernel = {2}), DC_BF16)},
      {dc_avg_pool2d_f(x, .kernel = {3}),
       dc_to_dtype(dc_avg_pool2d_f(x32, .kernel = {3}), DC_BF16)},
      {dc_softmax(x, 1), dc_to_dtype(dc_softmax(x32, 1), DC_BF16)},
      {dc_mean(x, NULL, 0, false), dc_to_dtype(dc_mean(x32, NULL, 0, false), DC_BF16)},
      {dc_hardtanh(x, -0.5, 0.5), dc_to_dtype(dc_hardtanh(x32, -0.5, 0.5), DC_BF16)},
  };
  for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
    ASSERT_DT(pairs[k][0], DC_BF16);
    ASSERT_DT(pairs[k][1], DC_BF16);
    int64_t n = dc_numel(pairs[k][0]);
    for (int64_t i = 0; i < n; i++)
      cr_assert_eq(dc_item_at(pairs[k][0], i), dc_item_at(pairs[k][1], i), "case %zu at %lld", k,
                   (long long)i);
  }
  dc_scope_end();
}

/* float32 parameters used under autocast get float32 gradients, close to the float32 ones. */
Test(autocast, master_weights_get_float32_grads) {
  dc_manual_seed(3);
  dc_tensor *w = dc_randn(DC_SHAPE(5, 8), DC_F32), *b = dc_zeros(DC_SHAPE(5), DC_F32);
  dc_requires_grad_(w, true);
  dc_requires_grad_(b, true);
  dc_scope_begin();
  dc_tensor *x = dc_randn(DC_SHAPE(6, 8), DC_F32);
  int64_t yv[6] = {0, 1, 2, 3, 4, 0};
  dc_tensor *y = dc_from_data(yv, DC_SHAPE(6), DC_I64);
  dc_tensor *ref = dc_cross_entropy(dc_linear(x, w, b), y);
  cr_assert_eq(dc_backward(ref), DC_OK);
  dc_tensor *gw32 = dc_clone(w->grad), *gb32 = dc_clone(b->grad);
  dc_zero_grad(w);
  dc_zero_grad(b);
  open_bf16();
  dc_tensor *out = dc_linear(x, w, b);
  dc_tensor *loss = dc_cross_entropy(out, y);
  close_region();
  ASSERT_DT(out, DC_BF16);
  ASSERT_DT(loss, DC_F32);
  cr_assert_eq(dc_backward(loss), DC_OK, "%s", dc_last_error());
  ASSERT_DT(w->grad, DC_F32);
  ASSERT_DT(b->grad, DC_F32);
  cr_assert(fabs(dc_item(loss) - dc_item(ref)) < 2e-2 * fabs(dc_item(ref)));
  for (int64_t i = 0; i < 40; i++)
    cr_assert(fabs(dc_item_at(w->grad, i) - dc_item_at(gw32, i)) < 2e-2,
              "w.grad[%lld]: %g vs float32 %g", (long long)i, dc_item_at(w->grad, i),
              dc_item_at(gw32, i));
  for (int64_t i = 0; i < 5; i++)
    cr_assert(fabs(dc_item_at(b->grad, i) - dc_item_at(gb32, i)) < 2e-2);
  dc_scope_end();
  dc_free(w);
  dc_free(b);
}

/* conv-bn-relu-pool-linear trained for a few SGD steps under autocast on one batch: the loss
 * falls, and every gradient and parameter stays float32. */
Test(autocast, small_cnn_trains) {
  dc_manual_seed(4);
  dc_module *m =
      dc_nn_sequential(dc_nn_conv2d(1, 6, 3, .padding = 1), dc_nn_batchnorm2d(6), dc_nn_relu(),
                       dc_nn_maxpool2d(2), dc_nn_flatten(1, -1), dc_nn_linear(6 * 4 * 4, 3));
  cr_assert_not_null(m, "%s", dc_last_error());
  int np;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &np);
  dc_tensor *arr[16];
  for (int i = 0; i < np; i++) arr[i] = ps[i].tensor;
  dc_optim_hparams hp = dc_optim_defaults(DC_OPTIM_SGD);
  hp.lr = 0.1;
  dc_optim *opt = dc_optim_create(DC_OPTIM_SGD, arr, np, hp);
  dc_tensor *x = dc_randn(DC_SHAPE(12, 1, 8, 8), DC_F32);
  int64_t yv[12];
  for (int i = 0; i < 12; i++) yv[i] = i % 3;
  dc_tensor *y = dc_from_data(yv, DC_SHAPE(12), DC_I64);
  double first = 0, last = 0;
  for (int s = 0; s < 8; s++) {
    dc_scope_begin();
    open_bf16();
    dc_tensor *out = dc_module_forward(m, x);
    dc_tensor *loss = dc_cross_entropy(out, y);
    close_region();
    ASSERT_DT(out, DC_BF16);
    ASSERT_DT(loss, DC_F32);
    cr_assert_eq(dc_backward(loss), DC_OK, "%s", dc_last_error());
    for (int i = 0; i < np; i++) {
      ASSERT_DT(arr[i]->grad, DC_F32);
      ASSERT_DT(arr[i], DC_F32);
    }
    cr_assert_eq(dc_optim_step(opt), DC_OK);
    dc_optim_zero_grad(opt);
    last = dc_item(loss);
    if (s == 0) first = last;
    dc_scope_end();
  }
  cr_assert(last < 0.7 * first, "loss %g after 8 steps, %g at the first", last, first);
  dc_free(x);
  dc_free(y);
  dc_optim_free(opt);
  dc_named_tensors_free(ps, np);
  dc_module_free(m);
}

Test(autocast, trainer_refuses_other_dtypes) {
  dc_module *m = dc_nn_linear(2, 2);
  int np;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &np);
  dc_tensor *arr[2] = {ps[0].tensor, ps[1].tensor};
  dc_optim_hparams hp = dc_optim_defaults(DC_OPTIM_SGD);
  hp.lr = 0.1;
  dc_optim *opt = dc_optim_create(DC_OPTIM_SGD, arr, np, hp);
  dc_tensor *x = dc_zeros(DC_SHAPE(4, 2), DC_F32);
  dc_tensor *y = dc_zeros(DC_SHAPE(4), DC_I64);
  dc_dataset *ds = dc_tensor_dataset(x, y);
  dc_loader *l = dc_loader_new(ds, .batch_size = 2);
  cr_assert_null(dc_trainer_new(m, opt, l, (dc_trainer_opts){.epochs = 1, .autocast = DC_F16}));
  cr_assert(strstr(dc_last_error(), "autocast"), "%s", dc_last_error());
  dc_loader_free(l);
  dc_dataset_free(ds);
  dc_free(x);
  dc_free(y);
  dc_optim_free(opt);
  dc_named_tensors_free(ps, np);
  dc_module_free(m);
}

static dc_tensor *linear_f64(dc_tensor *const *in, int n, void *ud) {
  (void)n;
  (void)ud;
  return dc_linear(in[0], in[1], in[2]);
}

/* float64 under an open region: autocast casts nothing, so the gradient is float64-exact. */
Test(autocast, gradcheck_float64_inside_region) {
  dc_manual_seed(5);
  dc_tensor *in[3] = {dc_randn(DC_SHAPE(3, 4), DC_F64), dc_randn(DC_SHAPE(2, 4), DC_F64),
                      dc_randn(DC_SHAPE(2), DC_F64)};
  for (int i = 0; i < 3; i++) dc_requires_grad_(in[i], true);
  open_bf16();
  bool ok = dc_gradcheck(linear_f64, in, 3, NULL);
  close_region();
  cr_assert(ok, "%s", dc_last_error());
  for (int i = 0; i < 3; i++) dc_free(in[i]);
}
