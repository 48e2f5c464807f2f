/* Shared argument checks and plumbing for the functional nn ops (declared in nn_ops.h). */
#include "nn_ops.h"

const struct dc_nn_kernels *dc__nn_kernels(const char *op, const dc_tensor *t) {
  const dc_backend *be = dc__backend(t->device);
  if (!be) return NULL;
  if (!be->nn)
    return dc__err(DC_ERR_UNSUPPORTED, "%s: the %s backend of this deepc has no nn kernels", op,
                   be->name);
  return be->nn;
}

bool dc__nn_check_float(const char *op, const char *what, const dc_tensor *t) {
  if (t->dtype == DC_F32 || t->dtype == DC_F64) return true;
  dc__err(DC_ERR_ARG, "%s: %s must be float32 or float64, got %s; convert it with dc_to_dtype", op,
          what, dc_dtype_name(t->dtype));
  return false;
}

bool dc__nn_check_device(const char *op, const char *what, const dc_tensor *t, const dc_tensor *x) {
  if (!t || t->device == x->device) return true;
  dc__err(DC_ERR_ARG,
          "%s: %s is on %s but the input is on %s; move it with dc_to_device (or the "
          "module with dc_module_to)",
          op, what, dc_device_name(t->device), dc_device_name(x->device));
  return false;
}

bool dc__nn_check_same_dtype(const char *op, const char *what_a, const dc_tensor *a,
                             const char *what_b, const dc_tensor *b) {
  if (!dc__nn_check_device(op, what_b, b, a)) return false;
  if (a->dtype == b->dtype) return true;
  dc__err(DC_ERR_ARG, "%s: %s is %s but %s is %s; convert one with dc_to_dtype", op, what_a,
          dc_dtype_name(a->dtype), what_b, dc_dtype_name(b->dtype));
  return false;
}

bool dc__nn_check_vector(const char *op, const char *what, const dc_tensor *t, int64_t n) {
  if (t->ndim == 1 && t->shape[0] == n) return true;
  char a[128];
  dc__err(DC_ERR_ARG, "%s: %s must have shape [%lld], got %s", op, what, (long long)n,
          dc_shape_str(dc_shape_of(t), a, sizeof a));
  return false;
}

bool dc__nn_check_reduction(const char *op, dc_reduction r) {
  if (r == DC_REDUCTION_MEAN || r == DC_REDUCTION_SUM || r == DC_REDUCTION_NONE) return true;
  dc__err(DC_ERR_ARG, "%s: reduction %d is not one of DC_REDUCTION_MEAN, _SUM, _NONE", op, (int)r);
  return false;
}

dc_tensor *dc__nn_prepare(dc_tensor *t, dc_dtype dt) {
  if (t->dtype == dt && dc_is_contiguous(t)) return dc__ref(t);
  dc_tensor *c = t->dtype == dt ? dc_contiguous(t) : dc_to_dtype(t, dt); /* a contiguous copy */
  return c ? dc__take(c) : NULL;
}

bool dc__nn_no_double_backward(const char *op) {
  if (!dc_is_grad_enabled()) return true;
  dc__err(DC_ERR_UNSUPPORTED,
          "%s: double backward (create_graph = true) through %s is not "
          "supported; run this backward without create_graph",
          op, op);
  return false;
}

int dc__nn_status(void) {
  dc_status s = dc_last_status();
  return s != DC_OK ? (int)s : DC_ERR_NOMEM;
}
