/* Reductions over chosen dims (sum, mean, amax/amin, logsumexp, var/std, max/min with indices,
 * argmax/argmin) with their backward rules. Kernels: dc_reduce_kernels (backend.h). */
#include "../autograd/autograd-impl.h"
#include "autocast-impl.h"
#include "../backend/backend.h"

#include <math.h>
#include <string.h>

/* Parses dims into a bit mask and the output shape (keepdim or not). ndims == 0: all dims. */
static bool reduce_shape(const char *op, const dc_tensor *x, const int *dims, int ndims,
                         bool keepdim, uint32_t *mask, dc_shape *out, dc_shape *keep) {
  uint32_t m = 0;
  if (ndims < 0 || (ndims > 0 && !dims)) {
    dc__err(DC_ERR_ARG, "%s: invalid dim list", op);
    return false;
  }
  for (int k = 0; k < ndims; k++) {
    int d = dims[k];
    if (!dc__wrap_dim(op, &d, x->ndim)) return false;
    if (x->ndim == 0) continue;
    if (m & (1u << d)) {
      dc__err(DC_ERR_ARG, "%s: dim %d appears more than once in the dim list", op, d);
      return false;
    }
    m |= 1u << d;
  }
  if (ndims == 0) m = x->ndim ? (1u << x->ndim) - 1u : 0u;
  dc_shape o = {0}, kp = {.ndim = x->ndim};
  for (int d = 0; d < x->ndim; d++) {
    bool r = (m >> d) & 1u;
    kp.d[d] = r ? 1 : x->shape[d];
    if (!r || keepdim) o.d[o.ndim++] = kp.d[d];
  }
  *mask = m;
  *out = o;
  *keep = kp;
  return true;
}

static bool check_float(const char *op, const dc_tensor *x) {
  if (dc_dtype_is_float(x->dtype) && x->dtype != DC_BF16 && x->dtype != DC_F16) return true;
  dc__err(DC_ERR_ARG,
          "%s: expected a float32 or float64 tensor, got %s; convert it with "
          "dc_to_dtype",
          op, dc_dtype_name(x->dtype));
  return false;
}

/* The input as an owned contiguous reference (x itself when already contiguous). */
static dc_tensor *contig_ref(dc_tensor *x) {
  if (dc_is_contiguous(x)) return dc__ref(x);
  dc_tensor *c = dc__new(dc_shape_of(x), x->dtype, x->device);
  if (!c) return NULL;
  if (dc__backend(x->device)->ew->copy(c, x) != DC_OK) {
    dc_free(c);
    return NULL;
  }
  return dc__take(c);
}

static dc_shape node_keep_shape(const dc_node *n) { return DC__ARGS(n, reduce)->keep; }

/* gout [out shape] -> [keepdim shape] view */
static dc_tensor *gout_keep(dc_node *n, dc_tensor *gout) {
  return dc_reshape(gout, node_keep_shape(n));
}

static int sum_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0];
  dc_tensor *g = gout_keep(n, gout);
  double scale = DC__ARGS(n, reduce)->scale;
  if (scale != 1.0) g = dc_mul_scalar(g, scale); /* mean: 1/R */
  gin[0] = dc_expand(g, dc_shape_of(x));
  return gin[0] ? DC_OK : (int)dc_last_status();
}

/* amax/amin/max/min: gradient split evenly among the tied extrema, like torch */
static int extremum_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0], *y = n->saved[0];
  dc_tensor *yk = dc_reshape(y, node_keep_shape(n));
  dc_tensor *mask = dc_to_dtype(dc_eq(x, yk), x->dtype);
  int dims[DC_MAX_DIMS], nd = 0;
  for (int d = 0; d < x->ndim; d++)
    if ((DC__ARGS(n, reduce)->mask >> d) & 1u) dims[nd++] = d;
  dc_tensor *cnt = dc_sum(mask, dims, nd, true);
  gin[0] = dc_div(dc_mul(mask, gout_keep(n, gout)), cnt);
  return gin[0] ? DC_OK : (int)dc_last_status();
}

/* max/min over all elements: as amax/amin, except that a NaN result shares the gradient among the
 * NaN elements (torch's evenly_distribute_backward; amax gives NaN everywhere) */
static int extremum_all_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0], *y = n->saved[0]; /* x [any], y 0-d */
  dc_tensor *both_nan =
      dc_mul(dc_to_dtype(dc_ne(x, x), x->dtype), dc_to_dtype(dc_ne(y, y), x->dtype));
  dc_tensor *mask = dc_add(dc_to_dtype(dc_eq(x, y), x->dtype), both_nan); /* [x's shape] */
  gin[0] = dc_div(dc_mul(mask, gout), dc_sum_all(mask));
  return gin[0] ? DC_OK : (int)dc_last_status();
}

static int lse_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0], *y = n->saved[0];
  dc_tensor *yk = dc_reshape(y, node_keep_shape(n));
  gin[0] = dc_mul(gout_keep(n, gout), dc_exp(dc_sub(x, yk)));
  return gin[0] ? DC_OK : (int)dc_last_status();
}

DC__OPDEF(SUM, sum_backward);
DC__OPDEF(MEAN, sum_backward);
DC__OPDEF(AMAX, extremum_backward);
DC__OPDEF(AMIN, extremum_backward);
DC__OPDEF(MAX, extremum_all_backward);
DC__OPDEF(MIN, extremum_all_backward);
DC__OPDEF(LOGSUMEXP, lse_backward);

static dc_tensor *reduce(const char *name, const dc_opdef *def, dc_reduce_op op, dc_tensor *x,
                         const int *dims, int ndims, bool keepdim) {
  if (!dc__check_nonnull(name, 1, x)) return NULL;
  dc_tensor *c[1]; /* bfloat16: in float32, the result rounded once */
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 1, &x, c);
  if (am != DC__AMP_NONE)
    return dc__amp_leave(am, true, reduce(name, def, op, c[0], dims, ndims, keepdim), 1, &x, c);
  if (!check_float(name, x)) return NULL;
  uint32_t mask;
  dc_shape os, ks;
  if (!reduce_shape(name, x, dims, ndims, keepdim, &mask, &os, &ks)) return NULL;
  int64_t R = 1;
  for (int d = 0; d < x->ndim; d++)
    if ((mask >> d) & 1u) R *= x->shape[d];
  if (R == 0 && (op == DC_RED_MAX || op == DC_RED_MIN)) {
    char b[128];
    return dc__err(DC_ERR_ARG,
                   "%s: cannot reduce over an empty dim of shape %s (no identity "
                   "for max/min)",
                   name, dc_shape_str(dc_shape_of(x), b, sizeof b));
  }
  const dc_backend *be = dc__backend(x->device);
  if (!be) return NULL;
  dc_tensor *xc = contig_ref(x);
  if (!xc) return NULL;
  dc_tensor *out = dc__new(os, x->dtype, x->device);
  int rc = out ? be->red->reduce(op, out, xc, mask) : (int)dc_last_status();
  dc__unref(xc);
  if (rc != DC_OK) {
    dc_free(out);
    return NULL;
  }
  dc_node *n;
  if (!dc__record(def, out, 1, &x, &n)) {
    dc_free(out);
    return NULL;
  }
  if (n) {
    *DC__ARGS(n, reduce) = (dc__reduce_args){
        .scale = op == DC_RED_MEAN ? 1.0 / (double)R : 1.0, .mask = mask, .keep = ks};
    if (op == DC_RED_MAX || op == DC_RED_MIN || op == DC_RED_LOGSUMEXP) {
      if (!dc__save_output(n, 0, out)) {
        dc_free(out);
        return NULL;
      }
    }
  }
  return out;
}

dc_tensor *dc_sum(dc_tensor *x, const int *dims, int ndims, bool keepdim) {
  return reduce("sum", &dc__op_SUM, DC_RED_SUM, x, dims, ndims, keepdim);
}
dc_tensor *dc_mean(dc_tensor *x, const int *dims, int ndims, bool keepdim) {
  return reduce("mean", &dc__op_MEAN, DC_RED_MEAN, x, dims, ndims, keepdim);
}
dc_tensor *dc_amax(dc_tensor *x, const int *dims, int ndims, bool keepdim) {
  return reduce("amax", &dc__op_AMAX, DC_RED_MAX, x, dims, ndims, keepdim);
}
dc_tensor *dc_amin(dc_tensor *x, const int *dims, int ndims, bool keepdim) {
  return reduce("amin", &dc__op_AMIN, DC_RED_MIN, x, dims, ndims, keepdim);
}
dc_tensor *dc_logsumexp(dc_tensor *x, const int *dims, int ndims, bool keepdim) {
  return reduce("logsumexp", &dc__op_LOGSUMEXP, DC_RED_LOGSUMEXP, x, dims, ndims, keepdim);
}
dc_tensor *dc_sum_all(dc_tensor *x) { return dc_sum(x, NULL, 0, false); }
dc_tensor *dc_mean_all(dc_tensor *x) { return dc_mean(x, NULL, 0, false); }
dc_tensor *dc_max(dc_tensor *x) {
  return reduce("max", &dc__op_MAX, DC_RED_MAX, x, NULL, 0, false);
}
dc_tensor *dc_min(dc_tensor *x) {
  return reduce("min", &dc__op_MIN, DC_RED_MIN, x, NULL, 0, false);
}

/* var = sum((x - mean)^2) / (R - correction), composed of differentiable ops */
dc_tensor *dc_var(dc_tensor *x, const int *dims, int ndims, int correction, bool keepdim) {
  if (!dc__check_nonnull("var", 1, x)) return NULL;
  dc_tensor *c[1];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 1, &x, c);
  if (am != DC__AMP_NONE)
    return dc__amp_leave(am, true, dc_var(c[0], dims, ndims, correction, keepdim), 1, &x, c);
  if (!check_float("var", x)) return NULL;
  uint32_t mask;
  dc_shape os, ks;
  if (!reduce_shape("var", x, dims, ndims, keepdim, &mask, &os, &ks)) return NULL;
  if (correction < 0)
    return dc__err(DC_ERR_ARG, "var: correction must be >= 0, got %d", correction);
  int64_t R = 1;
  for (int d = 0; d < x->ndim; d++)
    if ((mask >> d) & 1u) R *= x->shape[d];
  if (dc_scope_begin() != DC_OK) return NULL;
  dc_tensor *mu = dc_mean(x, dims, ndims, true);
  dc_tensor *dev = dc_sub(x, mu);
  dc_tensor *ss = dc_sum(dc_mul(dev, dev), dims, ndims, keepdim);
  double denom = (double)(R - correction);
  dc_tensor *v = dc_keep(dc_mul_scalar(ss, denom > 0 ? 1.0 / denom : NAN));
  dc_scope_end();
  return v;
}

/* std = sqrt(var) with torch's std_backward rule: the gradient is 0 where std is 0 (a constant
 * slice, or one element with correction 0), where plain sqrt would give inf * 0 = NaN. The
 * denominator is 1 there, so that a second-order graph stays finite too. */
static int std_backward(dc_node *n, dc_tensor *g, dc_tensor **gin) {
  dc_tensor *s = dc_is_grad_enabled() ? dc_sqrt(n->inputs[0]) : n->saved[0]; /* [out] */
  dc_tensor *zero = dc_eq_scalar(s, 0.0);                                    /* [out] bool */
  dc_tensor *den = dc_where(zero, dc_scalar(1.0, s->dtype), dc_mul_scalar(s, 2.0));
  dc_tensor *q = dc_div(g, den);
  gin[0] = dc_where(zero, dc_scalar(0.0, q->dtype), q); /* 0-d constants, as clamp's rule */
  return gin[0] ? DC_OK : (int)dc_last_status();
}

DC__OPDEF(STD, std_backward);

/* y = sqrt(v), recorded as one "std" node over the variance v */
static dc_tensor *std_of_var(dc_tensor *v) {
  dc_no_grad_begin();
  dc_tensor *out = dc_sqrt(v); /* [out] */
  dc_no_grad_end();
  if (!out) return NULL;
  dc_node *n;
  if (!dc__record(&dc__op_STD, out, 1, &v, &n) || (n && !dc__save_output(n, 0, out))) {
    dc_free(out);
    return NULL;
  }
  return out;
}

dc_tensor *dc_std(dc_tensor *x, const int *dims, int ndims, int correction, bool keepdim) {
  if (dc_scope_begin() != DC_OK) return NULL;
  dc_tensor *s = dc_keep(std_of_var(dc_var(x, dims, ndims, correction, keepdim)));
  dc_scope_end();
  return s;
}

/* ---- max/min along a dim with indices ---- */
/* gradient flows to the selected index only */
static int select_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0], *idx = n->saved[0];
  int dim = DC__ARGS(n, dim)->dim;
  dc_shape ks = dc_shape_of(x);
  ks.d[dim] = 1;
  dc_tensor *ik = dc_reshape(idx, ks);
  dc_shape ar = {.ndim = x->ndim};
  for (int d = 0; d < x->ndim; d++) ar.d[d] = d == dim ? x->shape[d] : 1;
  dc_tensor *pos = dc_reshape(dc_arange_on(0, (double)x->shape[dim], 1, DC_I64, x->device), ar);
  dc_tensor *zero = dc_zeros(DC_SCALAR_SHAPE, x->dtype);
  gin[0] = dc_where(dc_eq(pos, ik), dc_reshape(gout, ks), zero);
  if (gin[0] && !dc_shape_equal(dc_shape_of(gin[0]), dc_shape_of(x)))
    gin[0] = dc_expand(gin[0], dc_shape_of(x));
  return gin[0] ? DC_OK : (int)dc_last_status();
}
DC__OPDEF(MAX_DIM, select_backward);
DC__OPDEF(MIN_DIM, select_backward);

static dc_tensor *arg_reduce(const char *name, bool is_max, dc_tensor *x, int dim, bool keepdim,
                             dc_tensor **indices, bool want_values) {
  if (!dc__check_nonnull(name, 1, x)) return NULL;
  if (x->ndim == 0) { /* a 0-d tensor: itself, index 0 */
    if (indices && !(*indices = dc_zeros_on(DC_SCALAR_SHAPE, DC_I64, x->device))) return NULL;
    return want_values ? dc_clone(x) : dc_zeros_on(DC_SCALAR_SHAPE, DC_I64, x->device);
  }
  if (!dc__wrap_dim(name, &dim, x->ndim)) return NULL;
  if (x->shape[dim] == 0)
    return dc__err(DC_ERR_ARG, "%s: dim %d has size 0; there is no max/min of nothing", name, dim);
  dc_tensor *c[1]; /* bfloat16: in float32 (exact), the values rounded back (exact too) */
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 1, &x, c);
  if (am != DC__AMP_NONE) {
    dc_tensor *v = arg_reduce(name, is_max, c[0], dim, keepdim, indices, want_values);
    return dc__amp_leave(am, want_values, v, 1, &x, c);
  }
  if (x->dtype == DC_F16 || x->dtype == DC_BOOL)
    return dc__err(DC_ERR_ARG, "%s: dtype %s is not supported", name, dc_dtype_name(x->dtype));
  dc_shape os = {0};
  for (int d = 0; d < x->ndim; d++)
    if (d != dim || keepdim) os.d[os.ndim++] = d == dim ? 1 : x->shape[d];
  const dc_backend *be = dc__backend(x->device);
  if (!be) return NULL;
  dc_tensor *xc = contig_ref(x);
  if (!xc) return NULL;
  dc_tensor *vals = want_values ? dc__new(os, x->dtype, x->device) : NULL;
  dc_tensor *idx = dc__new(os, DC_I64, x->device);
  int rc = (idx && (vals || !want_values)) ? be->red->arg_reduce(is_max, vals, idx, xc, dim)
                                           : (int)dc_last_status();
  dc__unref(xc);
  if (rc != DC_OK) {
    dc_free(vals);
    dc_free(idx);
    return NULL;
  }
  if (!want_values) return idx;
  dc_node *n;
  if (!dc__record(is_max ? &dc__op_MAX_DIM : &dc__op_MIN_DIM, vals, 1, &x, &n)) {
    dc_free(vals);
    dc_free(idx);
    return NULL;
  }
  if (n) {
    DC__ARGS(n, dim)->dim = dim;
    dc__save(n, 0, idx);
  }
  if (indices)
    *indices = idx;
  else
    dc_free(idx);
  return vals;
}

dc_tensor *dc_max_dim(dc_tensor *x, int dim, bool keepdim, dc_tensor **indices) {
  return arg_reduce("max", true, x, dim, keepdim, indices, true);
}
dc_tensor *dc_min_dim(dc_tensor *x, int dim, bool keepdim, dc_tensor **indices) {
  return arg_reduce("min", false, x, dim, keepdim, indices, true);
}

static dc_tensor *arg_flat(const char *name, bool is_max, dc_tensor *x, int dim, bool keepdim) {
  if (dim != DC_ALL_DIMS) return arg_reduce(name, is_max, x, dim, keepdim, NULL, false);
  if (!dc__check_nonnull(name, 1, x)) return NULL;
  dc_tensor *flat = dc_reshape(x, DC_SHAPE(-1));
  dc_tensor *r = flat ? arg_reduce(name, is_max, flat, 0, false, NULL, false) : NULL;
  dc_free(flat);
  if (r && keepdim) {
    dc_shape ks = {.ndim = x->ndim};
    for (int d = 0; d < x->ndim; d++) ks.d[d] = 1;
    dc_tensor *k = dc_reshape(r, ks);
    dc_free(r);
    r = k;
  }
  return r;
}

dc_tensor *dc_argmax(dc_tensor *x, int dim, bool keepdim) {
  return arg_flat("argmax", true, x, dim, keepdim);
}
dc_tensor *dc_argmin(dc_tensor *x, int dim, bool keepdim) {
  return arg_flat("argmin", false, x, dim, keepdim);
}
