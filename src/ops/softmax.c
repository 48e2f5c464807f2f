/* softmax and log_softmax along one dim, with backward rules on the saved output. */
#include "../autograd/autograd-impl.h"
#include "autocast-impl.h"
#include "../backend/backend.h"

/* softmax: gin = y * (g - sum(g * y, dim)) ; log_softmax: gin = g - exp(y) * sum(g, dim) */
static int softmax_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *y = n->saved[0];
  int dim = DC__ARGS(n, dim)->dim;
  if (n->op->kind == DC_OP_LOG_SOFTMAX)
    gin[0] = dc_sub(gout, dc_mul(dc_exp(y), dc_sum(gout, &dim, 1, true)));
  else
    gin[0] = dc_mul(y, dc_sub(gout, dc_sum(dc_mul(gout, y), &dim, 1, true)));
  return gin[0] ? DC_OK : (int)dc_last_status();
}
DC__OPDEF(SOFTMAX, softmax_backward);
DC__OPDEF(LOG_SOFTMAX, softmax_backward);

static dc_tensor *softmax(const char *name, dc_tensor *x, int dim, bool lg) {
  if (!dc__check_nonnull(name, 1, x)) return NULL;
  dc_tensor *c[1]; /* bfloat16: in float32, rounded once (PyTorch 1.13's cpu autocast leaves
                    * softmax out of its float32 list) */
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 1, &x, c);
  if (am != DC__AMP_NONE) return dc__amp_leave(am, true, softmax(name, c[0], dim, lg), 1, &x, c);
  if (x->dtype != DC_F32 && x->dtype != DC_F64)
    return dc__err(DC_ERR_ARG, "%s: expected float32 or float64, got %s", name,
                   dc_dtype_name(x->dtype));
  if (!dc__wrap_dim(name, &dim, x->ndim)) return NULL;
  const dc_backend *be = dc__backend(x->device);
  if (!be) return NULL;
  dc_tensor *xc = dc_is_contiguous(x) ? dc__ref(x) : NULL;
  if (!xc) {
    xc = dc__new(dc_shape_of(x), x->dtype, x->device);
    if (!xc || be->ew->copy(xc, x) != DC_OK) {
      dc_free(xc);
      return NULL;
    }
    dc__take(xc);
  }
  dc_tensor *out = dc__new(dc_shape_of(x), x->dtype, x->device);
  int rc =
      out ? (x->ndim == 0 ? be->ew->fill(out, lg ? 0.0 : 1.0) : be->red->softmax(out, xc, dim, lg))
          : (int)dc_last_status();
  dc__unref(xc);
  if (rc != DC_OK) {
    dc_free(out);
    return NULL;
  }
  dc_node *n;
  if (!dc__record(lg ? &dc__op_LOG_SOFTMAX : &dc__op_SOFTMAX, out, 1, &x, &n)) {
    dc_free(out);
    return NULL;
  }
  if (n) {
    DC__ARGS(n, dim)->dim = dim;
    if (!dc__save_output(n, 0, out)) {
      dc_free(out);
      return NULL;
    }
  }
  return out;
}

dc_tensor *dc_softmax(dc_tensor *x, int dim) { return softmax("softmax", x, dim, false); }
dc_tensor *dc_log_softmax(dc_tensor *x, int dim) { return softmax("log_softmax", x, dim, true); }
