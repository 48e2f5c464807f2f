/* The CUDA backend's nn table. Dropout and hardtanh (nn.cu), batch norm alone and fused with its
 * ReLU (bnorm.cu), the pointwise losses (loss.cu) and the class-index losses (xent.cu) run on
 * the GPU; the convolution and pooling entries are not written yet and return
 * DC_ERR_UNSUPPORTED naming the op and "not yet on cuda" (docs/cuda.md): they never fake a
 * result. Of the optional fused entries only batch_norm_relu is set (DC_CAP_BATCH_NORM_RELU). */
#include "cuda-impl.h"

static int conv2d_forward(dc_tensor *y, const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                          const dc_conv2d_geom *g) {
  return dc__cuda_unsupported("conv2d");
}
static int conv2d_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                           const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g) {
  return dc__cuda_unsupported("conv2d backward");
}
static int max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                              const dc_pool2d_geom *g) {
  return dc__cuda_unsupported("max_pool2d");
}
static int avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g) {
  return dc__cuda_unsupported("avg_pool2d");
}
static int avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_pool2d_geom *g) {
  return dc__cuda_unsupported("avg_pool2d backward");
}
static int adaptive_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g) {
  return dc__cuda_unsupported("adaptive_avg_pool2d");
}
static int adaptive_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy,
                                        const dc_pool2d_geom *g) {
  return dc__cuda_unsupported("adaptive_avg_pool2d backward");
}
static int adaptive_max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                                       const dc_pool2d_geom *g) {
  return dc__cuda_unsupported("adaptive_max_pool2d");
}
static int max_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *idx,
                               const dc_pool2d_geom *g) {
  return dc__cuda_unsupported("max_pool2d backward");
}

const struct dc_nn_kernels dc__cuda_nn = {
    .version = DC_NN_KERNELS_VERSION,
    .conv2d_forward = conv2d_forward,
    .conv2d_backward = conv2d_backward,
    .max_pool2d_forward = max_pool2d_forward,
    .avg_pool2d_forward = avg_pool2d_forward,
    .avg_pool2d_backward = avg_pool2d_backward,
    .adaptive_avg_pool2d_forward = adaptive_avg_pool2d_forward,
    .adaptive_avg_pool2d_backward = adaptive_avg_pool2d_backward,
    .adaptive_max_pool2d_forward = adaptive_max_pool2d_forward,
    .max_pool2d_backward = max_pool2d_backward,
    .batch_norm_forward = dc__cuda_batch_norm_forward,
    .batch_norm_backward = dc__cuda_batch_norm_backward,
    .dropout_mask = dc__cuda_dropout_mask,
    .apply_mask = dc__cuda_apply_mask,
    .hardtanh_forward = dc__cuda_hardtanh_forward,
    .hardtanh_backward = dc__cuda_hardtanh_backward,
    .pointwise_loss_forward = dc__cuda_pointwise_loss_forward,
    .pointwise_loss_backward = dc__cuda_pointwise_loss_backward,
    .xent_forward = dc__cuda_xent_forward,
    .xent_backward = dc__cuda_xent_backward,
    .multi_margin_forward = dc__cuda_multi_margin_forward,
    .multi_margin_backward = dc__cuda_multi_margin_backward,
    .batch_norm_relu_forward = dc__cuda_batch_norm_relu_forward,
    .batch_norm_relu_backward = dc__cuda_batch_norm_relu_backward,
};
