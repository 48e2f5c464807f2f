/* Unit tests of the module layer: tree building, names and order of parameters/buffers/state
 * dicts, freezing, child replacement, strict state-dict loading (missing, unexpected, mis-shaped
 * keys), train/eval, forward error paths, initialisers and the summary numbers. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include <math.h>
#include <string.h>

/* ---- a custom module in plain C: the residual block of docs/nn.md ---- */
static dc_tensor *block_forward(dc_module *m, dc_tensor *x) {
  dc_tensor *h = dc_module_forward(dc_module_child(m, "conv1"), x);
  h = dc_relu(dc_module_forward(dc_module_child(m, "bn1"), h));
  h = dc_module_forward(dc_module_child(m, "conv2"), h);
  h = dc_module_forward(dc_module_child(m, "bn2"), h);
  return dc_relu(dc_add(h, x));
}

static const dc_module_type BLOCK = {.name = "BasicBlock", .forward = block_forward};

static dc_module *basic_block(int64_t c) {
  dc_module *m = dc_module_new(&BLOCK, 0);
  dc_module_add(m, "conv1", dc_nn_conv2d(c, c, 3, .padding = 1, .no_bias = true));
  dc_module_add(m, "bn1", dc_nn_batchnorm2d(c));
  dc_module_add(m, "conv2", dc_nn_conv2d(c, c, 3, .padding = 1, .no_bias = true));
  dc_module_add(m, "bn2", dc_nn_batchnorm2d(c));
  return dc_module_ok(m);
}

/* A ResNet-like tree: conv1, bn1, layer1 = Sequential(block, block), fc. */
static const dc_module_type NET = {.name = "Net", .forward = NULL};

static dc_tensor *net_forward(dc_module *m, dc_tensor *x) {
  dc_tensor *h = dc_relu(dc_module_forward(dc_module_child(m, "bn1"),
                                           dc_module_forward(dc_module_child(m, "conv1"), x)));
  h = dc_module_forward(dc_module_child(m, "layer1"), h);
  h = dc_mean(h, DC_DIMS(2, 3), false);
  return dc_module_forward(dc_module_child(m, "fc"), h);
}

static const dc_module_type NET_T = {.name = "Net", .forward = net_forward};

static dc_module *small_net(void) {
  dc_module *m = dc_module_new(&NET_T, 0);
  dc_module_add(m, "conv1", dc_nn_conv2d(3, 8, 3, .padding = 1, .no_bias = true));
  dc_module_add(m, "bn1", dc_nn_batchnorm2d(8));
  dc_module_add(m, "layer1", dc_nn_sequential(basic_block(8), basic_block(8)));
  dc_module_add(m, "fc", dc_nn_linear(8, 10));
  return dc_module_ok(m);
}

Test(module, type_needs_forward) {
  cr_assert_null(dc_module_new(&NET, 0));
  cr_assert(strstr(dc_last_error(), "forward"));
}

Test(module, parameter_names_in_pytorch_order) {
  int64_t live = dc_live_tensors();
  dc_module *m = small_net();
  cr_assert_not_null(m, "%s", dc_last_error());
  int n;
  dc_named_tensor *p = dc_module_parameters(m, &n);
  const char *want[] = {"conv1.weight",
                        "bn1.weight",
                        "bn1.bias",
                        "layer1.0.conv1.weight",
                        "layer1.0.bn1.weight",
                        "layer1.0.bn1.bias",
                        "layer1.0.conv2.weight",
                        "layer1.0.bn2.weight",
                        "layer1.0.bn2.bias",
                        "layer1.1.conv1.weight",
                        "layer1.1.bn1.weight",
                        "layer1.1.bn1.bias",
                        "layer1.1.conv2.weight",
                        "layer1.1.bn2.weight",
                        "layer1.1.bn2.bias",
                        "fc.weight",
                        "fc.bias"};
  cr_assert_eq(n, 17);
  for (int i = 0; i < n; i++) cr_assert_str_eq(p[i].name, want[i]);
  dc_named_tensors_free(p, n);
  dc_state_dict *sd = dc_module_state_dict(m);
  cr_assert_eq(dc_state_dict_size(sd), 17 + 3 * 5);
  cr_assert_str_eq(dc_state_dict_key_at(sd, 1), "bn1.weight");
  cr_assert_str_eq(dc_state_dict_key_at(sd, 3), "bn1.running_mean");
  cr_assert_str_eq(dc_state_dict_key_at(sd, 5), "bn1.num_batches_tracked");
  dc_tensor *nbt = dc_state_dict_get(sd, "layer1.1.bn2.num_batches_tracked");
  cr_assert_not_null(nbt);
  cr_assert_eq(nbt->dtype, DC_I64);
  cr_assert_eq(nbt->ndim, 0);
  cr_assert_str_eq(dc_state_dict_key_at(sd, dc_state_dict_size(sd) - 1), "fc.bias");
  dc_state_dict_free(sd);
  cr_assert_eq(dc_module_num_parameters(m, false),
               8 * 3 * 9 + 16 + 2 * (2 * 8 * 8 * 9 + 32) + 8 * 10 + 10);
  dc_module_free(m);
  cr_assert_eq(dc_live_tensors(), live, "leaked %lld tensors",
               (long long)(dc_live_tensors() - live));
}

Test(module, lookup_freeze_and_replace) {
  dc_module *m = small_net();
  cr_assert_not_null(m);
  cr_assert_not_null(dc_module_get_parameter(m, "layer1.1.bn2.bias"));
  cr_assert_not_null(dc_module_get_buffer(m, "layer1.0.bn1.running_var"));
  cr_assert_null(dc_module_get_parameter(m, "layer1.2.bn2.bias"));
  cr_assert(strstr(dc_last_error(), "no child named '2'"), "%s", dc_last_error());
  cr_assert_null(dc_module_get_parameter(m, "fc.wieght"));
  cr_assert_str_eq(dc_module_type_name(dc_module_get_submodule(m, "layer1.0")), "BasicBlock");
  /* freeze everything, then train a new head only (fine-tuning) */
  dc_module_requires_grad_(m, false);
  cr_assert_not_null(dc_module_set_child(m, "fc", dc_nn_linear(8, 5)));
  int n;
  dc_named_tensor *p = dc_module_trainable_parameters(m, &n);
  cr_assert_eq(n, 2);
  cr_assert_str_eq(p[0].name, "fc.weight");
  cr_assert_eq(p[0].tensor->shape[0], 5);
  dc_named_tensors_free(p, n);
  cr_assert_eq(dc_module_num_parameters(m, true), 45);
  /* one parameter at a time */
  dc_requires_grad_(dc_module_get_parameter(m, "fc.bias"), false);
  cr_assert_eq(dc_module_num_parameters(m, true), 40);
  /* replace deep inside the tree */
  cr_assert_not_null(dc_module_set_child(m, "layer1.1.bn2", dc_nn_identity()));
  cr_assert_str_eq(dc_module_type_name(dc_module_get_submodule(m, "layer1.1.bn2")), "Identity");
  cr_assert_null(dc_module_set_child(m, "layer9.x", dc_nn_relu()));
  dc_module_free(m);
}

Test(module, duplicate_names_and_null_children_fail_the_constructor) {
  dc_module *m = dc_module_new(&BLOCK, 0);
  dc_module_add(m, "a", dc_nn_relu());
  dc_module_add(m, "a", dc_nn_relu());
  cr_assert_null(dc_module_ok(m));
  cr_assert(strstr(dc_last_error(), "already has an attribute named 'a'"), "%s", dc_last_error());
  m = dc_module_new(&BLOCK, 0);
  dc_module_add(m, "bad", dc_nn_conv2d(3, 4, 3, .groups = 2));
  cr_assert_null(dc_module_ok(m));
  cr_assert(strstr(dc_last_error(), "divisible by groups"), "%s", dc_last_error());
  cr_assert_null(dc_nn_sequential(dc_nn_relu(), dc_nn_linear(-1, 2), dc_nn_relu()));
  cr_assert(strstr(dc_last_error(), "Linear"), "%s", dc_last_error());
  m = dc_module_new(&BLOCK, 0);
  dc_module_add(m, "x.y", dc_nn_relu());
  cr_assert_null(dc_module_ok(m));
}

Test(module, shared_parameters_listed_once) {
  dc_module *a = dc_nn_linear(4, 4);
  dc_module *seq = dc_nn_sequential(dc_module_retain(a), dc_nn_relu(), a);
  cr_assert_not_null(seq);
  int n;
  dc_named_tensor *p = dc_module_parameters(seq, &n);
  cr_assert_eq(n, 2);
  cr_assert_str_eq(p[0].name, "0.weight");
  dc_named_tensors_free(p, n);
  dc_state_dict *sd = dc_module_state_dict(seq);
  cr_assert_eq(dc_state_dict_size(sd), 4); /* PyTorch keeps both keys in a state dict */
  dc_state_dict_free(sd);
  dc_named_module *mods = dc_module_modules(seq, &n);
  cr_assert_eq(n, 3);
  cr_assert_str_eq(mods[0].name, "");
  cr_assert_str_eq(mods[2].name, "1");
  dc_named_modules_free(mods, n);
  dc_module_free(seq);
}

Test(module, train_eval_recursive) {
  dc_module *m = small_net();
  cr_assert(dc_module_is_training(dc_module_get_submodule(m, "layer1.1.bn2")));
  dc_module_eval(m);
  cr_assert_not(dc_module_is_training(dc_module_get_submodule(m, "layer1.1.bn2")));
  dc_module_train(dc_module_get_submodule(m, "layer1"), true);
  cr_assert(dc_module_is_training(dc_module_get_submodule(m, "layer1.0.bn1")));
  cr_assert_not(dc_module_is_training(m));
  dc_module_free(m);
}

static dc_state_dict *copy_state(const dc_module *m) {
  dc_state_dict *sd = dc_module_state_dict(m), *out = dc_state_dict_new();
  for (int i = 0; i < dc_state_dict_size(sd); i++) {
    dc_tensor *c = dc_clone(dc_state_dict_tensor_at(sd, i));
    dc_state_dict_set(out, dc_state_dict_key_at(sd, i), c);
    dc_free(c);
  }
  dc_state_dict_free(sd);
  return out;
}

Test(state_dict, roundtrip_between_models) {
  dc_manual_seed(1);
  dc_module *a = small_net();
  dc_manual_seed(2);
  dc_module *b = small_net();
  dc_fill_(dc_module_get_buffer(a, "bn1.running_mean"), 0.25);
  dc_state_dict *sd = copy_state(a);
  cr_assert_eq(dc_module_load_state_dict(b, sd, true, NULL), DC_OK, "%s", dc_last_error());
  dc_tensor *wa = dc_module_get_parameter(a, "layer1.1.conv2.weight");
  dc_tensor *wb = dc_module_get_parameter(b, "layer1.1.conv2.weight");
  for (int64_t i = 0; i < dc_numel(wa); i++) cr_assert_eq(dc_item_at(wa, i), dc_item_at(wb, i));
  cr_assert_eq(dc_item_at(dc_module_get_buffer(b, "bn1.running_mean"), 3), 0.25);
  dc_state_dict_free(sd);
  dc_module_free(a);
  dc_module_free(b);
}

Test(state_dict, strict_reports_every_problem) {
  dc_module *m = small_net();
  dc_state_dict *sd = copy_state(m);
  dc_module *other = dc_nn_linear(8, 5);
  dc_state_dict *bad = dc_state_dict_new();
  for (int i = 0; i < dc_state_dict_size(sd); i++) {
    const char *k = dc_state_dict_key_at(sd, i);
    if (strcmp(k, "layer1.0.bn1.running_mean") == 0) continue; /* missing */
    if (strcmp(k, "fc.weight") == 0)                           /* mis-shaped */
      dc_state_dict_set(bad, k, dc_module_get_parameter(other, "weight"));
    else
      dc_state_dict_set(bad, k, dc_state_dict_tensor_at(sd, i));
  }
  dc_tensor *extra = dc_zeros(DC_SHAPE(3), DC_F32);
  dc_state_dict_set(bad, "head.bias", extra); /* unexpected */
  dc_free(extra);
  dc_fill_(dc_module_get_parameter(m, "conv1.weight"), 7.0);
  dc_load_result res;
  cr_assert_eq(dc_module_load_state_dict(m, bad, true, &res), DC_ERR_ARG);
  const char *e = dc_last_error();
  cr_assert(strstr(e, "missing key(s): \"layer1.0.bn1.running_mean\""), "%s", e);
  cr_assert(strstr(e, "unexpected key(s): \"head.bias\""), "%s", e);
  cr_assert(strstr(e, "size mismatch for fc.weight: copying a tensor of shape [5, 8] from the "
                      "state dict, the shape in the model is [10, 8]"),
            "%s", e);
  cr_assert_eq(res.nmissing, 1);
  cr_assert_eq(res.nunexpected, 1);
  dc_load_result_free(&res);
  /* nothing was changed */
  cr_assert_eq(dc_item_at(dc_module_get_parameter(m, "conv1.weight"), 0), 7.0);
  /* non-strict still refuses a mis-shaped key */
  cr_assert_eq(dc_module_load_state_dict(m, bad, false, NULL), DC_ERR_ARG);
  dc_state_dict_set(bad, "fc.weight", dc_state_dict_get(sd, "fc.weight"));
  cr_assert_eq(dc_module_load_state_dict(m, bad, false, &res), DC_OK, "%s", dc_last_error());
  cr_assert_eq(res.nmissing, 1);
  cr_assert_str_eq(res.missing[0], "layer1.0.bn1.running_mean");
  cr_assert_str_eq(res.unexpected[0], "head.bias");
  dc_load_result_free(&res);
  cr_assert_neq(dc_item_at(dc_module_get_parameter(m, "conv1.weight"), 0), 7.0);
  dc_state_dict_free(bad);
  dc_state_dict_free(sd);
  dc_module_free(other);
  dc_module_free(m);
}

Test(state_dict, missing_num_batches_tracked_is_accepted) {
  dc_module *m = dc_nn_sequential(dc_nn_batchnorm1d(3));
  dc_state_dict *sd = copy_state(m), *old = dc_state_dict_new();
  for (int i = 0; i < dc_state_dict_size(sd); i++)
    if (!strstr(dc_state_dict_key_at(sd, i), "num_batches"))
      dc_state_dict_set(old, dc_state_dict_key_at(sd, i), dc_state_dict_tensor_at(sd, i));
  cr_assert_eq(dc_state_dict_size(old), 4);
  cr_assert_eq(dc_module_load_state_dict(m, old, true, NULL), DC_OK, "%s", dc_last_error());
  dc_state_dict_free(sd);
  dc_state_dict_free(old);
  dc_module_free(m);
}

Test(forward, errors_name_the_layer_path) {
  dc_scope_begin();
  dc_module *m = small_net();
  dc_tensor *y = dc_module_forward(m, dc_zeros(DC_SHAPE(2, 4, 8, 8), DC_F32));
  cr_assert_null(y);
  cr_assert(strstr(dc_last_error(), "conv1 (Conv2d): expected input with 3 channels"), "%s",
            dc_last_error());
  dc_module *seq = dc_nn_from_spec("conv2d(1,4,3), flatten, linear(100,10)");
  cr_assert_not_null(seq, "%s", dc_last_error());
  y = dc_module_forward(seq, dc_zeros(DC_SHAPE(1, 1, 8, 8), DC_F32));
  cr_assert_null(y);
  cr_assert(strstr(dc_last_error(), "2 (Linear): expected input [*, 100]"), "%s", dc_last_error());
  cr_assert(strstr(dc_last_error(), "gives 144 features"), "%s", dc_last_error());
  y = dc_module_forward(seq, dc_zeros(DC_SHAPE(1, 1, 2, 2), DC_F32));
  cr_assert_null(y);
  cr_assert(strstr(dc_last_error(), "0 (Conv2d): kernel size 3x3"), "%s", dc_last_error());
  dc_module_free(seq);
  dc_module_free(m);
  dc_scope_end();
}

Test(forward, custom_block_runs_and_backpropagates) {
  int64_t live = dc_live_tensors();
  dc_manual_seed(0);
  dc_module *m = small_net();
  dc_scope_begin();
  dc_tensor *x = dc_randn(DC_SHAPE(2, 3, 6, 5), DC_F32);
  dc_tensor *y = dc_module_forward(m, x);
  cr_assert_not_null(y, "%s", dc_last_error());
  cr_assert_eq(y->ndim, 2);
  cr_assert_eq(y->shape[1], 10);
  cr_assert_eq(dc_backward(dc_sum_all(y)), DC_OK, "%s", dc_last_error());
  dc_scope_end();
  cr_assert_not_null(dc_module_get_parameter(m, "layer1.0.conv1.weight")->grad);
  cr_assert_eq(dc_item(dc_module_get_buffer(m, "bn1.num_batches_tracked")), 1.0);
  dc_module_zero_grad(m);
  cr_assert_null(dc_module_get_parameter(m, "fc.weight")->grad);
  dc_module_free(m);
  cr_assert_eq(dc_live_tensors(), live);
}

Test(repr, nested_like_pytorch) {
  dc_module *m = dc_nn_sequential(dc_nn_linear(4, 2), dc_nn_sequential(dc_nn_relu()));
  char *s = dc_module_repr(m);
  cr_assert_str_eq(s, "Sequential(\n"
                      "  (0): Linear(in_features=4, out_features=2, bias=True)\n"
                      "  (1): Sequential(\n"
                      "    (0): ReLU()\n"
                      "  )\n"
                      ")");
  free(s);
  dc_module_free(m);
}

/* ---- initialisation ---- */
static void stats(const dc_tensor *t, double *mean, double *std, double *lo, double *hi) {
  double s = 0, s2 = 0;
  int64_t n = dc_numel(t);
  *lo = INFINITY;
  *hi = -INFINITY;
  for (int64_t i = 0; i < n; i++) {
    double v = dc_item_at(t, i);
    s += v;
    s2 += v * v;
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
  }
  *mean = s / (double)n;
  *std = sqrt(s2 / (double)n - *mean * *mean);
}

Test(init, gains_match_torch) {
  cr_assert_float_eq(dc_init_calculate_gain("relu", 0), sqrt(2.0), 1e-12);
  cr_assert_float_eq(dc_init_calculate_gain("tanh", 0), 5.0 / 3.0, 1e-12);
  cr_assert_float_eq(dc_init_calculate_gain("leaky_relu", 0.01), sqrt(2.0 / 1.0001), 1e-12);
  cr_assert_float_eq(dc_init_calculate_gain("selu", 0), 0.75, 1e-12);
  cr_assert_float_eq(dc_init_calculate_gain("conv2d", 0), 1.0, 1e-12);
  cr_assert(isnan(dc_init_calculate_gain("swish", 0)));
  cr_assert(strstr(dc_last_error(), "swish"));
}

Test(init, fans_and_distributions) {
  dc_manual_seed(42);
  dc_tensor *w = dc_empty(DC_SHAPE(64, 32, 3, 3), DC_F32);
  int64_t fi, fo;
  cr_assert_eq(dc_init_calculate_fans(w, &fi, &fo), DC_OK);
  cr_assert_eq(fi, 288);
  cr_assert_eq(fo, 576);
  double mean, std, lo, hi;
  cr_assert_eq(dc_init_kaiming_uniform_(w, 0, DC_FAN_IN, "relu"), DC_OK);
  stats(w, &mean, &std, &lo, &hi);
  double bound = sqrt(2.0) * sqrt(3.0 / 288.0);
  cr_assert(lo >= -bound && hi <= bound && hi > 0.95 * bound, "%g %g %g", lo, hi, bound);
  cr_assert_eq(dc_init_kaiming_normal_(w, 0, DC_FAN_OUT, "relu"), DC_OK);
  stats(w, &mean, &std, &lo, &hi);
  cr_assert(fabs(std - sqrt(2.0 / 576.0)) < 0.03 * std, "std %g", std);
  cr_assert_eq(dc_init_xavier_normal_(w, 1.0), DC_OK);
  stats(w, &mean, &std, &lo, &hi);
  cr_assert(fabs(std - sqrt(2.0 / (288.0 + 576.0))) < 0.03 * std, "std %g", std);
  cr_assert_eq(dc_init_xavier_uniform_(w, 2.0), DC_OK);
  stats(w, &mean, &std, &lo, &hi);
  bound = 2.0 * sqrt(6.0 / (288.0 + 576.0));
  cr_assert(lo >= -bound && hi <= bound && hi > 0.95 * bound);
  cr_assert_eq(dc_init_constant_(w, 0.5), DC_OK);
  cr_assert_eq(dc_item_at(w, 100), 0.5);
  dc_tensor *b = dc_empty(DC_SHAPE(5), DC_F32);
  cr_assert_eq(dc_init_kaiming_uniform_(b, 0, DC_FAN_IN, NULL), DC_ERR_ARG);
  cr_assert(strstr(dc_last_error(), "fewer than 2 dimensions"), "%s", dc_last_error());
  dc_free(b);
  dc_free(w);
}

Test(init, seed_reproduces_a_model) {
  dc_manual_seed(7);
  dc_module *a = dc_nn_from_spec("conv2d(3,8,3), linear(8,4)");
  dc_manual_seed(7);
  dc_module *b = dc_nn_from_spec("conv2d(3,8,3), linear(8,4)");
  dc_tensor *wa = dc_module_get_parameter(a, "1.weight"),
            *wb = dc_module_get_parameter(b, "1.weight");
  for (int64_t i = 0; i < dc_numel(wa); i++) cr_assert_eq(dc_item_at(wa, i), dc_item_at(wb, i));
  /* default Linear init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias */
  double mean, std, lo, hi;
  stats(dc_module_get_parameter(a, "1.bias"), &mean, &std, &lo, &hi);
  cr_assert(lo >= -1 / sqrt(8.0) && hi <= 1 / sqrt(8.0));
  dc_module_free(a);
  dc_module_free(b);
}

Test(init, orthogonal_rows_and_columns) {
  dc_manual_seed(3);
  int64_t shapes[3][2] = {{6, 4}, {4, 6}, {5, 5}};
  for (int k = 0; k < 3; k++) {
    int64_t r = shapes[k][0], c = shapes[k][1];
    dc_tensor *w = dc_empty(DC_SHAPE(r, c), DC_F64);
    cr_assert_eq(dc_init_orthogonal_(w, 2.0), DC_OK, "%s", dc_last_error());
    const double *p = dc_data(w);
    bool cols = r >= c; /* Q^T Q = gain^2 I over the smaller dimension */
    int64_t n = cols ? c : r, len = cols ? r : c;
    for (int64_t i = 0; i < n; i++)
      for (int64_t j = 0; j < n; j++) {
        double dot = 0;
        for (int64_t t = 0; t < len; t++)
          dot += cols ? p[t * c + i] * p[t * c + j] : p[i * c + t] * p[j * c + t];
        cr_assert_float_eq(dot, i == j ? 4.0 : 0.0, 1e-9, "%lldx%lld (%lld,%lld): %g", (long long)r,
                           (long long)c, (long long)i, (long long)j, dot);
      }
    dc_free(w);
  }
  dc_tensor *conv = dc_empty(DC_SHAPE(4, 2, 3, 3), DC_F32);
  cr_assert_eq(dc_init_orthogonal_(conv, 1.0), DC_OK);
  dc_free(conv);
}

static int count_linear(dc_module *m, const char *path, void *ud) {
  (void)path;
  if (strcmp(dc_module_type_name(m), "Linear") == 0) {
    ++*(int *)ud;
    return dc_init_zeros_(dc_module_get_parameter(m, "bias"));
  }
  return DC_OK;
}

Test(init, apply_callback_over_the_tree) {
  dc_module *m = dc_nn_sequential(dc_nn_linear(3, 4), dc_nn_relu(),
                                  dc_nn_sequential(dc_nn_linear(4, 4)), dc_nn_linear(4, 1));
  int n = 0;
  cr_assert_eq(dc_module_apply(m, count_linear, &n), DC_OK);
  cr_assert_eq(n, 3);
  cr_assert_eq(dc_item_at(dc_module_get_parameter(m, "2.0.bias"), 2), 0.0);
  cr_assert_eq(dc_module_reset_parameters(m), DC_OK);
  cr_assert_neq(dc_item_at(dc_module_get_parameter(m, "2.0.bias"), 2), 0.0);
  dc_module_free(m);
}

/* ---- summary ---- */
Test(summary, course_questions) {
  /* 48x64x10 input, 3x3 conv 10 -> 20 channels */
  dc_module *m = dc_nn_from_spec("conv2d(10, 20, 3)");
  dc_model_summary *s = dc_summary(m, DC_SHAPE(10, 48, 64));
  cr_assert_not_null(s, "%s", dc_last_error());
  cr_assert_eq(s->total_params, 20 * 10 * 9 + 20);
  cr_assert(dc_shape_equal(s->output_shape, DC_SHAPE(1, 20, 46, 62)));
  cr_assert_eq(s->total_macs, 20LL * 46 * 62 * 10 * 9);
  dc_summary_free(s);
  dc_module_free(m);
  /* 98x98x16 input, 64 filters 6x6 stride 4 padding 2 */
  m = dc_nn_from_spec("conv2d(16, 64, 6, stride=4, padding=2)");
  s = dc_summary(m, DC_SHAPE(16, 98, 98));
  cr_assert_not_null(s, "%s", dc_last_error());
  cr_assert_eq(s->total_params, 64 * 16 * 36 + 64);
  cr_assert(dc_shape_equal(s->output_shape, DC_SHAPE(1, 64, 25, 25)));
  cr_assert_eq(s->total_macs, 64LL * 25 * 25 * 16 * 36);
  cr_assert_eq(s->nrows, 2);
  cr_assert_str_eq(s->rows[1].name, "0");
  cr_assert_str_eq(s->rows[1].type, "Conv2d");
  dc_summary_free(s);
  dc_module_free(m);
}

Test(summary, nested_rows_and_totals) {
  dc_module *m = small_net();
  dc_module_requires_grad_(dc_module_get_submodule(m, "layer1"), false);
  dc_model_summary *s = dc_summary(m, DC_SHAPE(3, 8, 8));
  cr_assert_not_null(s, "%s", dc_last_error());
  cr_assert_eq(s->total_params, dc_module_num_parameters(m, false));
  cr_assert_eq(s->non_trainable_params, 2 * (2 * 8 * 8 * 9 + 32));
  cr_assert_str_eq(s->rows[0].type, "Net");
  cr_assert_str_eq(s->rows[4].name, "layer1.0");
  cr_assert_eq(s->rows[4].depth, 2);
  cr_assert_str_eq(s->rows[5].name, "layer1.0.conv1");
  cr_assert_eq(s->rows[5].depth, 3);
  cr_assert_eq(s->rows[5].macs, 8LL * 8 * 8 * 8 * 9);
  cr_assert(dc_module_is_training(m)); /* the mode is restored */
  cr_assert_eq(dc_item(dc_module_get_buffer(m, "bn1.num_batches_tracked")), 0.0);
  char buf[32];
  cr_assert_str_eq(dc_format_count(1234567, buf, sizeof buf), "1,234,567");
  cr_assert_str_eq(dc_format_count(-999, buf, sizeof buf), "-999");
  dc_summary_free(s);
  dc_module_free(m);
}

/* ---- float64 gradient checks through modules (input and every parameter) ---- */
static dc_tensor *module_fn(dc_tensor *const *in, int n, void *ud) {
  (void)n;
  return dc_module_forward(ud, in[0]);
}

static void gradcheck_spec(const char *spec, dc_shape xs, bool train) {
  dc_manual_seed(5);
  dc_module *m = dc_nn_from_spec(spec);
  cr_assert_not_null(m, "%s: %s", spec, dc_last_error());
  cr_assert_eq(dc_module_to_dtype(m, DC_F64), DC_OK, "%s", dc_last_error());
  dc_module_train(m, train);
  int np;
  dc_named_tensor *p = dc_module_parameters(m, &np);
  dc_tensor *in[16] = {dc_requires_grad_(dc_randn(xs, DC_F64), true)};
  cr_assert_lt(np, 15);
  for (int i = 0; i < np; i++) {
    cr_assert_eq(p[i].tensor->dtype, DC_F64);
    in[i + 1] = p[i].tensor;
  }
  bool ok = dc_gradcheck(module_fn, in, np + 1, m, .atol = 1e-6, .rtol = 1e-4);
  cr_assert(ok, "%s (%s): %s", spec, train ? "train" : "eval", dc_last_error());
  dc_named_tensors_free(p, np);
  dc_free(in[0]);
  dc_module_free(m);
}

Test(gradcheck, every_layer_through_its_module) {
  gradcheck_spec("linear(4, 3)", DC_SHAPE(2, 4), true);
  gradcheck_spec("conv2d(2, 3, 3, stride=2, padding=1)", DC_SHAPE(2, 2, 5, 4), true);
  gradcheck_spec("conv2d(4, 4, (3, 2), groups=2, dilation=(1, 2), padding='same')",
                 DC_SHAPE(1, 4, 5, 6), true);
  gradcheck_spec("maxpool2d(2, ceil_mode=True)", DC_SHAPE(1, 2, 5, 5), true);
  gradcheck_spec("avgpool2d(3, stride=2, padding=1, count_include_pad=False)", DC_SHAPE(1, 2, 5, 6),
                 true);
  gradcheck_spec("adaptiveavgpool2d((2, 3)), adaptivemaxpool2d(1)", DC_SHAPE(2, 2, 5, 7), true);
  gradcheck_spec("batchnorm2d(2)", DC_SHAPE(3, 2, 3, 3), true);
  gradcheck_spec("batchnorm2d(2)", DC_SHAPE(3, 2, 3, 3), false);
  gradcheck_spec("batchnorm1d(3, momentum=None)", DC_SHAPE(4, 3), true);
  gradcheck_spec("relu, leakyrelu(0.1), elu(0.7), selu, gelu, gelu(approximate='tanh')",
                 DC_SHAPE(3, 5), true);
  gradcheck_spec("sigmoid, tanh, softplus(2, 1), hardtanh(-0.8, 0.9)", DC_SHAPE(3, 5), true);
  gradcheck_spec("softmax(dim=1), logsoftmax(dim=0)", DC_SHAPE(3, 5), true);
  gradcheck_spec("flatten, identity, dropout(0.0)", DC_SHAPE(2, 3, 2), true);
}

Test(module, to_dtype_keeps_identity) {
  dc_module *m = dc_nn_from_spec("linear(3, 2), batchnorm1d(2)");
  dc_tensor *w = dc_module_get_parameter(m, "0.weight");
  double v = dc_item_at(w, 4);
  cr_assert_eq(dc_module_to_dtype(m, DC_F64), DC_OK);
  cr_assert_eq(dc_module_get_parameter(m, "0.weight"), w);
  cr_assert_eq(w->dtype, DC_F64);
  cr_assert_eq(dc_item_at(w, 4), v);
  cr_assert(w->requires_grad);
  cr_assert_eq(dc_module_get_buffer(m, "1.num_batches_tracked")->dtype, DC_I64);
  cr_assert_eq(dc_module_to_dtype(m, DC_I32), DC_ERR_ARG);
  dc_module_free(m);
}
