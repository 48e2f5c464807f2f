/* The CUDA conv block (the optional conv_block entries, DC_CAP_CONV_BLOCK): conv2d -> batch
 * norm [-> ReLU [-> 2x2 max pooling, stride 2, floor mode]] composed of the backend's own
 * entries, with the CPU's semantics (cpu/nn/conv_block.c): cuDNN's convolution (conv.c), the
 * batch norm, fused with its ReLU when there is one (bnorm.cu), the max pooling (pool.cu), and
 * conv_block.cu's small kernels. What the op keeps between the passes is the convolution's
 * output yc in NCHW followed, with the ReLU, by one byte per element saying whether the ReLU
 * passes a gradient there (its output > 0 or NaN): the backward needs neither the batch norm's
 * nor the ReLU's full-size output, and masks exactly where the forward's ReLU did. idx (pooled)
 * is each window's argmax 0..3 row-major, the first largest (a NaN wins) as pool-math.h and the
 * CPU's block. Forward and backward each hold one or two full-size float32 temporaries from the
 * caching allocator (the pre-pool output; the masked gradient and the convolution's output
 * gradient). float32 only (the op asks for nothing else).
 * Shapes: x [N, C, H, W]; w [K, C/G, kH, kW]; b, bn_w, bn_b, running stats [K]; yc [N, K, OH,
 * OW] then the mask [N, K, OH, OW] uint8 (ReLU); y, gy [N, K, PH, PW] with PH = OH/2, PW = OW/2
 * when pooled, else OH, OW; idx uint8 [N, K, PH, PW]; stats [4, K] (mean, invstd, a, b). */
#include "cuda-impl.h"

/* bytes of yc: the convolution's output, then (always, since the plan does not know the mode)
 * room for the ReLU's mask, rounded up to whole floats */
static size_t yc_bytes(const dc_conv2d_geom *g) {
  size_t n = (size_t)(g->n * g->k * g->oh * g->ow);
  return n * sizeof(float) + (n + 3) / 4 * 4;
}

int dc__cuda_conv_block_plan(const dc_conv2d_geom *g, bool has_bias, size_t *bytes) {
  (void)has_bias;
  if (g->oh < 2 || g->ow < 2 || g->n < 1) return DC_ERR_UNSUPPORTED; /* as the CPU's plan */
  *bytes = yc_bytes(g);
  return DC_OK;
}

/* yc as the 4-D float32 tensor [N, K, OH, OW] at its start; the mask's bytes after it */
static dc_tensor *yc_view(const dc_tensor *yc, const dc_conv2d_geom *g) {
  int64_t s[4] = {g->n, g->k, g->oh, g->ow},
          st[4] = {g->k * g->oh * g->ow, g->oh * g->ow, g->ow, 1};
  return dc__alias(yc, 4, s, st, yc->offset);
}
static uint8_t *mask_of(const dc_tensor *yc, const dc_conv2d_geom *g) {
  return (uint8_t *)dc__cuda_ptr(yc) + (size_t)(g->n * g->k * g->oh * g->ow) * sizeof(float);
}
/* row r of stats [4, K] as a [K] tensor */
static dc_tensor *stats_row(const dc_tensor *stats, int r, int64_t k) {
  int64_t s[1] = {k}, st[1] = {1};
  return dc__alias(stats, 1, s, st, stats->offset + r * k);
}
static dc_pool2d_geom pool_geom(const dc_conv2d_geom *g) {
  dc_pool2d_geom p;
  memset(&p, 0, sizeof p);
  p.planes = g->n * g->k, p.h = g->oh, p.w = g->ow, p.oh = g->oh / 2, p.ow = g->ow / 2;
  for (int i = 0; i < 2; i++) p.kernel[i] = p.stride[i] = 2, p.dilation[i] = 1;
  return p;
}

static int check(const dc_tensor *x, const dc_tensor *yc, const dc_conv2d_geom *g, const char *op) {
  if (x->dtype != DC_F32)
    return dc__errs(DC_ERR_ARG, "%s: the cuda conv block takes float32, got %s", op,
                    dc_dtype_name(x->dtype));
  if ((size_t)dc_numel(yc) * sizeof(float) < yc_bytes(g))
    return dc__errs(DC_ERR_ARG, "%s: yc holds %lld floats, the plan asked for %zu bytes", op,
                    (long long)dc_numel(yc), yc_bytes(g));
  return DC_OK;
}

/* the normalised (and relu'd) output, pooled into y (idx: its argmaxes, or NULL) */
static int norm_pool(dc_tensor *y, dc_tensor *idx, dc_tensor *ycv, dc_tensor *mean,
                     dc_tensor *invstd, const dc_tensor *yc, const dc_tensor *bn_w,
                     const dc_tensor *bn_b, dc_tensor *running_mean, dc_tensor *running_var,
                     bool batch_stats, double momentum, double eps, const dc_conv2d_geom *g,
                     int mode) {
  bool pool = mode & DC_CONV_BLOCK_POOL, relu = mode & DC_CONV_BLOCK_RELU;
  dc_tensor *r = pool ? dc__new(dc_shape_of(ycv), DC_F32, ycv->device) : NULL;
  dc_tensor *i32 = NULL;
  if (pool && !r) return dc_last_status();
  dc_tensor *out = r ? r : y;
  int rc = relu ? dc__cuda_batch_norm_relu_forward(out, mean, invstd, ycv, bn_w, bn_b, running_mean,
                                                   running_var, batch_stats, momentum, eps)
                : dc__cuda_batch_norm_forward(out, mean, invstd, ycv, bn_w, bn_b, running_mean,
                                              running_var, batch_stats, momentum, eps);
  if (rc == DC_OK && relu) rc = dc__cuda_cb_mask(mask_of(yc, g), out);
  if (rc == DC_OK && pool) {
    dc_pool2d_geom pg = pool_geom(g);
    i32 = idx ? dc__new(DC_SHAPE(pg.planes, pg.oh, pg.ow), DC_I32, ycv->device) : NULL;
    if (idx && !i32) rc = dc_last_status();
    if (rc == DC_OK) rc = dc__cuda_max_pool2d_forward(y, i32, r, &pg);
    if (rc == DC_OK && idx) rc = dc__cuda_cb_idx(idx, i32, g, true);
  }
  dc_free(i32);
  dc_free(r);
  return rc;
}

int dc__cuda_conv_block_forward(dc_tensor *y, dc_tensor *yc, dc_tensor *idx, dc_tensor *stats,
                                const dc_tensor *x, const dc_tensor *w, const dc_tensor *b,
                                const dc_tensor *bn_w, const dc_tensor *bn_b,
                                dc_tensor *running_mean, dc_tensor *running_var, bool batch_stats,
                                double momentum, double eps, const dc_conv2d_geom *g, int mode) {
  int rc = check(x, yc, g, "conv_block");
  if (rc != DC_OK) return rc;
  dc_tensor *ycv = yc_view(yc, g), *mean = stats_row(stats, 0, g->k);
  dc_tensor *invstd = stats_row(stats, 1, g->k);
  rc = ycv && mean && invstd ? dc__cuda_conv2d_forward(ycv, x, w, b, g) : (int)dc_last_status();
  if (rc == DC_OK)
    rc = norm_pool(y, idx, ycv, mean, invstd, yc, bn_w, bn_b, running_mean, running_var,
                   batch_stats, momentum, eps, g, mode);
  if (rc == DC_OK) rc = dc__cuda_cb_affine(stats, bn_w, bn_b, g->k);
  dc_free(ycv);
  dc_free(mean);
  dc_free(invstd);
  return rc;
}

/* gz [N, K, OH, OW] = the gradient at the batch norm's output: gy scattered to the argmaxes
 * (pooled), masked where the ReLU passed none */
static int grad_at_bn(dc_tensor *gz, const dc_tensor *gy, const dc_tensor *yc, const dc_tensor *idx,
                      const dc_conv2d_geom *g, int mode) {
  int rc = DC_OK;
  const dc_tensor *src = gy;
  if (mode & DC_CONV_BLOCK_POOL) {
    dc_pool2d_geom pg = pool_geom(g);
    dc_tensor *i32 = dc__new(DC_SHAPE(pg.planes, pg.oh, pg.ow), DC_I32, gz->device);
    rc = i32 ? dc__cuda_cb_idx((dc_tensor *)idx, i32, g, false) : (int)dc_last_status();
    if (rc == DC_OK) rc = dc__cuda_max_pool2d_backward(gz, gy, i32, &pg);
    dc_free(i32);
    src = gz;
  }
  if (rc == DC_OK && (mode & DC_CONV_BLOCK_RELU))
    return dc__cuda_cb_apply_mask(gz, src, mask_of(yc, g));
  if (rc == DC_OK && src != gz) rc = dc__cuda_copy(gz, src);
  return rc;
}

int dc__cuda_conv_block_backward(dc_tensor *gx, dc_tensor *gw, dc_tensor *gb, dc_tensor *gbn_w,
                                 dc_tensor *gbn_b, const dc_tensor *gy, const dc_tensor *x,
                                 const dc_tensor *w, const dc_tensor *yc, const dc_tensor *idx,
                                 const dc_tensor *bn_w, const dc_tensor *bn_b,
                                 const dc_tensor *stats, bool batch_stats, const dc_conv2d_geom *g,
                                 int mode) {
  (void)bn_b;
  int rc = check(x, yc, g, "conv_block backward");
  bool need_gyc = gx || gw || gb;
  if (rc != DC_OK || (!need_gyc && !gbn_w && !gbn_b)) return rc;
  if ((mode & DC_CONV_BLOCK_POOL) && !idx)
    return dc__errs(DC_ERR_ARG, "conv_block backward: a pooled block needs the forward's idx");
  dc_tensor *ycv = yc_view(yc, g), *mean = stats_row(stats, 0, g->k);
  dc_tensor *invstd = stats_row(stats, 1, g->k);
  dc_tensor *gz = dc__new(DC_SHAPE(g->n, g->k, g->oh, g->ow), DC_F32, x->device);
  dc_tensor *gyc = need_gyc ? dc__new(dc_shape_of(gz), DC_F32, x->device) : NULL;
  rc = ycv && mean && invstd && gz && (gyc || !need_gyc) ? DC_OK : (int)dc_last_status();
  if (rc == DC_OK) rc = grad_at_bn(gz, gy, yc, idx, g, mode);
  if (rc == DC_OK)
    rc = dc__cuda_batch_norm_backward(gyc, gbn_w, gbn_b, gz, ycv, bn_w, mean, invstd, batch_stats);
  if (rc == DC_OK && need_gyc) rc = dc__cuda_conv2d_backward(gx, gw, gb, gyc, x, w, g);
  dc_free(gyc);
  dc_free(gz);
  dc_free(ycv);
  dc_free(mean);
  dc_free(invstd);
  return rc;
}
