/* View ops: new tensor headers over the same storage (reshape/view, permute, transpose,
 * narrow/slice/select, expand, squeeze/unsqueeze, flatten), each differentiable. */
#include "../autograd/autograd-impl.h"
#include "../backend/backend.h"

#include <string.h>

/* ---- backward rules ---- */
/* reshape-like views: grad = reshape(gout, input shape) */
static int reshape_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  gin[0] = dc_reshape(gout, DC__ARGS(n, view)->in);
  return gin[0] ? DC_OK : dc_last_status();
}

/* permute: grad = permute(gout, inverse permutation) */
static int permute_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  gin[0] = dc_permute(gout, DC__ARGS(n, permute)->inv, gout->ndim);
  return gin[0] ? DC_OK : dc_last_status();
}

/* strided sub-views (narrow, slice, select): grad = zeros(input) with gout written into the same
 * sub-view; the sub-view geometry relative to a contiguous input is recomputed from the args */
static int subview_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  const dc__slice_args *a = DC__ARGS(n, slice);
  dc_shape is = a->in;
  dc_tensor *g = dc__new(is, gout->dtype, gout->device);
  if (!g) return dc_last_status();
  const dc_backend *be = dc__backend(g->device);
  int rc = be->ew->fill(g, 0.0);
  int dim = a->dim;
  int64_t start = a->start, len = a->len, step = a->step;
  bool drop = a->drop;
  int64_t st[DC_MAX_DIMS], sh[DC_MAX_DIMS];
  memcpy(sh, g->shape, sizeof sh);
  memcpy(st, g->stride, sizeof st);
  int64_t off = start * st[dim];
  sh[dim] = len;
  st[dim] *= step;
  int nd = g->ndim;
  if (drop) {
    for (int d = dim; d < nd - 1; d++) {
      sh[d] = sh[d + 1];
      st[d] = st[d + 1];
    }
    nd--;
  }
  dc_tensor *v = rc == DC_OK ? dc__alias(g, nd, sh, st, off) : NULL;
  if (!v || be->ew->copy(v, gout) != DC_OK) rc = dc_last_status();
  dc_free(v);
  if (rc != DC_OK) {
    dc_free(g);
    return rc;
  }
  gin[0] = g;
  return DC_OK;
}

static int expand_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  gin[0] = dc__sum_to(gout, DC__ARGS(n, view)->in);
  return gin[0] ? DC_OK : dc_last_status();
}

DC__OPDEF(VIEW, reshape_backward);
DC__OPDEF(PERMUTE, permute_backward);
DC__OPDEF(SLICE, subview_backward);
DC__OPDEF(EXPAND, expand_backward);

/* Makes the view and records its node (*n, NULL when none), whose arguments the caller saves. */
static dc_tensor *make_view(const dc_opdef *op, dc_tensor *x, int nd, const int64_t *shape,
                            const int64_t *stride, int64_t offset, dc_node **n) {
  dc_tensor *v = dc__alias(x, nd, shape, stride, offset);
  if (!v) return NULL;
  if (!dc__record(op, v, 1, &x, n)) {
    dc_free(v);
    return NULL;
  }
  return v;
}

/* make_view for view and expand, whose node keeps the input's shape */
static dc_tensor *shape_view(const dc_opdef *op, dc_tensor *x, int nd, const int64_t *shape,
                             const int64_t *stride, int64_t offset) {
  dc_node *n = NULL;
  dc_tensor *v = make_view(op, x, nd, shape, stride, offset, &n);
  if (n) DC__ARGS(n, view)->in = dc_shape_of(x);
  return v;
}

/* Resolves one -1 in s against numel n; false + error if impossible. */
static bool infer_shape(const char *op, dc_shape *s, int64_t n, dc_shape from) {
  int neg = -1;
  int64_t prod = 1;
  for (int d = 0; d < s->ndim; d++) {
    if (s->d[d] == -1) {
      if (neg >= 0) {
        dc__err(DC_ERR_ARG, "%s: only one dimension can be inferred (-1)", op);
        return false;
      }
      neg = d;
    } else if (s->d[d] < 0) {
      dc__err(DC_ERR_ARG, "%s: invalid size %lld in dim %d", op, (long long)s->d[d], d);
      return false;
    } else if (__builtin_mul_overflow(prod, s->d[d], &prod)) {
      goto bad; /* a product past int64 cannot be n */
    }
  }
  if (neg >= 0) {
    if (prod == 0 || n % prod != 0) goto bad;
    s->d[neg] = n / prod;
    prod *= s->d[neg];
  }
  if (prod == n) return true;
bad : {
  char a[128], b[128];
  dc__err(DC_ERR_ARG, "%s: shape %s is invalid for input of shape %s (%lld elements)", op,
          dc_shape_str(*s, a, sizeof a), dc_shape_str(from, b, sizeof b), (long long)n);
  return false;
}
}

/* Strides for viewing x as shape s without copying, if possible (PyTorch's computeStride). */
static bool view_strides(const dc_tensor *x, const dc_shape *s, int64_t *st) {
  if (dc_is_contiguous(x)) {
    dc__contiguous_strides(s->ndim, s->d, st);
    return true;
  }
  int64_t numel = dc_numel(x);
  if (numel == 0) {
    dc__contiguous_strides(s->ndim, s->d, st);
    return true;
  }
  int view_d = s->ndim - 1;
  int64_t chunk = x->ndim ? x->stride[x->ndim - 1] : 1, tensor_numel = 1, view_numel = 1;
  for (int d = x->ndim - 1; d >= 0; d--) {
    tensor_numel *= x->shape[d];
    if (d == 0 || (x->shape[d - 1] != 1 && x->stride[d - 1] != tensor_numel * chunk)) {
      while (view_d >= 0 && (view_numel < tensor_numel || s->d[view_d] == 1)) {
        st[view_d] = view_numel * chunk;
        view_numel *= s->d[view_d];
        view_d--;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk = x->stride[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

dc_tensor *dc_view(dc_tensor *x, dc_shape s) {
  if (!dc__check_nonnull("view", 1, x)) return NULL;
  if (s.ndim < 0 || s.ndim > DC_MAX_DIMS)
    return dc__err(DC_ERR_ARG, "view: a shape has 0 to %d dims, got %d", DC_MAX_DIMS, s.ndim);
  if (!infer_shape("view", &s, dc_numel(x), dc_shape_of(x))) return NULL;
  int64_t st[DC_MAX_DIMS];
  if (!view_strides(x, &s, st))
    return dc__err(DC_ERR_ARG, "view: size is not compatible with the input's strides (a "
                               "non-contiguous tensor); use dc_reshape, which copies");
  return shape_view(&dc__op_VIEW, x, s.ndim, s.d, st, x->offset);
}

dc_tensor *dc_reshape(dc_tensor *x, dc_shape s) {
  if (!dc__check_nonnull("reshape", 1, x)) return NULL;
  if (s.ndim < 0 || s.ndim > DC_MAX_DIMS)
    return dc__err(DC_ERR_ARG, "reshape: a shape has 0 to %d dims, got %d", DC_MAX_DIMS, s.ndim);
  if (!infer_shape("reshape", &s, dc_numel(x), dc_shape_of(x))) return NULL;
  int64_t st[DC_MAX_DIMS];
  if (view_strides(x, &s, st)) return shape_view(&dc__op_VIEW, x, s.ndim, s.d, st, x->offset);
  dc_tensor *c = dc_contiguous(x);
  dc_tensor *r = c ? dc_view(c, s) : NULL;
  dc_free(c);
  return r;
}

dc_tensor *dc_permute(dc_tensor *x, const int *dims, int ndims) {
  if (!dc__check_nonnull("permute", 1, x)) return NULL;
  if (!dims || ndims != x->ndim)
    return dc__err(DC_ERR_ARG, "permute: expected %d dims for a %d-d tensor, got %d", x->ndim,
                   x->ndim, ndims);
  int64_t sh[DC_MAX_DIMS], st[DC_MAX_DIMS];
  int inv[DC_MAX_DIMS];
  bool seen[DC_MAX_DIMS] = {0};
  for (int d = 0; d < ndims; d++) {
    int k = dims[d];
    if (!dc__wrap_dim("permute", &k, x->ndim)) return NULL;
    if (seen[k]) return dc__err(DC_ERR_ARG, "permute: dim %d appears twice", k);
    seen[k] = true;
    sh[d] = x->shape[k];
    st[d] = x->stride[k];
    inv[k] = d;
  }
  dc_node *n = NULL;
  dc_tensor *v = make_view(&dc__op_PERMUTE, x, ndims, sh, st, x->offset, &n);
  if (n) {
    dc__permute_args *a = DC__ARGS(n, permute);
    a->in = dc_shape_of(x);
    memcpy(a->inv, inv, sizeof(int) * (size_t)ndims);
  }
  return v;
}

dc_tensor *dc_transpose(dc_tensor *x, int d0, int d1) {
  if (!dc__check_nonnull("transpose", 1, x)) return NULL;
  if (!dc__wrap_dim("transpose", &d0, x->ndim) || !dc__wrap_dim("transpose", &d1, x->ndim))
    return NULL;
  int p[DC_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) p[d] = d;
  if (x->ndim == 0) return dc_permute(x, p, 0);
  p[d0] = d1;
  p[d1] = d0;
  return dc_permute(x, p, x->ndim);
}

/* Shared by narrow, slice and select. */
static dc_tensor *subview(const char *op, dc_tensor *x, int dim, int64_t start, int64_t len,
                          int64_t step, bool drop) {
  int64_t sh[DC_MAX_DIMS], st[DC_MAX_DIMS];
  memcpy(sh, x->shape, sizeof sh);
  memcpy(st, x->stride, sizeof st);
  int64_t off = x->offset + start * x->stride[dim];
  sh[dim] = len;
  st[dim] *= step;
  int nd = x->ndim;
  if (drop) {
    for (int d = dim; d < nd - 1; d++) {
      sh[d] = sh[d + 1];
      st[d] = st[d + 1];
    }
    nd--;
  }
  (void)op;
  dc_node *n = NULL;
  dc_tensor *v = make_view(&dc__op_SLICE, x, nd, sh, st, off, &n);
  if (n) *DC__ARGS(n, slice) = (dc__slice_args){dc_shape_of(x), dim, start, len, step, drop};
  return v;
}

dc_tensor *dc_narrow(dc_tensor *x, int dim, int64_t start, int64_t length) {
  if (!dc__check_nonnull("narrow", 1, x)) return NULL;
  if (x->ndim == 0) return dc__err(DC_ERR_ARG, "narrow: cannot narrow a 0-d tensor");
  if (!dc__wrap_dim("narrow", &dim, x->ndim)) return NULL;
  if (start < 0) start += x->shape[dim];
  if (start < 0 || length < 0 || start + length > x->shape[dim])
    return dc__err(DC_ERR_ARG, "narrow: start %lld + length %lld exceeds dim %d of size %lld",
                   (long long)start, (long long)length, dim, (long long)x->shape[dim]);
  return subview("narrow", x, dim, start, length, 1, false);
}

dc_tensor *dc_slice(dc_tensor *x, int dim, int64_t start, int64_t end, int64_t step) {
  if (!dc__check_nonnull("slice", 1, x)) return NULL;
  if (x->ndim == 0) return dc__err(DC_ERR_ARG, "slice: cannot slice a 0-d tensor");
  if (!dc__wrap_dim("slice", &dim, x->ndim)) return NULL;
  if (step <= 0)
    return dc__err(DC_ERR_ARG, "slice: step must be positive, got %lld", (long long)step);
  int64_t n = x->shape[dim];
  if (start < 0) start += n;
  if (end < 0) end += n;
  if (start < 0) start = 0;
  if (start > n) start = n;
  if (end > n) end = n;
  if (end < start) end = start;
  int64_t len = (end - start + step - 1) / step;
  return subview("slice", x, dim, start, len, step, false);
}

dc_tensor *dc_select(dc_tensor *x, int dim, int64_t index) {
  if (!dc__check_nonnull("select", 1, x)) return NULL;
  if (x->ndim == 0) return dc__err(DC_ERR_ARG, "select: cannot index a 0-d tensor");
  if (!dc__wrap_dim("select", &dim, x->ndim)) return NULL;
  int64_t n = x->shape[dim];
  if (index < -n || index >= n)
    return dc__err(DC_ERR_ARG, "select: index %lld is out of range for dim %d of size %lld",
                   (long long)index, dim, (long long)n);
  if (index < 0) index += n;
  return subview("select", x, dim, index, 1, 1, true);
}

dc_tensor *dc_expand(dc_tensor *x, dc_shape s) {
  if (!dc__check_nonnull("expand", 1, x)) return NULL;
  if (s.ndim < x->ndim || s.ndim > DC_MAX_DIMS) {
    char a[128], b[128];
    return dc__err(DC_ERR_ARG, "expand: cannot expand shape %s to %s (fewer dims)",
                   dc_shape_str(dc_shape_of(x), a, sizeof a), dc_shape_str(s, b, sizeof b));
  }
  int64_t st[DC_MAX_DIMS];
  int off = s.ndim - x->ndim;
  for (int d = 0; d < s.ndim; d++) {
    int xd = d - off;
    int64_t xs = xd >= 0 ? x->shape[xd] : 1;
    if (s.d[d] == -1) {
      if (xd < 0) return dc__err(DC_ERR_ARG, "expand: -1 is not allowed in a new leading dim");
      s.d[d] = xs;
    }
    if (xd >= 0 && xs == s.d[d]) {
      st[d] = x->stride[xd];
    } else if (xs == 1 && s.d[d] >= 0) {
      st[d] = 0;
    } else {
      char a[128], b[128];
      return dc__err(DC_ERR_ARG,
                     "expand: the size of dim %d (%lld) must match the target %lld "
                     "or be 1 (expanding %s to %s)",
                     d, (long long)xs, (long long)s.d[d], dc_shape_str(dc_shape_of(x), a, sizeof a),
                     dc_shape_str(s, b, sizeof b));
    }
  }
  return shape_view(&dc__op_EXPAND, x, s.ndim, s.d, st, x->offset);
}

dc_tensor *dc_squeeze(dc_tensor *x, int dim) {
  if (!dc__check_nonnull("squeeze", 1, x)) return NULL;
  dc_shape s = {0};
  int64_t st[DC_MAX_DIMS];
  if (dim != DC_ALL_DIMS && !dc__wrap_dim("squeeze", &dim, x->ndim)) return NULL;
  for (int d = 0; d < x->ndim; d++) {
    bool drop = x->shape[d] == 1 && (dim == DC_ALL_DIMS || d == dim);
    if (drop) continue;
    st[s.ndim] = x->stride[d];
    s.d[s.ndim++] = x->shape[d];
  }
  return shape_view(&dc__op_VIEW, x, s.ndim, s.d, st, x->offset);
}

dc_tensor *dc_unsqueeze(dc_tensor *x, int dim) {
  if (!dc__check_nonnull("unsqueeze", 1, x)) return NULL;
  if (x->ndim >= DC_MAX_DIMS) return dc__err(DC_ERR_ARG, "unsqueeze: already %d dims", DC_MAX_DIMS);
  if (!dc__wrap_dim("unsqueeze", &dim, x->ndim + 1)) return NULL;
  int64_t sh[DC_MAX_DIMS], st[DC_MAX_DIMS];
  for (int d = 0, k = 0; d <= x->ndim; d++) {
    if (d == dim) {
      sh[d] = 1;
      st[d] = k < x->ndim ? x->stride[k] * x->shape[k] : 1;
    } else {
      sh[d] = x->shape[k];
      st[d] = x->stride[k];
      k++;
    }
  }
  return shape_view(&dc__op_VIEW, x, x->ndim + 1, sh, st, x->offset);
}

dc_tensor *dc_flatten(dc_tensor *x, int start, int end) {
  if (!dc__check_nonnull("flatten", 1, x)) return NULL;
  if (x->ndim == 0) return dc_reshape(x, DC_SHAPE(1));
  if (!dc__wrap_dim("flatten", &start, x->ndim) || !dc__wrap_dim("flatten", &end, x->ndim))
    return NULL;
  if (start > end) return dc__err(DC_ERR_ARG, "flatten: start_dim %d > end_dim %d", start, end);
  dc_shape s = {0};
  for (int d = 0; d < x->ndim; d++) {
    if (d > start && d <= end)
      s.d[s.ndim - 1] *= x->shape[d];
    else
      s.d[s.ndim++] = x->shape[d];
  }
  return dc_reshape(x, s);
}
