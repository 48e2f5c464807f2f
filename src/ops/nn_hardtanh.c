/* hardtanh: clamp to [min_val, max_val] with PyTorch's gradient rule (1 strictly inside, else 0).
 * The backward kernel gives the gradient directly, or the 0/1 mask for a differentiable
 * product under create_graph. Shapes: x, y [E]. */
#include "nn_ops.h"
#include "autocast-impl.h"

/* gx = gy where min < x < max, else 0 */
static int hardtanh_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0];
  const struct dc_nn_kernels *k = dc__nn_kernels("hardtanh", x);
  if (!k) return dc__nn_status();
  bool graph = dc_is_grad_enabled();
  /* create_graph: the 0/1 mask from the kernel, then a differentiable product */
  dc_tensor *gy = graph ? dc_ones_like(x) : dc_contiguous(gout);
  dc_tensor *gx = gy ? dc__new(dc_shape_of(x), x->dtype, x->device) : NULL;
  int rc = gx ? k->hardtanh_backward(gx, gy, x, DC__ARGS(n, hardtanh)->min_val,
                                     DC__ARGS(n, hardtanh)->max_val)
              : dc__nn_status();
  if (rc != DC_OK) return rc;
  gin[0] = graph ? dc_mul(gout, gx) : gx;
  return gin[0] ? DC_OK : dc__nn_status();
}
DC__OPDEF(HARDTANH, hardtanh_backward);

dc_tensor *dc_hardtanh(dc_tensor *x, double min_val, double max_val) {
  if (!dc__check_nonnull("hardtanh", 1, x)) return NULL;
  dc_tensor *c[1];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 1, &x, c);
  if (am != DC__AMP_NONE)
    return dc__amp_leave(am, true, dc_hardtanh(c[0], min_val, max_val), 1, &x, c);
  if (!dc__nn_check_float("hardtanh", "input", x)) return NULL;
  if (!(min_val <= max_val))
    return dc__err(DC_ERR_ARG, "hardtanh: min_val %g must not be greater than max_val %g", min_val,
                   max_val);
  const struct dc_nn_kernels *k = dc__nn_kernels("hardtanh", x);
  if (!k) return NULL;
  dc_tensor *xc = dc__nn_prepare(x, x->dtype),
            *y = xc ? dc__new(dc_shape_of(x), x->dtype, x->device) : NULL;
  dc_node *n = NULL;
  bool ok = y && k->hardtanh_forward(y, xc, min_val, max_val) == DC_OK &&
            dc__record(&dc__op_HARDTANH, y, 1, &xc, &n);
  if (ok && n) *DC__ARGS(n, hardtanh) = (dc__hardtanh_args){min_val, max_val};
  dc__unref(xc);
  if (!ok) {
    dc_free(y);
    return NULL;
  }
  return y;
}
