/* CUDA nn kernels that need no library: dropout masks, mask application and hardtanh, with the
 * CPU's formulas (cpu/nn/loss.c). Tensors are contiguous float32 or float64 [E]. The rest of
 * the nn family (cuDNN convolution, pooling, batch norm, the fused losses) is nn.c's
 * "not yet on cuda" entries. */
#include "kern.cuh"

template <typename T> __global__ void dropout_mask_k(T *m, int64_t n, double keep, double scale) {
  DC__CU_FOR(i, n) m[i] = (T)((double)m[i] < keep ? scale : 0.0);
}

template <typename T>
__global__ void apply_mask_k(T *y, const T *x, const T *m, int64_t n, int64_t inner) {
  DC__CU_FOR(i, n) y[i] = x[i] * m[inner == 1 ? i : i / inner];
}

template <typename T>
__global__ void hardtanh_k(T *y, const T *x, int64_t n, double lo, double hi) {
  DC__CU_FOR(i, n) {
    double v = (double)x[i];
    y[i] = (T)(v < lo ? lo : v > hi ? hi : v); /* NaN passes through */
  }
}

template <typename T>
__global__ void hardtanh_bwd_k(T *gx, const T *gy, const T *x, int64_t n, double lo, double hi) {
  DC__CU_FOR(i, n) {
    double v = (double)x[i];
    gx[i] = v > lo && v < hi ? gy[i] : (T)0; /* NaN: 0 */
  }
}

#define DC__CU_NN(t) ((t)->dtype == DC_F64)
#define DC__CU_LAUNCH(n) <<<dc__cu_blocks(n), DC__CU_THREADS, 0, dc__cuda_stream()>>>

extern "C" int dc__cuda_dropout_mask(dc_tensor *mask, double p) {
  int64_t n = dc_numel(mask);
  if (n == 0) return DC_OK;
  double keep = 1.0 - p, scale = keep > 0 ? 1.0 / keep : 0.0;
  if (DC__CU_NN(mask))
    dropout_mask_k<double> DC__CU_LAUNCH(n)((double *)dc__cuda_ptr(mask), n, keep, scale);
  else
    dropout_mask_k<float> DC__CU_LAUNCH(n)((float *)dc__cuda_ptr(mask), n, keep, scale);
  return dc__cuda_launched("dropout_mask kernel");
}

extern "C" int dc__cuda_apply_mask(dc_tensor *y, const dc_tensor *x, const dc_tensor *mask,
                                   int64_t inner) {
  int64_t n = dc_numel(y);
  if (n == 0) return DC_OK;
  if (DC__CU_NN(x))
    apply_mask_k<double> DC__CU_LAUNCH(n)((double *)dc__cuda_ptr(y),
                                          (const double *)dc__cuda_ptr(x),
                                          (const double *)dc__cuda_ptr(mask), n, inner);
  else
    apply_mask_k<float> DC__CU_LAUNCH(n)((float *)dc__cuda_ptr(y), (const float *)dc__cuda_ptr(x),
                                         (const float *)dc__cuda_ptr(mask), n, inner);
  return dc__cuda_launched("apply_mask kernel");
}

extern "C" int dc__cuda_hardtanh_forward(dc_tensor *y, const dc_tensor *x, double lo, double hi) {
  int64_t n = dc_numel(x);
  if (n == 0) return DC_OK;
  if (DC__CU_NN(x))
    hardtanh_k<double> DC__CU_LAUNCH(n)((double *)dc__cuda_ptr(y), (const double *)dc__cuda_ptr(x),
                                        n, lo, hi);
  else
    hardtanh_k<float> DC__CU_LAUNCH(n)((float *)dc__cuda_ptr(y), (const float *)dc__cuda_ptr(x), n,
                                       lo, hi);
  return dc__cuda_launched("hardtanh kernel");
}

extern "C" int dc__cuda_hardtanh_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *x,
                                          double lo, double hi) {
  int64_t n = dc_numel(x);
  if (n == 0) return DC_OK;
  if (DC__CU_NN(x))
    hardtanh_bwd_k<double> DC__CU_LAUNCH(n)((double *)dc__cuda_ptr(gx),
                                            (const double *)dc__cuda_ptr(gy),
                                            (const double *)dc__cuda_ptr(x), n, lo, hi);
  else
    hardtanh_bwd_k<float> DC__CU_LAUNCH(n)((float *)dc__cuda_ptr(gx),
                                           (const float *)dc__cuda_ptr(gy),
                                           (const float *)dc__cuda_ptr(x), n, lo, hi);
  return dc__cuda_launched("hardtanh_backward kernel");
}
