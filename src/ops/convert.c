/* Copies and conversions: contiguous, clone, dtype and device changes, detach, and the
 * broadcast-undo helper dc__sum_to used by backward rules. */
#include "../autograd/autograd-impl.h"
#include "../backend/backend.h"

#include <deepc/ops.h>

/* grad of a copy/conversion: convert gout back to the input's dtype */
static int copy_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0];
  gin[0] = gout->dtype == x->dtype ? dc_clone(gout) : dc_to_dtype(gout, x->dtype);
  return gin[0] ? DC_OK : dc_last_status();
}
DC__OPDEF(CLONE, copy_backward);
DC__OPDEF(TO, copy_backward);

static dc_tensor *copy_as(const dc_opdef *op, dc_tensor *x, dc_dtype dt, dc_device dev) {
  dc_tensor *r = dc__new(dc_shape_of(x), dt, dev);
  if (!r) return NULL;
  const dc_backend *be = dc__backend(dev);
  if (!be || be->ew->copy(r, x) != DC_OK) {
    dc_free(r);
    return NULL;
  }
  dc_node *n;
  bool diff = dc_dtype_is_float(dt) && dc_dtype_is_float(x->dtype);
  if (diff && !dc__record(op, r, 1, &x, &n)) {
    dc_free(r);
    return NULL;
  }
  return r;
}

dc_tensor *dc_clone(dc_tensor *x) {
  if (!dc__check_nonnull("clone", 1, x)) return NULL;
  return copy_as(&dc__op_CLONE, x, x->dtype, x->device);
}

dc_tensor *dc_contiguous(dc_tensor *x) {
  if (!dc__check_nonnull("contiguous", 1, x)) return NULL;
  if (dc_is_contiguous(x)) { /* a new handle on the same data, still in the graph */
    dc_tensor *v = dc__alias_same(x);
    if (!v) return NULL;
    if (x->requires_grad || x->grad_fn) {
      dc_free(v);
      return dc_view(x, dc_shape_of(x));
    }
    return v;
  }
  return copy_as(&dc__op_CLONE, x, x->dtype, x->device);
}

dc_tensor *dc_to_dtype(dc_tensor *x, dc_dtype dt) {
  if (!dc__check_nonnull("to_dtype", 1, x)) return NULL;
  if ((int)dt < 0 || dt >= DC_DTYPE_COUNT)
    return dc__err(DC_ERR_ARG, "to_dtype: invalid dtype %d", (int)dt);
  return copy_as(&dc__op_TO, x, dt, x->device);
}

/* grad of a move between devices: gout moved back to the input's device */
static int to_device_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  gin[0] = dc_to_device(gout, n->inputs[0]->device);
  return gin[0] ? DC_OK : dc_last_status();
}
DC__OPDEF(TO_DEVICE, to_device_backward);

dc_tensor *dc_to_device(dc_tensor *x, dc_device dev) {
  if (!dc__check_nonnull("to_device", 1, x)) return NULL;
  if ((int)dev < 0 || dev >= DC_DEVICE_COUNT)
    return dc__err(DC_ERR_ARG, "to_device: invalid device %d", (int)dev);
  if (!dc__backend(dev)) return NULL;
  if (dev == x->device) return dc_clone(x);
  const dc_backend *sbe = dc__backend(x->device);
  dc_tensor *c = sbe ? dc__new(dc_shape_of(x), x->dtype, x->device) : NULL; /* contiguous */
  dc_tensor *r = c && sbe->ew->copy(c, x) == DC_OK ? dc__new(dc_shape_of(x), x->dtype, dev) : NULL;
  if (r && dc__transfer(r, c) != DC_OK) {
    dc_free(r);
    r = NULL;
  }
  dc_free(c);
  dc_node *n;
  if (r && dc_dtype_is_float(x->dtype) && !dc__record(&dc__op_TO_DEVICE, r, 1, &x, &n)) {
    dc_free(r);
    return NULL;
  }
  return r;
}

dc_tensor *dc_detach(dc_tensor *x) {
  if (!dc__check_nonnull("detach", 1, x)) return NULL;
  return dc__alias_same(x);
}

dc_tensor *dc__as_dtype(dc_tensor *t, dc_dtype dt) {
  if (t->dtype == dt) return dc__ref(t);
  dc_tensor *r = dc_to_dtype(t, dt);
  return r ? dc__take(r) : NULL;
}

dc_tensor *dc__as_operand(dc_tensor *t, dc_dtype dt, dc_device dev) {
  if (t->device == dev) return dc__as_dtype(t, dt);
  dc_tensor *m = dc_to_device(t, dev); /* a 0-d cpu tensor (PyTorch's mixing rule) */
  if (!m) return NULL;
  dc_tensor *mt = dc__take(m);
  dc_tensor *r = mt ? dc__as_dtype(mt, dt) : NULL;
  dc__unref(mt);
  return r;
}

dc_tensor *dc__sum_to(dc_tensor *g, dc_shape s) {
  if (dc_shape_equal(dc_shape_of(g), s)) return dc_view(g, s); /* cheap, still in the graph */
  int lead = g->ndim - s.ndim;
  int dims[DC_MAX_DIMS], nd = 0;
  for (int d = 0; d < g->ndim; d++) {
    int sd = d - lead;
    if (sd < 0 || (s.d[sd] == 1 && g->shape[d] != 1)) dims[nd++] = d;
  }
  dc_tensor *r = dc_sum(g, dims, nd, true);
  dc_tensor *out = r ? dc_reshape(r, s) : NULL;
  dc_free(r);
  return out;
}
