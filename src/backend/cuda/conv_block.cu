/* The small kernels of the CUDA conv block (conv_block.c): the ReLU's mask kept beside the
 * convolution's output, the pooling's argmax between the op's uint8 window positions and
 * pool.cu's int32 plane indices, and the affine a, b the statistics record. The rules are
 * conv-block-math.h's. Contiguous float32.
 * Shapes: r, gz [N, K, OH, OW]; mask uint8 of r's size; idx8, idx32 [P = N * K, PH, PW];
 * stats [4, K] (mean, invstd, a, b); bn_w, bn_b [K] or NULL. */
#include "conv-block-math.h"
#include "kern.cuh"

/* mask [n] = whether the ReLU passes a gradient at r [n] */
__global__ void cb_mask_k(uint8_t *mask, const float *r, int64_t n) {
  DC__CU_FOR(i, n) mask[i] = dc__cb_relu_passes(r[i]) ? 1 : 0;
}

/* gz [n] = mask ? src : 0 (src may be gz) */
__global__ void cb_apply_mask_k(float *gz, const float *src, const uint8_t *mask, int64_t n) {
  DC__CU_FOR(i, n) gz[i] = mask[i] ? src[i] : 0.0f;
}

/* idx8 [P, PH, PW] = window positions of idx32 (to8), or idx32 = plane indices of idx8 */
__global__ void cb_idx_k(uint8_t *idx8, int32_t *idx32, int64_t n, int64_t ph, int64_t pw,
                         int64_t ow, bool to8) {
  DC__CU_FOR(i, n) {
    int64_t oj = i % pw, oi = (i / pw) % ph;
    if (to8)
      idx8[i] = dc__cb_win_pos(idx32[i], ow, oi, oj);
    else
      idx32[i] = dc__cb_plane_idx(idx8[i], ow, oi, oj);
  }
}

/* stats rows 2, 3: a = invstd * bn_w, b = bn_b - mean * a (in double, as the CPU's) */
__global__ void cb_affine_k(float *stats, const float *bn_w, const float *bn_b, int64_t k) {
  DC__CU_FOR(c, k) {
    double a = (double)stats[k + c] * (bn_w ? (double)bn_w[c] : 1.0);
    stats[2 * k + c] = (float)a;
    stats[3 * k + c] = (float)((bn_b ? (double)bn_b[c] : 0.0) - (double)stats[c] * a);
  }
}

extern "C" int dc__cuda_cb_mask(uint8_t *mask, const dc_tensor *r) {
  int64_t n = dc_numel(r);
  if (n == 0) return DC_OK;
  cb_mask_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      mask, (const float *)dc__cuda_ptr(r), n);
  return dc__cuda_launched("conv_block mask kernel");
}

extern "C" int dc__cuda_cb_apply_mask(dc_tensor *gz, const dc_tensor *src, const uint8_t *mask) {
  int64_t n = dc_numel(gz);
  if (n == 0) return DC_OK;
  cb_apply_mask_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      (float *)dc__cuda_ptr(gz), (const float *)dc__cuda_ptr(src), mask, n);
  return dc__cuda_launched("conv_block ReLU mask kernel");
}

extern "C" int dc__cuda_cb_idx(dc_tensor *idx8, dc_tensor *idx32, const dc_conv2d_geom *g,
                               bool to8) {
  int64_t ph = g->oh / 2, pw = g->ow / 2, n = g->n * g->k * ph * pw;
  if (n == 0) return DC_OK;
  cb_idx_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      (uint8_t *)dc__cuda_ptr(idx8), (int32_t *)dc__cuda_ptr(idx32), n, ph, pw, g->ow, to8);
  return dc__cuda_launched("conv_block argmax kernel");
}

extern "C" int dc__cuda_cb_affine(dc_tensor *stats, const dc_tensor *bn_w, const dc_tensor *bn_b,
                                  int64_t k) {
  if (k == 0) return DC_OK;
  cb_affine_k<<<dc__cu_blocks(k), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      (float *)dc__cuda_ptr(stats), bn_w ? (const float *)dc__cuda_ptr(bn_w) : NULL,
      bn_b ? (const float *)dc__cuda_ptr(bn_b) : NULL, k);
  return dc__cuda_launched("conv_block affine kernel");
}
