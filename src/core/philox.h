/* Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
 * counter-based generator, so element i of a draw depends only on (seed, counter, i) and never
 * on how work is split across threads. Header-only so every backend computes the same bits. */
#ifndef DC_PHILOX_H
#define DC_PHILOX_H

#include <math.h>
#include <stdint.h>

typedef struct dc__u32x4 {
  uint32_t v[4];
} dc__u32x4;

static inline dc__u32x4 dc__philox(uint64_t seed, uint64_t ctr_hi, uint64_t ctr_lo) {
  uint32_t c0 = (uint32_t)ctr_lo, c1 = (uint32_t)(ctr_lo >> 32);
  uint32_t c2 = (uint32_t)ctr_hi, c3 = (uint32_t)(ctr_hi >> 32);
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)0xD2511F53u * c0, p1 = (uint64_t)0xCD9E8D57u * c2;
    uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
    c1 = (uint32_t)p1;
    c3 = (uint32_t)p0;
    c0 = n0;
    c2 = n2;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return (dc__u32x4){{c0, c1, c2, c3}};
}

/* Uniform in [0, 1) with 24 random bits (float) or 53 (double, from two words). */
static inline float dc__u01f(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }
static inline double dc__u01d(uint32_t a, uint32_t b) {
  uint64_t x = ((uint64_t)a << 21) ^ (uint64_t)(b >> 11);
  return (double)(x & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

#endif
