/* The CUDA backend's nn table. Convolution (conv.c, cuDNN), pooling (pool.cu), dropout and
 * hardtanh (nn.cu) run on the GPU; the other mandatory entries (batch norm, the fused losses)
 * are not written yet and return DC_ERR_UNSUPPORTED naming the op and "not yet on cuda"
 * (docs/cuda.md): they never fake a result. The optional fused entries stay NULL, so the table
 * declares no capabilities. */
#include "cuda-impl.h"

static int batch_norm_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                              const dc_tensor *x, const dc_tensor *weight, const dc_tensor *bias,
                              dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                              double momentum, double eps) {
  return dc__cuda_unsupported("batch_norm");
}
static int batch_norm_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                               const dc_tensor *x, const dc_tensor *weight, const dc_tensor *mean,
                               const dc_tensor *invstd, bool batch_stats) {
  return dc__cuda_unsupported("batch_norm backward");
}
static int pointwise_loss_forward(dc_pwloss_op op, dc_tensor *out, const dc_tensor *x,
                                  const dc_tensor *t, const dc_tensor *weight,
                                  const dc_tensor *pos_weight, double p, bool reduce,
                                  double scale) {
  return dc__cuda_unsupported("pointwise loss (mse, l1, smooth_l1, bce, hinge)");
}
static int pointwise_loss_backward(dc_pwloss_op op, dc_tensor *gx, dc_tensor *gt,
                                   const dc_tensor *gout, const dc_tensor *x, const dc_tensor *t,
                                   const dc_tensor *weight, const dc_tensor *pos_weight, double p,
                                   double scale) {
  return dc__cuda_unsupported("pointwise loss backward");
}
static int xent_forward(dc_tensor *out, dc_tensor *lse, double wsum[2], const dc_tensor *x,
                        const dc_tensor *target, const dc_tensor *weight, const dc_xent_params *p) {
  return dc__cuda_unsupported("cross_entropy / nll_loss");
}
static int xent_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                         const dc_tensor *lse, const dc_tensor *target, const dc_tensor *weight,
                         const double wsum[2], const dc_xent_params *p) {
  return dc__cuda_unsupported("cross_entropy / nll_loss backward");
}
static int multi_margin_forward(dc_tensor *out, const dc_tensor *x, const dc_tensor *target,
                                const dc_tensor *weight, int p, double margin, bool reduce,
                                double scale) {
  return dc__cuda_unsupported("multi_margin_loss");
}
static int multi_margin_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                                 const dc_tensor *target, const dc_tensor *weight, int p,
                                 double margin, double scale) {
  return dc__cuda_unsupported("multi_margin_loss backward");
}

const struct dc_nn_kernels dc__cuda_nn = {
    .version = DC_NN_KERNELS_VERSION,
    .conv2d_forward = dc__cuda_conv2d_forward,
    .conv2d_backward = dc__cuda_conv2d_backward,
    .max_pool2d_forward = dc__cuda_max_pool2d_forward,
    .avg_pool2d_forward = dc__cuda_avg_pool2d_forward,
    .avg_pool2d_backward = dc__cuda_avg_pool2d_backward,
    .adaptive_avg_pool2d_forward = dc__cuda_adaptive_avg_pool2d_forward,
    .adaptive_avg_pool2d_backward = dc__cuda_adaptive_avg_pool2d_backward,
    .adaptive_max_pool2d_forward = dc__cuda_adaptive_max_pool2d_forward,
    .max_pool2d_backward = dc__cuda_max_pool2d_backward,
    .batch_norm_forward = batch_norm_forward,
    .batch_norm_backward = batch_norm_backward,
    .dropout_mask = dc__cuda_dropout_mask,
    .apply_mask = dc__cuda_apply_mask,
    .hardtanh_forward = dc__cuda_hardtanh_forward,
    .hardtanh_backward = dc__cuda_hardtanh_backward,
    .pointwise_loss_forward = pointwise_loss_forward,
    .pointwise_loss_backward = pointwise_loss_backward,
    .xent_forward = xent_forward,
    .xent_backward = xent_backward,
    .multi_margin_forward = multi_margin_forward,
    .multi_margin_backward = multi_margin_backward,
};
