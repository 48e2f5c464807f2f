/* The fusion planner (src/nn/fuse.c) and moving modules between devices: the plan of a
 * Sequential by fusion mask and backend capabilities, the summary with fusion on and off,
 * fused and unfused runs, num_batches_tracked advanced on the device, dc_module_to to the test
 * device and back, and the same forward and backward on the test device as on the cpu. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/nn-kernels.h"
#include "nn/nn-impl.h"

/* Conv2d(3, 16, 3, padding=1), BatchNorm2d(16), ReLU, MaxPool2d(2) */
static dc_module *conv_block_seq(void) {
  dc_manual_seed(1);
  dc_module *m = dc_nn_sequential(dc_nn_conv2d(3, 16, 3, .padding = 1), dc_nn_batchnorm2d(16),
                                  dc_nn_relu(), dc_nn_maxpool2d(2));
  cr_assert_not_null(m, "%s", dc_last_error());
  return m;
}

static int plan_of(const dc_module *m, unsigned fusion, dc__step *steps) {
  dc__layers l = dc__layers_children(m);
  return dc__fuse_plan(&l, fusion, steps, 8);
}

Test(nn_fuse, conv_bn_relu_pool_is_one_step_on_cpu) {
  dc_module *m = conv_block_seq();
  dc__step s[8];
  int n = plan_of(m, dc__fuse_allowed(m, DC_CPU), s);
  cr_assert_eq(n, 1, "plan has %d steps", n);
  cr_assert_eq(s[0].kind, DC__STEP_CONV_BLOCK);
  cr_assert_eq(s[0].count, 4);
  cr_assert_eq(s[0].mode, DC_CONV_BLOCK_RELU | DC_CONV_BLOCK_POOL);

  cr_assert_eq(dc_module_set_fusion(m, DC_FUSE_NONE), DC_FUSE_ALL);
  cr_assert_eq(dc_module_fusion(dc_module_child_at(m, 1)), DC_FUSE_NONE, "not recursive");
  n = plan_of(m, dc__fuse_allowed(m, DC_CPU), s);
  cr_assert_eq(n, 4, "plan has %d steps", n);
  for (int i = 0; i < 4; i++) cr_assert(s[i].kind == DC__STEP_LAYER && s[i].first == i);

  /* the conv block alone off: conv, then batch norm + ReLU fused, then the pooling */
  dc_module_set_fusion(m, DC_FUSE_ALL & ~(unsigned)DC_FUSE_CONV_BLOCK);
  n = plan_of(m, dc__fuse_allowed(m, DC_CPU), s);
  cr_assert_eq(n, 3);
  cr_assert(s[0].kind == DC__STEP_LAYER && s[1].kind == DC__STEP_BN_RELU && s[1].count == 2 &&
            s[2].kind == DC__STEP_LAYER && s[2].first == 3);
  dc_module_free(m);
}

/* A backend without a capability gets the layers unfused (the planner takes the caps as a mask,
 * so no real backend is needed). */
Test(nn_fuse, missing_capabilities_plan_unfused) {
  dc_module *m = conv_block_seq();
  dc__step s[8];
  cr_assert_eq(plan_of(m, dc__fuse_mask(DC_FUSE_ALL, 0), s), 4);
  int n = plan_of(m, dc__fuse_mask(DC_FUSE_ALL, DC_CAP_BIT(DC_CAP_BATCH_NORM_RELU)), s);
  cr_assert_eq(n, 3);
  cr_assert_eq(s[1].kind, DC__STEP_BN_RELU);
  n = plan_of(m, dc__fuse_mask(DC_FUSE_ALL, DC_CAP_BIT(DC_CAP_CONV_BLOCK)), s);
  cr_assert_eq(n, 1);
  cr_assert_eq(dc__fuse_mask(DC_FUSE_ALL, dc__fuse_caps(DC_CPU)), DC_FUSE_ALL,
               "the cpu has every fused op");
  cr_assert(dc__fuse_add_relu(dc__fuse_mask(DC_FUSE_ALL, 0), dc_module_child_at(m, 2)),
            "add_relu needs no capability");
  cr_assert(!dc__fuse_add_relu(DC_FUSE_NONE, dc_module_child_at(m, 2)));
  dc_module_free(m);
}

/* Patterns that do not fuse: BatchNorm1d after a conv, channels that differ, a 3x3 pool, ceil
 * mode, a ReLU that is not right after the batch norm. */
Test(nn_fuse, patterns) {
  dc_module *m =
      dc_nn_sequential(dc_nn_conv2d(3, 8, 3), dc_nn_batchnorm1d(8), dc_nn_conv2d(8, 8, 3),
                       dc_nn_batchnorm2d(4), dc_nn_conv2d(4, 8, 3), dc_nn_batchnorm2d(8),
                       dc_nn_relu(), dc_nn_maxpool2d(3), dc_nn_conv2d(8, 8, 3),
                       dc_nn_batchnorm2d(8), dc_nn_relu(), dc_nn_maxpool2d(2, .ceil_mode = true),
                       dc_nn_batchnorm2d(8), dc_nn_dropout(0.5), dc_nn_relu());
  cr_assert_not_null(m, "%s", dc_last_error());
  dc__step s[16];
  dc__layers l = dc__layers_children(m);
  int n = dc__fuse_plan(&l, DC_FUSE_ALL, s, 16);
  const dc__step_kind want[] = {DC__STEP_LAYER,      DC__STEP_LAYER,      DC__STEP_LAYER,
                                DC__STEP_LAYER,      DC__STEP_CONV_BLOCK, DC__STEP_LAYER,
                                DC__STEP_CONV_BLOCK, DC__STEP_LAYER,      DC__STEP_LAYER,
                                DC__STEP_LAYER,      DC__STEP_LAYER};
  cr_assert_eq(n, (int)(sizeof want / sizeof *want), "plan has %d steps", n);
  for (int i = 0; i < n; i++) cr_assert_eq(s[i].kind, want[i], "step %d", i);
  cr_assert_eq(s[4].mode, DC_CONV_BLOCK_RELU);
  cr_assert_eq(s[6].mode, DC_CONV_BLOCK_RELU);
  dc_module_free(m);
}

static char *summary_text(dc_module *m) {
  dc_model_summary *s = dc_summary(m, DC_SHAPE(3, 8, 8));
  cr_assert_not_null(s, "%s", dc_last_error());
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  cr_assert_eq(dc_summary_print(f, s), DC_OK);
  fclose(f);
  dc_summary_free(s);
  return buf;
}

Test(nn_fuse, summary_same_with_fusion_on_and_off) {
  dc_module *m = conv_block_seq();
  char *on = summary_text(m);
  cr_assert_eq(dc_module_fusion(m), DC_FUSE_ALL, "the summary restores the fusion mask");
  cr_assert_not_null(strstr(on, "MaxPool2d"), "%s", on);
  cr_assert_not_null(strstr(on, "BatchNorm2d"), "%s", on);
  dc_module_set_fusion(m, DC_FUSE_NONE);
  char *off = summary_text(m);
  cr_assert_eq(dc_module_fusion(m), DC_FUSE_NONE);
  cr_assert_str_eq(on, off);
  free(on);
  free(off);
  dc_module_free(m);
}

/* Fusion on and off: the graph shows the fused op (where the backend's plan takes the layer),
 * the results agree to float32 rounding of the batch statistics, num_batches_tracked counts each
 * training forward once either way. */
Test(nn_fuse, fused_and_unfused_runs) {
  dc_scope_begin();
  dc_tensor *y[2], *gw[2];
  dc_manual_seed(2);
  dc_tensor *x = dc_randn(DC_SHAPE(4, 3, 8, 8), DC_F32);
  for (int k = 0; k < 2; k++) {
    dc_module *m = conv_block_seq();
    dc_module_set_fusion(m, k ? DC_FUSE_NONE : DC_FUSE_ALL);
    for (int step = 0; step < 2; step++) y[k] = dc_module_forward(m, x);
    cr_assert_not_null(y[k], "%s", dc_last_error());
    const char *fn = dc_grad_fn_name(y[k]);
    if (k)
      cr_assert_str_eq(fn, "max_pool2d");
    else
      cr_assert(!strcmp(fn, "conv_bn_relu_pool") || !strcmp(fn, "max_pool2d"), "%s", fn);
    cr_assert_eq(dc_backward(dc_sum(y[k], NULL, 0, false)), DC_OK, "%s", dc_last_error());
    gw[k] = dc_clone(dc_module_get_parameter(m, "0.weight")->grad);
    cr_assert_eq(dc_item(dc_module_get_buffer(m, "1.num_batches_tracked")), 2.0);
    dc_module_free(m);
  }
  dc_tensor *dy = dc_abs(dc_sub(y[0], y[1])), *dg = dc_abs(dc_sub(gw[0], gw[1]));
  double ey = dc_item(dc_amax(dy, NULL, 0, false)), eg = dc_item(dc_amax(dg, NULL, 0, false));
  double sg = dc_item(dc_amax(dc_abs(gw[1]), NULL, 0, false));
  cr_assert_lt(ey, 1e-4, "outputs differ by %g", ey);
  cr_assert_lt(eg, 1e-4 * sg, "weight gradients differ by %g (scale %g)", eg, sg);
  dc_scope_end();
}

/* momentum=None: each forward's factor is 1 / (num_batches_tracked + 1), read from the buffer */
Test(nn_fuse, cumulative_momentum_reads_the_counter) {
  dc_scope_begin();
  dc_module *m = dc_nn_sequential(dc_nn_batchnorm1d(2, .cumulative = true), dc_nn_relu());
  dc_tensor *bn_mean = dc_module_get_buffer(m, "0.running_mean");
  const float a[] = {1, 3, 3, 5}, b[] = {5, 7, 7, 9}; /* batch means (2, 4), then (6, 8) */
  dc_module_forward(m, dc_from_data(a, DC_SHAPE(2, 2), DC_F32));
  cr_assert_not_null(dc_module_forward(m, dc_from_data(b, DC_SHAPE(2, 2), DC_F32)), "%s",
                     dc_last_error());
  /* the cumulative average of the two batch means */
  cr_assert_float_eq(dc_item_at(bn_mean, 0), 4.0, 1e-6);
  cr_assert_float_eq(dc_item_at(bn_mean, 1), 6.0, 1e-6);
  cr_assert_eq(dc_item(dc_module_get_buffer(m, "0.num_batches_tracked")), 2.0);
  dc_module_free(m);
  dc_scope_end();
}

/* The fused batch norm + ReLU names the batch norm in its errors, as the layer alone does. */
Test(nn_fuse, fused_step_errors_name_the_layer) {
  dc_scope_begin();
  dc_module *m = dc_nn_sequential(dc_nn_linear(3, 4), dc_nn_batchnorm1d(5), dc_nn_relu());
  cr_assert_null(dc_module_forward(m, dc_zeros(DC_SHAPE(2, 3), DC_F32)));
  cr_assert_not_null(strstr(dc_last_error(), "1 (BatchNorm1d): expected input with 5 channels"),
                     "%s", dc_last_error());
  dc_module_free(m);
  dc_scope_end();
}

Test(nn_fuse, module_to_a_device_the_build_lacks) {
  if (dc_device_available(DC_CUDA)) cr_skip("this build has cuda");
  dc_module *m = conv_block_seq();
  cr_assert_eq(dc_module_to(m, DC_CUDA), DC_ERR_ARG);
  cr_assert_not_null(strstr(dc_last_error(), "cuda"), "%s", dc_last_error());
  cr_assert_not_null(strstr(dc_last_error(), "cpu"), "%s", dc_last_error());
  cr_assert_eq(dc_module_get_parameter(m, "0.weight")->device, DC_CPU);
  dc_module_free(m);
}

/* every parameter (and gradient) and buffer of a and b, bit for bit */
static void assert_same_tensors(dc_module *a, dc_module *b) {
  int na = 0, nb = 0;
  dc_named_tensor *ta = dc_module_parameters(a, &na);
  dc_named_tensor *tb = dc_module_parameters(b, &nb);
  cr_assert_eq(na, nb);
  for (int i = 0; i < na; i++) {
    dc_tensor *pa = ta[i].tensor, *pb = tb[i].tensor;
    for (int g = 0; g < 2; g++) {
      dc_tensor *u = g ? pa->grad : pa, *v = g ? pb->grad : pb;
      if (!u && !v) continue;
      cr_assert(u && v, "%s%s on one side only", ta[i].name, g ? ".grad" : "");
      size_t bytes = (size_t)dc_numel(u) * dc_dtype_size(u->dtype);
      void *hu = malloc(bytes), *hv = malloc(bytes);
      cr_assert_eq(dc_copy_to_buffer(u, hu, bytes), DC_OK, "%s", dc_last_error());
      cr_assert_eq(dc_copy_to_buffer(v, hv, bytes), DC_OK, "%s", dc_last_error());
      cr_assert(memcmp(hu, hv, bytes) == 0, "%s%s differs", ta[i].name, g ? ".grad" : "");
      free(hu);
      free(hv);
    }
  }
  dc_named_tensors_free(ta, na);
  dc_named_tensors_free(tb, nb);
}

static dc_module *small_cnn(void) {
  dc_manual_seed(3);
  dc_module *m =
      dc_nn_sequential(dc_nn_conv2d(3, 16, 3, .padding = 1), dc_nn_batchnorm2d(16), dc_nn_relu(),
                       dc_nn_maxpool2d(2), dc_nn_flatten(1, -1), dc_nn_linear(16 * 4 * 4, 5));
  cr_assert_not_null(m, "%s", dc_last_error());
  return m;
}

Test(nn_fuse, module_to_testdev_and_back) {
  if (!dc_device_available(DC_TESTDEV)) cr_skip("this build has no test device");
  dc_scope_begin();
  dc_module *m = small_cnn(), *ref = small_cnn();
  /* gradients move too */
  dc_tensor *x = dc_randn(DC_SHAPE(2, 3, 8, 8), DC_F32);
  cr_assert_eq(dc_backward(dc_sum(dc_module_forward(m, x), NULL, 0, false)), DC_OK);
  cr_assert_eq(dc_backward(dc_sum(dc_module_forward(ref, x), NULL, 0, false)), DC_OK);
  dc_tensor *w = dc_module_get_parameter(m, "0.weight");
  cr_assert_eq(dc_module_to(m, DC_TESTDEV), DC_OK, "%s", dc_last_error());
  cr_assert_eq(w, dc_module_get_parameter(m, "0.weight"), "the parameter keeps its identity");
  cr_assert_eq(w->device, DC_TESTDEV);
  cr_assert_eq(w->grad->device, DC_TESTDEV);
  cr_assert_eq(dc_module_get_buffer(m, "1.num_batches_tracked")->device, DC_TESTDEV);
  assert_same_tensors(m, ref);
  cr_assert_eq(dc_module_to(m, DC_CPU), DC_OK, "%s", dc_last_error());
  cr_assert_eq(w->device, DC_CPU);
  assert_same_tensors(m, ref);
  dc_module_free(m);
  dc_module_free(ref);
  dc_scope_end();
}

/* Two training steps' forward and backward on the test device give the cpu's bits, with the same
 * fusions on both sides (those the test device's backend has). */
Test(nn_fuse, forward_on_testdev_equals_cpu) {
  if (!dc_device_available(DC_TESTDEV)) cr_skip("this build has no test device");
  dc_scope_begin();
  dc_manual_seed(4);
  dc_tensor *x = dc_randn(DC_SHAPE(4, 3, 8, 8), DC_F32);
  dc_tensor *xd = dc_to_device(x, DC_TESTDEV);
  if (!xd) cr_skip("dc_to_device to the test device failed: %s", dc_last_error());
  unsigned fusion = dc__fuse_mask(DC_FUSE_ALL, dc__fuse_caps(DC_TESTDEV));
  dc_module *cpu = small_cnn(), *dev = small_cnn();
  dc_module_set_fusion(cpu, fusion);
  dc_module_set_fusion(dev, fusion);
  cr_assert_eq(dc_module_to(dev, DC_TESTDEV), DC_OK, "%s", dc_last_error());
  for (int step = 0; step < 2; step++) {
    dc_tensor *yc = dc_module_forward(cpu, x), *yd = dc_module_forward(dev, xd);
    cr_assert_not_null(yc, "%s", dc_last_error());
    cr_assert_not_null(yd, "%s", dc_last_error());
    cr_assert_eq(yd->device, DC_TESTDEV);
    dc_tensor *yh = dc_to_device(yd, DC_CPU);
    cr_assert_not_null(yh, "%s", dc_last_error());
    size_t bytes = (size_t)dc_numel(yc) * sizeof(float);
    cr_assert(memcmp(dc_data(yc), dc_data(yh), bytes) == 0, "step %d: outputs differ", step);
    cr_assert_eq(dc_backward(dc_sum(yc, NULL, 0, false)), DC_OK, "%s", dc_last_error());
    cr_assert_eq(dc_backward(dc_sum(yd, NULL, 0, false)), DC_OK, "%s", dc_last_error());
  }
  assert_same_tensors(dev, cpu);
  int nb = 0;
  dc_named_tensor *bd = dc_module_buffers(dev, &nb), *bc = dc_module_buffers(cpu, &nb);
  for (int i = 0; i < nb; i++) {
    dc_tensor *h = dc_to_device(bd[i].tensor, DC_CPU);
    cr_assert_not_null(h, "%s", dc_last_error());
    size_t bytes = (size_t)dc_numel(h) * dc_dtype_size(h->dtype);
    cr_assert(memcmp(dc_data(h), dc_data(bc[i].tensor), bytes) == 0, "%s differs", bd[i].name);
  }
  dc_named_tensors_free(bd, nb);
  dc_named_tensors_free(bc, nb);
  dc_module_free(cpu);
  dc_module_free(dev);
  dc_scope_end();
}
