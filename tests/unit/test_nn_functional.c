/* Functional nn ops: the oneDNN convolution against the direct reference (forward, input, weight
 * and bias gradients over strides, padding incl. "same", dilation, groups), the primitive cache,
 * float64 gradcheck of every op (conv, pools, batch norm train/eval, dropout, hardtanh, the fused
 * residual add + ReLU, every loss and reduction), PyTorch's window rules (ceil_mode, ties, NaN),
 * batch-norm running stats, dropout reproducibility, and bad input with messages that name shapes,
 * labels and fixes. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <string.h>

#include "autograd/autograd-impl.h"
#include "backend/cpu/nn/nn-cpu.h"
#include "nn/nn-impl.h"

/* ---- helpers ---- */

/* Uniform values in [lo, hi) of dtype dt (float64 draws from the seeded generator). */
static dc_tensor *uniform(dc_shape s, dc_dtype dt, double lo, double hi) {
  dc_tensor *u = dc_rand(s, DC_F64);
  cr_assert_not_null(u, "%s", dc_last_error());
  double *p = dc_data(u);
  for (int64_t i = 0; i < dc_numel(u); i++) p[i] = lo + (hi - lo) * p[i];
  return dt == DC_F64 ? u : dc_to_dtype(u, dt);
}

static dc_tensor *leaf(dc_tensor *t) { return dc_requires_grad_(t, true); }

static dc_tensor *labels(const int64_t *v, dc_shape s) { return dc_from_data(v, s, DC_I64); }

static void assert_close(const dc_tensor *a, const dc_tensor *b, double tol, const char *what) {
  cr_assert_not_null(a, "%s: %s", what, dc_last_error());
  cr_assert_not_null(b, "%s: %s", what, dc_last_error());
  cr_assert(dc_shape_equal(dc_shape_of(a), dc_shape_of(b)), "%s: shapes differ", what);
  for (int64_t i = 0; i < dc_numel(a); i++) {
    double x = dc_item_at(a, i), y = dc_item_at(b, i);
    cr_assert(fabs(x - y) <= tol * (1 + fabs(y)), "%s: element %lld: %.9g vs %.9g", what,
              (long long)i, x, y);
  }
}

static void assert_error(const void *result, const char *const *needles) {
  cr_assert_null(result, "expected an error");
  const char *msg = dc_last_error();
  for (int i = 0; needles[i]; i++)
    cr_assert(strstr(msg, needles[i]), "message '%s' lacks '%s'", msg, needles[i]);
  dc_clear_error();
}
#define ASSERT_ERROR(result, ...) assert_error((result), (const char *const[]){__VA_ARGS__, NULL})

static void gradcheck(dc_gradcheck_fn f, dc_tensor **in, int n, void *ud) {
  cr_assert(dc_gradcheck(f, in, n, ud), "%s", dc_last_error());
}

/* ---- convolution: oneDNN against the reference ---- */

typedef struct conv_case {
  int64_t n, c, h, w, k, kh, kw;
  dc_conv2d_opts o;
} conv_case;

static const conv_case CONV_CASES[] = {
    {2, 3, 7, 9, 4, 3, 3, {.padding = {1, 1}}},
    {1, 4, 8, 5, 6, 3, 2, {.stride = {2, 2}, .padding = {1, 0}}},
    {2, 4, 9, 9, 4, 3, 3, {.groups = 2, .dilation = {2, 2}, .padding = {2, 1}}},
    {3, 6, 6, 7, 6, 3, 3, {.groups = 6, .stride = {2, 1}}},
    {2, 3, 6, 7, 5, 4, 2, {.same_padding = true}},
    {1, 16, 10, 10, 32, 5, 5, {.padding = {2, 2}, .stride = {2}}},
    {2, 32, 14, 14, 32, 5, 5, {.padding = {2, 2}}},
    {2, 8, 5, 5, 8, 1, 1, {.groups = 1}},
};

static void conv_against_reference(const conv_case *cc, bool bias) {
  dc_scope_begin();
  dc_tensor *x = uniform(DC_SHAPE(cc->n, cc->c, cc->h, cc->w), DC_F32, -1, 1);
  int g = cc->o.groups ? cc->o.groups : 1;
  dc_tensor *w = uniform(DC_SHAPE(cc->k, cc->c / g, cc->kh, cc->kw), DC_F32, -1, 1);
  dc_tensor *b = bias ? uniform(DC_SHAPE(cc->k), DC_F32, -1, 1) : NULL;
  leaf(x), leaf(w);
  if (b) leaf(b);
  dc_tensor *y = dc_conv2d_opt(x, w, b, cc->o);
  cr_assert_not_null(y, "%s", dc_last_error());
  /* geometry as the op saw it, for the reference kernels */
  cr_assert_eq(y->grad_fn->op->kind, DC_OP_CONV2D);
  dc_conv2d_geom geo = DC__ARGS(y->grad_fn, conv2d)->geom;
  dc_tensor *yr = dc_empty(dc_shape_of(y), DC_F32);
  cr_assert_eq(dc__cpu_conv2d_ref_forward(yr, x, w, b, &geo), DC_OK);
  assert_close(y, yr, 1e-4, "conv forward");
  dc_tensor *gy = uniform(dc_shape_of(y), DC_F32, -1, 1);
  cr_assert_eq(dc_backward(y, .grad = gy), DC_OK, "%s", dc_last_error());
  dc_tensor *gx = dc_empty(dc_shape_of(x), DC_F32), *gw = dc_empty(dc_shape_of(w), DC_F32);
  dc_tensor *gb = bias ? dc_empty(DC_SHAPE(cc->k), DC_F32) : NULL;
  cr_assert_eq(dc__cpu_conv2d_ref_backward(gx, gw, gb, gy, x, w, &geo), DC_OK);
  assert_close(x->grad, gx, 1e-4, "conv grad input");
  assert_close(w->grad, gw, 1e-4, "conv grad weight");
  if (bias) assert_close(b->grad, gb, 1e-4, "conv grad bias");
  dc_free(x->grad), dc_free(w->grad);
  x->grad = w->grad = NULL;
  if (b) {
    dc_free(b->grad);
    b->grad = NULL;
  }
  dc_scope_end();
}

Test(nn_conv, onednn_matches_reference) {
  dc_manual_seed(1);
  for (size_t i = 0; i < sizeof CONV_CASES / sizeof *CONV_CASES; i++) {
    conv_against_reference(&CONV_CASES[i], true);
    conv_against_reference(&CONV_CASES[i], false);
  }
}

/* Every element of a within one bfloat16 rounding step or two (2^-7 relative) of the reference
 * b, plus atol for sums that cancel. */
static void assert_bf16_close(const dc_tensor *a, const dc_tensor *b, double atol,
                              const char *what) {
  cr_assert_eq(a->dtype, DC_BF16, "%s: %s", what, dc_dtype_name(a->dtype));
  for (int64_t i = 0, n = dc_numel(a); i < n; i++) {
    double g = dc_item_at(a, i), w = dc_item_at(b, i);
    cr_assert(fabs(g - w) <= ldexp(fabs(w), -7) + atol, "%s: element %lld: %.9g vs %.9g", what,
              (long long)i, g, w);
  }
}

/* bfloat16 tensors straight to the oneDNN bfloat16 primitives (the cpu declares DC_BF16_CONV)
 * against the reference kernels in bfloat16 (double sums, each output rounded once). */
Test(nn_conv, bfloat16_onednn_matches_reference) {
  dc_scope_begin();
  dc_manual_seed(9);
  for (size_t i = 0; i < sizeof CONV_CASES / sizeof *CONV_CASES; i++) {
    const conv_case *cc = &CONV_CASES[i];
    int g = cc->o.groups ? cc->o.groups : 1;
    dc_tensor *x =
        leaf(dc_to_dtype(uniform(DC_SHAPE(cc->n, cc->c, cc->h, cc->w), DC_F32, -1, 1), DC_BF16));
    dc_tensor *w = leaf(
        dc_to_dtype(uniform(DC_SHAPE(cc->k, cc->c / g, cc->kh, cc->kw), DC_F32, -1, 1), DC_BF16));
    dc_tensor *b = leaf(dc_to_dtype(uniform(DC_SHAPE(cc->k), DC_F32, -1, 1), DC_BF16));
    dc_tensor *y = dc_conv2d_opt(x, w, b, cc->o);
    cr_assert_not_null(y, "%s", dc_last_error());
    cr_assert_eq(y->grad_fn->op->kind, DC_OP_CONV2D, "bfloat16 was not passed to the kernel");
    dc_conv2d_geom geo = DC__ARGS(y->grad_fn, conv2d)->geom;
    dc_tensor *yr = dc_empty(dc_shape_of(y), DC_BF16);
    cr_assert_eq(dc__cpu_conv2d_ref_forward(yr, x, w, b, &geo), DC_OK);
    double atol = 1e-2; /* sums of up to ~100 products of size 1, cancelling */
    assert_bf16_close(y, yr, atol, "bf16 conv forward");
    dc_tensor *gy = dc_to_dtype(uniform(dc_shape_of(y), DC_F32, -1, 1), DC_BF16);
    cr_assert_eq(dc_backward(y, .grad = gy), DC_OK, "%s", dc_last_error());
    dc_tensor *gx = dc_empty(dc_shape_of(x), DC_BF16), *gw = dc_empty(dc_shape_of(w), DC_BF16);
    dc_tensor *gb = dc_empty(DC_SHAPE(cc->k), DC_BF16);
    cr_assert_eq(dc__cpu_conv2d_ref_backward(gx, gw, gb, gy, x, w, &geo), DC_OK);
    assert_bf16_close(x->grad, gx, atol, "bf16 conv grad input");
    assert_bf16_close(w->grad, gw, 4 * atol, "bf16 conv grad weight");
    assert_bf16_close(b->grad, gb, 4 * atol, "bf16 conv grad bias");
  }
  dc_scope_end();
}

Test(nn_conv, output_shapes) {
  dc_scope_begin();
  dc_tensor *x = dc_zeros(DC_SHAPE(2, 3, 28, 28), DC_F32),
            *w = dc_zeros(DC_SHAPE(8, 3, 5, 5), DC_F32);
  dc_tensor *y = dc_conv2d_f(x, w, NULL, .padding = {2, 2});
  cr_assert(dc_shape_equal(dc_shape_of(y), DC_SHAPE(2, 8, 28, 28)));
  y = dc_conv2d_f(x, w, NULL, .stride = {2, 2}, .padding = {1, 1});
  cr_assert(dc_shape_equal(dc_shape_of(y), DC_SHAPE(2, 8, 13, 13)));
  y = dc_conv2d_f(x, dc_zeros(DC_SHAPE(8, 3, 4, 3), DC_F32), NULL, .same_padding = true);
  cr_assert(dc_shape_equal(dc_shape_of(y), DC_SHAPE(2, 8, 28, 28)), "%s", dc_last_error());
  y = dc_conv2d_f(dc_zeros(DC_SHAPE(3, 10, 12), DC_F32), w, NULL, .dilation = {2});
  cr_assert(dc_shape_equal(dc_shape_of(y), DC_SHAPE(8, 2, 4)), "%s", dc_last_error());
  cr_assert_eq(dc_conv_out_size(28, 5, 1, 2, 1, false), 28);
  cr_assert_eq(dc_conv_out_size(5, 2, 2, 0, 1, true), 3); /* ceil_mode keeps a partial window */
  cr_assert_eq(dc_conv_out_size(5, 2, 2, 1, 1, true), 3); /* the 4th would start in padding */
  cr_assert_eq(dc_conv_out_size(1, 2, 2, 0, 1, true), 1);
  cr_assert_eq(dc_conv_out_size(1, 2, 2, 0, 1, false), -1);
  cr_assert_eq(dc_conv_out_size(4, 3, -1, 0, 1, false), -1);
  dc_scope_end();
}

Test(nn_conv, primitive_cache_hits) {
  dc_scope_begin();
  dc_tensor *x = dc_ones(DC_SHAPE(2, 4, 9, 9), DC_F32), *w = dc_ones(DC_SHAPE(4, 4, 3, 3), DC_F32);
  cr_assert_not_null(dc_conv2d_f(x, w, NULL, .padding = {1, 1}), "%s", dc_last_error());
  int64_t before = dc__cpu_conv2d_dnnl_created();
  for (int i = 0; i < 5; i++) cr_assert_not_null(dc_conv2d_f(x, w, NULL, .padding = {1, 1}));
  cr_assert_eq(dc__cpu_conv2d_dnnl_created(), before, "the cache missed");
  cr_assert_not_null(dc_conv2d_f(x, w, NULL, .padding = {2, 2}));
  cr_assert_eq(dc__cpu_conv2d_dnnl_created(), before + 1);
  dc_scope_end();
}

static dc_tensor *conv_fn(dc_tensor *const *in, int n, void *ud) {
  return dc_conv2d_opt(in[0], in[1], n > 2 ? in[2] : NULL, *(const dc_conv2d_opts *)ud);
}

/* a non-contiguous input (H and W swapped by a view) and a transposed weight */
static dc_tensor *conv_strided_fn(dc_tensor *const *in, int n, void *ud) {
  return dc_conv2d_f(dc_transpose(in[0], 2, 3), dc_transpose(in[1], 2, 3), NULL, .padding = {1, 0});
}

Test(nn_conv, gradcheck_float64) {
  dc_scope_begin();
  dc_manual_seed(2);
  dc_conv2d_opts opts[] = {{.padding = {1, 0}, .stride = {2, 1}},
                           {.groups = 2, .dilation = {2, 1}, .padding = {1, 1}},
                           {.same_padding = true}};
  int64_t kh[] = {3, 2, 2};
  for (int i = 0; i < 3; i++) {
    int g = opts[i].groups ? opts[i].groups : 1;
    dc_tensor *in[3] = {leaf(uniform(DC_SHAPE(2, 4, 5, 4), DC_F64, -1, 1)),
                        leaf(uniform(DC_SHAPE(2, 4 / g, kh[i], 3), DC_F64, -1, 1)),
                        leaf(uniform(DC_SHAPE(2), DC_F64, -1, 1))};
    gradcheck(conv_fn, in, 3, &opts[i]);
  }
  dc_tensor *in[2] = {leaf(uniform(DC_SHAPE(2, 3, 4, 5), DC_F64, -1, 1)),
                      leaf(uniform(DC_SHAPE(2, 3, 2, 3), DC_F64, -1, 1))};
  gradcheck(conv_strided_fn, in, 2, NULL);
  dc_scope_end();
}

Test(nn_conv, bad_input) {
  dc_scope_begin();
  dc_tensor *x = dc_zeros(DC_SHAPE(2, 1, 28, 28), DC_F32),
            *w = dc_zeros(DC_SHAPE(8, 3, 5, 5), DC_F32);
  ASSERT_ERROR(dc_conv2d_f(x, w, NULL), "conv2d", "[8, 3, 5, 5]", "[N, 3, H, W]", "[2, 1, 28, 28]",
               "in_channels");
  ASSERT_ERROR(dc_conv2d_f(dc_zeros(DC_SHAPE(2, 784), DC_F32), w, NULL), "conv2d", "[2, 784]",
               "dc_view");
  ASSERT_ERROR(dc_conv2d_f(dc_zeros(DC_SHAPE(1, 3, 3, 3), DC_F32), w, NULL), "conv2d", "larger",
               "padded input 3x3");
  ASSERT_ERROR(dc_conv2d_f(dc_zeros(DC_SHAPE(1, 3, 3, 3), DC_F32), w, NULL, .padding = {-1, 0}),
               "conv2d", ">= 0");
  ASSERT_ERROR(
      dc_conv2d_f(dc_zeros(DC_SHAPE(1, 3, 9, 9), DC_F32), w, dc_zeros(DC_SHAPE(7), DC_F32)),
      "conv2d", "bias", "[8]", "[7]");
  ASSERT_ERROR(dc_conv2d_f(dc_zeros(DC_SHAPE(1, 3, 9, 9), DC_F32), w, NULL, .groups = 2),
               "groups=2");
  ASSERT_ERROR(dc_conv2d_f(dc_zeros(DC_SHAPE(1, 3, 9, 9), DC_F32), w, NULL, .same_padding = true,
                           .stride = {2, 2}),
               "same", "stride 1");
  ASSERT_ERROR(dc_conv2d_f(dc_zeros(DC_SHAPE(1, 3, 9, 9), DC_F64), w, NULL), "float64", "float32");
  dc_scope_end();
}

/* ---- pooling ---- */

Test(nn_pool, max_pool_rules) {
  dc_scope_begin();
  /* ties go to the first maximum; NaN counts as the maximum */
  double v[] = {1, 3, 3, 0, 2, 3, 1, 0, NAN, 5, 1, 1, 0, 0, 1, 1};
  dc_tensor *x = leaf(dc_from_data(v, DC_SHAPE(1, 1, 4, 4), DC_F64));
  dc_tensor *y = dc_max_pool2d_f(x, .kernel = {2, 2});
  cr_assert_not_null(y, "%s", dc_last_error());
  cr_assert_eq(dc_item_at(y, 0), 3);
  cr_assert(isnan(dc_item_at(y, 2)));
  cr_assert_eq(dc_backward(y, .grad = dc_ones(DC_SHAPE(1, 1, 2, 2), DC_F64)), DC_OK);
  double want[] = {0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0};
  for (int i = 0; i < 16; i++) cr_assert_eq(dc_item_at(x->grad, i), want[i], "grad %d", i);
  /* ceil_mode: 5x5 with kernel 2 stride 2 gives 3x3; padding + ceil drops a window starting in
   * the right padding */
  dc_tensor *z = dc_zeros(DC_SHAPE(2, 3, 5, 5), DC_F32);
  cr_assert(dc_shape_equal(dc_shape_of(dc_max_pool2d_f(z, .kernel = {2}, .ceil_mode = true)),
                           DC_SHAPE(2, 3, 3, 3)));
  cr_assert(dc_shape_equal(dc_shape_of(dc_max_pool2d_f(z, .kernel = {2}, .ceil_mode = false)),
                           DC_SHAPE(2, 3, 2, 2)));
  cr_assert(dc_shape_equal(dc_shape_of(dc_max_pool2d_f(z, .kernel = {3}, .stride = {2},
                                                       .padding = {1, 1}, .ceil_mode = true)),
                           DC_SHAPE(2, 3, 3, 3)));
  dc_scope_end();
}

Test(nn_pool, fast_path_matches_generic) {
  dc_scope_begin();
  dc_manual_seed(3);
  dc_tensor *x = uniform(DC_SHAPE(3, 5, 9, 8), DC_F32, -1, 1);
  dc_tensor *y = dc_max_pool2d_f(x, .kernel = {2, 2});
  /* the same windows through the generic path (dilation 1 given as a separate case) */
  dc_tensor *x64 = dc_to_dtype(x, DC_F64);
  dc_tensor *y64 = dc_max_pool2d_f(x64, .kernel = {2, 2});
  assert_close(y, y64, 0, "2x2 fast path");
  dc_scope_end();
}

static dc_tensor *pool_fn(dc_tensor *const *in, int n, void *ud) {
  int kind = *(const int *)ud;
  dc_tensor *x = in[0];
  switch (kind) {
  case 0:
    return dc_max_pool2d_f(x, .kernel = {3, 2}, .stride = {2, 1}, .padding = {1, 1},
                           .ceil_mode = true);
  case 1:
    return dc_max_pool2d_f(x, .kernel = {2, 2}, .dilation = {2, 1});
  case 2:
    return dc_avg_pool2d_f(x, .kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1},
                           .ceil_mode = true);
  case 3:
    return dc_avg_pool2d_f(x, .kernel = {3, 2}, .stride = {2, 2}, .padding = {1, 1},
                           .exclude_pad = true, .ceil_mode = true);
  case 4:
    return dc_avg_pool2d_f(x, .kernel = {2, 2}, .divisor_override = 3);
  case 5:
    return dc_adaptive_avg_pool2d(x, 3, 2);
  case 6:
    return dc_adaptive_max_pool2d(x, 2, 3);
  case 7:
    return dc_max_pool2d_f(x, .kernel = {2, 2});
  }
  return NULL;
}

Test(nn_pool, gradcheck_float64) {
  dc_scope_begin();
  dc_manual_seed(4);
  for (int kind = 0; kind < 8; kind++) {
    /* distinct values so max pooling has no ties */
    dc_tensor *in[1] = {leaf(uniform(DC_SHAPE(2, 2, 7, 5), DC_F64, -1, 1))};
    gradcheck(pool_fn, in, 1, &kind);
  }
  dc_scope_end();
}

Test(nn_pool, avg_divisors) {
  dc_scope_begin();
  dc_tensor *x = dc_ones(DC_SHAPE(1, 1, 3, 3), DC_F64);
  dc_tensor *inc = dc_avg_pool2d_f(x, .kernel = {2, 2}, .stride = {2, 2}, .padding = {1, 1});
  dc_tensor *exc = dc_avg_pool2d_f(x, .kernel = {2, 2}, .stride = {2, 2}, .padding = {1, 1},
                                   .exclude_pad = true);
  cr_assert_eq(dc_item_at(inc, 0), 0.25); /* one real element over 4 */
  cr_assert_eq(dc_item_at(inc, 3), 1.0);
  cr_assert_eq(dc_item_at(exc, 0), 1.0);
  dc_tensor *a =
      dc_adaptive_avg_pool2d(dc_view(dc_arange(0, 10, 1, DC_F64), DC_SHAPE(1, 1, 10)), 1, 3);
  cr_assert_not_null(a, "%s", dc_last_error());
  /* windows [0,4), [3,7), [6,10) */
  cr_assert_float_eq(dc_item_at(a, 0), 1.5, 1e-12);
  cr_assert_float_eq(dc_item_at(a, 1), 4.5, 1e-12);
  cr_assert_float_eq(dc_item_at(a, 2), 7.5, 1e-12);
  dc_scope_end();
}

Test(nn_pool, bad_input) {
  dc_scope_begin();
  dc_tensor *x = dc_zeros(DC_SHAPE(1, 2, 3, 3), DC_F32);
  ASSERT_ERROR(dc_max_pool2d_f(x, .kernel = {5, 4}), "max_pool2d", "larger", "[1, 2, 3, 3]");
  cr_assert_not_null(dc_max_pool2d_f(x, .kernel = {5, 5}, .padding = {1, 1}), "padded input fits");
  ASSERT_ERROR(dc_max_pool2d_f(x, .kernel = {2, 2}, .padding = {2, 2}), "half the kernel");
  ASSERT_ERROR(dc_max_pool2d_f(x, .kernel = {0, 0}), "kernel size must be > 0");
  ASSERT_ERROR(dc_avg_pool2d_f(x, .kernel = {2, 2}, .stride = {-1, 1}), "negative");
  ASSERT_ERROR(dc_max_pool2d_f(dc_zeros(DC_SHAPE(4, 9), DC_F32), .kernel = {2, 2}), "[4, 9]",
               "[N, C, H, W]");
  ASSERT_ERROR(dc_adaptive_avg_pool2d(x, -1, 2), "adaptive_avg_pool2d", ">= 1");
  dc_scope_end();
}

/* ---- relu(a + b) as one op (ResNet's residual join) ---- */

static dc_tensor *add_relu_fn(dc_tensor *const *in, int n, void *ud) {
  (void)n, (void)ud;
  return dc__add_relu(in[0], in[1]);
}

/* float64 gradcheck away from the kink; float32 values and both gradients bit for bit those of
 * dc_relu(dc_add(a, b)), NaN kept; broadcasting falls back to the two ops */
Test(nn_add_relu, gradcheck_and_same_as_two_ops) {
  dc_scope_begin();
  dc_manual_seed(8);
  dc_tensor *a = uniform(DC_SHAPE(3, 4, 5), DC_F64, -2, 2),
            *b = uniform(DC_SHAPE(3, 4, 5), DC_F64, -2, 2);
  double *pa = dc_data(a), *pb = dc_data(b);
  for (int64_t i = 0; i < dc_numel(a); i++) /* |a + b| >= 0.1: no difference step crosses 0 */
    if (fabs(pa[i] + pb[i]) < 0.1) pa[i] += pa[i] + pb[i] < 0 ? -0.2 : 0.2;
  dc_tensor *in[2] = {leaf(a), leaf(b)};
  gradcheck(add_relu_fn, in, 2, NULL);
  dc_tensor *a32 = leaf(dc_randn(DC_SHAPE(2, 3, 33), DC_F32)),
            *b32 = leaf(dc_randn(DC_SHAPE(2, 3, 33), DC_F32));
  ((float *)dc_data(a32))[4] = NAN;
  dc_tensor *gy = dc_randn(DC_SHAPE(2, 3, 33), DC_F32), *y[2], *ga[2], *gb[2];
  for (int k = 0; k < 2; k++) {
    dc_zero_grad(a32), dc_zero_grad(b32);
    y[k] = k ? dc__add_relu(a32, b32) : dc_relu(dc_add(a32, b32));
    cr_assert_not_null(y[k], "%s", dc_last_error());
    cr_assert_eq(dc_backward(y[k], .grad = gy), DC_OK, "%s", dc_last_error());
    ga[k] = dc_clone(a32->grad), gb[k] = dc_clone(b32->grad);
  }
  cr_assert_str_eq(dc_grad_fn_name(y[1]), "add_relu");
  cr_assert(isnan(dc_item_at(y[1], 4)));
  dc_tensor *pairs[][2] = {{y[0], y[1]}, {ga[0], ga[1]}, {gb[0], gb[1]}};
  for (int p = 0; p < 3; p++)
    for (int64_t i = 0; i < dc_numel(pairs[p][0]); i++) {
      double u = dc_item_at(pairs[p][0], i), v = dc_item_at(pairs[p][1], i);
      cr_assert((isnan(u) && isnan(v)) || u == v, "pair %d element %lld: %g vs %g", p, (long long)i,
                u, v);
    }
  dc_tensor *row = leaf(dc_randn(DC_SHAPE(33), DC_F32)); /* broadcast: add, then relu */
  dc_tensor *yb = dc__add_relu(a32, row);
  cr_assert_not_null(yb, "%s", dc_last_error());
  cr_assert_str_eq(dc_grad_fn_name(yb), "relu");
  dc_scope_end();
}

/* ---- batch norm ---- */

typedef struct bn_case {
  bool training, affine, running;
} bn_case;

static dc_tensor *bn_fn(dc_tensor *const *in, int n, void *ud) {
  const bn_case *c = ud;
  dc_tensor *rm = NULL, *rv = NULL;
  if (c->running) { /* fresh stats each call: the update must not change later evaluations */
    rm = dc_full(DC_SHAPE(in[0]->shape[1]), 0.1, DC_F64);
    rv = dc_full(DC_SHAPE(in[0]->shape[1]), 1.7, DC_F64);
  }
  return dc_batch_norm(in[0], rm, rv, c->affine ? in[1] : NULL, c->affine ? in[2] : NULL,
                       c->training, 0.1, 1e-5);
}

Test(nn_batchnorm, gradcheck_float64) {
  dc_scope_begin();
  dc_manual_seed(5);
  bn_case cases[] = {
      {true, true, true}, {true, false, false}, {false, true, true}, {false, false, true}};
  dc_shape shapes[] = {DC_SHAPE(3, 4, 3, 2), DC_SHAPE(5, 3), DC_SHAPE(2, 3, 4)};
  for (int s = 0; s < 3; s++)
    for (int i = 0; i < 4; i++) {
      int64_t C = shapes[s].d[1];
      dc_tensor *in[3] = {leaf(uniform(shapes[s], DC_F64, -2, 2)),
                          leaf(uniform(DC_SHAPE(C), DC_F64, 0.5, 1.5)),
                          leaf(uniform(DC_SHAPE(C), DC_F64, -1, 1))};
      gradcheck(bn_fn, in, 3, &cases[i]);
    }
  dc_scope_end();
}

Test(nn_batchnorm, running_stats_and_eval) {
  dc_scope_begin();
  double v[] = {1, 2, 3, 4, 10, 20, 30, 40}; /* [N=2, C=2, S=2] */
  dc_tensor *x = dc_to_dtype(dc_from_data(v, DC_SHAPE(2, 2, 2), DC_F64), DC_F32);
  dc_tensor *rm = dc_zeros(DC_SHAPE(2), DC_F32), *rv = dc_ones(DC_SHAPE(2), DC_F32);
  dc_tensor *y = dc_batch_norm(x, rm, rv, NULL, NULL, true, 0.1, 1e-5);
  cr_assert_not_null(y, "%s", dc_last_error());
  /* channel 0: {1, 2, 10, 20}: mean 8.25, biased var 58.1875 */
  cr_assert_float_eq(dc_item_at(rm, 0), 0.825, 1e-5);
  cr_assert_float_eq(dc_item_at(rv, 0), 0.9 + 0.1 * 58.1875 * 4 / 3, 1e-4);
  cr_assert_float_eq(dc_item_at(y, 0), (1 - 8.25) / sqrt(58.1875 + 1e-5), 1e-5);
  /* eval uses the running stats */
  dc_tensor *e = dc_batch_norm(x, rm, rv, NULL, NULL, false, 0.1, 1e-5);
  cr_assert_float_eq(dc_item_at(e, 0), (1 - 0.825) / sqrt(dc_item_at(rv, 0) + 1e-5), 1e-5);
  cr_assert_float_eq(dc_item_at(rm, 0), 0.825, 1e-6, "eval must not update");
  dc_scope_end();
}

Test(nn_batchnorm, bad_input) {
  dc_scope_begin();
  dc_tensor *x = dc_zeros(DC_SHAPE(8, 16, 4, 4), DC_F32);
  ASSERT_ERROR(dc_batch_norm(x, NULL, NULL, dc_ones(DC_SHAPE(32), DC_F32), NULL, true, 0.1, 1e-5),
               "batch_norm", "[32]", "[8, 16, 4, 4]", "16 channels");
  ASSERT_ERROR(
      dc_batch_norm(dc_zeros(DC_SHAPE(1, 16), DC_F32), NULL, NULL, NULL, NULL, true, 0.1, 1e-5),
      "more than 1 value per channel", "[1, 16]");
  ASSERT_ERROR(
      dc_batch_norm(dc_zeros(DC_SHAPE(16), DC_F32), NULL, NULL, NULL, NULL, true, 0.1, 1e-5),
      "[16]", "dc_unsqueeze");
  dc_scope_end();
}

/* ---- dropout, hardtanh ---- */

Test(nn_dropout, masks_reproduce_and_scale) {
  dc_scope_begin();
  dc_tensor *x = dc_ones(DC_SHAPE(100, 100), DC_F32);
  dc_manual_seed(7);
  dc_tensor *a = dc_dropout(x, 0.3, true);
  dc_manual_seed(7);
  dc_tensor *b = dc_dropout(x, 0.3, true);
  assert_close(a, b, 0, "same seed, same mask");
  int64_t kept = 0;
  for (int64_t i = 0; i < 10000; i++) {
    double v = dc_item_at(a, i);
    cr_assert(v == 0 || fabs(v - 1 / 0.7) < 1e-6, "value %g", v);
    kept += v != 0;
  }
  cr_assert(kept > 6700 && kept < 7300, "kept %lld of 10000 at p=0.3", (long long)kept);
  assert_close(dc_dropout(x, 0.5, false), x, 0, "eval is identity");
  assert_close(dc_dropout(x, 0, true), x, 0, "p=0 is identity");
  assert_close(dc_dropout(x, 1, true), dc_zeros(DC_SHAPE(100, 100), DC_F32), 0, "p=1 zeroes");
  dc_tensor *c = dc_dropout2d(dc_ones(DC_SHAPE(4, 8, 3, 3), DC_F32), 0.5, true);
  for (int64_t p = 0; p < 32; p++)
    for (int64_t i = 1; i < 9; i++)
      cr_assert_eq(dc_item_at(c, p * 9 + i), dc_item_at(c, p * 9), "channel %lld not constant",
                   (long long)p);
  ASSERT_ERROR(dc_dropout(x, 1.5, true), "dropout", "[0, 1]", "1.5");
  dc_scope_end();
}

static dc_tensor *dropout_fn(dc_tensor *const *in, int n, void *ud) {
  dc_manual_seed(11); /* the same mask at every evaluation */
  return *(const int *)ud ? dc_dropout2d(in[0], 0.4, true) : dc_dropout(in[0], 0.4, true);
}

static dc_tensor *hardtanh_fn(dc_tensor *const *in, int n, void *ud) {
  return dc_hardtanh(in[0], -0.5, 0.7);
}

Test(nn_dropout, gradcheck_float64) {
  dc_scope_begin();
  dc_manual_seed(8);
  for (int k = 0; k < 2; k++) {
    dc_tensor *in[1] = {leaf(uniform(DC_SHAPE(3, 4, 2, 2), DC_F64, -1, 1))};
    gradcheck(dropout_fn, in, 1, &k);
  }
  dc_tensor *in[1] = {leaf(uniform(DC_SHAPE(4, 7), DC_F64, -1, 1))};
  gradcheck(hardtanh_fn, in, 1, NULL);
  dc_scope_end();
}

/* ---- losses ---- */

typedef struct loss_case {
  int kind;
  dc_reduction r;
} loss_case;

static dc_tensor *pw_loss_fn(dc_tensor *const *in, int n, void *ud) {
  const loss_case *c = ud;
  dc_tensor *x = in[0], *t = in[1];
  switch (c->kind) {
  case 0:
    return dc_mse_loss(x, t, c->r);
  case 1:
    return dc_l1_loss(x, t, c->r);
  case 2:
    return dc_smooth_l1_loss(x, t, c->r, 0.6);
  case 3:
    return dc_binary_cross_entropy(in[2], t, in[3], c->r);
  case 4:
    return dc_binary_cross_entropy_with_logits(x, t, in[3], in[4], c->r);
  case 5:
    return dc_hinge_loss(x, in[5], 1.0, c->r);
  case 6:
    return dc_mse_loss(x, in[6], c->r); /* broadcast target */
  case 7:
    return dc_binary_cross_entropy_with_logits(x, t, NULL, NULL, c->r);
  }
  return NULL;
}

Test(nn_loss, gradcheck_pointwise_float64) {
  dc_scope_begin();
  dc_manual_seed(9);
  for (int kind = 0; kind < 8; kind++)
    for (int r = 0; r < 3; r++) {
      dc_tensor *t = uniform(DC_SHAPE(3, 4), DC_F64, 0, 1);
      dc_tensor *pm = dc_from_data((double[]){1, -1, -1, 1, 1, 1, -1, 1, -1, -1, 1, -1},
                                   DC_SHAPE(3, 4), DC_F64);
      dc_tensor *in[7] = {leaf(uniform(DC_SHAPE(3, 4), DC_F64, -2, 2)),
                          leaf(t),
                          leaf(uniform(DC_SHAPE(3, 4), DC_F64, 0.1, 0.9)),
                          uniform(DC_SHAPE(4), DC_F64, 0.5, 2),
                          uniform(DC_SHAPE(4), DC_F64, 0.5, 3),
                          pm,
                          leaf(uniform(DC_SHAPE(4), DC_F64, -1, 1))};
      if (kind == 3) dc_requires_grad_(in[0], false); /* BCE takes in[2] as the input */
      loss_case c = {kind, (dc_reduction)r};
      gradcheck(pw_loss_fn, in, 7, &c);
    }
  dc_scope_end();
}

static dc_tensor *class_loss_fn(dc_tensor *const *in, int n, void *ud) {
  const int *c = ud;
  dc_tensor *t = c[2] ? in[2] : in[1];
  dc_reduction r = (dc_reduction)c[1];
  switch (c[0]) {
  case 0:
    return dc_cross_entropy(in[0], t, .reduction = r);
  case 1:
    return dc_cross_entropy(in[0], t, .reduction = r, .weight = in[3], .label_smoothing = 0.2,
                            .has_ignore_index = true, .ignore_index = 2);
  case 2:
    return dc_cross_entropy(in[0], t, .reduction = r, .label_smoothing = 0.3,
                            .has_ignore_index = true, .ignore_index = 2);
  case 3:
    return dc_nll_loss(in[0], t, .reduction = r, .weight = in[3]);
  case 4:
    return dc_multi_margin_loss(in[0], t, .reduction = r);
  case 5:
    return dc_multi_margin_loss(in[0], t, .reduction = r, .p = 2, .margin = 0.7, .weight = in[3]);
  }
  return NULL;
}

Test(nn_loss, gradcheck_class_losses_float64) {
  dc_scope_begin();
  dc_manual_seed(10);
  int64_t tv[] = {0, 2, 3, 1, 2};
  int64_t tv3[] = {0, 2, 3, 1, 2, 2, 0, 1, 3, 3, 2, 1, 0, 0, 2}; /* [5, 3] for input [5, 4, 3] */
  for (int kind = 0; kind < 6; kind++)
    for (int r = 0; r < 3; r++)
      for (int spatial = 0; spatial < (kind < 4 ? 2 : 1); spatial++) {
        dc_tensor *in[4] = {
            leaf(uniform(spatial ? DC_SHAPE(5, 4, 3) : DC_SHAPE(5, 4), DC_F64, -2, 2)),
            labels(tv, DC_SHAPE(5)), labels(tv3, DC_SHAPE(5, 3)),
            uniform(DC_SHAPE(4), DC_F64, 0.5, 2)};
        int c[3] = {kind, r, spatial};
        gradcheck(class_loss_fn, in, 4, c);
      }
  dc_scope_end();
}

Test(nn_loss, cross_entropy_values) {
  dc_scope_begin();
  /* logits [2, 3]; row 0 target 0, row 1 ignored (-100 is PyTorch's default ignore_index) */
  double v[] = {1, 2, 3, 0, 0, 0};
  dc_tensor *x = dc_from_data(v, DC_SHAPE(2, 3), DC_F64);
  dc_tensor *l = dc_cross_entropy(x, labels((int64_t[]){0, -100}, DC_SHAPE(2)));
  cr_assert_not_null(l, "%s", dc_last_error());
  double lse = log(exp(1) + exp(2) + exp(3));
  cr_assert_float_eq(dc_item(l), lse - 1, 1e-12);
  /* smoothing with an ignored row: both terms average over the one non-ignored row */
  dc_tensor *s =
      dc_cross_entropy(x, labels((int64_t[]){0, -100}, DC_SHAPE(2)), .label_smoothing = 0.3);
  double smooth0 = 3 * lse - 6;
  cr_assert_float_eq(dc_item(s), 0.7 * (lse - 1) + 0.1 * smooth0, 1e-12);
  /* weighted mean divides by the summed weights of the targets */
  dc_tensor *w = dc_from_data((double[]){2, 1, 1}, DC_SHAPE(3), DC_F64);
  dc_tensor *wl = dc_cross_entropy(x, labels((int64_t[]){0, 1}, DC_SHAPE(2)), .weight = w);
  cr_assert_float_eq(dc_item(wl), (2 * (lse - 1) + log(3)) / 3, 1e-12);
  dc_scope_end();
}

Test(nn_loss, bad_labels_and_shapes) {
  dc_scope_begin();
  dc_tensor *x = dc_zeros(DC_SHAPE(4, 10), DC_F32);
  ASSERT_ERROR(dc_cross_entropy(x, labels((int64_t[]){1, 2, 10, 3}, DC_SHAPE(4))), "cross_entropy",
               "label 10", "position [2]", "10 classes");
  ASSERT_ERROR(dc_cross_entropy(dc_zeros(DC_SHAPE(2, 3, 2), DC_F32),
                                labels((int64_t[]){0, 1, 2, -5}, DC_SHAPE(2, 2))),
               "label -5", "position [1, 1]", "3 classes");
  ASSERT_ERROR(dc_nll_loss(x, labels((int64_t[]){1, 2, 3}, DC_SHAPE(3))), "nll_loss", "[3]",
               "[4, 10]", "expected target [4]");
  ASSERT_ERROR(dc_cross_entropy(x, dc_zeros(DC_SHAPE(4), DC_F32)), "int64 class indices");
  ASSERT_ERROR(dc_multi_margin_loss(x, labels((int64_t[]){1, 2, 11, 3}, DC_SHAPE(4))), "label 11");
  ASSERT_ERROR(dc_binary_cross_entropy(dc_full(DC_SHAPE(2), 1.5, DC_F32),
                                       dc_zeros(DC_SHAPE(2), DC_F32), NULL, DC_REDUCTION_MEAN),
               "between 0 and 1", "dc_sigmoid");
  ASSERT_ERROR(dc_binary_cross_entropy_with_logits(x, dc_zeros(DC_SHAPE(10), DC_F32), NULL, NULL,
                                                   DC_REDUCTION_MEAN),
               "same shape");
  ASSERT_ERROR(dc_mse_loss(x, dc_zeros(DC_SHAPE(3), DC_F32), DC_REDUCTION_MEAN), "broadcast");
  ASSERT_ERROR(dc_mse_loss(x, x, (dc_reduction)7), "reduction");
  dc_scope_end();
}

/* ---- create_graph: fused backward kernels refuse it, dropout and hardtanh support it ---- */

Test(nn_functional, create_graph) {
  dc_scope_begin();
  dc_manual_seed(12);
  dc_tensor *x = leaf(uniform(DC_SHAPE(2, 3), DC_F64, -2, 2));
  dc_tensor *l = dc_mse_loss(x, dc_zeros(DC_SHAPE(2, 3), DC_F64), DC_REDUCTION_SUM);
  cr_assert_eq(dc_backward(l, .create_graph = true), DC_ERR_UNSUPPORTED);
  cr_assert(strstr(dc_last_error(), "mse_loss") && strstr(dc_last_error(), "create_graph"), "%s",
            dc_last_error());
  dc_clear_error();
  dc_zero_grad(x);
  /* s = sum(hardtanh(x)^2): ds/dx = 2 h(x) [inside], differentiable again */
  dc_tensor *h = dc_hardtanh(x, -1, 1);
  dc_tensor *s = dc_sum_all(dc_mul(h, h));
  cr_assert_eq(dc_backward(s, .create_graph = true), DC_OK, "%s", dc_last_error());
  cr_assert(x->grad && x->grad->requires_grad, "the gradient must stay in the graph");
  for (int64_t i = 0; i < 6; i++) {
    double v = dc_item_at(x, i), want = fabs(v) < 1 ? 2 * v : 0;
    cr_assert_float_eq(dc_item_at(x->grad, i), want, 1e-12);
  }
  dc_zero_grad(x);
  dc_scope_end();
}

/* ---- ownership: a training-like step leaves nothing behind ---- */

Test(nn_functional, no_leaks_over_steps) {
  dc_tensor *w = leaf(dc_ones(DC_SHAPE(4, 3, 3, 3), DC_F32));
  dc_tensor *rm = dc_zeros(DC_SHAPE(4), DC_F32), *rv = dc_ones(DC_SHAPE(4), DC_F32);
  int64_t live = dc_live_tensors();
  for (int step = 0; step < 3; step++) {
    dc_scope_begin();
    dc_tensor *x = dc_ones(DC_SHAPE(2, 3, 8, 8), DC_F32);
    dc_tensor *h = dc_conv2d_f(x, w, NULL, .padding = {1, 1});
    h = dc_batch_norm(h, rm, rv, NULL, NULL, true, 0.1, 1e-5);
    h = dc_dropout(dc_max_pool2d_f(h, .kernel = {2}), 0.2, true);
    h = dc_adaptive_avg_pool2d(h, 1, 1);
    dc_tensor *l =
        dc_cross_entropy(dc_view(h, DC_SHAPE(2, 4)), labels((int64_t[]){1, 3}, DC_SHAPE(2)));
    cr_assert_eq(dc_backward(l), DC_OK, "%s", dc_last_error());
    dc_zero_grad(w);
    dc_scope_end();
    cr_assert_eq(dc_live_tensors(), live, "step %d leaked %lld tensors", step,
                 (long long)(dc_live_tensors() - live));
  }
  dc_free(w), dc_free(rm), dc_free(rv);
}
