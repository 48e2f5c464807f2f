/* conv_block: conv2d -> batch norm [-> ReLU [-> max pooling 2x2 (stride 2, floor mode)]] as one
 * op, what Conv2d, BatchNorm2d[, ReLU[, MaxPool2d(2)]] in a Sequential (and ResNet's blocks) run
 * as when the backend fuses the layer (conv_block_plan in nn-kernels.h; on the CPU, float32 with
 * oneDNN's 16-channel blocked layout). The same values and gradients as the separate ops, within
 * float32 rounding of the batch statistics, without the full-size intermediate tensors. When the
 * backend does not fuse a layer, dc__conv_block says so without an error and the caller runs the
 * ops. Graph nodes are named conv_bn_relu_pool, conv_bn_relu or conv_bn.
 * Shapes: x [N, C, H, W]; w [K, C/G, kH, kW]; b, bn_w, bn_b, running stats [K]; the
 * convolution's output [N, K, OH, OW]; y [N, K, OH/2, OW/2] pooled, else [N, K, OH, OW]. */
#include "nn_ops.h"
#include "autocast-impl.h"

#include <assert.h>
#include <string.h>

#define EVAL_CHUNK 64 /* images per conv_block_forward call in evaluation */

/* args: dc__conv_block_args; saved: 0 the convolution's output in the backend's layout, 1 the
 * argmax of each window (pooled), 2 the statistics [4, K] (mean, invstd, and the affine a, b the
 * forward used). grads: all of the convolution's and the batch norm's inputs in one kernel call. */
static int conv_block_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  if (!dc__nn_no_double_backward(dc__op_name(n->op))) return DC_ERR_UNSUPPORTED;
  const dc__conv_block_args *a = DC__ARGS(n, conv_block);
  dc_conv2d_geom g = a->geom;
  int ib = a->ib, ibw = a->ibw, ibb = a->ibb;
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
  const struct dc_nn_kernels *kn = ok ? dc__nn_kernels(dc__op_name(n->op), x) : NULL;
  int rc = !kn ? dc__nn_status()
               : kn->conv_block_backward(gr[0], gr[1], ib ? gr[ib] : NULL, ibw ? gr[ibw] : NULL,
                                         ibb ? gr[ibb] : NULL, gy, x, w, n->saved[0], n->saved[1],
                                         bn_w, bn_b, n->saved[2], a->batch_stats, &g, a->mode);
  for (int k = 0; k < 5; k++) {
    if (rc == DC_OK && k < n->ninputs)
      gin[k] = gr[k];
    else
      dc_free(gr[k]);
  }
  return rc;
}
/* by mode (DC_CONV_BLOCK_RELU | DC_CONV_BLOCK_POOL); pooling comes only with the ReLU */
DC__OPDEF(CONV_BN, conv_block_backward);
DC__OPDEF(CONV_BN_RELU, conv_block_backward);
DC__OPDEF(CONV_BN_RELU_POOL, conv_block_backward);

/* a float32 [K] vector on x's device, or NULL */
static bool vec_ok(const dc_tensor *t, const dc_tensor *x, int64_t K, bool inplace) {
  return !t || (t->dtype == DC_F32 && t->ndim == 1 && t->shape[0] == K && t->device == x->device &&
                (!inplace || dc_is_contiguous(t)));
}

dc_tensor *dc__conv_block(dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_conv2d_opts o,
                          dc_tensor *running_mean, dc_tensor *running_var, dc_tensor *bn_w,
                          dc_tensor *bn_b, bool training, double momentum, double eps, int mode,
                          bool *fused) {
  *fused = false;
  const bool pool = mode & DC_CONV_BLOCK_POOL;
  const dc_opdef *op = pool                        ? &dc__op_CONV_BN_RELU_POOL
                       : mode & DC_CONV_BLOCK_RELU ? &dc__op_CONV_BN_RELU
                                                   : &dc__op_CONV_BN;
  if (pool && !(mode & DC_CONV_BLOCK_RELU)) return NULL; /* not a pattern the backend runs */
  if (x && dc_autocast_enabled(x->device)) return NULL;  /* the unfused ops follow autocast */
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
  const struct dc_nn_kernels *k = dc__nn_kernels(dc__op_name(op), x);
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
  bool ok = true, grad = false;
  for (int i = 0; i < nin; i++) ok = ok && ins[i], grad = grad || (ins[i] && ins[i]->requires_grad);
  grad = grad && dc_is_grad_enabled();
  /* Evaluation (running statistics, no graph) treats each image on its own: chunks of
   * EVAL_CHUNK images keep the convolution's output small and in cache, with the same bits. */
  int64_t chunk = !batch_stats && !grad && g.n > EVAL_CHUNK ? EVAL_CHUNK : g.n;
  dc_conv2d_geom gc = g;
  gc.n = chunk;
  size_t cbytes = bytes;
  if (chunk < g.n && k->conv_block_plan(&gc, b != NULL, &cbytes) != DC_OK) {
    chunk = gc.n = g.n;
    cbytes = bytes;
  }
  dc_tensor *y = NULL, *yc = NULL, *idx = NULL, *stats = NULL;
  const int64_t ps = pool ? 2 : 1; /* the pooling's stride */
  if (ok) {
    y = dc__new(DC_SHAPE(g.n, K, g.oh / ps, g.ow / ps), DC_F32, x->device);
    yc = dc__new(DC_SHAPE((int64_t)(cbytes / sizeof(float))), DC_F32, x->device);
    idx = grad && pool ? dc__new(DC_SHAPE(g.n, K, g.oh / 2, g.ow / 2), DC_U8, x->device) : NULL;
    stats = dc__new(DC_SHAPE(4, K), DC_F32, x->device);
  }
  ok = ok && y && yc && (idx || !grad || !pool) && stats;
  for (int64_t n0 = 0; ok && n0 < g.n; n0 += chunk) {
    gc.n = g.n - n0 < chunk ? g.n - n0 : chunk;
    dc_tensor *xv = ins[0], *yv = y;
    if (chunk < g.n) { /* views of images n0 .. n0 + gc.n - 1 */
      int64_t xs[4] = {gc.n, g.c, g.h, g.w}, ys[4] = {gc.n, K, g.oh / ps, g.ow / ps};
      xv = dc__alias(ins[0], 4, xs, ins[0]->stride, ins[0]->offset + n0 * ins[0]->stride[0]);
      yv = dc__alias(y, 4, ys, y->stride, y->offset + n0 * y->stride[0]);
    }
    ok = xv && yv &&
         k->conv_block_forward(yv, yc, idx, stats, xv, ins[1], ib ? ins[ib] : NULL,
                               ibw ? ins[ibw] : NULL, ibb ? ins[ibb] : NULL, running_mean,
                               running_var, batch_stats, momentum, eps, &gc, mode) == DC_OK;
    if (xv != ins[0]) dc_free(xv);
    if (yv != y) dc_free(yv);
  }
  dc_node *n = NULL;
  ok = ok && dc__record(op, y, nin, ins, &n);
  if (ok && n && pool && !idx) /* dc__record and the grad test above disagree: a bug */
    ok = dc__err(DC_ERR_STATE, "conv_bn_relu_pool: a graph node without saved argmaxes") != NULL;
  if (ok && n) {
    *DC__ARGS(n, conv_block) = (dc__conv_block_args){
        .geom = g, .batch_stats = batch_stats, .ib = ib, .ibw = ibw, .ibb = ibb, .mode = mode};
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
