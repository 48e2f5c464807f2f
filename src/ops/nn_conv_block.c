/* conv_block: conv2d -> batch norm -> ReLU -> max pooling 2x2 (stride 2, floor mode) as one op,
 * what Conv2d, BatchNorm2d, ReLU, MaxPool2d(2) in a Sequential run as when the backend fuses
 * the layer (conv_block_plan in nn-kernels.h; on the CPU, float32 with oneDNN's 16-channel
 * blocked layout). The same values and gradients as the four ops, within float32 rounding
 * of the batch statistics, without the three full-size intermediate tensors. When the backend
 * does not fuse a layer, dc__conv_block says so without an error and the caller runs the ops.
 * Shapes: x [N, C, H, W]; w [K, C/G, kH, kW]; b, bn_w, bn_b, running stats [K]; the
 * convolution's output [N, K, OH, OW]; y [N, K, OH/2, OW/2]. */
#include "nn_ops.h"

#include <assert.h>
#include <string.h>

/* node ints: the conv geometry, then these */
enum { I_BATCH_STATS = 19, I_B, I_BN_W, I_BN_B };
static_assert(sizeof(dc_conv2d_geom) <= sizeof(int64_t) * I_BATCH_STATS,
              "conv geometry must fit before the block's own ints");
static_assert(I_BN_B < DC_NODE_MAX_INTS, "conv_block ints must fit in a node");

/* saved: 0 the convolution's output in the backend's layout, 1 the argmax of each window,
 * 2 the statistics [4, K] (mean, invstd, and the affine a, b the forward used).
 * grads: all of the convolution's and the batch norm's inputs in one kernel call. */
static int conv_block_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  if (!dc__nn_no_double_backward("conv_bn_relu_pool")) return DC_ERR_UNSUPPORTED;
  dc_conv2d_geom g;
  memcpy(&g, n->i, sizeof g);
  int ib = (int)n->i[I_B], ibw = (int)n->i[I_BN_W], ibb = (int)n->i[I_BN_B];
  dc_tensor *x = n->inputs[0], *w = n->inputs[1];
  dc_tensor *bn_w = ibw ? n->inputs[ibw] : NULL, *bn_b = ibb ? n->inputs[ibb] : NULL;
  dc_tensor *gy = dc_contiguous(gout);
  dc_tensor *gr[5] = {NULL}; /* by input index */
  bool ok = gy != NULL;
  for (int k = 0; k < n->ninputs && ok; k++)
    if (dc__needs_grad(n, k)) {
      gr[k] = dc__new(dc_shape_of(n->inputs[k]), DC_F32, x->device);
      ok = gr[k] != NULL;
    }
  const struct dc_nn_kernels *kn = ok ? dc__nn_kernels("conv_bn_relu_pool", x) : NULL;
  if (!kn) {
    for (int k = 0; k < 5; k++) dc_free(gr[k]);
    return dc__nn_status();
  }
  int rc = kn->conv_block_backward(gr[0], gr[1], ib ? gr[ib] : NULL, ibw ? gr[ibw] : NULL,
                                   ibb ? gr[ibb] : NULL, gy, x, w, n->saved[0], n->saved[1], bn_w,
                                   bn_b, n->saved[2], n->i[I_BATCH_STATS] != 0, &g);
  if (rc != DC_OK) {
    for (int k = 0; k < 5; k++) dc_free(gr[k]);
    return rc;
  }
  for (int k = 0; k < n->ninputs; k++) gin[k] = gr[k];
  return DC_OK;
}
static const dc_opdef OP_CONV_BLOCK = {"conv_bn_relu_pool", conv_block_backward};

/* a float32 [K] vector on x's device, or NULL */
static bool vec_ok(const dc_tensor *t, const dc_tensor *x, int64_t K, bool inplace) {
  return !t || (t->dtype == DC_F32 && t->ndim == 1 && t->shape[0] == K && t->device == x->device &&
                (!inplace || dc_is_contiguous(t)));
}

dc_tensor *dc__conv_block(dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_conv2d_opts o,
                          dc_tensor *running_mean, dc_tensor *running_var, dc_tensor *bn_w,
                          dc_tensor *bn_b, bool training, double momentum, double eps,
                          bool *fused) {
  *fused = false;
  if (!x || !w || x->dtype != DC_F32 || w->dtype != DC_F32 || x->ndim != 4 || w->ndim != 4 ||
      (b && b->dtype != DC_F32) || (running_mean == NULL) != (running_var == NULL) || !(eps >= 0) ||
      !(momentum >= 0 && momentum <= 1))
    return NULL;
  dc_conv2d_geom g;
  if (!dc__conv_geom(&g, x, w, o)) return NULL; /* the caller's conv2d reports it */
  int64_t K = g.k;
  bool batch_stats = training || !running_mean;
  if (!vec_ok(b, x, K, false) || !vec_ok(bn_w, x, K, false) || !vec_ok(bn_b, x, K, false) ||
      !vec_ok(running_mean, x, K, true) || !vec_ok(running_var, x, K, true) ||
      (batch_stats && g.n * g.oh * g.ow <= 1))
    return NULL;
  const struct dc_nn_kernels *k = dc__nn_kernels("conv_bn_relu_pool", x);
  size_t bytes = 0;
  if (!k || !k->conv_block_plan || k->conv_block_plan(&g, b != NULL, &bytes) != DC_OK ||
      bytes % sizeof(float))
    return NULL;
  *fused = true;
  dc_tensor *ins[5] = {dc__nn_prepare(x, DC_F32), dc__nn_prepare(w, DC_F32)};
  int nin = 2, ib = 0, ibw = 0, ibb = 0;
  if (b) ins[ib = nin++] = dc__nn_prepare(b, DC_F32);
  if (bn_w) ins[ibw = nin++] = dc__nn_prepare(bn_w, DC_F32);
  if (bn_b) ins[ibb = nin++] = dc__nn_prepare(bn_b, DC_F32);
  bool ok = true;
  for (int i = 0; i < nin; i++) ok = ok && ins[i];
  dc_tensor *y = NULL, *yc = NULL, *idx = NULL, *stats = NULL;
  if (ok) {
    y = dc__new(DC_SHAPE(g.n, K, g.oh / 2, g.ow / 2), DC_F32, x->device);
    yc = dc__new(DC_SHAPE((int64_t)(bytes / sizeof(float))), DC_F32, x->device);
    idx = dc__new(DC_SHAPE(g.n, K, g.oh / 2, g.ow / 2), DC_U8, x->device);
    stats = dc__new(DC_SHAPE(4, K), DC_F32, x->device);
  }
  ok = ok && y && yc && idx && stats &&
       k->conv_block_forward(y, yc, idx, stats, ins[0], ins[1], ib ? ins[ib] : NULL,
                             ibw ? ins[ibw] : NULL, ibb ? ins[ibb] : NULL, running_mean,
                             running_var, batch_stats, momentum, eps, &g) == DC_OK;
  dc_node *n = NULL;
  ok = ok && dc__record(&OP_CONV_BLOCK, y, nin, ins, &n);
  if (ok && n) {
    memcpy(n->i, &g, sizeof g);
    n->i[I_BATCH_STATS] = batch_stats;
    n->i[I_B] = ib;
    n->i[I_BN_W] = ibw;
    n->i[I_BN_B] = ibb;
    dc__save(n, 0, yc);
    dc__save(n, 1, idx);
    dc__save(n, 2, stats);
  }
  for (int i = 0; i < nin; i++) dc__unref(ins[i]);
  dc_free(yc);
  dc_free(idx);
  dc_free(stats);
  if (!ok) {
    dc_free(y);
    return NULL;
  }
  return y;
}
