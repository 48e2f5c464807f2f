/* The CUDA pooling kernels' arithmetic (src/backend/cuda/pool-math.h, the functions pool.cu runs
 * one per output or input position) looped on the host over CPU tensors and compared bit for bit
 * with the CPU backend's pooling (cpu/nn/pool.c): max (values and argmax, ties, NaN, -inf,
 * dilation, ceil mode), avg (padding in or out of the divisor, divisor_override), adaptive avg /
 * max, and every backward. Runs without a GPU: it checks the math the GPU kernels launch. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda/pool-math.h"

static void scope_in(void) { dc_scope_begin(); }
static void scope_out(void) { dc_scope_end(); }
TestSuite(cuda_pool_math, .init = scope_in, .fini = scope_out);

enum { MAX, AVG, ADAPTIVE_AVG, ADAPTIVE_MAX };

static const struct dc_nn_kernels *cpu_nn(void) { return dc__backend(DC_CPU)->nn; }

typedef struct win {
  int kh, kw, sh, sw, ph, pw, dh, dw;
  bool ceil, exclude_pad;
  int divisor;
} win;

static dc_pool2d_geom geom(int64_t planes, int64_t h, int64_t w, win o) {
  dc_pool2d_geom g;
  memset(&g, 0, sizeof g);
  g.planes = planes;
  g.h = h;
  g.w = w;
  int64_t k[2] = {o.kh, o.kw}, s[2] = {o.sh, o.sw}, p[2] = {o.ph, o.pw}, d[2] = {o.dh, o.dw};
  for (int i = 0; i < 2; i++) {
    g.kernel[i] = k[i];
    g.stride[i] = s[i];
    g.pad[i] = p[i];
    g.dilation[i] = d[i] ? d[i] : 1;
  }
  g.count_include_pad = !o.exclude_pad;
  g.divisor = o.divisor;
  g.oh = dc_conv_out_size(h, o.kh, o.sh, o.ph, (int)g.dilation[0], o.ceil);
  g.ow = dc_conv_out_size(w, o.kw, o.sw, o.pw, (int)g.dilation[1], o.ceil);
  cr_assert(g.oh >= 1 && g.ow >= 1, "bad test geometry");
  return g;
}

static dc_pool2d_geom adaptive_geom(int64_t planes, int64_t h, int64_t w, int64_t oh, int64_t ow) {
  dc_pool2d_geom g;
  memset(&g, 0, sizeof g);
  g.planes = planes;
  g.h = h;
  g.w = w;
  g.oh = oh;
  g.ow = ow;
  return g;
}

/* values in a few levels (many ties), a NaN, infinities and -0 among them; dtype dt */
static dc_tensor *input(int64_t p, int64_t h, int64_t w, dc_dtype dt, uint64_t seed) {
  dc_manual_seed(seed);
  dc_tensor *u = dc_rand(DC_SHAPE(p, h, w), DC_F64);
  cr_assert(u, "%s", dc_last_error());
  double *v = dc_data(u);
  int64_t n = dc_numel(u);
  for (int64_t i = 0; i < n; i++) v[i] = floor(8.0 * v[i]) - 4.0 + (i % 3 == 0 ? 0.25 * v[i] : 0);
  static const double special[] = {NAN, -INFINITY, INFINITY, -0.0, 0.0};
  for (int64_t i = 0; i < 5 && 7 * i + 3 < n; i++) v[7 * i + 3] = special[i];
  if (n > 40) v[n - 2] = -INFINITY;
  dc_tensor *t = dc_to_dtype(u, dt);
  cr_assert(t, "%s", dc_last_error());
  return t;
}

static dc_tensor *empty(int64_t p, int64_t h, int64_t w, dc_dtype dt) {
  dc_tensor *t = dc_empty(DC_SHAPE(p, h, w), dt);
  cr_assert(t, "%s", dc_last_error());
  return t;
}

static double at(const dc_tensor *t, int64_t i) {
  return dc__pool_ld(dc_data(t), t->dtype == DC_F64, i);
}

static bool same(double a, double b) {
  return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b));
}

static void expect_same(const dc_tensor *cpu, const double *mine, const char *what,
                        const dc_pool2d_geom *g) {
  int64_t n = dc_numel(cpu), bad = 0;
  for (int64_t i = 0; i < n; i++)
    if (!same(at(cpu, i), mine[i]) && bad++ < 4)
      cr_log_error("%s (%s, %lldx%lld -> %lldx%lld): element %lld: cpu %.17g, pool-math %.17g",
                   what, dc_dtype_name(cpu->dtype), (long long)g->h, (long long)g->w,
                   (long long)g->oh, (long long)g->ow, (long long)i, at(cpu, i), mine[i]);
  cr_expect_eq(bad, 0, "%s (%s): %lld of %lld elements differ from the cpu's", what,
               dc_dtype_name(cpu->dtype), (long long)bad, (long long)n);
}

/* forward of kind over x with the pool-math functions, as pool.cu's threads do */
static void forward_math(int kind, const dc_pool2d_geom *g, const dc_tensor *x, double *y,
                         int32_t *idx) {
  bool f64 = x->dtype == DC_F64;
  const void *px = dc_data(x);
  for (int64_t p = 0; p < g->planes; p++)
    for (int64_t oh = 0; oh < g->oh; oh++)
      for (int64_t ow = 0; ow < g->ow; ow++) {
        int64_t o = (p * g->oh + oh) * g->ow + ow;
        int32_t b = 0;
        double v = kind == MAX ? dc__pool_max_at(g, px, f64, p, oh, ow, &b)
                   : kind == AVG
                       ? dc__pool_avg_at(g, px, f64, p, oh, ow)
                       : dc__pool_adaptive_at(g, px, f64, p, oh, ow, kind == ADAPTIVE_MAX, &b);
        y[o] = f64 ? v : (double)(float)v;
        idx[o] = b;
      }
}

static void backward_math(int kind, const dc_pool2d_geom *g, const dc_tensor *gy,
                          const int32_t *idx, bool f64, double *gx) {
  const void *pgy = dc_data(gy);
  for (int64_t p = 0; p < g->planes; p++)
    for (int64_t ih = 0; ih < g->h; ih++)
      for (int64_t iw = 0; iw < g->w; iw++) {
        double v = kind == AVG            ? dc__pool_avg_grad_at(g, pgy, f64, p, ih, iw)
                   : kind == ADAPTIVE_AVG ? dc__pool_adaptive_avg_grad_at(g, pgy, f64, p, ih, iw)
                                          : dc__pool_max_grad_at(g, pgy, idx, f64, p, ih, iw);
        gx[(p * g->h + ih) * g->w + iw] = f64 ? v : (double)(float)v;
      }
}

static int cpu_forward(int kind, dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                       const dc_pool2d_geom *g) {
  switch (kind) {
  case MAX:
    return cpu_nn()->max_pool2d_forward(y, idx, x, g);
  case AVG:
    return cpu_nn()->avg_pool2d_forward(y, x, g);
  case ADAPTIVE_AVG:
    return cpu_nn()->adaptive_avg_pool2d_forward(y, x, g);
  case ADAPTIVE_MAX:
    return cpu_nn()->adaptive_max_pool2d_forward(y, idx, x, g);
  }
  return DC_ERR_ARG;
}

static int cpu_backward(int kind, dc_tensor *gx, const dc_tensor *gy, const dc_tensor *idx,
                        const dc_pool2d_geom *g) {
  switch (kind) {
  case MAX:
  case ADAPTIVE_MAX:
    return cpu_nn()->max_pool2d_backward(gx, gy, idx, g);
  case AVG:
    return cpu_nn()->avg_pool2d_backward(gx, gy, g);
  case ADAPTIVE_AVG:
    return cpu_nn()->adaptive_avg_pool2d_backward(gx, gy, g);
  }
  return DC_ERR_ARG;
}

/* forward (values and, for max, indices) and backward of kind in both dtypes */
static void check(int kind, dc_pool2d_geom g, uint64_t seed) {
  static const char *const names[] = {"max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
                                      "adaptive_max_pool2d"};
  dc_dtype dts[2] = {DC_F32, DC_F64};
  bool is_max = kind == MAX || kind == ADAPTIVE_MAX;
  for (int k = 0; k < 2; k++) {
    dc_tensor *x = input(g.planes, g.h, g.w, dts[k], seed);
    dc_tensor *y = empty(g.planes, g.oh, g.ow, dts[k]);
    dc_tensor *idx = dc_empty(DC_SHAPE(g.planes, g.oh, g.ow), DC_I32);
    cr_assert_eq(cpu_forward(kind, y, is_max ? idx : NULL, x, &g), DC_OK, "%s", dc_last_error());
    int64_t no = dc_numel(y), ni = dc_numel(x);
    double *my = malloc(sizeof(double) * (size_t)no), *mgx = malloc(sizeof(double) * (size_t)ni);
    int32_t *midx = malloc(sizeof(int32_t) * (size_t)no);
    forward_math(kind, &g, x, my, midx);
    expect_same(y, my, names[kind], &g);
    if (is_max) {
      const int32_t *ci = dc_data(idx);
      int64_t bad = 0;
      for (int64_t i = 0; i < no; i++)
        if (ci[i] != midx[i] && bad++ < 4)
          cr_log_error("%s indices: element %lld: cpu %d, pool-math %d", names[kind], (long long)i,
                       ci[i], midx[i]);
      cr_expect_eq(bad, 0, "%s (%s): %lld indices differ", names[kind], dc_dtype_name(dts[k]),
                   (long long)bad);
    }
    dc_tensor *gy = input(g.planes, g.oh, g.ow, dts[k], seed + 1);
    dc_tensor *gx = empty(g.planes, g.h, g.w, dts[k]);
    cr_assert_eq(cpu_backward(kind, gx, gy, idx, &g), DC_OK, "%s", dc_last_error());
    backward_math(kind, &g, gy, dc_data(idx), dts[k] == DC_F64, mgx);
    expect_same(gx, mgx, "backward", &g);
    free(my);
    free(mgx);
    free(midx);
  }
}

Test(cuda_pool_math, max_pool_matches_cpu) {
  check(MAX, geom(6, 9, 11, (win){.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1}), 1);
  check(MAX, geom(5, 8, 10, (win){.kh = 2, .kw = 2, .sh = 2, .sw = 2}), 2); /* the 2x2 path */
  check(MAX, geom(4, 7, 9, (win){.kh = 2, .kw = 2, .sh = 2, .sw = 2, .ceil = true}), 3);
  check(
      MAX,
      geom(3, 10, 9, (win){.kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1, .dh = 2, .dw = 2}),
      4);
  check(MAX,
        geom(3, 11, 8,
             (win){.kh = 3, .kw = 2, .sh = 2, .sw = 1, .ph = 1, .dh = 1, .dw = 2, .ceil = true}),
        5);
  check(MAX, geom(2, 6, 6, (win){.kh = 4, .kw = 4, .sh = 1, .sw = 1, .ph = 2, .pw = 2}), 6);
  check(MAX,
        geom(2, 9, 7, (win){.kh = 2, .kw = 3, .sh = 3, .sw = 2, .ph = 1, .pw = 1, .ceil = true}),
        7);
}

Test(cuda_pool_math, avg_pool_matches_cpu) {
  check(AVG, geom(6, 9, 11, (win){.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1}), 11);
  check(AVG,
        geom(6, 9, 11,
             (win){.kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .exclude_pad = true}),
        12);
  check(AVG,
        geom(4, 7, 8, (win){.kh = 2, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .ceil = true}),
        13);
  check(AVG,
        geom(4, 7, 8,
             (win){.kh = 2,
                   .kw = 3,
                   .sh = 2,
                   .sw = 2,
                   .ph = 1,
                   .pw = 1,
                   .ceil = true,
                   .exclude_pad = true}),
        14);
  check(AVG,
        geom(3, 8, 8, (win){.kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1, .divisor = 5}),
        15);
  check(AVG, geom(3, 8, 8, (win){.kh = 2, .kw = 2, .sh = 2, .sw = 2}), 16);
}

Test(cuda_pool_math, adaptive_pools_match_cpu) {
  int64_t shapes[][4] = {{5, 7, 3, 2}, {4, 4, 4, 4}, {7, 5, 3, 4},
                         {6, 9, 1, 1}, {3, 3, 5, 7}, {10, 13, 4, 6}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    int64_t *s = shapes[i];
    check(ADAPTIVE_AVG, adaptive_geom(3, s[0], s[1], s[2], s[3]), 20 + i);
    check(ADAPTIVE_MAX, adaptive_geom(3, s[0], s[1], s[2], s[3]), 30 + i);
  }
}
