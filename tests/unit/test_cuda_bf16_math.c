/* The bfloat16 arithmetic of the CUDA kernels, verified on the host: src/backend/cuda/bf16-math.h
 * (plain C here). Its float32 -> bf16 rounding against core's dc__f32_to_bf16 bit for bit (a
 * stride through all 2^32 patterns, every low half of selected high halves: ties, denormals,
 * inf, NaN payloads) and bf16 -> float32 for all 2^16 patterns; the bias gradient of the bf16
 * convolution looped as conv.cu's kernel runs it (256 lanes per channel, then the block's tree)
 * against the CPU backend's double sum rounded by core, bit for bit, and within one bf16 ulp of
 * the CPU's float32 convolution gradient. Also conv-block-math.h (the CUDA conv block's rules):
 * pool.cu's int32 argmax of each 2x2 window, from the CPU's max_pool2d entry, to the window
 * position the op keeps and back, against the position of the first largest value (a NaN wins),
 * which is the CPU conv block's order; and the ReLU's gradient mask. What this leaves to tests/gpu
 * (test_gpu_bf16.c): the launches, cuDNN, cuBLAS(Lt). Runs everywhere (no GPU needed). */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <math.h>
#include <stdlib.h>

#include "backend/backend.h"
#include "backend/cuda/bf16-math.h"
#include "backend/cuda/conv-block-math.h"
#include "backend/nn-kernels.h"
#include "core/core-impl.h"

static void scope_in(void) { dc_scope_begin(); }
static void scope_out(void) { dc_scope_end(); }
TestSuite(cuda_bf16_math, .init = scope_in, .fini = scope_out);

static float f_of(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static int64_t rounding_mismatches(uint32_t u) {
  uint16_t a = dc__hd_f32_to_bf16(f_of(u)), b = dc__f32_to_bf16(f_of(u));
  if (a == b) return 0;
  cr_log_error("float bits 0x%08x: bf16-math.h 0x%04x, core 0x%04x", u, a, b);
  return 1;
}

Test(cuda_bf16_math, rounding_matches_core_bit_for_bit) {
  int64_t bad = 0, n = 0;
  for (uint64_t u = 0; u <= 0xffffffffu && bad < 8; u += 997, n++)
    bad += rounding_mismatches((uint32_t)u);
  /* every low half (ties at 0x8000, odd and even kept bits) of these high halves */
  static const uint32_t hi[] = {0x0000, 0x0001, 0x007f, 0x0080, 0x3f80, 0x3f81,
                                0x4049, 0x7f7f, 0x7f80, 0x7f81, 0x7fc0, 0x8000,
                                0x80ff, 0xbf80, 0xff7f, 0xff80, 0xff81, 0xffff};
  for (size_t h = 0; h < sizeof hi / sizeof hi[0]; h++)
    for (uint32_t lo = 0; lo < 0x10000u; lo++, n++) bad += rounding_mismatches(hi[h] << 16 | lo);
  cr_expect_eq(bad, 0, "%lld of %lld float32 patterns round differently", (long long)bad,
               (long long)n);
  for (uint32_t h = 0; h < 0x10000u; h++) {
    float a = dc__hd_bf16_to_f32((uint16_t)h), b = dc__bf16_to_f32((uint16_t)h);
    cr_assert(memcmp(&a, &b, 4) == 0, "bf16 0x%04x widens differently", h);
  }
}

/* conv_bgrad_bf16_k's arithmetic for channel c: 256 lanes, then dc__cu_block_sum's tree */
static double kernel_sum(const uint16_t *gy, int64_t n, int64_t k, int64_t s, int64_t c) {
  enum { T = 256 };
  double v[T];
  for (int t = 0; t < T; t++) v[t] = dc__hd_bgrad_lane(gy, n, k, s, c, t, T);
  for (int h = T / 2; h > 0; h >>= 1)
    for (int t = 0; t < h; t++) v[t] += v[t + h];
  return v[0];
}

static double bf16_ulp(double a) {
  int e = 0;
  if (a == 0.0) return 0.0;
  frexp(a, &e);
  return ldexp(1.0, e - 8);
}

Test(cuda_bf16_math, conv_bias_gradient_matches_cpu) {
  const int64_t N = 3, K = 5, OH = 13, OW = 11, S = OH * OW;
  dc_manual_seed(11);
  dc_tensor *u = dc_rand(DC_SHAPE(N, K, OH, OW), DC_F32);
  cr_assert(u, "%s", dc_last_error());
  dc_tensor *gy = dc_sub(dc_mul_scalar(u, 6.0), dc_full(DC_SHAPE(1), 3.0, DC_F32));
  dc_tensor *gyb = dc_to_dtype(gy, DC_BF16), *gy32 = dc_to_dtype(gyb, DC_F32);
  cr_assert(gyb && gy32, "%s", dc_last_error());
  const uint16_t *p = dc_data(gyb);
  /* the CPU's double sum over N, OH, OW, stored to float32 */
  const dc_backend *cpu = dc__backend(DC_CPU);
  dc_tensor *sum = dc__new(DC_SHAPE(1, K, 1, 1), DC_F32, DC_CPU);
  cr_assert_eq(cpu->red->reduce(DC_RED_SUM, sum, gy32, 1u | 4u | 8u), DC_OK, "%s", dc_last_error());
  /* the CPU's float32 convolution gradient (x, w only to say the geometry) */
  dc_conv2d_geom g;
  memset(&g, 0, sizeof g);
  g.n = N, g.c = 2, g.h = OH, g.w = OW, g.k = K, g.kh = 1, g.kw = 1, g.oh = OH, g.ow = OW;
  g.groups = 1, g.stride[0] = g.stride[1] = g.dilation[0] = g.dilation[1] = 1;
  g.algo = DC_CONV_ALGO_DIRECT;
  dc_tensor *x = dc_zeros(DC_SHAPE(N, 2, OH, OW), DC_F32),
            *w = dc_zeros(DC_SHAPE(K, 2, 1, 1), DC_F32);
  dc_tensor *gb = dc__new(DC_SHAPE(K), DC_F32, DC_CPU);
  cr_assert_eq(cpu->nn->conv2d_backward(NULL, NULL, gb, gy32, x, w, &g), DC_OK, "%s",
               dc_last_error());
  for (int64_t c = 0; c < K; c++) {
    uint16_t got = dc__hd_f32_to_bf16((float)kernel_sum(p, N, K, S, c));
    uint16_t want = dc__f32_to_bf16(((const float *)dc_data(sum))[c]);
    cr_expect_eq(got, want, "channel %lld: kernel 0x%04x (%g), cpu sum 0x%04x (%g)", (long long)c,
                 got, dc__bf16_to_f32(got), want, dc__bf16_to_f32(want));
    double conv = dc__bf16_to_f32(dc__f32_to_bf16(((const float *)dc_data(gb))[c]));
    cr_expect(fabs(conv - dc__bf16_to_f32(got)) <= bf16_ulp(conv), "channel %lld: %g vs conv %g",
              (long long)c, dc__bf16_to_f32(got), conv);
  }
}

/* the first largest of the window's four values, row-major (a NaN wins): the CPU block's rule */
static int first_max(const float *v) {
  int best = 0;
  for (int k = 1; k < 4; k++)
    if (!isnan(v[best]) && (isnan(v[k]) || v[k] > v[best])) best = k;
  return best;
}

Test(cuda_bf16_math, conv_block_argmax_and_mask) {
  const int64_t P = 6, H = 9, W = 7, PH = H / 2, PW = W / 2;
  dc_manual_seed(21);
  dc_tensor *u = dc_rand(DC_SHAPE(P, H, W), DC_F32);
  cr_assert(u, "%s", dc_last_error());
  float *x = dc_data(u);
  for (int64_t i = 0; i < P * H * W; i++) x[i] = (float)(int)(x[i] * 4.0f); /* ties: 0..3 */
  x[3] = NAN;
  dc_pool2d_geom g;
  memset(&g, 0, sizeof g);
  g.planes = P, g.h = H, g.w = W, g.oh = PH, g.ow = PW;
  for (int i = 0; i < 2; i++) g.kernel[i] = g.stride[i] = 2, g.dilation[i] = 1;
  dc_tensor *y = dc__new(DC_SHAPE(P, PH, PW), DC_F32, DC_CPU);
  dc_tensor *ix = dc__new(DC_SHAPE(P, PH, PW), DC_I32, DC_CPU);
  cr_assert_eq(dc__backend(DC_CPU)->nn->max_pool2d_forward(y, ix, u, &g), DC_OK, "%s",
               dc_last_error());
  const int32_t *pi = dc_data(ix);
  int64_t bad = 0;
  for (int64_t p = 0; p < P; p++)
    for (int64_t i = 0; i < PH; i++)
      for (int64_t j = 0; j < PW; j++) {
        int64_t o = (p * PH + i) * PW + j;
        const float *q = x + p * H * W;
        float v[4] = {q[2 * i * W + 2 * j], q[2 * i * W + 2 * j + 1], q[(2 * i + 1) * W + 2 * j],
                      q[(2 * i + 1) * W + 2 * j + 1]};
        uint8_t k = dc__cb_win_pos(pi[o], W, i, j);
        if (k != first_max(v) || dc__cb_plane_idx(k, W, i, j) != pi[o]) {
          if (bad++ < 4)
            cr_log_error("plane %lld window (%lld, %lld): index %d, position %d, expected %d",
                         (long long)p, (long long)i, (long long)j, pi[o], k, first_max(v));
        }
      }
  cr_expect_eq(bad, 0, "%lld windows", (long long)bad);
  cr_expect(dc__cb_relu_passes(1.0f) && dc__cb_relu_passes(NAN) && dc__cb_relu_passes(1e-38f));
  cr_expect(!dc__cb_relu_passes(0.0f) && !dc__cb_relu_passes(-0.0f) && !dc__cb_relu_passes(-1.0f));
}
