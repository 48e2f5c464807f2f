/* CPU random kernels: element i of a draw uses Philox block (counter + i), so the values are the
 * same for any thread count and on every backend. Normals use Box-Muller on one block. */
#include "../../core/philox.h"
#include "cpu-impl.h"

#define TWO_PI 6.283185307179586

static double uniform_at(uint64_t seed, uint64_t c, int64_t i) {
  dc__u32x4 r = dc__philox(seed, 0, c + (uint64_t)i);
  return dc__u01d(r.v[0], r.v[1]);
}

static double normal_at(uint64_t seed, uint64_t c, int64_t i) {
  dc__u32x4 r = dc__philox(seed, 1, c + (uint64_t)i);
  double u1 = 1.0 - dc__u01d(r.v[0], r.v[1]); /* (0, 1] */
  double u2 = dc__u01d(r.v[2], r.v[3]);
  return sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
}

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_AVX512_RAND 1
#define AVX512DQ __attribute__((target("avx512f,avx512dq")))

/* hi and lo 32 bits of x * m for 16 lanes */
AVX512DQ static inline void mulhilo(__m512i x, uint32_t m, __m512i *hi, __m512i *lo) {
  __m512i mv = _mm512_set1_epi64(m);
  __m512i even = _mm512_mul_epu32(x, mv), odd = _mm512_mul_epu32(_mm512_srli_epi64(x, 32), mv);
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

/* 8 doubles dc__u01d(a, b) from 8 lanes of a and b (32 bits each) */
AVX512DQ static inline __m512d u01d8(__m256i a, __m256i b) {
  __m512i x = _mm512_xor_si512(_mm512_slli_epi64(_mm512_cvtepu32_epi64(a), 21),
                               _mm512_srli_epi64(_mm512_cvtepu32_epi64(b), 11));
  x = _mm512_and_si512(x, _mm512_set1_epi64((1ll << 53) - 1));
  return _mm512_mul_pd(_mm512_cvtepi64_pd(x), _mm512_set1_pd(1.0 / 9007199254740992.0));
}

/* out[j] = a + (b - a) * uniform_at(seed, c, i0 + j) for j < 16, the scalar path's bits: the
 * same Philox blocks and the same double operations (no fused multiply-add) */
AVX512DQ static void uniform16_f32(float *out, uint64_t seed, uint64_t c, int64_t i0, double a,
                                   double b) {
  __m512i idx = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  __m512i base = _mm512_set1_epi64((long long)(c + (uint64_t)i0));
  __m512i lo8 = _mm512_add_epi64(base, idx), hi8 = _mm512_add_epi64(lo8, _mm512_set1_epi64(8));
  __m512i c0 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(lo8)),
                                  _mm512_cvtepi64_epi32(hi8), 1);
  __m512i c1 =
      _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_srli_epi64(lo8, 32))),
                         _mm512_cvtepi64_epi32(_mm512_srli_epi64(hi8, 32)), 1);
  __m512i c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    __m512i h0, l0, h1, l1;
    mulhilo(c0, 0xD2511F53u, &h0, &l0);
    mulhilo(c2, 0xCD9E8D57u, &h1, &l1);
    __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(h1, c1), _mm512_set1_epi32((int)k0));
    __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(h0, c3), _mm512_set1_epi32((int)k1));
    c1 = l1, c3 = l0, c0 = n0, c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  __m512d va = _mm512_set1_pd(a), vd = _mm512_set1_pd(b - a);
  __m512d lo = u01d8(_mm512_extracti64x4_epi64(c0, 0), _mm512_extracti64x4_epi64(c1, 0));
  __m512d hi = u01d8(_mm512_extracti64x4_epi64(c0, 1), _mm512_extracti64x4_epi64(c1, 1));
  _mm256_storeu_ps(out, _mm512_cvtpd_ps(_mm512_add_pd(va, _mm512_mul_pd(vd, lo))));
  _mm256_storeu_ps(out + 8, _mm512_cvtpd_ps(_mm512_add_pd(va, _mm512_mul_pd(vd, hi))));
}
#endif

static int fill_random(dc_tensor *t, uint64_t seed, uint64_t c, double a, double b, bool normal) {
  int64_t n = dc_numel(t);
  bool contig = dc_is_contiguous(t);
  size_t z = dc_dtype_size(t->dtype);
#ifdef HAVE_AVX512_RAND
  if (!normal && contig && t->dtype == DC_F32 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512dq")) {
    float *p = (float *)t->storage->data + t->offset;
    int64_t full = n / 16 * 16;
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
    for (int64_t i = 0; i < full; i += 16) uniform16_f32(p + i, seed, c, i, a, b);
    for (int64_t i = full; i < n; i++) p[i] = (float)(a + (b - a) * uniform_at(seed, c, i));
    return DC_OK;
  }
#endif
#pragma omp parallel for schedule(static) if (n >= DC__PAR_MIN)
  for (int64_t i = 0; i < n; i++) {
    double v = normal ? a + b * normal_at(seed, c, i) : a + (b - a) * uniform_at(seed, c, i);
    if (contig) {
      char *p = (char *)t->storage->data + (size_t)(t->offset + i) * z;
      if (t->dtype == DC_F32)
        *(float *)p = (float)v;
      else
        dc__store(p, t->dtype, v);
    } else {
      int64_t off = t->offset, r = i;
      for (int d = t->ndim - 1; d >= 0; d--) {
        off += (r % t->shape[d]) * t->stride[d];
        r /= t->shape[d];
      }
      dc__store((char *)t->storage->data + (size_t)off * z, t->dtype, v);
    }
  }
  return DC_OK;
}

static int cpu_uniform(dc_tensor *t, uint64_t seed, uint64_t c, double a, double b) {
  return fill_random(t, seed, c, a, b, false);
}

static int cpu_normal(dc_tensor *t, uint64_t seed, uint64_t c, double mean, double std) {
  return fill_random(t, seed, c, mean, std, true);
}

const dc_random_kernels dc__cpu_rand = {.uniform = cpu_uniform, .normal = cpu_normal};
