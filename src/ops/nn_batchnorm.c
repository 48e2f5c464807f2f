/* batch_norm: checks, the fused forward (batch statistics or running statistics, running-stat
 * update in place) and the backward rule (fused kernel: training-mode gradient through the batch
 * statistics, or eval-mode with constant statistics). batch_norm_relu: the same followed by a
 * ReLU in the same pass (what BatchNorm + ReLU modules run in a Sequential or a ResNet block):
 * no intermediate tensor, and the backward masks the incoming gradient as it reads it.
 * Shapes: x [N, C, *] seen as [N, C, S]; weight, bias, running stats, saved mean/invstd [C]. */
#include "nn_ops.h"
#include "autocast-impl.h"

/* grads (training): gx = w * invstd * (gy - mean(gy) - xhat * mean(gy * xhat)), xhat the
 * normalised x; (eval): gx = w * invstd * gy. gw = sum(gy * xhat), gb = sum(gy) over N, S.
 * args: dc__batch_norm_args; saved: mean (0), invstd (1), the ReLU's output (2, batch_norm_relu) */
static int bn_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin, bool relu) {
  if (!dc__nn_no_double_backward(relu ? "batch_norm_relu" : "batch_norm"))
    return DC_ERR_UNSUPPORTED;
  dc_tensor *x = n->inputs[0];
  const dc__batch_norm_args *a = DC__ARGS(n, batch_norm);
  int iw = a->iw, ib = a->ib;
  dc_tensor *w = iw ? n->inputs[iw] : NULL;
  int64_t C = x->shape[1];
  dc_tensor *gy = dc_contiguous(gout);
  dc_tensor *gx = dc__needs_grad(n, 0) ? dc__new(dc_shape_of(x), x->dtype, x->device) : NULL;
  dc_tensor *gw = iw && dc__needs_grad(n, iw) ? dc__new(DC_SHAPE(C), x->dtype, x->device) : NULL;
  dc_tensor *gb = ib && dc__needs_grad(n, ib) ? dc__new(DC_SHAPE(C), x->dtype, x->device) : NULL;
  if (!gy || (dc__needs_grad(n, 0) && !gx) || (iw && dc__needs_grad(n, iw) && !gw) ||
      (ib && dc__needs_grad(n, ib) && !gb))
    return dc__nn_status();
  const struct dc_nn_kernels *k = dc__nn_kernels("batch_norm", x);
  int rc = !k     ? dc__nn_status()
           : relu ? k->batch_norm_relu_backward(gx, gw, gb, gy, n->saved[2], x, w, n->saved[0],
                                                n->saved[1], a->batch_stats)
                  : k->batch_norm_backward(gx, gw, gb, gy, x, w, n->saved[0], n->saved[1],
                                           a->batch_stats);
  if (rc != DC_OK) return rc;
  gin[0] = gx;
  if (iw) gin[iw] = gw;
  if (ib) gin[ib] = gb;
  return DC_OK;
}
static int batch_norm_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  return bn_backward(n, gout, gin, false);
}
/* the same with gout masked by y > 0 (saved[2] is y, the ReLU output) */
static int batch_norm_relu_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  return bn_backward(n, gout, gin, true);
}
DC__OPDEF(BATCH_NORM, batch_norm_backward);
DC__OPDEF(BATCH_NORM_RELU, batch_norm_relu_backward);

/* A [C] parameter or statistic: shape, dtype (floats), and contiguity for those written in place.
 */
static bool check_channel_vec(const char *what, const dc_tensor *t, const dc_tensor *x,
                              bool inplace) {
  if (!t) return true;
  char xs[128], ts[128];
  dc_shape_str(dc_shape_of(x), xs, sizeof xs);
  if (t->ndim != 1 || t->shape[0] != x->shape[1]) {
    dc__err(DC_ERR_ARG,
            "batch_norm: %s has shape %s but input %s has %lld channels (dim 1); "
            "num_features of the layer must equal the input's channel count",
            what, dc_shape_str(dc_shape_of(t), ts, sizeof ts), xs, (long long)x->shape[1]);
    return false;
  }
  if (!dc__nn_check_float("batch_norm", what, t)) return false;
  if (inplace && (!dc_is_contiguous(t) || t->device != x->device)) {
    dc__err(DC_ERR_ARG,
            "batch_norm: %s must be a contiguous tensor on the input's device (it is "
            "updated in place)",
            what);
    return false;
  }
  return true;
}

static dc_tensor *batch_norm(dc_tensor *x, dc_tensor *running_mean, dc_tensor *running_var,
                             dc_tensor *weight, dc_tensor *bias, bool training, double momentum,
                             double eps, bool relu) {
  if (!dc__check_nonnull("batch_norm", 1, x)) return NULL;
  /* bfloat16 x (weight, bias and the running statistics may stay float32, as in PyTorch): in
   * float32, y rounded to bfloat16 once; the running statistics keep their dtype */
  dc_tensor *in[3] = {x, weight, bias}, *c[3];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 3, in, c);
  if (am != DC__AMP_NONE)
    return dc__amp_leave(
        am, true,
        batch_norm(c[0], running_mean, running_var, c[1], c[2], training, momentum, eps, relu), 3,
        in, c);
  if (!dc__nn_check_float("batch_norm", "input", x)) return NULL;
  char xs[128];
  dc_shape_str(dc_shape_of(x), xs, sizeof xs);
  if (x->ndim < 2)
    return dc__err(DC_ERR_ARG,
                   "batch_norm: expected input [N, C], [N, C, L] or [N, C, H, W], got "
                   "%s (%d-D); add a batch dim with dc_unsqueeze(x, 0)",
                   xs, x->ndim);
  if ((running_mean == NULL) != (running_var == NULL))
    return dc__err(DC_ERR_ARG, "batch_norm: give both running_mean and running_var, or neither");
  if (!check_channel_vec("running_mean", running_mean, x, true) ||
      !check_channel_vec("running_var", running_var, x, true) ||
      !check_channel_vec("weight", weight, x, false) ||
      !check_channel_vec("bias", bias, x, false) ||
      (weight && !dc__nn_check_same_dtype("batch_norm", "input", x, "weight", weight)) ||
      (bias && !dc__nn_check_same_dtype("batch_norm", "input", x, "bias", bias)))
    return NULL;
  if (!(eps >= 0) || !(momentum >= 0 && momentum <= 1))
    return dc__err(DC_ERR_ARG,
                   "batch_norm: need eps >= 0 and momentum in [0, 1], got eps %g, "
                   "momentum %g",
                   eps, momentum);
  int64_t C = x->shape[1], per_channel = C ? dc_numel(x) / C : 0;
  if (training && per_channel <= 1)
    return dc__err(DC_ERR_ARG,
                   "batch_norm: expected more than 1 value per channel when training, "
                   "got input %s; use a batch of 2 or more, or eval mode",
                   xs);
  bool batch_stats = training || !running_mean;
  const struct dc_nn_kernels *k = dc__nn_kernels("batch_norm", x);
  if (!k) return NULL;
  if (relu && (!k->batch_norm_relu_forward || !k->batch_norm_relu_backward))
    return dc_relu(
        batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, false));
  dc_tensor *xc = dc__nn_prepare(x, x->dtype);
  dc_tensor *wc = weight ? dc__nn_prepare(weight, x->dtype) : NULL;
  dc_tensor *bc = bias ? dc__nn_prepare(bias, x->dtype) : NULL;
  dc_tensor *y = dc__new(dc_shape_of(x), x->dtype, x->device);
  dc_tensor *mean = dc__new(DC_SHAPE(C), x->dtype, x->device);
  dc_tensor *invstd = dc__new(DC_SHAPE(C), x->dtype, x->device);
  bool ok = xc && (wc || !weight) && (bc || !bias) && y && mean && invstd &&
            (relu ? k->batch_norm_relu_forward
                  : k->batch_norm_forward)(y, mean, invstd, xc, wc, bc, running_mean, running_var,
                                           batch_stats, momentum, eps) == DC_OK;
  dc_tensor *ins[3] = {xc};
  int nin = 1, iw = 0, ib = 0;
  if (wc) ins[iw = nin++] = wc;
  if (bc) ins[ib = nin++] = bc;
  dc_node *n = NULL;
  ok = ok && dc__record(relu ? &dc__op_BATCH_NORM_RELU : &dc__op_BATCH_NORM, y, nin, ins, &n);
  if (ok && n) {
    *DC__ARGS(n, batch_norm) = (dc__batch_norm_args){batch_stats, iw, ib};
    dc__save(n, 0, mean);
    dc__save(n, 1, invstd);
    if (relu) { /* the output masks the gradient: saved as an alias without grad_fn (no cycle) */
      dc_tensor *alias = dc__alias_same(y);
      ok = alias != NULL;
      if (ok) dc__save(n, 2, alias);
      dc_free(alias);
    }
  }
  dc__unref(xc);
  dc__unref(wc);
  dc__unref(bc);
  dc_free(mean);
  dc_free(invstd);
  if (!ok) {
    dc_free(y);
    return NULL;
  }
  return y;
}

dc_tensor *dc_batch_norm(dc_tensor *x, dc_tensor *running_mean, dc_tensor *running_var,
                         dc_tensor *weight, dc_tensor *bias, bool training, double momentum,
                         double eps) {
  return batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, false);
}

dc_tensor *dc__batch_norm_relu(dc_tensor *x, dc_tensor *running_mean, dc_tensor *running_var,
                               dc_tensor *weight, dc_tensor *bias, bool training, double momentum,
                               double eps) {
  return batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps, true);
}
