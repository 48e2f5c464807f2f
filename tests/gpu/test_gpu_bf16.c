/* The CUDA bfloat16 entries under the autocast contract (every operand bf16, float32
 * accumulation, each output rounded to bf16 once) against the CPU computing the same thing: the
 * bf16 inputs widened to float32 (exact), the CPU's float32 kernel, its result rounded to bf16
 * once (core's rounding). gemm_batched (cuBLAS), the fused linear (cuBLASLt, float32 and bf16;
 * float64 takes gemm + bias), convolution forward and every gradient (cuDNN), bf16 backward
 * repeating bit for bit. Skips without a GPU.
 * Tolerance TOL_BF16: 1 bf16 ulp of the CPU's value (the two float32 sums differ in order, so a
 * value near a rounding boundary may round either way) plus 1e-3 absolute (float32 order effects
 * on sums of up to a few hundred products of size <= 9, where cancellation leaves a small value);
 * an estimate until it has run on a GPU. */
#include "gpu.h"

#include "backend/nn-kernels.h"

#define TOL_BF16 1.0, 1e-3
/* float32 linear: cuBLASLt and oneDNN sum in other orders */
#define TOL_LINEAR_F32 1e-5, 2e-4

TestSuite(gpu_bf16, .init = gpu_scope_in, .fini = gpu_scope_out);

/* t (cpu) converted to dtype dt on the cpu: widening is exact, narrowing rounds once */
static dc_tensor *as_dtype(const dc_tensor *t, dc_dtype dt) {
  dc_tensor *o = empty_like_on(t, dt, DC_CPU);
  cr_assert_eq(cpu_be()->ew->copy(o, t), DC_OK, "%s", dc_last_error());
  return o;
}

/* one bf16 ulp at a (8 significant bits) */
static double bf16_ulp(double a) {
  int e = 0;
  if (a == 0.0 || !isfinite(a)) return 0.0;
  frexp(a, &e); /* a = m 2^e, 0.5 <= |m| < 1 */
  return ldexp(1.0, e - 8);
}

/* ref (bf16 on the cpu) and got (bf16 on cuda): |a - b| <= ulps * ulp(a) + atol */
static void expect_bf16_close(const dc_tensor *ref, const dc_tensor *got, double ulps, double atol,
                              const char *what) {
  cr_assert_eq(dc_numel(ref), dc_numel(got), "%s: sizes", what);
  cr_assert_eq(got->dtype, DC_BF16, "%s: cuda result is %s", what, dc_dtype_name(got->dtype));
  double *a = host_values(ref), *b = host_values(got);
  int64_t n = dc_numel(ref), bad = 0, exact = 0;
  for (int64_t i = 0; i < n; i++) {
    exact += a[i] == b[i];
    bool ok = (isnan(a[i]) && isnan(b[i])) || a[i] == b[i] ||
              (isfinite(a[i]) && fabs(a[i] - b[i]) <= ulps * bf16_ulp(a[i]) + atol);
    if (!ok && bad++ < 4)
      cr_log_error("%s: element %lld: cpu %.9g, cuda %.9g", what, (long long)i, a[i], b[i]);
  }
  free(a);
  free(b);
  cr_log_info("%s: %lld of %lld elements equal bit for bit", what, (long long)exact, (long long)n);
  cr_expect_eq(bad, 0, "%s (bf16): %lld of %lld elements differ", what, (long long)bad,
               (long long)n);
}

/* ---- gemm_batched ---- */

static void gemm_case(int64_t B, int64_t M, int64_t N, int64_t K, bool ta, bool tb, bool bcast_a,
                      float beta) {
  dc_tensor *a = ta ? inputs(DC_SHAPE(bcast_a ? 1 : B, K, M), DC_BF16, 71, false)
                    : inputs(DC_SHAPE(bcast_a ? 1 : B, M, K), DC_BF16, 71, false);
  dc_tensor *b = tb ? inputs(DC_SHAPE(B, N, K), DC_BF16, 72, false)
                    : inputs(DC_SHAPE(B, K, N), DC_BF16, 72, false);
  dc_tensor *o = inputs(DC_SHAPE(B, M, N), DC_BF16, 73, false), *og = to_gpu(o);
  dc_tensor *o32 = as_dtype(o, DC_F32);
  cr_assert_eq(cpu_be()->linalg->gemm_batched(o32, as_dtype(a, DC_F32), as_dtype(b, DC_F32), ta, tb,
                                              1.0f, beta),
               DC_OK, "%s", dc_last_error());
  cr_assert_eq(gpu_be()->linalg->gemm_batched(og, to_gpu(a), to_gpu(b), ta, tb, 1.0f, beta), DC_OK,
               "%s", dc_last_error());
  char what[96];
  snprintf(what, sizeof what, "bf16 gemm B%lld M%lld N%lld K%lld ta%d tb%d bcast%d beta %g",
           (long long)B, (long long)M, (long long)N, (long long)K, ta, tb, bcast_a, beta);
  expect_bf16_close(as_dtype(o32, DC_BF16), og, TOL_BF16, what);
}

Test(gpu_bf16, gemm_batched_matches_cpu_float32_rounded_once) {
  GPU_OR_SKIP();
  for (int t = 0; t < 4; t++) {
    gemm_case(3, 17, 33, 65, t & 1, t & 2, false, 0.0f);
    gemm_case(3, 17, 33, 65, t & 1, t & 2, true, 1.0f); /* C read as bf16, one rounding */
  }
  gemm_case(2, 64, 128, 256, false, true, false, 0.0f);
  gemm_case(1, 5, 7, 0, false, false, false, 0.5f); /* K = 0: out = beta out */
  gemm_case(1, 1, 9, 4, false, true, false, 0.0f);  /* M = 1 */
}

/* ---- linear ---- */

/* x [M, K]; w [N, K], or a transposed view of a [K, N] tensor (w_t); bias [N] or none; x_off:
 * x and bias views starting one element in (pointers cuBLASLt sees misaligned) */
static void linear_case(dc_dtype dt, int64_t M, int64_t N, int64_t K, bool bias, bool w_t,
                        bool x_off) {
  dc_tensor *xb = inputs(DC_SHAPE(M * K + 1), dt, 91, false), *xbg = to_gpu(xb);
  int64_t xs[2] = {M, K}, xst[2] = {K, 1}, off = x_off ? 1 : 0;
  dc_tensor *x = dc__alias(xb, 2, xs, xst, xb->offset + off);
  dc_tensor *xg = dc__alias(xbg, 2, xs, xst, xbg->offset + off);
  dc_tensor *w, *wg;
  if (w_t) {
    dc_tensor *wk = inputs(DC_SHAPE(K, N), dt, 92, false), *wkg = to_gpu(wk);
    int64_t ws[2] = {N, K}, wst[2] = {1, N};
    w = dc__alias(wk, 2, ws, wst, wk->offset);
    wg = dc__alias(wkg, 2, ws, wst, wkg->offset);
  } else {
    w = inputs(DC_SHAPE(N, K), dt, 92, false);
    wg = to_gpu(w);
  }
  dc_tensor *b = NULL, *bg = NULL;
  if (bias) { /* with x_off a view one element in too */
    dc_tensor *bb = inputs(DC_SHAPE(N + 1), dt, 93, false), *bbg = to_gpu(bb);
    int64_t bs[1] = {N}, bst[1] = {1};
    b = dc__alias(bb, 1, bs, bst, bb->offset + off);
    bg = dc__alias(bbg, 1, bs, bst, bbg->offset + off);
  }
  dc_tensor *og = dc__new(DC_SHAPE(M, N), dt, DC_CUDA);
  cr_assert(og && x && xg && w && wg, "%s", dc_last_error());
  cr_assert_eq(gpu_be()->linalg->linear(og, xg, wg, bg), DC_OK, "%s", dc_last_error());
  /* the oracle: gemm + bias on the cpu, in float32 for bf16 (then rounded once) */
  dc_dtype ct = dt == DC_BF16 ? DC_F32 : dt;
  dc_tensor *o = dc__new(DC_SHAPE(M, N), ct, DC_CPU);
  dc_tensor *xc = dt == DC_BF16 ? as_dtype(x, ct) : x, *wc = dt == DC_BF16 ? as_dtype(w, ct) : w;
  if (b) cr_assert_eq(cpu_be()->ew->copy(o, dt == DC_BF16 ? as_dtype(b, ct) : b), DC_OK);
  cr_assert_eq(cpu_be()->linalg->gemm_batched(o, xc, wc, false, true, 1.0f, b ? 1.0f : 0.0f), DC_OK,
               "%s", dc_last_error());
  char what[128];
  snprintf(what, sizeof what, "linear %s M%lld N%lld K%lld bias%d w_t%d x_off%d", dc_dtype_name(dt),
           (long long)M, (long long)N, (long long)K, bias, w_t, x_off);
  if (dt == DC_BF16)
    expect_bf16_close(as_dtype(o, DC_BF16), og, TOL_BF16, what);
  else if (dt == DC_F64)
    expect_close(o, og, TOL_F64, what);
  else
    expect_close(o, og, TOL_LINEAR_F32, what);
}

Test(gpu_bf16, linear_declared) {
  GPU_OR_SKIP();
  cr_assert(dc__backend_supports(DC_CUDA, DC_CAP_LINEAR));
  cr_assert(gpu_be()->linalg->linear);
}

Test(gpu_bf16, linear_matches_cpu_gemm_plus_bias) {
  GPU_OR_SKIP();
  static const dc_dtype dts[3] = {DC_F32, DC_BF16, DC_F64};
  for (int d = 0; d < 3; d++)
    for (int t = 0; t < 8; t++) {
      linear_case(dts[d], 37, 29, 70, t & 1, t & 2, t & 4);
      linear_case(dts[d], 1, 10, 16, t & 1, t & 2, t & 4); /* M = 1 */
    }
  linear_case(DC_F32, 256, 512, 384, true, false, false);
  linear_case(DC_BF16, 256, 512, 384, true, false, false);
  linear_case(DC_F32, 8, 4, 0, true, false, false); /* K = 0: out = bias */
}

/* the op on cuda (fused linear) against the op on the cpu, float32 */
Test(gpu_bf16, linear_op_uses_the_entry) {
  GPU_OR_SKIP();
  dc_tensor *x = inputs(DC_SHAPE(4, 6, 24), DC_F32, 95, false);
  dc_tensor *w = inputs(DC_SHAPE(10, 24), DC_F32, 96, false);
  dc_tensor *b = inputs(DC_SHAPE(10), DC_F32, 97, false);
  dc_tensor *y = dc_linear(x, w, b), *yg = dc_linear(to_gpu(x), to_gpu(w), to_gpu(b));
  cr_assert(y && yg, "%s", dc_last_error());
  expect_close(y, yg, TOL_LINEAR_F32, "dc_linear on cuda");
}

Test(gpu_bf16, linear_refuses_other_dtypes) {
  GPU_OR_SKIP();
  dc_tensor *x = dc__new(DC_SHAPE(2, 3), DC_I32, DC_CUDA),
            *w = dc__new(DC_SHAPE(4, 3), DC_I32, DC_CUDA);
  dc_tensor *o = dc__new(DC_SHAPE(2, 4), DC_I32, DC_CUDA);
  cr_assert_eq(gpu_be()->linalg->linear(o, x, w, NULL), DC_ERR_ARG);
  cr_assert(strstr(dc_last_error(), "all float32, all float64 or all bfloat16"), "%s",
            dc_last_error());
  dc_tensor *x16 = dc__new(DC_SHAPE(2, 3), DC_BF16, DC_CUDA),
            *w16 = dc__new(DC_SHAPE(4, 3), DC_BF16, DC_CUDA);
  dc_tensor *o16 = dc__new(DC_SHAPE(2, 4), DC_BF16, DC_CUDA),
            *b32 = dc__new(DC_SHAPE(4), DC_F32, DC_CUDA);
  cr_assert_eq(gpu_be()->linalg->linear(o16, x16, w16, b32), DC_ERR_ARG,
               "a float32 bias with bf16");
}

/* ---- convolution ---- */

typedef struct bconv_case {
  const char *name;
  int64_t n, c, h, w, k, kh, kw, stride, pad_l, pad_r, dilation, groups;
  bool bias;
} bconv_case;

static const bconv_case BCASES[] = {
    {"3x3 pad 1", 2, 8, 9, 8, 16, 3, 3, 1, 1, 1, 1, 1, true},
    {"3x3 stride 2", 2, 4, 11, 10, 6, 3, 3, 2, 1, 1, 1, 1, true},
    {"dilation 2", 2, 3, 10, 10, 4, 3, 3, 1, 2, 2, 2, 1, false},
    {"groups 2", 2, 4, 8, 8, 6, 3, 3, 1, 1, 1, 1, 2, true},
    {"depthwise", 2, 6, 7, 9, 6, 3, 3, 1, 1, 1, 1, 6, true},
    {"1x1", 3, 8, 5, 6, 5, 1, 1, 1, 0, 0, 1, 1, true},
    {"7x7 stride 2 pad 3 (resnet stem)", 2, 3, 32, 32, 8, 7, 7, 2, 3, 3, 1, 1, false},
    {"4x4 pads 1/2 (same)", 2, 3, 8, 7, 4, 4, 4, 1, 1, 2, 1, 1, true},
};

static dc_conv2d_geom geom_of(const bconv_case *c) {
  dc_conv2d_geom g;
  memset(&g, 0, sizeof g);
  g.n = c->n, g.c = c->c, g.h = c->h, g.w = c->w, g.k = c->k, g.kh = c->kh, g.kw = c->kw;
  g.groups = c->groups;
  for (int i = 0; i < 2; i++) {
    g.stride[i] = c->stride;
    g.dilation[i] = c->dilation;
    g.pad_l[i] = c->pad_l;
    g.pad_r[i] = c->pad_r;
  }
  g.oh = (c->h + c->pad_l + c->pad_r - c->dilation * (c->kh - 1) - 1) / c->stride + 1;
  g.ow = (c->w + c->pad_l + c->pad_r - c->dilation * (c->kw - 1) - 1) / c->stride + 1;
  g.algo = DC_CONV_ALGO_DIRECT;
  return g;
}

static void bconv_check(const bconv_case *c, uint64_t seed) {
  dc_conv2d_geom g = geom_of(c);
  char what[160];
  dc_tensor *x = inputs(DC_SHAPE(g.n, g.c, g.h, g.w), DC_BF16, seed, false);
  dc_tensor *w = inputs(DC_SHAPE(g.k, g.c / g.groups, g.kh, g.kw), DC_BF16, seed + 1, false);
  dc_tensor *b = c->bias ? inputs(DC_SHAPE(g.k), DC_BF16, seed + 2, false) : NULL;
  dc_tensor *gy = inputs(DC_SHAPE(g.n, g.k, g.oh, g.ow), DC_BF16, seed + 3, false);
  dc_tensor *x32 = as_dtype(x, DC_F32), *w32 = as_dtype(w, DC_F32), *gy32 = as_dtype(gy, DC_F32);
  dc_tensor *b32 = b ? as_dtype(b, DC_F32) : NULL;
  dc_tensor *xg = to_gpu(x), *wg = to_gpu(w), *bg = b ? to_gpu(b) : NULL, *gyg = to_gpu(gy);
  /* forward */
  dc_tensor *y32 = dc__new(dc_shape_of(gy), DC_F32, DC_CPU);
  dc_tensor *yg = dc__new(dc_shape_of(gy), DC_BF16, DC_CUDA);
  cr_assert_eq(cpu_be()->nn->conv2d_forward(y32, x32, w32, b32, &g), DC_OK, "%s", dc_last_error());
  cr_assert_eq(gpu_be()->nn->conv2d_forward(yg, xg, wg, bg, &g), DC_OK, "%s: %s", c->name,
               dc_last_error());
  snprintf(what, sizeof what, "bf16 conv2d %s: y", c->name);
  expect_bf16_close(as_dtype(y32, DC_BF16), yg, TOL_BF16, what);
  /* backward: gx, gw, gb together */
  dc_tensor *r[3] = {empty_like_on(x, DC_F32, DC_CPU), empty_like_on(w, DC_F32, DC_CPU),
                     dc__new(DC_SHAPE(g.k), DC_F32, DC_CPU)};
  dc_tensor *q[3] = {empty_like_on(x, DC_BF16, DC_CUDA), empty_like_on(w, DC_BF16, DC_CUDA),
                     dc__new(DC_SHAPE(g.k), DC_BF16, DC_CUDA)};
  cr_assert_eq(cpu_be()->nn->conv2d_backward(r[0], r[1], r[2], gy32, x32, w32, &g), DC_OK);
  cr_assert_eq(gpu_be()->nn->conv2d_backward(q[0], q[1], q[2], gyg, xg, wg, &g), DC_OK, "%s: %s",
               c->name, dc_last_error());
  static const char *const names[3] = {"gx", "gw", "gb"};
  for (int i = 0; i < 3; i++) {
    snprintf(what, sizeof what, "bf16 conv2d %s: %s", c->name, names[i]);
    expect_bf16_close(as_dtype(r[i], DC_BF16), q[i], TOL_BF16, what);
  }
}

Test(gpu_bf16, conv_matches_cpu_float32_rounded_once) {
  GPU_OR_SKIP();
  for (size_t i = 0; i < sizeof BCASES / sizeof BCASES[0]; i++)
    bconv_check(&BCASES[i], 300 + 10 * i);
}

Test(gpu_bf16, conv_backward_repeats_bit_for_bit) {
  GPU_OR_SKIP();
  bconv_case c = {"3x3", 8, 16, 20, 20, 32, 3, 3, 1, 1, 1, 1, 1, true};
  dc_conv2d_geom g = geom_of(&c);
  dc_tensor *x = to_gpu(inputs(DC_SHAPE(8, 16, 20, 20), DC_BF16, 601, false));
  dc_tensor *w = to_gpu(inputs(DC_SHAPE(32, 16, 3, 3), DC_BF16, 602, false));
  dc_tensor *gy = to_gpu(inputs(DC_SHAPE(8, 32, 20, 20), DC_BF16, 603, false));
  void *first[3] = {NULL, NULL, NULL};
  size_t nb[3];
  for (int run = 0; run < 3; run++) {
    dc_tensor *gr[3] = {empty_like_on(x, DC_BF16, DC_CUDA), empty_like_on(w, DC_BF16, DC_CUDA),
                        dc__new(DC_SHAPE(32), DC_BF16, DC_CUDA)};
    cr_assert_eq(gpu_be()->nn->conv2d_backward(gr[0], gr[1], gr[2], gy, x, w, &g), DC_OK, "%s",
                 dc_last_error());
    for (int i = 0; i < 3; i++) {
      size_t n;
      void *b = bytes_of(gr[i], &n);
      if (run == 0) {
        first[i] = b;
        nb[i] = n;
        continue;
      }
      cr_expect(n == nb[i] && memcmp(b, first[i], n) == 0, "run %d: gradient %d differs", run, i);
      free(b);
    }
  }
  for (int i = 0; i < 3; i++) free(first[i]);
}

Test(gpu_bf16, conv_refuses_mixed_and_other_dtypes) {
  GPU_OR_SKIP();
  bconv_case c = {"1x1", 1, 2, 3, 3, 2, 1, 1, 1, 0, 0, 1, 1, false};
  dc_conv2d_geom g = geom_of(&c);
  dc_tensor *x = dc__new(DC_SHAPE(1, 2, 3, 3), DC_BF16, DC_CUDA);
  dc_tensor *w = dc__new(DC_SHAPE(2, 2, 1, 1), DC_F32, DC_CUDA);
  dc_tensor *y = dc__new(DC_SHAPE(1, 2, 3, 3), DC_BF16, DC_CUDA);
  cr_assert_eq(gpu_be()->nn->conv2d_forward(y, x, w, NULL, &g), DC_ERR_ARG);
  cr_assert(strstr(dc_last_error(), "every operand in x's dtype"), "%s", dc_last_error());
  dc_tensor *x16 = dc__new(DC_SHAPE(1, 2, 3, 3), DC_F16, DC_CUDA);
  cr_assert_eq(gpu_be()->nn->conv2d_forward(y, x16, w, NULL, &g), DC_ERR_ARG);
  cr_assert(strstr(dc_last_error(), "takes float32, float64 or bfloat16"), "%s", dc_last_error());
}
