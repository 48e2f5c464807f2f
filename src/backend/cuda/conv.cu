/* The small kernels around the cuDNN convolution (conv.c): explicit zero padding of the input
 * and the matching crop of its gradient (for asymmetric padding, padding="same", which cuDNN's
 * descriptors cannot express), the bias add of the forward (float32 / float64) and, for
 * bfloat16, the bias broadcast that cuDNN then accumulates onto (beta 1: one rounding) and the
 * bias gradient (double sums in a fixed tree, bf16-math.h). Contiguous tensors.
 * Shapes: x, gx [N, C, H, W]; xp, gxp [N, C, Hp, Wp] with Hp = H + pad_l[0] + pad_r[0],
 * Wp = W + pad_l[1] + pad_r[1]; y, gy [N, K, OH, OW]; b, gb [K]; S = OH * OW. */
#include "bf16-math.h"
#include "blocksum.cuh"
#include "kern.cuh"

/* xp [P, Hp, Wp] = x [P, H, W] at offset (pt, pl), zeros around; z bytes per element */
__global__ void conv_pad_k(char *xp, const char *x, int64_t n, int64_t h, int64_t w, int64_t hp,
                           int64_t wp, int64_t pt, int64_t pl, int z) {
  DC__CU_FOR(i, n) {
    int64_t iw = i % wp - pl, t = i / wp, ih = t % hp - pt, p = t / hp;
    char *d = xp + i * z;
    if (ih >= 0 && ih < h && iw >= 0 && iw < w)
      dc__cu_copy_raw(d, x + ((p * h + ih) * w + iw) * z, z);
    else if (z == 8)
      *(uint64_t *)d = 0; /* +0.0 */
    else if (z == 4)
      *(uint32_t *)d = 0;
    else
      *(uint16_t *)d = 0;
  }
}

/* gx [P, H, W] = gxp [P, Hp, Wp] at offset (pt, pl) */
__global__ void conv_crop_k(char *gx, const char *gxp, int64_t n, int64_t h, int64_t w, int64_t hp,
                            int64_t wp, int64_t pt, int64_t pl, int z) {
  DC__CU_FOR(i, n) {
    int64_t iw = i % w, t = i / w, ih = t % h, p = t / h;
    dc__cu_copy_raw(gx + i * z, gxp + ((p * hp + ih + pt) * wp + iw + pl) * z, z);
  }
}

/* y [N, K, S] += b [K] */
template <typename T>
__global__ void conv_bias_k(T *y, const T *b, int64_t n, int64_t k, int64_t s) {
  DC__CU_FOR(i, n) y[i] += b[(i / s) % k];
}

/* y [N, K, S] = b [K], z bytes per element */
__global__ void conv_bias_fill_k(char *y, const char *b, int64_t n, int64_t k, int64_t s, int z) {
  DC__CU_FOR(i, n) dc__cu_copy_raw(y + i * z, b + ((i / s) % k) * z, z);
}

/* block c: gb [c] = the sum of gy [N, c, S] (bf16), each thread a lane, the lanes in a tree */
__global__ void conv_bgrad_bf16_k(uint16_t *gb, const uint16_t *gy, int64_t n, int64_t k,
                                  int64_t s) {
  __shared__ double sh[DC__CU_THREADS];
  int64_t c = blockIdx.x;
  double v[1] = {dc__hd_bgrad_lane(gy, n, k, s, c, threadIdx.x, DC__CU_THREADS)};
  dc__cu_block_sum<1>(v, sh);
  if (threadIdx.x == 0) gb[c] = dc__hd_f32_to_bf16((float)v[0]);
}

static void padded_hw(const dc_conv2d_geom *g, int64_t *hp, int64_t *wp) {
  *hp = g->h + g->pad_l[0] + g->pad_r[0];
  *wp = g->w + g->pad_l[1] + g->pad_r[1];
}

extern "C" int dc__cuda_conv_pad(dc_tensor *xp, const dc_tensor *x, const dc_conv2d_geom *g) {
  int64_t hp, wp;
  padded_hw(g, &hp, &wp);
  int64_t n = g->n * g->c * hp * wp;
  if (n == 0) return DC_OK;
  conv_pad_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      dc__cuda_ptr(xp), dc__cuda_ptr(x), n, g->h, g->w, hp, wp, g->pad_l[0], g->pad_l[1],
      (int)dc_dtype_size(x->dtype));
  return dc__cuda_launched("conv2d pad kernel");
}

extern "C" int dc__cuda_conv_crop(dc_tensor *gx, const dc_tensor *gxp, const dc_conv2d_geom *g) {
  int64_t hp, wp;
  padded_hw(g, &hp, &wp);
  int64_t n = g->n * g->c * g->h * g->w;
  if (n == 0) return DC_OK;
  conv_crop_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      dc__cuda_ptr(gx), dc__cuda_ptr(gxp), n, g->h, g->w, hp, wp, g->pad_l[0], g->pad_l[1],
      (int)dc_dtype_size(gx->dtype));
  return dc__cuda_launched("conv2d crop kernel");
}

extern "C" int dc__cuda_conv_bias_add(dc_tensor *y, const dc_tensor *b, const dc_conv2d_geom *g) {
  int64_t n = dc_numel(y), s = g->oh * g->ow;
  if (n == 0) return DC_OK;
  if (y->dtype == DC_F64)
    conv_bias_k<double><<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
        (double *)dc__cuda_ptr(y), (const double *)dc__cuda_ptr(b), n, g->k, s);
  else
    conv_bias_k<float><<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
        (float *)dc__cuda_ptr(y), (const float *)dc__cuda_ptr(b), n, g->k, s);
  return dc__cuda_launched("conv2d bias kernel");
}

extern "C" int dc__cuda_conv_bias_fill(dc_tensor *y, const dc_tensor *b, const dc_conv2d_geom *g) {
  int64_t n = dc_numel(y), s = g->oh * g->ow;
  if (n == 0) return DC_OK;
  conv_bias_fill_k<<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      dc__cuda_ptr(y), dc__cuda_ptr(b), n, g->k, s, (int)dc_dtype_size(y->dtype));
  return dc__cuda_launched("conv2d bias fill kernel");
}

extern "C" int dc__cuda_conv_bias_grad_bf16(dc_tensor *gb, const dc_tensor *gy,
                                            const dc_conv2d_geom *g) {
  if (g->k == 0) return DC_OK;
  if (g->k > INT32_MAX) return dc__errs(DC_ERR_UNSUPPORTED, "conv2d backward (bias): K above 2^31");
  conv_bgrad_bf16_k<<<(unsigned)g->k, DC__CU_THREADS, 0, dc__cuda_stream()>>>(
      (uint16_t *)dc__cuda_ptr(gb), (const uint16_t *)dc__cuda_ptr(gy), g->n, g->k, g->oh * g->ow);
  return dc__cuda_launched("conv2d bias gradient kernel (bfloat16)");
}
