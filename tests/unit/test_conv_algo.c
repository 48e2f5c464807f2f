/* Convolution algorithms (dc_set_conv_algo): Winograd against direct and a float64 reference
 * (forward, input and weight gradients), bitwise the same on 1 and 2 threads and run to run,
 * AUTO choosing per layer as documented, and the mode a forward ran with kept for its backward. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <omp.h>
#include <string.h>

typedef struct run_out {
  dc_tensor *y, *gx, *gw, *gb; /* y [N, K, OH, OW], gx like x, gw like w, gb [K] */
} run_out;

/* conv2d (3x3, padding 1) forward and backward of x [N, C, H, W], w [K, C, 3, 3], b [K] with
 * upstream gradient gy, in mode algo; results are clones that outlive the graph. */
static run_out run(dc_conv_algo algo, dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_tensor *gy) {
  dc_conv_algo prev = dc_set_conv_algo(algo);
  dc_zero_grad(x), dc_zero_grad(w), dc_zero_grad(b);
  dc_tensor *y = dc_conv2d_f(x, w, b, .padding = {1, 1});
  cr_assert_not_null(y, "%s", dc_last_error());
  cr_assert_eq(dc_backward(y, .grad = gy), DC_OK, "%s", dc_last_error());
  run_out r = {dc_clone(y), dc_clone(x->grad), dc_clone(w->grad), dc_clone(b->grad)};
  dc_free(y);
  dc_set_conv_algo(prev);
  return r;
}

/* max |a - ref| / max |ref| over float32 a and float64 ref */
static double rel_err(const dc_tensor *a, const dc_tensor *ref) {
  const float *pa = dc_data(a);
  const double *pr = dc_data(ref);
  double worst = 0, scale = 0;
  for (int64_t i = 0; i < dc_numel(a); i++) {
    worst = fmax(worst, fabs(pa[i] - pr[i]));
    scale = fmax(scale, fabs(pr[i]));
  }
  return worst / scale;
}

static bool bitwise(const dc_tensor *a, const dc_tensor *b) {
  return dc_numel(a) == dc_numel(b) &&
         memcmp(dc_data(a), dc_data(b), (size_t)dc_numel(a) * sizeof(float)) == 0;
}

static dc_tensor *leaf(dc_tensor *t) { return dc_requires_grad_(t, true); }

/* A VGG/ResNet-like layer: 3x3, stride 1, 32 -> 48 channels, 4 x 32 x 20 x 12 (edges that do
 * not fill 4x4 tiles). */
typedef struct layer {
  dc_tensor *x, *w, *b, *gy;
} layer;

static layer make_layer(int64_t n, int64_t c, int64_t k, int64_t h, int64_t wd) {
  layer l = {leaf(dc_randn(DC_SHAPE(n, c, h, wd), DC_F32)),
             leaf(dc_mul_scalar(dc_randn(DC_SHAPE(k, c, 3, 3), DC_F32), 1.0 / sqrt(9.0 * c))),
             leaf(dc_randn(DC_SHAPE(k), DC_F32)), dc_randn(DC_SHAPE(n, k, h, wd), DC_F32)};
  return l;
}

Test(conv_algo, winograd_close_to_float64_like_direct) {
  dc_scope_begin();
  dc_manual_seed(7);
  layer l = make_layer(4, 32, 48, 20, 12);
  run_out d = run(DC_CONV_ALGO_DIRECT, l.x, l.w, l.b, l.gy);
  run_out wg = run(DC_CONV_ALGO_WINOGRAD, l.x, l.w, l.b, l.gy);
  /* the float64 reference on the same values */
  dc_tensor *x64 = leaf(dc_to_dtype(dc_detach(l.x), DC_F64));
  dc_tensor *w64 = leaf(dc_to_dtype(dc_detach(l.w), DC_F64));
  dc_tensor *b64 = leaf(dc_to_dtype(dc_detach(l.b), DC_F64));
  run_out r = run(DC_CONV_ALGO_AUTO, x64, w64, b64, dc_to_dtype(l.gy, DC_F64));
  const char *names[] = {"output", "input gradient", "weight gradient", "bias gradient"};
  dc_tensor *dv[] = {d.y, d.gx, d.gw, d.gb}, *wv[] = {wg.y, wg.gx, wg.gw, wg.gb};
  dc_tensor *rv[] = {r.y, r.gx, r.gw, r.gb};
  for (int i = 0; i < 4; i++) {
    double ed = rel_err(dv[i], rv[i]), ew = rel_err(wv[i], rv[i]);
    cr_log_info("%s: direct %.2e, winograd %.2e of max |value|", names[i], ed, ew);
    cr_assert_lt(ed, 1e-5, "direct %s off by %g of its scale", names[i], ed);
    cr_assert_lt(ew, 5e-5, "winograd %s off by %g of its scale", names[i], ew);
  }
  /* Winograd really ran (oneDNN offers it with AVX-512): its rounding differs from direct's */
  if (__builtin_cpu_supports("avx512f"))
    cr_assert(!bitwise(d.y, wg.y), "winograd output equals direct bit for bit");
  dc_scope_end();
}

Test(conv_algo, same_bits_on_1_and_2_threads) {
  dc_scope_begin();
  dc_manual_seed(8);
  layer l = make_layer(8, 64, 64, 16, 16);
  int threads = omp_get_max_threads();
  for (int a = DC_CONV_ALGO_DIRECT; a <= DC_CONV_ALGO_WINOGRAD; a++) {
    omp_set_num_threads(1);
    run_out one = run((dc_conv_algo)a, l.x, l.w, l.b, l.gy);
    omp_set_num_threads(2);
    run_out two = run((dc_conv_algo)a, l.x, l.w, l.b, l.gy);
    run_out again = run((dc_conv_algo)a, l.x, l.w, l.b, l.gy);
    cr_assert(bitwise(one.y, two.y) && bitwise(two.y, again.y), "algo %d: output differs", a);
    cr_assert(bitwise(one.gx, two.gx) && bitwise(two.gx, again.gx), "algo %d: grad x differs", a);
    cr_assert(bitwise(one.gw, two.gw) && bitwise(two.gw, again.gw), "algo %d: grad w differs", a);
    cr_assert(bitwise(one.gb, two.gb), "algo %d: grad b differs", a);
  }
  omp_set_num_threads(threads);
  dc_scope_end();
}

/* AUTO is Winograd where the documented rule says so, direct elsewhere (seen in the bits). */
Test(conv_algo, auto_chooses_per_layer) {
  if (!__builtin_cpu_supports("avx512f")) cr_skip_test("oneDNN has no Winograd without AVX-512");
  dc_scope_begin();
  dc_manual_seed(9);
  struct {
    int64_t n, c, k, h, w;
    bool winograd;
  } cases[] = {
      {8, 32, 32, 16, 16, true},  /* 8 x 4 x 4 = 128 tiles */
      {8, 3, 32, 16, 16, false},  /* 3 input channels */
      {8, 32, 8, 16, 16, false},  /* 8 output channels */
      {128, 32, 32, 2, 2, false}, /* 2x2 outputs: a 6x6 tile for 4 values */
      {2, 32, 32, 16, 16, false}, /* 2 x 4 x 4 = 32 tiles */
      {4, 32, 32, 16, 16, true},  /* 64 tiles */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    layer l = make_layer(cases[i].n, cases[i].c, cases[i].k, cases[i].h, cases[i].w);
    run_out au = run(DC_CONV_ALGO_AUTO, l.x, l.w, l.b, l.gy);
    run_out d = run(DC_CONV_ALGO_DIRECT, l.x, l.w, l.b, l.gy);
    run_out wg = run(DC_CONV_ALGO_WINOGRAD, l.x, l.w, l.b, l.gy);
    run_out *want = cases[i].winograd ? &wg : &d;
    cr_assert(bitwise(au.y, want->y) && bitwise(au.gx, want->gx) && bitwise(au.gw, want->gw),
              "case %zu: auto did not run %s", i, cases[i].winograd ? "winograd" : "direct");
  }
  dc_scope_end();
}

/* The backward runs with the mode its forward saw, whatever the mode is by then. */
Test(conv_algo, backward_keeps_the_forward_mode) {
  dc_scope_begin();
  dc_manual_seed(10);
  layer l = make_layer(4, 32, 32, 16, 16);
  run_out wg = run(DC_CONV_ALGO_WINOGRAD, l.x, l.w, l.b, l.gy);
  dc_conv_algo prev = dc_set_conv_algo(DC_CONV_ALGO_WINOGRAD);
  dc_zero_grad(l.x), dc_zero_grad(l.w), dc_zero_grad(l.b);
  dc_tensor *y = dc_conv2d_f(l.x, l.w, l.b, .padding = {1, 1});
  cr_assert_not_null(y);
  dc_set_conv_algo(DC_CONV_ALGO_DIRECT);
  cr_assert_eq(dc_backward(y, .grad = l.gy), DC_OK, "%s", dc_last_error());
  cr_assert(bitwise(l.x->grad, wg.gx) && bitwise(l.w->grad, wg.gw));
  dc_set_conv_algo(prev);
  dc_scope_end();
}

Test(conv_algo, names_and_modes) {
  cr_assert_eq(dc_conv_algo_parse("auto"), DC_CONV_ALGO_AUTO);
  cr_assert_eq(dc_conv_algo_parse("direct"), DC_CONV_ALGO_DIRECT);
  cr_assert_eq(dc_conv_algo_parse("winograd"), DC_CONV_ALGO_WINOGRAD);
  cr_assert_eq(dc_conv_algo_parse("Winograd"), -1);
  cr_assert_eq(dc_conv_algo_parse(NULL), -1);
  for (int a = DC_CONV_ALGO_AUTO; a <= DC_CONV_ALGO_WINOGRAD; a++)
    cr_assert_eq(dc_conv_algo_parse(dc_conv_algo_name((dc_conv_algo)a)), a);
  cr_assert_null(dc_conv_algo_name((dc_conv_algo)3));
  dc_conv_algo first = dc_get_conv_algo();
  cr_assert_eq(first, DC_CONV_ALGO_AUTO, "the default (no $DEEPC_CONV_ALGO) is auto");
  cr_assert_eq(dc_set_conv_algo(DC_CONV_ALGO_DIRECT), DC_CONV_ALGO_AUTO);
  cr_assert_eq(dc_get_conv_algo(), DC_CONV_ALGO_DIRECT);
  cr_assert_eq(dc_set_conv_algo((dc_conv_algo)42), DC_CONV_ALGO_DIRECT);
  cr_assert_eq(dc_get_conv_algo(), DC_CONV_ALGO_AUTO, "an unknown mode means auto");
}
