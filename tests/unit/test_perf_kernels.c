/* The speed paths of issue 9 against the plain code they replace: the AVX-512 2x2 max pooling
 * against the portable kernel (values and argmax indices bit for bit, NaN and ties included, row
 * widths around the 16-lane blocks); batch norm fused with ReLU against the two ops; the AVX-512
 * uniform generator against Philox. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/nn/nn-cpu.h"
#include "core/philox.h"
#include "nn/nn-impl.h"

/* y and the input gradient of a 2x2 max pool of x with gradient gy (positions of the maxima). */
static void pool_run(dc_tensor *x, dc_tensor *gy, dc_tensor **y, dc_tensor **gx) {
  dc_zero_grad(x);
  *y = dc_max_pool2d_f(x, .kernel = {2, 2});
  cr_assert_not_null(*y, "%s", dc_last_error());
  cr_assert_eq(dc_backward(*y, .grad = gy), DC_OK, "%s", dc_last_error());
  *gx = dc_clone(x->grad);
}

static void assert_bitwise(const dc_tensor *a, const dc_tensor *b, const char *what) {
  cr_assert_eq(dc_numel(a), dc_numel(b));
  const float *pa = dc_data(a), *pb = dc_data(b);
  for (int64_t i = 0; i < dc_numel(a); i++) {
    bool same = (isnan(pa[i]) && isnan(pb[i])) || memcmp(&pa[i], &pb[i], sizeof *pa) == 0;
    cr_assert(same, "%s: element %lld: %g vs %g", what, (long long)i, pa[i], pb[i]);
  }
}

Test(perf_kernels, max_pool_2x2_avx512_matches_portable) {
  static const int64_t widths[] = {2, 7, 28, 31, 32, 33, 64, 66};
  for (size_t k = 0; k < sizeof widths / sizeof *widths; k++) {
    dc_scope_begin();
    dc_manual_seed(k + 1);
    int64_t W = widths[k], H = 6;
    dc_tensor *x = dc_randn(DC_SHAPE(2, 3, H, W), DC_F32);
    float *p = dc_data(x);
    /* ties (a rounded copy of the data) and NaNs in some windows */
    for (int64_t i = 0; i < dc_numel(x); i++) {
      if (i % 5 == 0) p[i] = roundf(p[i]);
      if (i % 37 == 3) p[i] = NAN;
    }
    dc_requires_grad_(x, true);
    dc_tensor *y0, *g0, *y1, *g1;
    dc_tensor *gy = dc_randn(DC_SHAPE(2, 3, H / 2, W / 2), DC_F32);
    dc__cpu_pool_scalar = true;
    pool_run(x, gy, &y0, &g0);
    dc__cpu_pool_scalar = false;
    pool_run(x, gy, &y1, &g1);
    assert_bitwise(y1, y0, "max pool values");
    assert_bitwise(g1, g0, "max pool gradient (argmax positions)");
    dc_zero_grad(x);
    dc_scope_end();
  }
}

/* Other windows without dilation (the AVX-512 gather kernel) against the portable one, bit for
 * bit: ResNet's 3x3 stride-2 padded stem pooling, stride 1, ceil mode, a 2x3 window, rows
 * around 16 outputs, with ties and NaNs; with and without a graph (argmax indices or none). */
Test(perf_kernels, max_pool_avx512_matches_portable) {
  static const struct {
    int64_t h, w;
    int kh, kw, sh, sw, ph, pw;
    bool ceil;
  } cases[] = {
      {12, 12, 3, 3, 2, 2, 1, 1, false}, {9, 35, 3, 3, 2, 2, 1, 1, false},
      {7, 33, 3, 3, 1, 1, 1, 1, false},  {10, 37, 3, 3, 2, 2, 0, 0, true},
      {8, 40, 2, 3, 2, 3, 1, 1, true},   {5, 17, 2, 2, 2, 2, 0, 0, false},
      {6, 50, 5, 5, 3, 3, 2, 2, false},
  };
  for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
    for (int graph = 0; graph < 2; graph++) {
      dc_scope_begin();
      dc_manual_seed(k + 11);
      dc_tensor *x = dc_randn(DC_SHAPE(2, 3, cases[k].h, cases[k].w), DC_F32);
      float *p = dc_data(x);
      for (int64_t i = 0; i < dc_numel(x); i++) {
        if (i % 5 == 0) p[i] = roundf(p[i]);
        if (i % 37 == 3) p[i] = NAN;
        if (i % 41 == 7) p[i] = -INFINITY;
      }
      dc_requires_grad_(x, graph);
      dc_tensor *y[2], *gx[2] = {NULL, NULL};
      for (int s = 0; s < 2; s++) {
        dc__cpu_pool_scalar = s == 0;
        dc_zero_grad(x);
        y[s] = dc_max_pool2d_f(x, .kernel = {cases[k].kh, cases[k].kw},
                               .stride = {cases[k].sh, cases[k].sw},
                               .padding = {cases[k].ph, cases[k].pw}, .ceil_mode = cases[k].ceil);
        cr_assert_not_null(y[s], "%s", dc_last_error());
        if (graph) {
          dc_manual_seed(3);
          dc_tensor *gy = dc_randn(dc_shape_of(y[s]), DC_F32);
          cr_assert_eq(dc_backward(y[s], .grad = gy), DC_OK, "%s", dc_last_error());
          gx[s] = dc_clone(x->grad);
        }
      }
      dc__cpu_pool_scalar = false;
      char what[64];
      snprintf(what, sizeof what, "case %zu%s: values", k, graph ? " (graph)" : "");
      assert_bitwise(y[1], y[0], what);
      if (graph) assert_bitwise(gx[1], gx[0], "max pool gradient (argmax positions)");
      dc_scope_end();
    }
  }
}

/* relu(batch_norm(x)) through the fused op and through the two ops, training and eval mode:
 * outputs, running statistics and the gradients of x, weight and bias. */
static void bn_relu_case(dc_dtype dt, bool training, double tol) {
  dc_scope_begin();
  dc_manual_seed(7);
  dc_tensor *x = dc_requires_grad_(dc_randn(DC_SHAPE(8, 5, 33, 33), dt), true);
  dc_tensor *w = dc_requires_grad_(dc_randn(DC_SHAPE(5), dt), true);
  dc_tensor *b = dc_requires_grad_(dc_randn(DC_SHAPE(5), dt), true);
  dc_tensor *gy = dc_randn(DC_SHAPE(8, 5, 33, 33), dt);
  dc_tensor *rm[2], *rv[2], *y[2], *g[2][3];
  for (int k = 0; k < 2; k++) {
    rm[k] = dc_zeros(DC_SHAPE(5), dt);
    rv[k] = dc_ones(DC_SHAPE(5), dt);
    y[k] = k ? dc__batch_norm_relu(x, rm[k], rv[k], w, b, training, 0.1, 1e-5)
             : dc_relu(dc_batch_norm(x, rm[k], rv[k], w, b, training, 0.1, 1e-5));
    cr_assert_not_null(y[k], "%s", dc_last_error());
    cr_assert_eq(dc_backward(y[k], .grad = gy), DC_OK, "%s", dc_last_error());
    g[k][0] = dc_clone(x->grad), g[k][1] = dc_clone(w->grad), g[k][2] = dc_clone(b->grad);
    dc_zero_grad(x), dc_zero_grad(w), dc_zero_grad(b);
  }
  dc_tensor *pairs[][2] = {{y[0], y[1]},       {rm[0], rm[1]},     {rv[0], rv[1]},
                           {g[0][0], g[1][0]}, {g[0][1], g[1][1]}, {g[0][2], g[1][2]}};
  const char *names[] = {"y", "running_mean", "running_var", "grad x", "grad weight", "grad bias"};
  for (int p = 0; p < 6; p++)
    for (int64_t i = 0; i < dc_numel(pairs[p][0]); i++) {
      double a = dc_item_at(pairs[p][0], i), c = dc_item_at(pairs[p][1], i);
      cr_assert(fabs(a - c) <= tol * (1 + fabs(a)), "%s %s, %s [%lld]: %.9g vs %.9g (fused)",
                dc_dtype_name(dt), training ? "train" : "eval", names[p], (long long)i, a, c);
    }
  dc_scope_end();
}

Test(perf_kernels, batch_norm_relu_fused_matches_separate) {
  bn_relu_case(DC_F64, true, 0);
  bn_relu_case(DC_F64, false, 0);
  /* float32: FMA contraction may round the fused expression differently (an ulp) */
  bn_relu_case(DC_F32, true, 1e-6);
  bn_relu_case(DC_F32, false, 1e-6);
}

/* dc_rand's AVX-512 Philox (16 blocks at once) gives the scalar generator's bits: element i of
 * a uniform draw is a + (b - a) * u01d(philox(seed, 0, counter + i)), for sizes around the
 * 16-lane blocks and offsets that carry into the counter's high word. */
Test(perf_kernels, uniform_avx512_matches_scalar_philox) {
  static const int64_t sizes[] = {1, 15, 16, 17, 1000, 4099};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    dc_scope_begin();
    dc_manual_seed(1000 + k);
    dc_tensor *t = dc_empty(DC_SHAPE(sizes[k]), DC_F32);
    uint64_t seed = 0x123456789abcdefull + k, ctr = 0xfffffff0ull + 3 * k; /* carries at 2^32 */
    cr_assert_eq(dc__cpu_rand.uniform(t, seed, ctr, -2.0, 3.0), DC_OK);
    const float *p = dc_data(t);
    for (int64_t i = 0; i < sizes[k]; i++) {
      dc__u32x4 r = dc__philox(seed, 0, ctr + (uint64_t)i);
      float want = (float)(-2.0 + 5.0 * dc__u01d(r.v[0], r.v[1]));
      cr_assert(memcmp(&want, &p[i], sizeof want) == 0, "size %lld [%lld]: %.9g vs %.9g",
                (long long)sizes[k], (long long)i, p[i], want);
    }
    dc_scope_end();
  }
}
