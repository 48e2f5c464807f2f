/* The test device's nn kernel family: convolution, pooling, batch norm, dropout, hardtanh, the
 * losses and the fused conv block, each the CPU kernel run on the shadows of its tensor
 * arguments (testdev-impl.h). Shapes as in src/backend/nn-kernels.h. */
#include "testdev-impl.h"

#include "../nn-kernels.h"

#define NN (dc__cpu_backend.nn)
#define H(t) dc__tdev_host(&f, (t))
#define OPEN()                                                                                     \
  dc__tdev_frame f;                                                                                \
  dc__tdev_begin(&f)
#define RUN(call) dc__tdev_end(&f, dc__tdev_ok(&f) ? (call) : DC_OK)

/* ---- convolution ---- */
static int conv2d_forward(dc_tensor *y, const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                          const dc_conv2d_geom *g) {
  OPEN();
  dc_tensor *hy = H(y);
  const dc_tensor *hx = H(x), *hw = H(w), *hb = H(b);
  return RUN(NN->conv2d_forward(hy, hx, hw, hb, g));
}

static int conv2d_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                           const dc_tensor *x, const dc_tensor *w, const dc_conv2d_geom *g) {
  OPEN();
  dc_tensor *hgx = H(gx), *hgw = H(gw), *hgb = H(gb);
  const dc_tensor *hgy = H(gy), *hx = H(x), *hw = H(w);
  return RUN(NN->conv2d_backward(hgx, hgw, hgb, hgy, hx, hw, g));
}

/* ---- pooling ---- */
static int max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                              const dc_pool2d_geom *g) {
  OPEN();
  dc_tensor *hy = H(y), *hi = H(idx);
  const dc_tensor *hx = H(x);
  return RUN(NN->max_pool2d_forward(hy, hi, hx, g));
}

static int avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g) {
  OPEN();
  dc_tensor *hy = H(y);
  const dc_tensor *hx = H(x);
  return RUN(NN->avg_pool2d_forward(hy, hx, g));
}

static int avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_pool2d_geom *g) {
  OPEN();
  dc_tensor *hgx = H(gx);
  const dc_tensor *hgy = H(gy);
  return RUN(NN->avg_pool2d_backward(hgx, hgy, g));
}

static int adaptive_avg_pool2d_forward(dc_tensor *y, const dc_tensor *x, const dc_pool2d_geom *g) {
  OPEN();
  dc_tensor *hy = H(y);
  const dc_tensor *hx = H(x);
  return RUN(NN->adaptive_avg_pool2d_forward(hy, hx, g));
}

static int adaptive_avg_pool2d_backward(dc_tensor *gx, const dc_tensor *gy,
                                        const dc_pool2d_geom *g) {
  OPEN();
  dc_tensor *hgx = H(gx);
  const dc_tensor *hgy = H(gy);
  return RUN(NN->adaptive_avg_pool2d_backward(hgx, hgy, g));
}

static int adaptive_max_pool2d_forward(dc_tensor *y, dc_tensor *idx, const dc_tensor *x,
                                       const dc_pool2d_geom *g) {
  OPEN();
  dc_tensor *hy = H(y), *hi = H(idx);
  const dc_tensor *hx = H(x);
  return RUN(NN->adaptive_max_pool2d_forward(hy, hi, hx, g));
}

static int max_pool2d_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *idx,
                               const dc_pool2d_geom *g) {
  OPEN();
  dc_tensor *hgx = H(gx);
  const dc_tensor *hgy = H(gy), *hi = H(idx);
  return RUN(NN->max_pool2d_backward(hgx, hgy, hi, g));
}

/* ---- batch norm (and with the ReLU after it) ---- */
static int batch_norm_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                              const dc_tensor *x, const dc_tensor *weight, const dc_tensor *bias,
                              dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                              double momentum, double eps) {
  OPEN();
  dc_tensor *hy = H(y), *hm = H(save_mean), *hs = H(save_invstd);
  const dc_tensor *hx = H(x), *hw = H(weight), *hb = H(bias);
  dc_tensor *hrm = H(running_mean), *hrv = H(running_var);
  return RUN(NN->batch_norm_forward(hy, hm, hs, hx, hw, hb, hrm, hrv, batch_stats, momentum, eps));
}

static int batch_norm_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, const dc_tensor *gy,
                               const dc_tensor *x, const dc_tensor *weight, const dc_tensor *mean,
                               const dc_tensor *invstd, bool batch_stats) {
  OPEN();
  dc_tensor *hgx = H(gx), *hgw = H(gw), *hgb = H(gb);
  const dc_tensor *hgy = H(gy), *hx = H(x), *hw = H(weight), *hm = H(mean), *hs = H(invstd);
  return RUN(NN->batch_norm_backward(hgx, hgw, hgb, hgy, hx, hw, hm, hs, batch_stats));
}

static int batch_norm_relu_forward(dc_tensor *y, dc_tensor *save_mean, dc_tensor *save_invstd,
                                   const dc_tensor *x, const dc_tensor *weight,
                                   const dc_tensor *bias, dc_tensor *running_mean,
                                   dc_tensor *running_var, bool batch_stats, double momentum,
                                   double eps) {
  OPEN();
  dc_tensor *hy = H(y), *hm = H(save_mean), *hs = H(save_invstd);
  const dc_tensor *hx = H(x), *hw = H(weight), *hb = H(bias);
  dc_tensor *hrm = H(running_mean), *hrv = H(running_var);
  return RUN(
      NN->batch_norm_relu_forward(hy, hm, hs, hx, hw, hb, hrm, hrv, batch_stats, momentum, eps));
}

static int batch_norm_relu_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb,
                                    const dc_tensor *gy, const dc_tensor *y, const dc_tensor *x,
                                    const dc_tensor *weight, const dc_tensor *mean,
                                    const dc_tensor *invstd, bool batch_stats) {
  OPEN();
  dc_tensor *hgx = H(gx), *hgw = H(gw), *hgb = H(gb);
  const dc_tensor *hgy = H(gy), *hy = H(y), *hx = H(x), *hw = H(weight);
  const dc_tensor *hm = H(mean), *hs = H(invstd);
  return RUN(NN->batch_norm_relu_backward(hgx, hgw, hgb, hgy, hy, hx, hw, hm, hs, batch_stats));
}

/* ---- dropout and hardtanh ---- */
static int dropout_mask(dc_tensor *mask, double p) {
  OPEN();
  dc_tensor *hm = H(mask);
  return RUN(NN->dropout_mask(hm, p));
}

static int apply_mask(dc_tensor *y, const dc_tensor *x, const dc_tensor *mask, int64_t inner) {
  OPEN();
  dc_tensor *hy = H(y);
  const dc_tensor *hx = H(x), *hm = H(mask);
  return RUN(NN->apply_mask(hy, hx, hm, inner));
}

static int hardtanh_forward(dc_tensor *y, const dc_tensor *x, double lo, double hi) {
  OPEN();
  dc_tensor *hy = H(y);
  const dc_tensor *hx = H(x);
  return RUN(NN->hardtanh_forward(hy, hx, lo, hi));
}

static int hardtanh_backward(dc_tensor *gx, const dc_tensor *gy, const dc_tensor *x, double lo,
                             double hi) {
  OPEN();
  dc_tensor *hgx = H(gx);
  const dc_tensor *hgy = H(gy), *hx = H(x);
  return RUN(NN->hardtanh_backward(hgx, hgy, hx, lo, hi));
}

/* ---- losses ---- */
static int pointwise_loss_forward(dc_pwloss_op op, dc_tensor *out, const dc_tensor *x,
                                  const dc_tensor *t, const dc_tensor *weight,
                                  const dc_tensor *pos_weight, double p, bool reduce,
                                  double scale) {
  OPEN();
  dc_tensor *ho = H(out);
  const dc_tensor *hx = H(x), *ht = H(t), *hw = H(weight), *hp = H(pos_weight);
  return RUN(NN->pointwise_loss_forward(op, ho, hx, ht, hw, hp, p, reduce, scale));
}

static int pointwise_loss_backward(dc_pwloss_op op, dc_tensor *gx, dc_tensor *gt,
                                   const dc_tensor *gout, const dc_tensor *x, const dc_tensor *t,
                                   const dc_tensor *weight, const dc_tensor *pos_weight, double p,
                                   double scale) {
  OPEN();
  dc_tensor *hgx = H(gx), *hgt = H(gt);
  const dc_tensor *hgo = H(gout), *hx = H(x), *ht = H(t), *hw = H(weight), *hp = H(pos_weight);
  return RUN(NN->pointwise_loss_backward(op, hgx, hgt, hgo, hx, ht, hw, hp, p, scale));
}

static int xent_forward(dc_tensor *out, dc_tensor *lse, double wsum[2], const dc_tensor *x,
                        const dc_tensor *target, const dc_tensor *weight, const dc_xent_params *p) {
  OPEN();
  dc_tensor *ho = H(out), *hl = H(lse);
  const dc_tensor *hx = H(x), *ht = H(target), *hw = H(weight);
  return RUN(NN->xent_forward(ho, hl, wsum, hx, ht, hw, p));
}

static int xent_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                         const dc_tensor *lse, const dc_tensor *target, const dc_tensor *weight,
                         const double wsum[2], const dc_xent_params *p) {
  OPEN();
  dc_tensor *hgx = H(gx);
  const dc_tensor *hgo = H(gout), *hx = H(x), *hl = H(lse), *ht = H(target), *hw = H(weight);
  return RUN(NN->xent_backward(hgx, hgo, hx, hl, ht, hw, wsum, p));
}

static int multi_margin_forward(dc_tensor *out, const dc_tensor *x, const dc_tensor *target,
                                const dc_tensor *weight, int p, double margin, bool reduce,
                                double scale) {
  OPEN();
  dc_tensor *ho = H(out);
  const dc_tensor *hx = H(x), *ht = H(target), *hw = H(weight);
  return RUN(NN->multi_margin_forward(ho, hx, ht, hw, p, margin, reduce, scale));
}

static int multi_margin_backward(dc_tensor *gx, const dc_tensor *gout, const dc_tensor *x,
                                 const dc_tensor *target, const dc_tensor *weight, int p,
                                 double margin, double scale) {
  OPEN();
  dc_tensor *hgx = H(gx);
  const dc_tensor *hgo = H(gout), *hx = H(x), *ht = H(target), *hw = H(weight);
  return RUN(NN->multi_margin_backward(hgx, hgo, hx, ht, hw, p, margin, scale));
}

/* ---- the fused conv block: yc stays in the CPU kernel's layout, on the test device ---- */
static int conv_block_plan(const dc_conv2d_geom *g, bool has_bias, size_t *bytes) {
  return NN->conv_block_plan(g, has_bias, bytes);
}

static int conv_block_forward(dc_tensor *y, dc_tensor *yc, dc_tensor *idx, dc_tensor *stats,
                              const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                              const dc_tensor *bn_w, const dc_tensor *bn_b, dc_tensor *running_mean,
                              dc_tensor *running_var, bool batch_stats, double momentum, double eps,
                              const dc_conv2d_geom *g, int mode) {
  OPEN();
  dc_tensor *hy = H(y), *hyc = H(yc), *hi = H(idx), *hs = H(stats);
  const dc_tensor *hx = H(x), *hw = H(w), *hb = H(b), *hbw = H(bn_w), *hbb = H(bn_b);
  dc_tensor *hrm = H(running_mean), *hrv = H(running_var);
  return RUN(NN->conv_block_forward(hy, hyc, hi, hs, hx, hw, hb, hbw, hbb, hrm, hrv, batch_stats,
                                    momentum, eps, g, mode));
}

static int conv_block_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, dc_tensor *gbn_w,
                               dc_tensor *gbn_b, const dc_tensor *gy, const dc_tensor *x,
                               const dc_tensor *w, const dc_tensor *yc, const dc_tensor *idx,
                               const dc_tensor *bn_w, const dc_tensor *bn_b, const dc_tensor *stats,
                               bool batch_stats, const dc_conv2d_geom *g, int mode) {
  OPEN();
  dc_tensor *hgx = H(gx), *hgw = H(gw), *hgb = H(gb), *hgbw = H(gbn_w), *hgbb = H(gbn_b);
  const dc_tensor *hgy = H(gy), *hx = H(x), *hw = H(w), *hyc = H(yc), *hi = H(idx);
  const dc_tensor *hbw = H(bn_w), *hbb = H(bn_b), *hs = H(stats);
  return RUN(NN->conv_block_backward(hgx, hgw, hgb, hgbw, hgbb, hgy, hx, hw, hyc, hi, hbw, hbb, hs,
                                     batch_stats, g, mode));
}

const struct dc_nn_kernels dc__testdev_nn = {
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
    .batch_norm_forward = batch_norm_forward,
    .batch_norm_backward = batch_norm_backward,
    .dropout_mask = dropout_mask,
    .apply_mask = apply_mask,
    .hardtanh_forward = hardtanh_forward,
    .hardtanh_backward = hardtanh_backward,
    .pointwise_loss_forward = pointwise_loss_forward,
    .pointwise_loss_backward = pointwise_loss_backward,
    .xent_forward = xent_forward,
    .xent_backward = xent_backward,
    .multi_margin_forward = multi_margin_forward,
    .multi_margin_backward = multi_margin_backward,
    .batch_norm_relu_forward = batch_norm_relu_forward,
    .batch_norm_relu_backward = batch_norm_relu_backward,
    .conv_block_plan = conv_block_plan,
    .conv_block_forward = conv_block_forward,
    .conv_block_backward = conv_block_backward,
};
