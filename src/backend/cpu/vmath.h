/* Vectorisable float32 math for the elementwise kernels (unary.c, binary.c): exp and log as
 * branch-free polynomials (<= ~1 ulp, GCC turns loops over them into AVX2/AVX-512 code), and
 * glibc's libmvec vector variants of tanhf, erff, expm1f, log1pf and powf (declared SIMD here,
 * since glibc only declares them under -ffast-math). float64 keeps scalar libm. */
#ifndef DC_CPU_VMATH_H
#define DC_CPU_VMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* glibc >= 2.35 has libmvec variants of these (expf/logf since 2.22); without them the same
 * loops call scalar libm, which is correct, only slower. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__) &&       \
    defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 35)
#define DC__VSIMD __attribute__((simd("notinbranch")))
DC__VSIMD float tanhf(float);
DC__VSIMD float erff(float);
DC__VSIMD float expm1f(float);
DC__VSIMD float log1pf(float);
DC__VSIMD float powf(float, float);
#endif
#endif

/* AVX-512 / AVX2 / baseline versions of a hot loop, chosen at load time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DC__CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DC__CLONES
#endif

static inline float dc__bits_to_f32(int32_t i) {
  float f;
  memcpy(&f, &i, 4);
  return f;
}
static inline int32_t dc__f32_to_bits(float f) {
  int32_t i;
  memcpy(&i, &f, 4);
  return i;
}

/* exp(x): n = round(x / ln2), r = x - n ln2 (two-part ln2), exp(r) by Cephes' degree-6
 * polynomial, times 2^n built in two halves so results down to the smallest denormal and up to
 * overflow come out right. NaN propagates through the arithmetic; +-inf clamp to inf / 0. */
static inline float dc__expf(float x) {
  float xc = x < -104.0f ? -104.0f : x;
  xc = xc > 89.0f ? 89.0f : xc;
  float t = xc * 1.44269504088896341f + 12582912.0f; /* + 1.5 * 2^23 rounds to an integer */
  float n = t - 12582912.0f;
  int32_t ni = dc__f32_to_bits(t) - 0x4B400000;
  float r = xc - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t n1 = ni >> 1, n2 = ni - n1; /* (NaN input: garbage n, but p is NaN) */
  int32_t s1 = (int32_t)((uint32_t)(n1 + 127) << 23), s2 = (int32_t)((uint32_t)(n2 + 127) << 23);
  return p * dc__bits_to_f32(s1) * dc__bits_to_f32(s2);
}

/* log(x): x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m) by Cephes' degree-9 polynomial in
 * f = m - 1; denormals are scaled up first; x < 0 -> NaN, 0 -> -inf, inf/NaN pass through. */
static inline float dc__logf(float x) {
  int den = x < 1.17549435e-38f;
  float xs = den ? x * 8388608.0f : x;
  int32_t ix = dc__f32_to_bits(xs);
  int32_t e = ((ix >> 23) & 0xff) - 126 - (den ? 23 : 0);
  float m = dc__bits_to_f32((ix & 0x007fffff) | 0x3f000000); /* [0.5, 1) */
  int small = m < 0.707106781186547524f;
  e = small ? e - 1 : e;
  float f = small ? m + m - 1.0f : m - 1.0f;
  float fe = (float)e;
  float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  float r = f + y + 0.693359375f * fe;
  r = x == 0.0f ? -INFINITY : r;
  r = x < 0.0f ? NAN : r;
  return x < INFINITY ? r : x;
}

/* sigmoid(x) = 1 / (1 + exp(-x)) */
static inline float dc__sigmoidf(float x) { return 1.0f / (1.0f + dc__expf(-x)); }

#endif
