/* Every layer kind, a few Sequentials that the fusion planner fuses, and ResNet's blocks on the
 * test device against the cpu: the same module (same seed) on both, the same input and output
 * gradient, in training and in eval mode; outputs, input gradients, parameter gradients and
 * buffers (running statistics, num_batches_tracked) equal bit for bit. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <string.h>

/* bytes of t (any device) compared with u's */
static void assert_bits(const dc_tensor *a, const dc_tensor *b, const char *layer,
                        const char *what) {
  cr_assert(a && b, "%s: %s missing on one side (%s)", layer, what, dc_last_error());
  cr_assert_eq(a->dtype, b->dtype, "%s: %s dtype", layer, what);
  cr_assert_eq(dc_numel(a), dc_numel(b), "%s: %s numel", layer, what);
  size_t n = (size_t)dc_numel(a) * dc_dtype_size(a->dtype);
  void *pa = malloc(n + 1), *pb = malloc(n + 1);
  cr_assert_eq(dc_copy_to_buffer(a, pa, n), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_copy_to_buffer(b, pb, n), DC_OK, "%s", dc_last_error());
  cr_assert(memcmp(pa, pb, n) == 0, "%s: %s differs between cpu and testdev", layer, what);
  free(pa);
  free(pb);
}

static void assert_named_equal(dc_named_tensor *a, int na, dc_named_tensor *b, int nb,
                               const char *layer, bool grads) {
  cr_assert_eq(na, nb, "%s: %d vs %d tensors", layer, na, nb);
  for (int i = 0; i < na; i++) {
    cr_assert_str_eq(a[i].name, b[i].name);
    cr_assert_eq(b[i].tensor->device, DC_TESTDEV, "%s: %s not on testdev", layer, b[i].name);
    assert_bits(a[i].tensor, b[i].tensor, layer, a[i].name);
    if (grads && (a[i].tensor->grad || b[i].tensor->grad))
      assert_bits(a[i].tensor->grad, b[i].tensor->grad, layer, "a parameter's gradient");
  }
}

/* Runs make() twice from the same seed, one copy moved to testdev, `steps` forward/backward
 * passes of input shape xs in each mode, and compares everything. */
static void check_layer(const char *name, dc_module *(*make)(void), dc_shape xs, int steps) {
  dc_scope_begin();
  dc_manual_seed(11);
  dc_module *cpu = make();
  dc_manual_seed(11);
  dc_module *dev = make();
  cr_assert(cpu && dev, "%s: %s", name, dc_last_error());
  cr_assert_eq(dc_module_to(dev, DC_TESTDEV), DC_OK, "%s: %s", name, dc_last_error());
  for (int mode = 0; mode < 2; mode++) {
    dc_module_train(cpu, mode == 0);
    dc_module_train(dev, mode == 0);
    for (int s = 0; s < steps; s++) {
      dc_manual_seed(100 + (uint64_t)s);
      dc_tensor *x = dc_randn(xs, DC_F32), *xd = dc_to_device(x, DC_TESTDEV);
      cr_assert(xd && xd->device == DC_TESTDEV, "%s", dc_last_error());
      dc_requires_grad_(x, true); /* two leaves */
      dc_requires_grad_(xd, true);
      dc_manual_seed(200 + (uint64_t)s); /* dropout draws the same masks on both */
      dc_tensor *y = dc_module_forward(cpu, x);
      dc_manual_seed(200 + (uint64_t)s);
      dc_tensor *yd = dc_module_forward(dev, xd);
      cr_assert(y && yd, "%s forward: %s", name, dc_last_error());
      cr_assert_eq(yd->device, DC_TESTDEV, "%s: output not on testdev", name);
      assert_bits(y, yd, name, mode ? "eval output" : "training output");
      dc_tensor *g = dc_randn(dc_shape_of(y), DC_F32);
      dc_tensor *gd = dc_to_device(g, DC_TESTDEV);
      cr_assert_eq(dc_backward_opt(y, (dc_backward_opts){.grad = g}), DC_OK, "%s", dc_last_error());
      cr_assert_eq(dc_backward_opt(yd, (dc_backward_opts){.grad = gd}), DC_OK, "%s backward: %s",
                   name, dc_last_error());
      assert_bits(x->grad, xd->grad, name, "input gradient");
    }
  }
  int na = 0, nb = 0;
  dc_named_tensor *pa = dc_module_parameters(cpu, &na), *pb = dc_module_parameters(dev, &nb);
  assert_named_equal(pa, na, pb, nb, name, true);
  dc_named_tensors_free(pa, na);
  dc_named_tensors_free(pb, nb);
  pa = dc_module_buffers(cpu, &na);
  pb = dc_module_buffers(dev, &nb);
  assert_named_equal(pa, na, pb, nb, name, false);
  dc_named_tensors_free(pa, na);
  dc_named_tensors_free(pb, nb);
  dc_module_free(cpu);
  dc_module_free(dev);
  dc_scope_end();
}

static dc_module *linear(void) { return dc_nn_linear(12, 7); }
static dc_module *linear_nobias(void) { return dc_nn_linear(12, 7, .no_bias = true); }
static dc_module *conv(void) { return dc_nn_conv2d(3, 6, 3, .padding = 1); }
static dc_module *conv_strided(void) {
  return dc_nn_conv2d(4, 6, 3, .stride = 2, .dilation = 2, .groups = 2, .no_bias = true);
}
static dc_module *conv_rect(void) {
  return dc_nn_conv2d(3, 5, 0, .kernel_hw = {3, 5}, .padding_hw = {1, 2});
}
static dc_module *bn1d(void) { return dc_nn_batchnorm1d(12); }
static dc_module *bn2d(void) { return dc_nn_batchnorm2d(3); }
static dc_module *bn2d_cumulative(void) { return dc_nn_batchnorm2d(3, .cumulative = true); }
static dc_module *bn2d_plain(void) {
  return dc_nn_batchnorm2d(3, .no_affine = true, .no_running_stats = true);
}
static dc_module *maxpool(void) { return dc_nn_maxpool2d(2); }
static dc_module *maxpool_pad(void) {
  return dc_nn_maxpool2d(3, .stride = 2, .padding = 1, .ceil_mode = true);
}
static dc_module *avgpool(void) { return dc_nn_avgpool2d(3, .stride = 2, .exclude_pad = true); }
static dc_module *adaptive_avg(void) { return dc_nn_adaptive_avgpool2d(3, 2); }
static dc_module *adaptive_max(void) { return dc_nn_adaptive_maxpool2d(3, 2); }
static dc_module *dropout(void) { return dc_nn_dropout(0.3); }
static dc_module *dropout2d(void) { return dc_nn_dropout2d(0.4); }
static dc_module *relu(void) { return dc_nn_relu(); }
static dc_module *leaky(void) { return dc_nn_leaky_relu(0.05); }
static dc_module *elu(void) { return dc_nn_elu(0.7); }
static dc_module *selu(void) { return dc_nn_selu(); }
static dc_module *gelu(void) { return dc_nn_gelu(false); }
static dc_module *gelu_tanh(void) { return dc_nn_gelu(true); }
static dc_module *sigmoid(void) { return dc_nn_sigmoid(); }
static dc_module *tanh_layer(void) { return dc_nn_tanh(); }
static dc_module *softmax(void) { return dc_nn_softmax(1); }
static dc_module *log_softmax(void) { return dc_nn_log_softmax(1); }
static dc_module *softplus(void) { return dc_nn_softplus(2.0, 10.0); }
static dc_module *hardtanh(void) { return dc_nn_hardtanh(-0.5, 0.5); }
static dc_module *flatten(void) { return dc_nn_flatten(1, -1); }
static dc_module *identity(void) { return dc_nn_identity(); }

Test(testdev_nn, every_layer_kind) {
  struct {
    const char *name;
    dc_module *(*make)(void);
    dc_shape xs;
  } layers[] = {
      {"Linear", linear, DC_SHAPE(5, 12)},
      {"Linear(bias=False) on 3-D input", linear_nobias, DC_SHAPE(2, 3, 12)},
      {"Conv2d", conv, DC_SHAPE(2, 3, 9, 9)},
      {"Conv2d(stride 2, dilation 2, groups 2)", conv_strided, DC_SHAPE(2, 4, 11, 11)},
      {"Conv2d 3x5", conv_rect, DC_SHAPE(2, 3, 8, 10)},
      {"BatchNorm1d", bn1d, DC_SHAPE(6, 12)},
      {"BatchNorm2d", bn2d, DC_SHAPE(4, 3, 5, 5)},
      {"BatchNorm2d(momentum=None)", bn2d_cumulative, DC_SHAPE(4, 3, 5, 5)},
      {"BatchNorm2d(affine=False, track_running_stats=False)", bn2d_plain, DC_SHAPE(4, 3, 5, 5)},
      {"MaxPool2d", maxpool, DC_SHAPE(2, 3, 8, 8)},
      {"MaxPool2d(3, 2, 1, ceil)", maxpool_pad, DC_SHAPE(2, 3, 9, 9)},
      {"AvgPool2d", avgpool, DC_SHAPE(2, 3, 9, 9)},
      {"AdaptiveAvgPool2d", adaptive_avg, DC_SHAPE(2, 3, 7, 5)},
      {"AdaptiveMaxPool2d", adaptive_max, DC_SHAPE(2, 3, 7, 5)},
      {"Dropout", dropout, DC_SHAPE(8, 16)},
      {"Dropout2d", dropout2d, DC_SHAPE(4, 6, 3, 3)},
      {"ReLU", relu, DC_SHAPE(4, 9)},
      {"LeakyReLU", leaky, DC_SHAPE(4, 9)},
      {"ELU", elu, DC_SHAPE(4, 9)},
      {"SELU", selu, DC_SHAPE(4, 9)},
      {"GELU", gelu, DC_SHAPE(4, 9)},
      {"GELU(tanh)", gelu_tanh, DC_SHAPE(4, 9)},
      {"Sigmoid", sigmoid, DC_SHAPE(4, 9)},
      {"Tanh", tanh_layer, DC_SHAPE(4, 9)},
      {"Softmax", softmax, DC_SHAPE(4, 9)},
      {"LogSoftmax", log_softmax, DC_SHAPE(4, 9)},
      {"Softplus", softplus, DC_SHAPE(4, 9)},
      {"Hardtanh", hardtanh, DC_SHAPE(4, 9)},
      {"Flatten", flatten, DC_SHAPE(2, 3, 4, 5)},
      {"Identity", identity, DC_SHAPE(2, 3)},
  };
  for (size_t i = 0; i < sizeof layers / sizeof layers[0]; i++)
    check_layer(layers[i].name, layers[i].make, layers[i].xs, 2);
}

/* Sequentials the fusion planner turns into fused steps (conv block, BN+ReLU, linear+ReLU). */
static dc_module *conv_block(void) {
  return dc_nn_sequential(dc_nn_conv2d(3, 8, 3, .padding = 1), dc_nn_batchnorm2d(8), dc_nn_relu(),
                          dc_nn_maxpool2d(2), dc_nn_flatten(1, -1), dc_nn_linear(8 * 4 * 4, 5));
}
static dc_module *bn_relu_mlp(void) {
  return dc_nn_sequential(dc_nn_linear(10, 16), dc_nn_batchnorm1d(16), dc_nn_relu(),
                          dc_nn_linear(16, 16), dc_nn_relu(), dc_nn_linear(16, 3));
}

Test(testdev_nn, fused_sequentials) {
  check_layer("conv-bn-relu-pool Sequential", conv_block, DC_SHAPE(4, 3, 8, 8), 3);
  check_layer("linear-bn-relu Sequential", bn_relu_mlp, DC_SHAPE(6, 10), 3);
}

static dc_module *resnet_small(void) {
  return dc_zoo_resnet(18, (dc_zoo_opts){.num_classes = 4, .width = 8, .small_input = true});
}
static dc_module *resnet_bottleneck(void) {
  return dc_zoo_resnet(50, (dc_zoo_opts){.num_classes = 3, .width = 4, .small_input = true});
}

Test(testdev_nn, resnet_blocks) {
  check_layer("ResNet-18 (BasicBlock, downsample)", resnet_small, DC_SHAPE(2, 3, 16, 16), 2);
  check_layer("ResNet-50 (Bottleneck)", resnet_bottleneck, DC_SHAPE(2, 3, 8, 8), 1);
}

static dc_module *cnn_fashion(void) { return dc_zoo_cnn_fashion((dc_zoo_opts){0}); }

Test(testdev_nn, cnn_fashion_model) {
  check_layer("cnn_fashion", cnn_fashion, DC_SHAPE(4, 1, 28, 28), 2);
}
