/* The CUDA pooling kernels (src/backend/cuda/pool.cu) against the CPU's, bit for bit: max
 * pooling (values, int32 argmax with the CPU's tie-breaking and NaN rule, dilation, ceil mode),
 * avg pooling (count_include_pad, divisor_override), adaptive avg / max, and every gradient,
 * through the public API and the backend entries, inputs with ties, NaN and infinities; plus
 * float64 gradient checks on the device. Skips without a GPU. */
#include "gpu.h"

#include "backend/nn-kernels.h"

TestSuite(gpu_pool, .init = gpu_scope_in, .fini = gpu_scope_out);

/* inputs() with many ties: values rounded to quarters */
static dc_tensor *tied(dc_shape s, dc_dtype dt, uint64_t seed) {
  dc_tensor *x = inputs(s, DC_F64, seed, true);
  double *p = dc_data(x);
  for (int64_t i = 8; i < dc_numel(x); i++) p[i] = floor(p[i] * 4.0) / 4.0;
  dc_tensor *t = dc__new(s, dt, DC_CPU);
  cr_assert(t && cpu_be()->ew->copy(t, x) == DC_OK, "%s", dc_last_error());
  return t;
}

enum { MAX, AVG, ADAPTIVE_AVG, ADAPTIVE_MAX };

typedef struct pool_case {
  const char *name;
  int kind;
  dc_pool2d_opts o;
  int64_t out[2]; /* adaptive */
} pool_case;

static const pool_case CASES[] = {
    {"max 3x3 s2 p1", MAX, .o = {.kernel = {3}, .stride = {2}, .padding = {1}}},
    {"max 2x2", MAX, .o = {.kernel = {2}}},
    {"max 2x2 ceil", MAX, .o = {.kernel = {2}, .ceil_mode = true}},
    {"max 3x3 dilation 2 p1 s1", MAX,
     .o = {.kernel = {3}, .stride = {1}, .padding = {1}, .dilation = {2}}},
    {"max 3x2 s(2,1) p(1,0) d(1,2) ceil", MAX,
     .o = {.kernel = {3, 2},
           .stride = {2, 1},
           .padding = {1, 0},
           .dilation = {1, 2},
           .ceil_mode = true}},
    {"avg 3x3 s2 p1", AVG, .o = {.kernel = {3}, .stride = {2}, .padding = {1}}},
    {"avg 3x3 s2 p1 exclude_pad", AVG,
     .o = {.kernel = {3}, .stride = {2}, .padding = {1}, .exclude_pad = true}},
    {"avg 2x3 ceil p1", AVG,
     .o = {.kernel = {2, 3}, .stride = {2}, .padding = {1}, .ceil_mode = true}},
    {"avg 2x3 ceil p1 exclude_pad", AVG,
     .o =
         {.kernel = {2, 3}, .stride = {2}, .padding = {1}, .ceil_mode = true, .exclude_pad = true}},
    {"avg 3x3 s1 p1 divisor 5", AVG,
     .o = {.kernel = {3}, .stride = {1}, .padding = {1}, .divisor_override = 5}},
    {"adaptive avg 3x2", ADAPTIVE_AVG, .out = {3, 2}},
    {"adaptive avg 1x1", ADAPTIVE_AVG, .out = {1, 1}},
    {"adaptive avg 5x13 (larger)", ADAPTIVE_AVG, .out = {5, 13}},
    {"adaptive max 3x4", ADAPTIVE_MAX, .out = {3, 4}},
    {"adaptive max 1x1", ADAPTIVE_MAX, .out = {1, 1}},
    {"adaptive max 11x7 (larger)", ADAPTIVE_MAX, .out = {11, 7}},
};

static dc_tensor *run(const pool_case *c, dc_tensor *x) {
  switch (c->kind) {
  case MAX:
    return dc_max_pool2d_opt(x, c->o);
  case AVG:
    return dc_avg_pool2d_opt(x, c->o);
  case ADAPTIVE_AVG:
    return dc_adaptive_avg_pool2d(x, c->out[0], c->out[1]);
  case ADAPTIVE_MAX:
    return dc_adaptive_max_pool2d(x, c->out[0], c->out[1]);
  }
  return NULL;
}

/* forward and input gradient of c on both devices, bit for bit */
static void check_case(const pool_case *c, dc_dtype dt, uint64_t seed) {
  char what[160];
  dc_tensor *x = tied(DC_SHAPE(2, 3, 9, 10), dt, seed), *xg = to_gpu(x);
  dc_requires_grad_(x, true);
  dc_requires_grad_(xg, true);
  dc_tensor *y = run(c, x), *yg = run(c, xg);
  cr_assert(y, "%s cpu: %s", c->name, dc_last_error());
  cr_assert(yg, "%s cuda: %s", c->name, dc_last_error());
  snprintf(what, sizeof what, "%s: y", c->name);
  expect_close(y, yg, EXACT, what);
  dc_tensor *gy = inputs(dc_shape_of(y), dt, seed + 1, false), *gyg = to_gpu(gy);
  cr_assert_eq(dc_backward(y, .grad = gy), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_backward(yg, .grad = gyg), DC_OK, "%s cuda backward: %s", c->name,
               dc_last_error());
  snprintf(what, sizeof what, "%s: gx", c->name);
  expect_close(x->grad, xg->grad, EXACT, what);
}

Test(gpu_pool, ops_match_cpu_bit_for_bit) {
  GPU_OR_SKIP();
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
      check_case(&CASES[i], dts[k], 800 + 10 * i);
}

/* the max entries' int32 indices (h * W + w in the plane) equal the CPU's */
Test(gpu_pool, max_indices_match_cpu) {
  GPU_OR_SKIP();
  dc_pool2d_geom g;
  memset(&g, 0, sizeof g);
  g.planes = 6, g.h = 9, g.w = 10;
  g.kernel[0] = g.kernel[1] = 3;
  g.stride[0] = g.stride[1] = 2;
  g.pad[0] = g.pad[1] = 1;
  g.dilation[0] = g.dilation[1] = 1;
  g.oh = dc_conv_out_size(9, 3, 2, 1, 1, true);
  g.ow = dc_conv_out_size(10, 3, 2, 1, 1, true);
  dc_dtype dts[2] = {DC_F32, DC_F64};
  for (int k = 0; k < 2; k++) {
    dc_tensor *x = tied(DC_SHAPE(6, 9, 10), dts[k], 901 + k), *xg = to_gpu(x);
    dc_tensor *y = dc__new(DC_SHAPE(6, g.oh, g.ow), dts[k], DC_CPU);
    dc_tensor *yg = dc__new(DC_SHAPE(6, g.oh, g.ow), dts[k], DC_CUDA);
    dc_tensor *i = dc__new(DC_SHAPE(6, g.oh, g.ow), DC_I32, DC_CPU);
    dc_tensor *ig = dc__new(DC_SHAPE(6, g.oh, g.ow), DC_I32, DC_CUDA);
    cr_assert_eq(cpu_be()->nn->max_pool2d_forward(y, i, x, &g), DC_OK);
    cr_assert_eq(gpu_be()->nn->max_pool2d_forward(yg, ig, xg, &g), DC_OK, "%s", dc_last_error());
    expect_close(y, yg, EXACT, "max_pool2d_forward entry: y");
    expect_close(i, ig, EXACT, "max_pool2d_forward entry: idx");
    /* and without indices (no backward will run) */
    cr_assert_eq(gpu_be()->nn->max_pool2d_forward(yg, NULL, xg, &g), DC_OK, "%s", dc_last_error());
    expect_close(y, yg, EXACT, "max_pool2d_forward entry without idx: y");
    dc_pool2d_geom ga;
    memset(&ga, 0, sizeof ga);
    ga.planes = 6, ga.h = 9, ga.w = 10, ga.oh = 4, ga.ow = 3;
    dc_tensor *ya = dc__new(DC_SHAPE(6, 4, 3), dts[k], DC_CPU);
    dc_tensor *yag = dc__new(DC_SHAPE(6, 4, 3), dts[k], DC_CUDA);
    dc_tensor *ia = dc__new(DC_SHAPE(6, 4, 3), DC_I32, DC_CPU);
    dc_tensor *iag = dc__new(DC_SHAPE(6, 4, 3), DC_I32, DC_CUDA);
    cr_assert_eq(cpu_be()->nn->adaptive_max_pool2d_forward(ya, ia, x, &ga), DC_OK);
    cr_assert_eq(gpu_be()->nn->adaptive_max_pool2d_forward(yag, iag, xg, &ga), DC_OK, "%s",
                 dc_last_error());
    expect_close(ya, yag, EXACT, "adaptive_max_pool2d_forward entry: y");
    expect_close(ia, iag, EXACT, "adaptive_max_pool2d_forward entry: idx");
  }
}

static dc_tensor *f_pools(dc_tensor *const *in, int n, void *ud) {
  dc_tensor *x = in[0];
  dc_tensor *a = dc_max_pool2d_f(x, .kernel = {3}, .stride = {2}, .padding = {1});
  dc_tensor *b = dc_avg_pool2d_f(x, .kernel = {2, 3}, .stride = {2}, .padding = {1},
                                 .ceil_mode = true, .exclude_pad = true);
  dc_tensor *c = dc_adaptive_avg_pool2d(x, 3, 2);
  dc_tensor *d = dc_adaptive_max_pool2d(x, 2, 3);
  return dc_add(dc_add(dc_sum_all(dc_square(a)), dc_sum_all(dc_square(b))),
                dc_add(dc_sum_all(dc_square(c)), dc_sum_all(dc_square(d))));
}

Test(gpu_pool, gradcheck_on_the_device) {
  GPU_OR_SKIP();
  /* distinct values, so the maxima do not move under the finite differences */
  dc_tensor *x = inputs(DC_SHAPE(2, 2, 7, 6), DC_F64, 950, false);
  double *p = dc_data(x);
  for (int64_t i = 0; i < dc_numel(x); i++) p[i] = (double)((i * 37) % 168) / 16.0 - 5.0;
  dc_tensor *in[1] = {dc_requires_grad_(to_gpu(x), true)};
  cr_expect(dc_gradcheck(f_pools, in, 1, NULL), "pools: %s", dc_last_error());
}
