/* The fused conv block (Conv2d, BatchNorm2d[, ReLU[, MaxPool2d(2)]] in a Sequential, and in
 * ResNet's blocks, as one op, src/ops/nn_conv_block.c) against the same layers run one by one:
 * output, every parameter's gradient, the input's gradient, running statistics and
 * num_batches_tracked, in training and eval mode, with odd sizes (the row and column floor-mode
 * pooling drops, rows that are not a multiple of 16 pixels), no conv bias, no batch-norm affine,
 * cumulative momentum, frozen weights, NaN inputs; the same bits on 1 and 2 threads; which layer
 * patterns fuse; a whole ResNet fused and layer by layer. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "nn/nn-impl.h"

typedef struct block_case {
  int64_t n, c, h, w, k; /* x [N, C, H, W], K filters */
  int ks, pad, stride;
  bool conv_bias, affine, cumulative, training, freeze_conv_w, x_grad;
  int tail; /* after the batch norm: 0 ReLU and MaxPool2d(2), 1 ReLU, 2 nothing */
} block_case;

/* the graph function of the fused op and of the layers one by one, by tail */
static const char *const FUSED_FN[] = {"conv_bn_relu_pool", "conv_bn_relu", "conv_bn"};
static const char *const PLAIN_FN[] = {"max_pool2d", "batch_norm_relu", "batch_norm"};

static dc_module *make_model(const block_case *t, dc_dtype dt) {
  dc_manual_seed(42);
  dc_module *m = dc_nn_sequential(
      dc_nn_conv2d(t->c, t->k, t->ks, .padding = t->pad, .stride = t->stride,
                   .no_bias = !t->conv_bias),
      dc_nn_batchnorm2d(t->k, .no_affine = !t->affine, .cumulative = t->cumulative));
  if (t->tail < 2) m = dc_nn_sequential_append(m, dc_nn_relu());
  if (t->tail < 1) m = dc_nn_sequential_append(m, dc_nn_maxpool2d(2));
  cr_assert_not_null(m, "%s", dc_last_error());
  dc_module_train(m, t->training);
  if (t->freeze_conv_w) dc_requires_grad_(dc_module_get_parameter(m, "0.weight"), false);
  cr_assert_eq(dc_module_to_dtype(m, dt), DC_OK, "%s", dc_last_error());
  return m;
}

/* everything the case produces, in a fixed order: y, x.grad, parameter grads, buffers */
typedef struct block_run {
  dc_tensor *t[16];
  char name[16][32];
  int n;
} block_run;

static void keep(block_run *r, const char *name, const dc_tensor *t) {
  cr_assert_lt(r->n, 16);
  snprintf(r->name[r->n], sizeof r->name[0], "%s", name);
  r->t[r->n++] = t ? dc_clone((dc_tensor *)t) : NULL;
}

static block_run run_case_dt(const block_case *t, bool fuse, const char *want_fn, int threads,
                             bool nans, dc_dtype dt) {
  char what[64];
  snprintf(what, sizeof what, "x [%lld, %lld, %lld, %lld], K %lld", (long long)t->n,
           (long long)t->c, (long long)t->h, (long long)t->w, (long long)t->k);
  dc_module *m = make_model(t, dt);
  dc_manual_seed(7);
  dc_tensor *x = dc_to_dtype(dc_randn(DC_SHAPE(t->n, t->c, t->h, t->w), DC_F32), dt);
  if (nans) {
    float *p = dc_data(x);
    p[5] = NAN, p[dc_numel(x) / 2] = NAN;
  }
  if (t->x_grad) dc_requires_grad_(x, true);
  if (!fuse) dc_module_set_fusion(m, DC_FUSE_ALL & ~(unsigned)DC_FUSE_CONV_BLOCK);
  int old_threads = omp_get_max_threads();
  omp_set_num_threads(threads);
  block_run r = {.n = 0};
  for (int step = 0; step < 2; step++) { /* twice: the running statistics move twice */
    dc_tensor *y = dc_module_forward(m, x);
    cr_assert_not_null(y, "%s", dc_last_error());
    if (want_fn) /* NULL: either (oneDNN decides which layers it runs in 16-channel blocks) */
      cr_assert_str_eq(dc_grad_fn_name(y) ? dc_grad_fn_name(y) : "(none)", want_fn, "%s", what);
    if (step == 1) keep(&r, "y", y);
    dc_manual_seed(9 + step);
    dc_tensor *gy = dc_to_dtype(dc_randn(dc_shape_of(y), DC_F32), dt);
    if (dc_grad_fn_name(y)) cr_assert_eq(dc_backward(y, .grad = gy), DC_OK, "%s", dc_last_error());
  }
  omp_set_num_threads(old_threads);
  keep(&r, "x.grad", x->grad);
  int np = 0, nb = 0;
  dc_named_tensor *ps = dc_module_parameters(m, &np), *bs = dc_module_buffers(m, &nb);
  for (int i = 0; i < np; i++) {
    char nm[32];
    snprintf(nm, sizeof nm, "%s.grad", ps[i].name);
    keep(&r, nm, ps[i].tensor->grad);
  }
  for (int i = 0; i < nb; i++) keep(&r, bs[i].name, bs[i].tensor);
  dc_named_tensors_free(ps, np);
  dc_named_tensors_free(bs, nb);
  dc_module_free(m);
  return r;
}

static double max_abs(const dc_tensor *t) {
  double m = 0;
  for (int64_t e = 0; t && e < dc_numel(t); e++) {
    double v = dc_item_at(t, e);
    if (isfinite(v) && fabs(v) > m) m = fabs(v);
  }
  return m;
}

static block_run run_case(const block_case *t, bool fuse, const char *want_fn, int threads,
                          bool nans) {
  return run_case_dt(t, fuse, want_fn, threads, nans, DC_F32);
}

/* |a - b| <= tol * (scale of the tensor), per element; NaN where NaN. In training mode the
 * conv bias's gradient is zero up to rounding (batch norm subtracts the mean right after), so both
 * runs' must just be tiny next to the other gradients. */
static void assert_close(const block_run *a, const block_run *b, double tol, bool training,
                         const char *what) {
  cr_assert_eq(a->n, b->n);
  double wscale = 0;
  for (int i = 0; i < a->n; i++)
    if (strstr(a->name[i], "grad") && strcmp(a->name[i], "0.bias.grad") != 0 &&
        max_abs(a->t[i]) > wscale)
      wscale = max_abs(a->t[i]);
  for (int i = 0; i < a->n; i++) {
    if (training && strcmp(a->name[i], "0.bias.grad") == 0) {
      double u = max_abs(a->t[i]), v = max_abs(b->t[i]);
      cr_assert(u <= 1e-4 * wscale && v <= 1e-4 * wscale, "%s: conv bias grad %g, %g vs %g", what,
                u, v, wscale);
      continue;
    }
    cr_assert_eq(a->t[i] == NULL, b->t[i] == NULL, "%s: %s present in one run only", what,
                 a->name[i]);
    if (!a->t[i]) continue;
    int64_t n = dc_numel(a->t[i]);
    cr_assert_eq(n, dc_numel(b->t[i]));
    double scale = max_abs(a->t[i]);
    for (int64_t e = 0; e < n; e++) {
      double u = dc_item_at(a->t[i], e), v = dc_item_at(b->t[i], e);
      if (isnan(u) || isnan(v)) {
        cr_assert(isnan(u) && isnan(v), "%s: %s[%lld]: %g vs %g", what, a->name[i], (long long)e, u,
                  v);
        continue;
      }
      cr_assert(fabs(u - v) <= tol * (scale + 1e-30), "%s: %s[%lld]: %.9g vs %.9g (scale %g)", what,
                a->name[i], (long long)e, u, v, scale);
    }
  }
}

static void assert_same_bits(const block_run *a, const block_run *b) {
  for (int i = 0; i < a->n; i++) {
    if (!a->t[i]) continue;
    size_t bytes = (size_t)dc_numel(a->t[i]) * dc_dtype_size(a->t[i]->dtype);
    cr_assert(memcmp(dc_data(a->t[i]), dc_data(b->t[i]), bytes) == 0,
              "%s differs between 1 and 2 threads", a->name[i]);
  }
}

static void free_run(block_run *r) {
  for (int i = 0; i < r->n; i++) dc_free(r->t[i]);
}

static const block_case CASES[] = {
    /* the Fashion-MNIST CNN's first and last blocks */
    {4, 1, 12, 12, 32, 5, 2, 1, true, true, false, true, false, false, 0},
    {4, 32, 7, 7, 64, 5, 2, 1, true, true, false, true, false, true, 0},
    /* odd sizes both ways, 3x3 (Winograd under auto), no conv bias, no affine */
    {3, 16, 9, 11, 16, 3, 1, 1, false, false, false, true, false, true, 0},
    /* stride 2, cumulative momentum, frozen conv weight (bias gradient alone) */
    {2, 16, 13, 10, 32, 3, 0, 2, true, true, true, true, true, true, 0},
    /* eval mode: running statistics, eval-mode batch-norm gradient */
    {3, 16, 8, 8, 16, 5, 2, 1, true, true, false, false, false, true, 0},
    /* 5x5 Winograd (wino5.c) without padding on odd sizes, more tiles than one block of 24;
     * frozen weight with a bias; 48 filters (a 32 + 16 split of the products) */
    {5, 32, 15, 13, 48, 5, 0, 1, true, true, false, true, true, true, 0},
    /* 3x3 with 128 4x4 output tiles: oneDNN's Winograd F(4x4, 3x3) under auto (VGG's blocks) */
    {8, 16, 16, 16, 32, 3, 1, 1, true, true, false, true, false, true, 0},
    /* a row of 37 pixels: two 16-pixel transposes and 5 single ones in every layout copy */
    {2, 16, 10, 37, 16, 5, 2, 1, true, true, false, true, false, true, 0},
    /* 5x5 with padding 4 (the largest it takes), 64 input channels, no conv bias */
    {2, 64, 6, 7, 32, 5, 4, 1, false, true, false, true, false, true, 0},
    /* without pooling: ResNet's 3x3 layers (Winograd F(4x4, 3x3) under auto), its stride-2
     * 3x3 and 1x1 downsample layers, its 7x7 stem; 37 and 21-pixel rows (transposes of 16 and
     * single pixels) */
    {8, 16, 16, 16, 32, 3, 1, 1, false, true, false, true, false, true, 1},
    {4, 32, 16, 16, 32, 3, 1, 1, false, true, false, true, false, true, 2},
    {3, 16, 13, 11, 32, 3, 1, 2, false, true, false, true, false, true, 1},
    {3, 16, 13, 11, 32, 1, 0, 2, false, true, true, true, false, true, 2},
    {2, 3, 41, 37, 16, 7, 3, 2, false, true, false, true, false, false, 1},
    {2, 16, 10, 37, 16, 5, 2, 1, true, false, false, true, true, true, 1},
    {3, 16, 8, 8, 16, 3, 1, 1, true, true, false, false, false, true, 1},
    {3, 16, 8, 8, 16, 3, 1, 1, false, true, false, false, false, true, 2},
};

/* under auto (5x5 layers with 16k channels and outputs of 8x8 or more on Winograd F(2x2, 5x5)),
 * winograd (every 5x5 layer with 16k channels, e.g. the 7x7 output with 64 filters) and direct
 * (oneDNN) */
Test(conv_block, fused_matches_layer_by_layer) {
  static const dc_conv_algo algos[] = {DC_CONV_ALGO_AUTO, DC_CONV_ALGO_WINOGRAD,
                                       DC_CONV_ALGO_DIRECT};
  for (int algo = 0; algo < 3; algo++) {
    dc_conv_algo old = dc_set_conv_algo(algos[algo]);
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
      dc_scope_begin();
      char what[48];
      snprintf(what, sizeof what, "case %zu, %s", c, dc_conv_algo_name(algos[algo]));
      const char *want = algos[algo] == DC_CONV_ALGO_DIRECT ? NULL : FUSED_FN[CASES[c].tail];
      block_run fused = run_case(&CASES[c], true, want, 2, false);
      block_run plain = run_case(&CASES[c], false, PLAIN_FN[CASES[c].tail], 2, false);
      /* float32: the batch statistics are summed in another order */
      assert_close(&plain, &fused, 2e-5, CASES[c].training, what);
      block_run one = run_case(&CASES[c], true, want, 1, false);
      assert_same_bits(&fused, &one);
      free_run(&fused), free_run(&plain), free_run(&one);
      dc_scope_end();
    }
    dc_set_conv_algo(old);
  }
}

Test(conv_block, nan_inputs_propagate_as_layer_by_layer) {
  dc_scope_begin();
  block_case t = CASES[0];
  t.training = false; /* a NaN in training mode poisons every statistic: both all-NaN */
  block_run fused = run_case(&t, true, "conv_bn_relu_pool", 2, true);
  block_run plain = run_case(&t, false, "max_pool2d", 2, true);
  assert_close(&plain, &fused, 2e-5, false, "NaN input");
  free_run(&fused), free_run(&plain);
  dc_scope_end();
}

/* Which patterns fuse: a 3x3 pool or ceil mode runs after a fused conv_bn_relu; conv, bn without
 * a ReLU fuses as conv_bn; conv without a batch norm and 12 channels run layer by layer; no_grad
 * still fuses (no node). */
Test(conv_block, which_patterns_fuse) {
  dc_scope_begin();
  dc_manual_seed(1);
  dc_tensor *x = dc_randn(DC_SHAPE(2, 3, 8, 8), DC_F32);
  dc_module *pool3 = dc_nn_sequential(dc_nn_conv2d(3, 16, 3, .padding = 1), dc_nn_batchnorm2d(16),
                                      dc_nn_relu(), dc_nn_maxpool2d(3));
  dc_module *ceil = dc_nn_sequential(dc_nn_conv2d(3, 16, 3, .padding = 1), dc_nn_batchnorm2d(16),
                                     dc_nn_relu(), dc_nn_maxpool2d(2, .ceil_mode = true));
  dc_module *ok = dc_nn_sequential(dc_nn_conv2d(3, 16, 3, .padding = 1), dc_nn_batchnorm2d(16),
                                   dc_nn_relu(), dc_nn_maxpool2d(2));
  dc_module *k12 = dc_nn_sequential(dc_nn_conv2d(3, 12, 3, .padding = 1), dc_nn_batchnorm2d(12),
                                    dc_nn_relu(), dc_nn_maxpool2d(2));
  cr_assert_str_eq(dc_grad_fn_name(dc_module_forward(pool3, x)), "max_pool2d");
  cr_assert_str_eq(dc_grad_fn_name(dc_module_forward(ceil, x)), "max_pool2d");
  cr_assert_str_eq(dc_grad_fn_name(dc_module_forward(ok, x)), "conv_bn_relu_pool");
  /* 12 channels: no 16-channel blocks, so layer by layer */
  cr_assert_str_eq(dc_grad_fn_name(dc_module_forward(k12, x)), "max_pool2d");
  dc_module *cbr =
      dc_nn_sequential(dc_nn_conv2d(3, 16, 3, .padding = 1), dc_nn_batchnorm2d(16), dc_nn_relu());
  dc_module *cb = dc_nn_sequential(dc_nn_conv2d(3, 16, 3, .padding = 1), dc_nn_batchnorm2d(16),
                                   dc_nn_sigmoid());
  dc_module *cr =
      dc_nn_sequential(dc_nn_conv2d(3, 16, 3, .padding = 1), dc_nn_relu(), dc_nn_batchnorm2d(16));
  cr_assert_str_eq(dc_grad_fn_name(dc_module_forward(cbr, x)), "conv_bn_relu");
  cr_assert_str_eq(dc_grad_fn_name(dc_module_forward(cb, x)), "sigmoid");
  cr_assert_str_eq(dc_grad_fn_name(dc_module_forward(dc_module_child(cb, "0"), x)), "conv2d");
  dc_module *cb2 = dc_nn_sequential(dc_nn_conv2d(3, 16, 3, .padding = 1), dc_nn_batchnorm2d(16));
  cr_assert_str_eq(dc_grad_fn_name(dc_module_forward(cb2, x)), "conv_bn");
  cr_assert_str_eq(dc_grad_fn_name(dc_module_forward(cr, x)), "batch_norm");
  dc_module_free(cbr), dc_module_free(cb), dc_module_free(cb2), dc_module_free(cr);
  dc_no_grad_begin();
  dc_tensor *y = dc_module_forward(ok, x);
  dc_no_grad_end();
  cr_assert_not_null(y, "%s", dc_last_error());
  cr_assert_null(dc_grad_fn_name(y));
  cr_assert_eq(y->shape[3], 4);
  dc_module_free(pool3), dc_module_free(ceil), dc_module_free(ok), dc_module_free(k12);
  dc_scope_end();
}

/* Evaluation without a graph runs the block 64 images at a time (nn_conv_block.c): the same
 * output as the layers one by one and as the fused op on the whole batch (with a graph), for
 * a batch that is not a multiple of 64, through Winograd (5x5) and oneDNN (3x3). */
Test(conv_block, evaluation_in_chunks) {
  static const block_case cases[] = {
      {150, 16, 9, 10, 32, 5, 2, 1, true, true, false, false, false, false, 0},
      {130, 16, 12, 12, 16, 3, 1, 1, true, true, false, false, false, false, 0},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    dc_scope_begin();
    const block_case *t = &cases[c];
    dc_module *m = make_model(t, DC_F32);
    dc_manual_seed(3);
    dc_tensor *x = dc_randn(DC_SHAPE(t->n, t->c, t->h, t->w), DC_F32);
    /* running statistics away from 0 / 1, so that eval mode differs from training */
    dc_fill_(dc_module_get_buffer(m, "1.running_mean"), 0.25);
    dc_fill_(dc_module_get_buffer(m, "1.running_var"), 2.0);
    dc_tensor *y[3];
    for (int k = 0; k < 3; k++) {
      dc_module_set_fusion(m, k == 2 ? DC_FUSE_ALL & ~(unsigned)DC_FUSE_CONV_BLOCK : DC_FUSE_ALL);
      bool prev = dc_set_grad_enabled(k != 0); /* k 0: no graph, in chunks */
      dc_requires_grad_(x, k == 1);
      y[k] = dc_module_forward(m, x);
      dc_set_grad_enabled(prev);
      cr_assert_not_null(y[k], "%s", dc_last_error());
    }
    cr_assert_str_eq(dc_grad_fn_name(y[1]), "conv_bn_relu_pool");
    block_run a = {.n = 0}, b = {.n = 0}, d = {.n = 0};
    keep(&a, "y", y[0]), keep(&b, "y", y[1]), keep(&d, "y", y[2]);
    assert_close(&d, &a, 2e-5, false, "chunks vs layers");
    assert_close(&b, &a, 2e-5, false, "chunks vs whole batch");
    free_run(&a), free_run(&b), free_run(&d);
    dc_module_free(m);
    dc_scope_end();
  }
}

/* max |a - ref| / max |ref| of a float32 result against the float64 reference */
static double rel_err(const dc_tensor *a, const dc_tensor *ref) {
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < dc_numel(a); i++) {
    double r = dc_item_at(ref, i);
    worst = fmax(worst, fabs(dc_item_at(a, i) - r));
    scale = fmax(scale, fabs(r));
  }
  return worst / scale;
}

/* The 5x5 Winograd against a float64 reference (the layers one by one in float64), next to
 * oneDNN's direct convolution in the same fused block: output, input gradient and the conv's
 * and batch norm's parameter gradients. The conv bias's gradient is rounding noise around zero
 * in training mode (test above) and is left out. */
Test(conv_block, winograd_5x5_close_to_float64_like_direct) {
  dc_scope_begin();
  const block_case t = {4, 32, 12, 10, 48, 5, 2, 1, true, true, false, true, false, true, 0};
  dc_conv_algo old = dc_set_conv_algo(DC_CONV_ALGO_AUTO);
  block_run wg = run_case(&t, true, "conv_bn_relu_pool", 2, false);
  dc_set_conv_algo(DC_CONV_ALGO_DIRECT);
  block_run d = run_case(&t, true, NULL, 2, false);
  dc_set_conv_algo(old);
  block_run ref = run_case_dt(&t, true, "max_pool2d", 2, false, DC_F64); /* float64: unfused */
  for (int i = 0; i < ref.n; i++) {
    bool wanted = strcmp(ref.name[i], "y") == 0 || strstr(ref.name[i], "grad");
    if (!ref.t[i] || !wanted || strcmp(ref.name[i], "0.bias.grad") == 0) continue;
    double ew = rel_err(wg.t[i], ref.t[i]), ed = rel_err(d.t[i], ref.t[i]);
    cr_log_info("%s: winograd %.2e, direct %.2e of max |value|", ref.name[i], ew, ed);
    cr_assert_lt(ed, 1e-5, "direct %s off by %g of its scale", ref.name[i], ed);
    cr_assert_lt(ew, 2e-5, "winograd %s off by %g of its scale", ref.name[i], ew);
  }
  free_run(&wg), free_run(&d), free_run(&ref);
  dc_scope_end();
}

/* A ResNet-18 of width 16 on 3x24x24 images (the 7x7 stem, stride-2 and 1x1 downsample layers,
 * Winograd 3x3 layers under auto) trained two steps with every conv -> BN (-> ReLU) fused and
 * layer by layer: the same logits, input and parameter gradients and running statistics. */
static block_run resnet_run(bool fuse, bool training) {
  dc_manual_seed(5);
  dc_module *m = dc_zoo_create("resnet18", .num_classes = 3, .width = 16);
  cr_assert_not_null(m, "%s", dc_last_error());
  dc_module_train(m, training);
  dc_manual_seed(6);
  dc_tensor *x = dc_randn(DC_SHAPE(4, 3, 24, 24), DC_F32);
  dc_requires_grad_(x, true);
  if (!fuse) dc_module_set_fusion(m, DC_FUSE_ALL & ~(unsigned)DC_FUSE_CONV_BLOCK);
  block_run r = {.n = 0};
  for (int step = 0; step < 2; step++) {
    dc_tensor *y = dc_module_forward(m, x);
    cr_assert_not_null(y, "%s", dc_last_error());
    if (step == 1) keep(&r, "y", y);
    cr_assert_eq(dc_backward(dc_sum(y, NULL, 0, false), ), DC_OK, "%s", dc_last_error());
  }
  keep(&r, "x.grad", x->grad);
  int np = 0, nb = 0;
  dc_named_tensor *ps = dc_module_parameters(m, &np), *bs = dc_module_buffers(m, &nb);
  /* block_run holds 16: the first parameters' and buffers' (stem, layer1) and the last ones */
  for (int i = 0; i < np; i++)
    if (i < 5 || i >= np - 2) keep(&r, ps[i].name, ps[i].tensor->grad);
  for (int i = 0; i < nb; i++)
    if (i < 4 || i >= nb - 3) keep(&r, bs[i].name, bs[i].tensor);
  dc_named_tensors_free(ps, np);
  dc_named_tensors_free(bs, nb);
  dc_module_free(m);
  return r;
}

Test(conv_block, resnet_fused_matches_layer_by_layer) {
  for (int training = 1; training >= 0; training--) {
    dc_scope_begin();
    block_run fused = resnet_run(true, training), plain = resnet_run(false, training);
    assert_close(&plain, &fused, 1e-4, training,
                 training ? "resnet18, training" : "resnet18, eval");
    free_run(&fused), free_run(&plain);
    dc_scope_end();
  }
}
