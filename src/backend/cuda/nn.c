/* The CUDA backend's nn table: convolution (conv.c, cuDNN), pooling (pool.cu), dropout and
 * hardtanh (nn.cu), batch norm alone and fused with its ReLU (bnorm.cu), the pointwise losses
 * (loss.cu) and the class-index losses (xent.cu), and the optional fused entries: batch_norm_relu
 * (DC_CAP_BATCH_NORM_RELU) and the conv block (conv_block.c, DC_CAP_CONV_BLOCK). */
#include "cuda-impl.h"

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
    .conv_block_plan = dc__cuda_conv_block_plan,
    .conv_block_forward = dc__cuda_conv_block_forward,
    .conv_block_backward = dc__cuda_conv_block_backward,
};
