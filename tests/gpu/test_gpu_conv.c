/* The cuDNN convolution (src/backend/cuda/conv.c) against the CPU's direct convolution: the
 * forward and every gradient (x, w, b) through the public API over a set of geometries (groups,
 * depthwise, dilation, stride 2, asymmetric "same" padding, 1x1, no bias), float32 and float64;
 * the backend entry with each gradient asked for alone; backward runs repeating bit for bit
 * (deterministic algorithms); and float64 gradient checks on the device. Skips without a GPU. */
#include "gpu.h"

#include "backend/nn-kernels.h"

/* cuDNN sums in another order (and other algorithms: FFT, Winograd) than the CPU's double
 * accumulation: float32 within 1e-4 relative plus 1e-3 absolute on inputs in [-3, 3) */
#define TOL_CONV_F32 1e-4, 1e-3
#define TOL_CONV_F64 1e-10, 1e-10

static void suite_in(void) {
  gpu_scope_in();
  dc_set_conv_algo(DC_CONV_ALGO_DIRECT); /* the CPU oracle: the direct convolution */
}
TestSuite(gpu_conv, .init = suite_in, .fini = gpu_scope_out);

typedef struct conv_case {
  const char *name;
  int64_t n, c, h, w, k, kh, kw;
  bool bias;
  dc_conv2d_opts o;
} conv_case;

static const conv_case CASES[] = {
    {"3x3 pad 1", 2, 3, 9, 8, 4, 3, 3, true, .o = {.padding = {1, 1}}},
    {"3x3 stride 2", 2, 4, 11, 10, 6, 3, 3, true, .o = {.stride = {2, 2}, .padding = {1, 1}}},
    {"5x3 stride (2, 1) pad (2, 0)", 1, 3, 12, 9, 2, 5, 3, false,
     .o = {.stride = {2, 1}, .padding = {2, 0}}},
    {"dilation 2", 2, 3, 10, 10, 4, 3, 3, true, .o = {.padding = {2, 2}, .dilation = {2, 2}}},
    {"groups 2", 2, 4, 8, 8, 6, 3, 3, true, .o = {.padding = {1, 1}, .groups = 2}},
    {"depthwise", 2, 6, 7, 9, 6, 3, 3, true, .o = {.padding = {1, 1}, .groups = 6}},
    {"1x1", 3, 8, 5, 6, 5, 1, 1, true, .o = {.groups = 1}},
    {"1x1 stride 2", 2, 4, 7, 7, 3, 1, 1, false, .o = {.stride = {2, 2}}},
    {"same, 4x4 (pads 1/2)", 2, 3, 8, 7, 4, 4, 4, true, .o = {.same_padding = true}},
    {"same, 2x3 dilation (3, 1)", 1, 2, 9, 6, 3, 2, 3, true,
     .o = {.same_padding = true, .dilation = {3, 1}}},
    {"same, grouped 4x2", 2, 4, 6, 6, 4, 4, 2, false, .o = {.same_padding = true, .groups = 2}},
};

/* runs c on the cpu and on cuda (same inputs), forward and backward, and compares */
static void check_case(const conv_case *c, dc_dtype dt, uint64_t seed) {
  char what[160];
  int64_t cg = c->c / (c->o.groups ? c->o.groups : 1);
  dc_tensor *x = inputs(DC_SHAPE(c->n, c->c, c->h, c->w), dt, seed, false);
  dc_tensor *w = inputs(DC_SHAPE(c->k, cg, c->kh, c->kw), dt, seed + 1, false);
  dc_tensor *b = c->bias ? inputs(DC_SHAPE(c->k), dt, seed + 2, false) : NULL;
  dc_tensor *xg = to_gpu(x), *wg = to_gpu(w), *bg = b ? to_gpu(b) : NULL;
  dc_tensor *leaves[2][3] = {{x, w, b}, {xg, wg, bg}};
  for (int d = 0; d < 2; d++)
    for (int i = 0; i < 3; i++)
      if (leaves[d][i]) dc_requires_grad_(leaves[d][i], true);
  dc_tensor *y = dc_conv2d_opt(x, w, b, c->o);
  cr_assert(y, "%s cpu: %s", c->name, dc_last_error());
  dc_tensor *yg = dc_conv2d_opt(xg, wg, bg, c->o);
  cr_assert(yg, "%s cuda: %s", c->name, dc_last_error());
  cr_assert_eq(yg->device, DC_CUDA);
  bool f64 = dt == DC_F64;
  snprintf(what, sizeof what, "conv2d %s: y", c->name);
  if (f64)
    expect_close(y, yg, TOL_CONV_F64, what);
  else
    expect_close(y, yg, TOL_CONV_F32, what);
  dc_tensor *gy = inputs(dc_shape_of(y), dt, seed + 3, false), *gyg = to_gpu(gy);
  cr_assert_eq(dc_backward(y, .grad = gy), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_backward(yg, .grad = gyg), DC_OK, "%s cuda backward: %s", c->name,
               dc_last_error());
  static const char *const names[3] = {"gx", "gw", "gb"};
  for (int i = 0; i < 3; i++) {
    if (!leaves[0][i]) continue;
    cr_assert(leaves[1][i]->grad, "%s: no %s on cuda", c->name, names[i]);
    snprintf(what, sizeof what, "conv2d %s: %s", c->name, names[i]);
    if (f64)
      expect_close(leaves[0][i]->grad, leaves[1][i]->grad, TOL_CONV_F64, what);
    else
      expect_close(leaves[0][i]->grad, leaves[1][i]->grad, TOL_CONV_F32, what);
  }
}

Test(gpu_conv, geometries_match_cpu_float32) {
  GPU_OR_SKIP();
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
    check_case(&CASES[i], DC_F32, 200 + 10 * i);
}

Test(gpu_conv, geometries_match_cpu_float64) {
  GPU_OR_SKIP();
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
    check_case(&CASES[i], DC_F64, 400 + 10 * i);
}

/* 3x3 padding (pl, pr) stride 1 geometry of x [2, 4, 6, 7], w [6, 2, 3, 3] (groups 2) */
static dc_conv2d_geom geom(int64_t pl, int64_t pr) {
  dc_conv2d_geom g;
  memset(&g, 0, sizeof g);
  g.n = 2, g.c = 4, g.h = 6, g.w = 7, g.k = 6, g.kh = 3, g.kw = 3, g.groups = 2;
  for (int i = 0; i < 2; i++) {
    g.stride[i] = g.dilation[i] = 1;
    g.pad_l[i] = pl;
    g.pad_r[i] = pr;
  }
  g.oh = g.h + pl + pr - 2;
  g.ow = g.w + pl + pr - 2;
  g.algo = DC_CONV_ALGO_DIRECT;
  return g;
}

/* the entry with gx, gw, gb each asked for alone (the others NULL), padding symmetric and not */
Test(gpu_conv, backward_entry_each_gradient_alone) {
  GPU_OR_SKIP();
  int64_t pads[2][2] = {{1, 1}, {0, 2}};
  for (int p = 0; p < 2; p++) {
    dc_conv2d_geom g = geom(pads[p][0], pads[p][1]);
    dc_tensor *x = inputs(DC_SHAPE(2, 4, 6, 7), DC_F64, 501, false), *xg = to_gpu(x);
    dc_tensor *w = inputs(DC_SHAPE(6, 2, 3, 3), DC_F64, 502, false), *wg = to_gpu(w);
    dc_tensor *b = inputs(DC_SHAPE(6), DC_F64, 503, false), *bg = to_gpu(b);
    dc_tensor *y = dc__new(DC_SHAPE(2, 6, g.oh, g.ow), DC_F64, DC_CPU);
    dc_tensor *yg = dc__new(DC_SHAPE(2, 6, g.oh, g.ow), DC_F64, DC_CUDA);
    cr_assert_eq(cpu_be()->nn->conv2d_forward(y, x, w, b, &g), DC_OK, "%s", dc_last_error());
    cr_assert_eq(gpu_be()->nn->conv2d_forward(yg, xg, wg, bg, &g), DC_OK, "%s", dc_last_error());
    expect_close(y, yg, TOL_CONV_F64, "conv2d_forward entry");
    dc_tensor *gy = inputs(DC_SHAPE(2, 6, g.oh, g.ow), DC_F64, 504, false), *gyg = to_gpu(gy);
    dc_tensor *cpu[3] = {empty_like_on(x, DC_F64, DC_CPU), empty_like_on(w, DC_F64, DC_CPU),
                         empty_like_on(b, DC_F64, DC_CPU)};
    dc_tensor *gpu[3] = {empty_like_on(x, DC_F64, DC_CUDA), empty_like_on(w, DC_F64, DC_CUDA),
                         empty_like_on(b, DC_F64, DC_CUDA)};
    static const char *const names[3] = {"gx alone", "gw alone", "gb alone"};
    for (int i = 0; i < 3; i++) {
      dc_tensor *c3[3] = {NULL, NULL, NULL}, *g3[3] = {NULL, NULL, NULL};
      c3[i] = cpu[i];
      g3[i] = gpu[i];
      cr_assert_eq(cpu_be()->nn->conv2d_backward(c3[0], c3[1], c3[2], gy, x, w, &g), DC_OK);
      cr_assert_eq(gpu_be()->nn->conv2d_backward(g3[0], g3[1], g3[2], gyg, xg, wg, &g), DC_OK,
                   "%s: %s", names[i], dc_last_error());
      expect_close(cpu[i], gpu[i], TOL_CONV_F64, names[i]);
    }
  }
}

/* two backward runs of the same layer give the same bits (deterministic cuDNN algorithms) */
Test(gpu_conv, backward_repeats_bit_for_bit) {
  GPU_OR_SKIP();
  dc_tensor *x = to_gpu(inputs(DC_SHAPE(8, 16, 20, 20), DC_F32, 601, false));
  dc_tensor *w = to_gpu(inputs(DC_SHAPE(32, 16, 3, 3), DC_F32, 602, false));
  dc_tensor *gy = to_gpu(inputs(DC_SHAPE(8, 32, 20, 20), DC_F32, 603, false));
  dc_requires_grad_(x, true);
  dc_requires_grad_(w, true);
  void *first[2] = {NULL, NULL};
  size_t nb[2];
  for (int run = 0; run < 3; run++) {
    dc_zero_grad(x);
    dc_zero_grad(w);
    dc_tensor *y = dc_conv2d_f(x, w, NULL, .padding = {1});
    cr_assert(y, "%s", dc_last_error());
    cr_assert_eq(dc_backward(y, .grad = gy), DC_OK, "%s", dc_last_error());
    dc_tensor *gr[2] = {x->grad, w->grad};
    for (int i = 0; i < 2; i++) {
      size_t n;
      void *b = bytes_of(gr[i], &n);
      if (run == 0) {
        first[i] = b;
        nb[i] = n;
        continue;
      }
      cr_expect(n == nb[i] && memcmp(b, first[i], n) == 0, "run %d: %s differs from run 0", run,
                i ? "gw" : "gx");
      free(b);
    }
  }
  free(first[0]);
  free(first[1]);
}

static dc_tensor *f_conv(dc_tensor *const *in, int n, void *ud) {
  const dc_conv2d_opts *o = ud;
  return dc_tanh(dc_conv2d_opt(in[0], in[1], in[2], *o));
}

Test(gpu_conv, gradcheck_on_the_device) {
  GPU_OR_SKIP();
  dc_conv2d_opts opts[] = {
      {.padding = {1, 1}, .stride = {2, 2}, .groups = 2},
      {.padding = {2, 1}, .dilation = {2, 1}},
      {.same_padding = true}, /* 4x2 kernel: pads (1, 2) and (0, 1) */
  };
  int64_t khw[3][2] = {{3, 3}, {3, 3}, {4, 2}};
  for (int i = 0; i < 3; i++) {
    int64_t cg = opts[i].groups ? 4 / opts[i].groups : 4;
    dc_tensor *in[3] = {
        to_gpu(inputs(DC_SHAPE(2, 4, 6, 5), DC_F64, 700 + i, false)),
        to_gpu(inputs(DC_SHAPE(4, cg, khw[i][0], khw[i][1]), DC_F64, 710 + i, false)),
        to_gpu(inputs(DC_SHAPE(4), DC_F64, 720 + i, false))};
    for (int k = 0; k < 3; k++) dc_requires_grad_(in[k], true);
    cr_expect(dc_gradcheck(f_conv, in, 3, &opts[i]), "conv2d case %d: %s", i, dc_last_error());
  }
}
