/* The CPU nn kernel table: convolution (oneDNN for float32 and bfloat16 with the direct
 * reference as fallback, the reference for float64), pooling, batch norm, dropout, hardtanh and
 * losses.
 */
#include "nn-cpu.h"

static int conv2d_forward(dc_tensor *y, const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                          const dc_conv2d_geom *g) {
  if ((x->dtype == DC_F32 || x->dtype == DC_BF16) && dc_numel(x) > 0 && dc_numel(w) > 0) {
    int rc = dc__cpu_conv2d_dnnl_forward(y, x, w, b, g);
    if (rc != DC_ERR_UNSUPPORTED) return rc;
  }
  return dc__cpu_conv2d_ref_forward(y, x, w, b, g);
}

static int conv2d_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                           const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g) {
  if ((gy->dtype == DC_F32 || gy->dtype == DC_BF16) && dc_numel(x) > 0 && dc_numel(w) > 0) {
    int rc = dc__cpu_conv2d_dnnl_backward(gx, gw, gb, gy, x, w, g);
    if (rc != DC_ERR_UNSUPPORTED) return rc;
  }
  return dc__cpu_conv2d_ref_backward(gx, gw, gb, gy, x, w, g);
}

const struct dc_nn_kernels dc__cpu_nn = {
    .version = DC_NN_KERNELS_VERSION,
    .conv2d_forward = conv2d_forward,
    .conv2d_backward = conv2d_backward,
    .max_pool2d_forward = dc__cpu_max_pool2d_forward,
    .avg_pool2d_forward = dc__cpu_avg_pool2d_forward,
    .avg_pool2d_backward = dc__cpu_avg_pool2d_backward,
    .adaptive_avg_pool2d_forward = dc__cpu_adaptive_avg_pool2d_forward,
    .adaptive_avg_pool2d_backward = dc__cpu_adaptive_avg_pool2d_backward,
    .adaptive_max_pool2d_forward = dc__cpu_adaptive_max_pool2d_forward,
    .max_pool2d_backward = dc__cpu_max_pool2d_backward,
    .batch_norm_forward = dc__cpu_batch_norm_forward,
    .batch_norm_backward = dc__cpu_batch_norm_backward,
    .dropout_mask = dc__cpu_dropout_mask,
    .apply_mask = dc__cpu_apply_mask,
    .hardtanh_forward = dc__cpu_hardtanh_forward,
    .hardtanh_backward = dc__cpu_hardtanh_backward,
    .pointwise_loss_forward = dc__cpu_pointwise_loss_forward,
    .pointwise_loss_backward = dc__cpu_pointwise_loss_backward,
    .xent_forward = dc__cpu_xent_forward,
    .xent_backward = dc__cpu_xent_backward,
    .multi_margin_forward = dc__cpu_multi_margin_forward,
    .multi_margin_backward = dc__cpu_multi_margin_backward,
    .batch_norm_relu_forward = dc__cpu_batch_norm_relu_forward,
    .batch_norm_relu_backward = dc__cpu_batch_norm_relu_backward,
    .conv_block_plan = dc__cpu_conv_block_plan,
    .conv_block_forward = dc__cpu_conv_block_forward,
    .conv_block_backward = dc__cpu_conv_block_backward,
};
