/* 16x16 float transposes with AVX-512 for moving between NCHW planes and the 16-channel blocked
 * layout (conv_block.c, wino5.c): 16 rows read at a stride become 16 columns. Include only where
 * <immintrin.h> is available; callers have the avx512f target. */
#ifndef DC_TRANSPOSE16_H
#define DC_TRANSPOSE16_H

#include <immintrin.h>
#include <stdint.h>

/* r[i][j] -> r[j][i] for a 16x16 block held in 16 vectors */
__attribute__((target("avx512f"), always_inline)) static inline void dc__transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) { /* per 128-bit lane: rows i, i+1 interleaved */
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  /* per lane l and group of 4 rows g: r[4g + q] holds column 4l + q of the 4 rows */
  for (int i = 0; i < 16; i += 4)
    for (int k = 0; k < 2; k++) {
      __m512d a = _mm512_castps_pd(t[i + k]), b = _mm512_castps_pd(t[i + k + 2]);
      r[i + 2 * k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
      r[i + 2 * k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    }
  for (int q = 0; q < 4; q++) { /* gather lane l of the 4 groups into column 4l + q */
    __m512 a = _mm512_shuffle_f32x4(r[q], r[4 + q], 0x44),
           a2 = _mm512_shuffle_f32x4(r[q], r[4 + q], 0xee);
    __m512 b = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0x44),
           b2 = _mm512_shuffle_f32x4(r[8 + q], r[12 + q], 0xee);
    t[q] = _mm512_shuffle_f32x4(a, b, 0x88);
    t[4 + q] = _mm512_shuffle_f32x4(a, b, 0xdd);
    t[8 + q] = _mm512_shuffle_f32x4(a2, b2, 0x88);
    t[12 + q] = _mm512_shuffle_f32x4(a2, b2, 0xdd);
  }
  for (int i = 0; i < 16; i++) r[i] = t[i];
}

/* dst[j * dstride + i] = src[i * sstride + j] for i, j < 16 */
__attribute__((target("avx512f"), always_inline)) static inline void
dc__copy_transposed16(float *dst, int64_t dstride, const float *src, int64_t sstride) {
  __m512 r[16];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + i * sstride);
  dc__transpose16(r);
  for (int j = 0; j < 16; j++) _mm512_storeu_ps(dst + j * dstride, r[j]);
}

#endif
