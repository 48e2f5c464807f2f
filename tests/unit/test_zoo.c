/* Model zoo: torchvision's parameter counts and key names, output shapes, options
 * (num_classes, in_channels, zero_init_residual, width, small_input), unknown names, and the
 * transfer-learning helpers: head lookup and replacement, freezing, parameter groups, loading a
 * checkpoint with a head of another shape, and the error for a mis-shaped key. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <deepc/io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmpdir.h"

static int64_t params_of(const char *name, dc_zoo_opts o) {
  dc_module *m = dc_zoo_create_opt(name, o);
  cr_assert_not_null(m, "%s: %s", name, dc_last_error());
  int64_t n = dc_module_num_parameters(m, false);
  dc_module_free(m);
  return n;
}

/* torchvision 0.14's counts (sum(p.numel() for p in model.parameters())). The ImageNet VGGs
 * (130M+ parameters, slow to initialise) are checked against torchvision by
 * tests/parity/test_zoo.py; their conv layers are those of the CIFAR versions built here. */
Test(zoo, torchvision_parameter_counts) {
  struct {
    const char *name;
    int64_t params;
  } want[] = {{"resnet18", 11689512}, {"resnet34", 21797672}, {"resnet50", 25557032}};
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    cr_assert_eq(params_of(want[i].name, (dc_zoo_opts){0}), want[i].params, "%s", want[i].name);
  cr_assert_eq(params_of("resnet34", (dc_zoo_opts){.num_classes = 2}), 21797672 - 512 * 998 - 998);
  /* the course's networks */
  cr_assert_eq(params_of("cnn_fashion", (dc_zoo_opts){0}), 115690);
  cr_assert_eq(params_of("lenet5", (dc_zoo_opts){0}), 61706);
  cr_assert_eq(params_of("vgg11_bn_cifar", (dc_zoo_opts){0}), 9231114);
  /* features of torchvision's vgg16 (138,357,544 minus the classifier's 123,642,856) + Linear */
  cr_assert_eq(params_of("vgg16_cifar", (dc_zoo_opts){0}), 138357544 - 123642856 + 5130);
  int64_t hid[] = {256, 128, 64};
  cr_assert_eq(params_of("mlp", (dc_zoo_opts){.in_features = 1024, .hidden = hid, .nhidden = 3}),
               1024 * 256 + 256 + 256 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10);
}

Test(zoo, torchvision_key_names) {
  dc_module *m = dc_zoo_create("resnet50");
  dc_state_dict *sd = dc_module_state_dict(m);
  cr_assert_str_eq(dc_state_dict_key_at(sd, 0), "conv1.weight");
  const char *keys[] = {"layer1.0.downsample.0.weight", "layer1.0.downsample.1.running_var",
                        "layer4.2.bn3.num_batches_tracked", "layer3.5.conv2.weight", "fc.bias"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    cr_assert_not_null(dc_state_dict_get(sd, keys[i]), "%s", keys[i]);
  cr_assert_eq(dc_state_dict_size(sd), 320); /* len(torchvision resnet50().state_dict()) */
  dc_state_dict_free(sd);
  dc_module_free(m);
  m = dc_zoo_create("vgg11_bn_cifar");
  sd = dc_module_state_dict(m);
  cr_assert_not_null(dc_state_dict_get(sd, "0.weight"));
  cr_assert_not_null(dc_state_dict_get(sd, "1.running_mean"));
  cr_assert_not_null(dc_state_dict_get(sd, "30.bias"));
  dc_state_dict_free(sd);
  dc_module_free(m);
  m = dc_zoo_create("resnet18", .width = 8);
  char *r = dc_module_repr(m);
  cr_assert(strstr(r, "(layer1): Sequential(") && strstr(r, "(0): BasicBlock("));
  free(r);
  dc_module_free(m);
}

Test(zoo, forward_shapes_and_options) {
  dc_manual_seed(1);
  struct {
    const char *name;
    dc_zoo_opts o;
    dc_shape in, out;
  } cases[] = {
      {"resnet18", {.num_classes = 7, .width = 8}, DC_SHAPE(2, 3, 64, 64), DC_SHAPE(2, 7)},
      {"resnet50", {.num_classes = 3, .width = 4}, DC_SHAPE(1, 3, 40, 40), DC_SHAPE(1, 3)},
      {"resnet34",
       {.in_channels = 1, .small_input = true, .width = 4},
       DC_SHAPE(2, 1, 28, 28),
       DC_SHAPE(2, 1000)},
      {"vgg11_cifar", {0}, DC_SHAPE(2, 3, 32, 32), DC_SHAPE(2, 10)},
      {"lenet5", {0}, DC_SHAPE(3, 1, 28, 28), DC_SHAPE(3, 10)},
      {"cnn_fashion", {.num_classes = 4}, DC_SHAPE(2, 1, 28, 28), DC_SHAPE(2, 4)},
      {"mlp", {.in_features = 12}, DC_SHAPE(5, 3, 4), DC_SHAPE(5, 10)},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dc_module *m = dc_zoo_create_opt(cases[i].name, cases[i].o);
    cr_assert_not_null(m, "%s", dc_last_error());
    dc_module_eval(m);
    dc_scope_begin();
    dc_tensor *y = dc_module_forward(m, dc_randn(cases[i].in, DC_F32));
    cr_assert_not_null(y, "%s: %s", cases[i].name, dc_last_error());
    char a[64], b[64];
    cr_assert(dc_shape_equal(dc_shape_of(y), cases[i].out), "%s: %s vs %s", cases[i].name,
              dc_shape_str(dc_shape_of(y), a, sizeof a), dc_shape_str(cases[i].out, b, sizeof b));
    for (int64_t k = 0; k < dc_numel(y); k++) cr_assert(dc_item_at(y, k) == dc_item_at(y, k));
    dc_scope_end();
    dc_module_free(m);
  }
  cr_assert_eq(dc_live_tensors(), 0);
  dc_shape s = dc_zoo_input_shape("vgg16_bn", (dc_zoo_opts){0});
  cr_assert(dc_shape_equal(s, DC_SHAPE(3, 224, 224)));
  cr_assert(dc_zoo_has("ResNet-18") && dc_zoo_has("lenet") && !dc_zoo_has("resnet19"));
}

Test(zoo, backward_through_resnet) {
  dc_module *m = dc_zoo_create("resnet18", .num_classes = 3, .width = 4);
  dc_scope_begin();
  dc_tensor *x = dc_randn(DC_SHAPE(2, 3, 32, 32), DC_F32);
  dc_tensor *t = dc_from_data((int64_t[]){0, 2}, DC_SHAPE(2), DC_I64);
  dc_tensor *loss = dc_cross_entropy(dc_module_forward(m, x), t);
  cr_assert_eq(dc_backward(loss), DC_OK, "%s", dc_last_error());
  dc_scope_end();
  cr_assert_not_null(dc_module_get_parameter(m, "conv1.weight")->grad);
  cr_assert_not_null(dc_module_get_parameter(m, "layer2.0.downsample.0.weight")->grad);
  dc_module_free(m);
}

Test(zoo, zero_init_residual_and_init) {
  dc_module *m = dc_zoo_create("resnet50", .zero_init_residual = true, .width = 8);
  dc_named_tensor *ps;
  int n;
  ps = dc_module_parameters(m, &n);
  int zeroed = 0;
  for (int i = 0; i < n; i++)
    if (strstr(ps[i].name, "bn3.weight")) {
      zeroed++;
      for (int64_t k = 0; k < dc_numel(ps[i].tensor); k++)
        cr_assert_eq(dc_item_at(ps[i].tensor, k), 0);
    }
  cr_assert_eq(zeroed, 16);
  dc_named_tensors_free(ps, n);
  dc_tensor *b = dc_module_get_buffer(m, "layer1.0.bn1.running_var");
  cr_assert_eq(dc_item_at(b, 3), 1);
  dc_module_free(m);
}

Test(zoo, unknown_name) {
  cr_assert_null(dc_zoo_create("resnt18"));
  cr_assert(strstr(dc_last_error(), "did you mean 'resnet18'"), "%s", dc_last_error());
  cr_assert_null(dc_zoo_create("resnet18", .num_classes = -1));
}

Test(transfer, head_freeze_groups) {
  dc_module *m = dc_zoo_create("resnet18", .width = 8);
  char head[64];
  cr_assert_str_eq(dc_zoo_head_name(m, head, sizeof head), "fc");
  cr_assert_eq(dc_zoo_replace_head(m, 2), DC_OK);
  cr_assert_eq(dc_module_get_parameter(m, "fc.weight")->shape[0], 2);
  cr_assert_eq(dc_zoo_freeze(m, "backbone"), DC_OK);
  cr_assert_eq(dc_module_num_parameters(m, true), 64 * 2 + 2);
  cr_assert_eq(dc_zoo_freeze(m, "none"), DC_OK);
  cr_assert_eq(dc_zoo_freeze(m, "conv1, layer1 ,fc.bias"), DC_OK);
  cr_assert_eq(dc_module_get_parameter(m, "layer1.1.conv2.weight")->requires_grad, false);
  cr_assert_eq(dc_module_get_parameter(m, "layer2.0.conv1.weight")->requires_grad, true);
  cr_assert_eq(dc_module_get_parameter(m, "fc.bias")->requires_grad, false);
  cr_assert_neq(dc_zoo_freeze(m, "layer9"), DC_OK);
  cr_assert(strstr(dc_last_error(), "layer9"), "%s", dc_last_error());
  dc_zoo_freeze(m, "none");
  dc_param_group g[2];
  int ng = 0;
  dc_optim_hparams hp = dc_optim_defaults(DC_OPTIM_SGD);
  hp.lr = 0.01;
  cr_assert_eq(dc_zoo_param_groups(m, hp, 0.001, g, &ng), DC_OK);
  cr_assert_eq(ng, 2);
  cr_assert_eq(g[0].n, 2);
  cr_assert_eq(g[1].hp.lr, 0.001);
  dc_optim *o = dc_optim_new(DC_OPTIM_SGD, g, ng);
  cr_assert_not_null(o, "%s", dc_last_error());
  cr_assert_eq(dc_optim_get_lr(o, 0), 0.01);
  cr_assert_eq(dc_optim_get_lr(o, 1), 0.001);
  dc_optim_free(o);
  dc_zoo_param_groups_free(g, ng);
  dc_module_free(m);
  m = dc_zoo_create("vgg11_cifar");
  cr_assert_str_eq(dc_zoo_head_name(m, head, sizeof head), "22");
  dc_module_free(m);
}

Test(transfer, load_pretrained_with_new_head, .init = setup, .fini = teardown) {
  char path[300];
  snprintf(path, sizeof path, "%s/src.pth", dir);
  dc_manual_seed(3);
  dc_module *src = dc_zoo_create("resnet18", .width = 8); /* 1000 classes */
  dc_state_dict *sd = dc_module_state_dict(src);
  cr_assert_eq(dc_pth_save(sd, path), DC_OK, "%s", dc_last_error());
  dc_state_dict_free(sd);
  dc_module *dst = dc_zoo_create("resnet18", .width = 8, .num_classes = 2);
  dc_tensor *fc = dc_module_get_parameter(dst, "fc.weight");
  double fc0 = dc_item_at(fc, 0);
  char log[512] = "";
  FILE *lf = fmemopen(log, sizeof log, "w");
  cr_assert_eq(dc_zoo_load_pretrained(dst, path, .log = lf), DC_OK, "%s", dc_last_error());
  fclose(lf);
  cr_assert(strstr(log, "head fc left as initialised"), "%s", log);
  dc_tensor *a = dc_module_get_parameter(src, "layer3.1.conv2.weight");
  dc_tensor *b = dc_module_get_parameter(dst, "layer3.1.conv2.weight");
  for (int64_t k = 0; k < dc_numel(a); k += 97) cr_assert_eq(dc_item_at(a, k), dc_item_at(b, k));
  cr_assert_eq(dc_item_at(fc, 0), fc0);
  /* keep_head: the shapes must agree */
  cr_assert_neq(dc_zoo_load_pretrained(dst, path, .keep_head = true), DC_OK);
  cr_assert(strstr(dc_last_error(), "fc.weight") && strstr(dc_last_error(), "[1000, 64]") &&
                strstr(dc_last_error(), "[2, 64]"),
            "%s", dc_last_error());
  /* a mis-shaped backbone key names the key and both shapes; nothing changes */
  dc_module *other = dc_zoo_create("resnet18", .width = 16);
  double before = dc_item_at(dc_module_get_parameter(other, "conv1.weight"), 0);
  cr_assert_neq(dc_zoo_load_pretrained(other, path), DC_OK);
  cr_assert(strstr(dc_last_error(), "conv1.weight") && strstr(dc_last_error(), "[8, 3, 7, 7]") &&
                strstr(dc_last_error(), "[16, 3, 7, 7]"),
            "%s", dc_last_error());
  cr_assert_eq(dc_item_at(dc_module_get_parameter(other, "conv1.weight"), 0), before);
  /* another model's file: missing keys are listed */
  dc_module *vgg = dc_zoo_create("lenet5");
  cr_assert_neq(dc_zoo_load_pretrained(vgg, path), DC_OK);
  dc_module_free(vgg);
  dc_module_free(other);
  dc_module_free(dst);
  dc_module_free(src);
}

Test(transfer, prefixed_checkpoints, .init = setup, .fini = teardown) {
  char path[300];
  snprintf(path, sizeof path, "%s/run.safetensors", dir);
  dc_module *src = dc_zoo_create("lenet5");
  dc_state_dict *sd = dc_module_state_dict(src);
  dc_weights *w = dc_weights_from_state_dict(sd, "model_state_dict.");
  dc_tensor *junk = dc_scalar(1, DC_I64);
  dc_weights_add(w, "optimizer.step", junk);
  dc_free(junk);
  cr_assert_eq(dc_weights_save(w, path, DC_WEIGHTS_AUTO), DC_OK);
  dc_weights_free(w);
  dc_state_dict_free(sd);
  dc_module *dst = dc_zoo_create("lenet5");
  cr_assert_eq(dc_zoo_load_pretrained(dst, path), DC_OK, "%s", dc_last_error());
  dc_tensor *a = dc_module_get_parameter(src, "7.weight"),
            *b = dc_module_get_parameter(dst, "7.weight");
  cr_assert_eq(dc_item_at(a, 5), dc_item_at(b, 5));
  dc_module_free(dst);
  dc_module_free(src);
}
