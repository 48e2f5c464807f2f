/* Dropout and Dropout2d (inverted: survivors scaled by 1/(1-p)) with masks drawn from deepc's
 * seeded generator. Backward rule: gx = gy * mask (a differentiable product under create_graph).
 * Shapes: x, y [E] (any shape); dropout2d: x [N, C, *], mask [N, C, 1...]. */
#include "nn_ops.h"
#include "autocast-impl.h"

/* identity (eval-mode or p = 0 dropout): gx = gy */
static int identity_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  gin[0] = dc_reshape(gout, dc_shape_of(n->inputs[0]));
  return gin[0] ? DC_OK : dc__nn_status();
}
DC__OPDEF(DROPOUT_IDENTITY, identity_backward);

/* gx = gy * mask (mask saved in slot 0, broadcast over the last `inner` elements for dropout2d) */
static int dropout_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *mask = n->saved[0];
  if (dc_is_grad_enabled()) { /* create_graph: stay differentiable in gout */
    gin[0] = dc_mul(gout, mask);
    return gin[0] ? DC_OK : dc__nn_status();
  }
  dc_tensor *gy = dc_contiguous(gout),
            *gx = gy ? dc__new(dc_shape_of(gy), gy->dtype, gy->device) : NULL;
  const struct dc_nn_kernels *k = gx ? dc__nn_kernels("dropout", gx) : NULL;
  int rc = k ? k->apply_mask(gx, gy, mask, DC__ARGS(n, dropout)->inner) : dc__nn_status();
  if (rc != DC_OK) return rc;
  gin[0] = gx;
  return DC_OK;
}
DC__OPDEF(DROPOUT, dropout_backward);

static dc_tensor *identity(dc_tensor *x) {
  dc_tensor *y = dc__alias_same(x);
  dc_node *n;
  if (y && !dc__record(&dc__op_DROPOUT_IDENTITY, y, 1, &x, &n)) {
    dc_free(y);
    return NULL;
  }
  return y;
}

static dc_tensor *dropout_impl(const char *op, dc_tensor *x, double p, bool training,
                               bool channels) {
  if (!dc__check_nonnull(op, 1, x)) return NULL;
  dc_tensor *c[1];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 1, &x, c);
  if (am != DC__AMP_NONE)
    return dc__amp_leave(am, true, dropout_impl(op, c[0], p, training, channels), 1, &x, c);
  if (!dc__nn_check_float(op, "input", x)) return NULL;
  if (!(p >= 0 && p <= 1))
    return dc__err(DC_ERR_ARG, "%s: probability p must be in [0, 1], got %g", op, p);
  char xs[128];
  if (channels && x->ndim < 2)
    return dc__err(DC_ERR_ARG, "%s: expected input [N, C, *] with at least 2 dims, got %s", op,
                   dc_shape_str(dc_shape_of(x), xs, sizeof xs));
  if (!training || p == 0) return identity(x);
  const struct dc_nn_kernels *k = dc__nn_kernels(op, x);
  if (!k) return NULL;
  dc_shape ms = dc_shape_of(x);
  int64_t inner = 1;
  if (channels)
    for (int d = 2; d < ms.ndim; d++) {
      inner *= ms.d[d];
      ms.d[d] = 1;
    }
  dc_tensor *xc = dc__nn_prepare(x, x->dtype),
            *mask = xc ? dc_rand_on(ms, x->dtype, x->device) : NULL;
  dc_tensor *y = mask ? dc__new(dc_shape_of(x), x->dtype, x->device) : NULL;
  dc_node *n = NULL;
  bool ok = y && k->dropout_mask(mask, p) == DC_OK && k->apply_mask(y, xc, mask, inner) == DC_OK &&
            dc__record(&dc__op_DROPOUT, y, 1, &xc, &n);
  if (ok && n) {
    dc__save(n, 0, mask);
    DC__ARGS(n, dropout)->inner = inner;
  }
  dc__unref(xc);
  dc_free(mask);
  if (!ok) {
    dc_free(y);
    return NULL;
  }
  return y;
}

dc_tensor *dc_dropout(dc_tensor *x, double p, bool training) {
  return dropout_impl("dropout", x, p, training, false);
}

dc_tensor *dc_dropout2d(dc_tensor *x, double p, bool training) {
  return dropout_impl("dropout2d", x, p, training, true);
}
