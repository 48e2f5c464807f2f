/* Indexing ops: gather, scatter_add (out-of-place), index_select, one_hot, cat and stack, with
 * their backward rules (gather <-> scatter_add, index_select <-> index_add, cat -> narrow,
 * stack -> select). Indices are int64; the kernels reject out-of-range ones with an error. */
#include "../autograd/autograd-impl.h"
#include "../backend/backend.h"

#include <string.h>

/* ---- shared checks and helpers ---- */

static bool check_index_dtype(const char *op, const dc_tensor *index) {
  if (index->dtype == DC_I64) return true;
  dc__err(DC_ERR_ARG, "%s: index must be int64, got %s; convert it with dc_to_dtype(index, DC_I64)",
          op, dc_dtype_name(index->dtype));
  return false;
}

static bool check_same_device(const char *op, const dc_tensor *a, const dc_tensor *b) {
  if (a->device == b->device) return true;
  dc__err(DC_ERR_ARG, "%s: tensors are on different devices; move them with dc_to_device", op);
  return false;
}

/* A zero-filled contiguous tensor (no autograd). */
static dc_tensor *zeros_on(dc_shape s, dc_dtype dt, dc_device dev) {
  const dc_backend *be = dc__backend(dev);
  dc_tensor *t = be ? dc__new(s, dt, dev) : NULL;
  if (t && be->ew->fill(t, 0.0) != DC_OK) {
    dc_free(t);
    return NULL;
  }
  return t;
}

/* A copy of x in x's shape (no autograd), for out-of-place updates. */
static dc_tensor *copy_of(const dc_tensor *x) {
  const dc_backend *be = dc__backend(x->device);
  dc_tensor *t = be ? dc__new(dc_shape_of(x), x->dtype, x->device) : NULL;
  if (t && be->ew->copy(t, x) != DC_OK) {
    dc_free(t);
    return NULL;
  }
  return t;
}

/* Per-dim size check shared by gather and scatter_add: index must fit inside t (all dims but
 * `skip`, or all dims when skip < 0). */
static bool index_fits(const char *op, const dc_tensor *index, const dc_tensor *t,
                       const char *tname, int skip) {
  char si[128], st[128];
  if (index->ndim != t->ndim) {
    dc__err(DC_ERR_ARG, "%s: index %s and %s %s must have the same number of dims", op,
            dc_shape_str(dc_shape_of(index), si, sizeof si), tname,
            dc_shape_str(dc_shape_of(t), st, sizeof st));
    return false;
  }
  for (int d = 0; d < t->ndim; d++)
    if (d != skip && index->shape[d] > t->shape[d]) {
      dc__err(DC_ERR_ARG,
              "%s: index %s is larger than %s %s in dim %d (%lld > %lld); the index "
              "may not be larger than %s in any dim%s",
              op, dc_shape_str(dc_shape_of(index), si, sizeof si), tname,
              dc_shape_str(dc_shape_of(t), st, sizeof st), d, (long long)index->shape[d],
              (long long)t->shape[d], tname, skip >= 0 ? " but `dim`" : "");
      return false;
    }
  return true;
}

/* ---- gather / scatter_add ---- */

/* out [index shape] = x gathered along dim: gin[0] = scatter_add(zeros(x), dim, index, gout) */
static int gather_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0], *index = n->inputs[1];
  dc_tensor *z = zeros_on(dc_shape_of(x), x->dtype, x->device);
  gin[0] = z ? dc_scatter_add(z, DC__ARGS(n, dim)->dim, index, gout) : NULL;
  return gin[0] ? DC_OK : dc_last_status();
}
DC__OPDEF(GATHER, gather_backward);

dc_tensor *dc_gather(dc_tensor *x, int dim, dc_tensor *index) {
  if (!dc__check_nonnull("gather", 2, x, index)) return NULL;
  if (!check_index_dtype("gather", index) || !check_same_device("gather", x, index)) return NULL;
  if (!dc__wrap_dim("gather", &dim, x->ndim)) return NULL;
  if (!index_fits("gather", index, x, "input", dim)) return NULL;
  const dc_backend *be = dc__backend(x->device);
  dc_tensor *out = be ? dc__new(dc_shape_of(index), x->dtype, x->device) : NULL;
  if (!out) return NULL;
  dc_node *node;
  if (be->index->gather(out, x, dim, index) != DC_OK ||
      !dc__record(&dc__op_GATHER, out, 2, (dc_tensor *[]){x, index}, &node)) {
    dc_free(out);
    return NULL;
  }
  if (node) DC__ARGS(node, dim)->dim = dim;
  return out;
}

/* g [index shape] zero-padded at the end of each dim to shape s (differentiable: cat). */
static dc_tensor *pad_to(dc_tensor *g, dc_shape s) {
  dc_tensor *cur = g;
  for (int d = 0; cur && d < s.ndim; d++) {
    if (cur->shape[d] == s.d[d]) continue;
    dc_shape zs = dc_shape_of(cur);
    zs.d[d] = s.d[d] - cur->shape[d];
    dc_tensor *z = zeros_on(zs, cur->dtype, cur->device);
    dc_tensor *next = z ? dc_cat((dc_tensor *[]){cur, z}, 2, d) : NULL;
    dc_free(z);
    if (cur != g) dc_free(cur);
    cur = next;
  }
  return cur;
}

/* out = x with src [>= index shape] added at index along dim: gin[0] = gout,
 * gin[2] = gather(gout, dim, index), zero where src had no index */
static int scatter_add_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *index = n->inputs[1], *src = n->inputs[2];
  if (dc__needs_grad(n, 0)) gin[0] = gout;
  if (dc__needs_grad(n, 2)) {
    dc_tensor *g = dc_gather(gout, DC__ARGS(n, dim)->dim, index);
    gin[2] = g ? pad_to(g, dc_shape_of(src)) : NULL;
    if (!gin[2]) return dc_last_status();
  }
  return DC_OK;
}
DC__OPDEF(SCATTER_ADD, scatter_add_backward);

dc_tensor *dc_scatter_add(dc_tensor *x, int dim, dc_tensor *index, dc_tensor *src) {
  if (!dc__check_nonnull("scatter_add", 3, x, index, src)) return NULL;
  if (!check_index_dtype("scatter_add", index) || !check_same_device("scatter_add", x, index) ||
      !check_same_device("scatter_add", x, src))
    return NULL;
  if (x->dtype != src->dtype)
    return dc__err(DC_ERR_ARG,
                   "scatter_add: input is %s but src is %s; they must have the same "
                   "dtype (convert src with dc_to_dtype)",
                   dc_dtype_name(x->dtype), dc_dtype_name(src->dtype));
  if (!dc__wrap_dim("scatter_add", &dim, x->ndim)) return NULL;
  if (!index_fits("scatter_add", index, src, "src", -1) ||
      !index_fits("scatter_add", index, x, "input", dim))
    return NULL;
  dc_tensor *out = copy_of(x);
  if (!out) return NULL;
  dc_node *node;
  if (dc__backend(x->device)->index->scatter_add(out, dim, index, src) != DC_OK ||
      !dc__record(&dc__op_SCATTER_ADD, out, 3, (dc_tensor *[]){x, index, src}, &node)) {
    dc_free(out);
    return NULL;
  }
  if (node) DC__ARGS(node, dim)->dim = dim;
  return out;
}

/* ---- index_select / index_add ---- */

static dc_tensor *index_add(dc_tensor *x, int dim, dc_tensor *index, dc_tensor *src);

/* out [x with L at dim] = x rows at index: gin[0] = index_add(zeros(x), dim, index, gout) */
static int index_select_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0], *index = n->inputs[1];
  dc_tensor *z = zeros_on(dc_shape_of(x), x->dtype, x->device);
  gin[0] = z ? index_add(z, DC__ARGS(n, dim)->dim, index, gout) : NULL;
  return gin[0] ? DC_OK : dc_last_status();
}
DC__OPDEF(INDEX_SELECT, index_select_backward);

/* out = x with src rows added at index along dim: gin[0] = gout, gin[2] = index_select(gout) */
static int index_add_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  if (dc__needs_grad(n, 0)) gin[0] = gout;
  if (dc__needs_grad(n, 2)) {
    gin[2] = dc_index_select(gout, DC__ARGS(n, dim)->dim, n->inputs[1]);
    if (!gin[2]) return dc_last_status();
  }
  return DC_OK;
}
DC__OPDEF(INDEX_ADD, index_add_backward);

/* Out-of-place index_add (the backward of index_select); shapes are the caller's. */
static dc_tensor *index_add(dc_tensor *x, int dim, dc_tensor *index, dc_tensor *src) {
  dc_tensor *out = copy_of(x);
  if (!out) return NULL;
  dc_node *node;
  if (dc__backend(x->device)->index->index_add(out, dim, index, src) != DC_OK ||
      !dc__record(&dc__op_INDEX_ADD, out, 3, (dc_tensor *[]){x, index, src}, &node)) {
    dc_free(out);
    return NULL;
  }
  if (node) DC__ARGS(node, dim)->dim = dim;
  return out;
}

dc_tensor *dc_index_select(dc_tensor *x, int dim, dc_tensor *index) {
  if (!dc__check_nonnull("index_select", 2, x, index)) return NULL;
  if (!check_index_dtype("index_select", index) || !check_same_device("index_select", x, index))
    return NULL;
  if (index->ndim > 1) {
    char si[128];
    return dc__err(DC_ERR_ARG,
                   "index_select: index must be 0-D or 1-D, got %s; flatten it and "
                   "reshape the result",
                   dc_shape_str(dc_shape_of(index), si, sizeof si));
  }
  if (!dc__wrap_dim("index_select", &dim, x->ndim)) return NULL;
  dc_shape s = dc_shape_of(x);
  if (s.ndim > 0)
    s.d[dim] = dc_numel(index);
  else if (dc_numel(index) != 1)
    return dc__err(DC_ERR_ARG, "index_select: a 0-d input takes exactly one index, got %lld",
                   (long long)dc_numel(index));
  const dc_backend *be = dc__backend(x->device);
  dc_tensor *out = be ? dc__new(s, x->dtype, x->device) : NULL;
  if (!out) return NULL;
  dc_node *node;
  if (be->index->index_select(out, x, dim, index) != DC_OK ||
      !dc__record(&dc__op_INDEX_SELECT, out, 2, (dc_tensor *[]){x, index}, &node)) {
    dc_free(out);
    return NULL;
  }
  if (node) DC__ARGS(node, dim)->dim = dim;
  return out;
}

/* ---- one_hot ---- */

/* Reads the labels on the host; checks them and finds the class count when num_classes < 0. */
static bool one_hot_classes(const dc_tensor *labels, int64_t *num_classes) {
  int64_t n = dc_numel(labels);
  int64_t *v = dc__malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
  if (!v) return false;
  if (dc_copy_to_buffer(labels, v, sizeof(int64_t) * (size_t)n) != DC_OK) {
    dc__free(v);
    return false;
  }
  bool ok = true;
  if (*num_classes < 0) {
    int64_t mx = -1;
    for (int64_t i = 0; i < n; i++) mx = v[i] > mx ? v[i] : mx;
    if (n == 0) {
      dc__err(DC_ERR_ARG, "one_hot: cannot infer the number of classes from an empty tensor; pass "
                          "num_classes");
      ok = false;
    }
    *num_classes = mx + 1;
  }
  for (int64_t i = 0; ok && i < n; i++)
    if (v[i] < 0 || v[i] >= *num_classes) {
      dc__err(DC_ERR_ARG,
              "one_hot: label %lld (element %lld) is out of range for num_classes "
              "%lld; labels must be in 0..%lld",
              (long long)v[i], (long long)i, (long long)*num_classes, (long long)*num_classes - 1);
      ok = false;
    }
  dc__free(v);
  return ok;
}

dc_tensor *dc_one_hot(dc_tensor *labels, int64_t num_classes) {
  if (!dc__check_nonnull("one_hot", 1, labels)) return NULL;
  if (labels->dtype != DC_I64)
    return dc__err(DC_ERR_ARG,
                   "one_hot: labels must be int64 class indices, got %s; convert with "
                   "dc_to_dtype(labels, DC_I64)",
                   dc_dtype_name(labels->dtype));
  if (labels->ndim >= DC_MAX_DIMS)
    return dc__err(DC_ERR_ARG, "one_hot: labels have %d dims; at most %d are supported",
                   labels->ndim, DC_MAX_DIMS - 1);
  if (!one_hot_classes(labels, &num_classes)) return NULL;
  /* out [..., C] = 0, then 1 added at (..., label): scatter_add of a broadcast one along the
   * last dim with labels viewed as [..., 1] */
  int nd = labels->ndim;
  dc_shape os = dc_shape_of(labels);
  os.d[os.ndim++] = num_classes;
  int64_t ish[DC_MAX_DIMS], ist[DC_MAX_DIMS], zst[DC_MAX_DIMS] = {0};
  memcpy(ish, labels->shape, sizeof(int64_t) * (size_t)nd);
  memcpy(ist, labels->stride, sizeof(int64_t) * (size_t)nd);
  ish[nd] = 1;
  ist[nd] = 1;
  dc_tensor *out = zeros_on(os, DC_I64, labels->device);
  dc_tensor *one = out ? dc__new(DC_SCALAR_SHAPE, DC_I64, labels->device) : NULL;
  dc_tensor *idx = one ? dc__alias(labels, nd + 1, ish, ist, labels->offset) : NULL;
  dc_tensor *src = idx ? dc__alias(one, nd + 1, ish, zst, one->offset) : NULL;
  const dc_backend *be = dc__backend(labels->device);
  bool ok =
      src && be->ew->fill(one, 1.0) == DC_OK && be->index->scatter_add(out, nd, idx, src) == DC_OK;
  dc_free(src);
  dc_free(idx);
  dc_free(one);
  if (!ok) {
    dc_free(out);
    return NULL;
  }
  return out;
}

/* ---- cat / stack ---- */

/* out = cat(inputs, dim): gin[k] = narrow(gout, dim, offset_k, size_k) in input k's dtype */
static int cat_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  const dc__cat_args *a = DC__ARGS(n, cat);
  int dim = a->dim;
  int64_t off = 0;
  for (int k = 0; k < n->ninputs; k++) {
    dc_tensor *t = n->inputs[k];
    bool skipped = a->skip_empty && t->ndim == 1 && t->shape[0] == 0; /* legacy empty input */
    int64_t len = skipped ? 0 : t->shape[dim];
    if (dc__needs_grad(n, k)) {
      dc_tensor *g = skipped ? zeros_on(dc_shape_of(t), gout->dtype, gout->device)
                             : dc_narrow(gout, dim, off, len);
      gin[k] = g && g->dtype != t->dtype ? dc_to_dtype(g, t->dtype) : g;
      if (!gin[k]) return dc_last_status();
    }
    off += len;
  }
  return DC_OK;
}
DC__OPDEF(CAT, cat_backward);

/* out = stack(inputs, dim): gin[k] = select(gout, dim, k) in input k's dtype */
static int stack_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  for (int k = 0; k < n->ninputs; k++) {
    if (!dc__needs_grad(n, k)) continue;
    dc_tensor *g = dc_select(gout, DC__ARGS(n, dim)->dim, k);
    gin[k] = g && g->dtype != n->inputs[k]->dtype ? dc_to_dtype(g, n->inputs[k]->dtype) : g;
    if (!gin[k]) return dc_last_status();
  }
  return DC_OK;
}
DC__OPDEF(STACK, stack_backward);

/* Common checks of a tensor list: non-empty, no NULL, one device; the promoted dtype. */
static bool check_list(const char *op, dc_tensor *const *ts, int n, dc_dtype *dt) {
  if (!ts || n <= 0) {
    dc__err(DC_ERR_ARG, "%s: expected a non-empty list of tensors, got %d", op, ts ? n : 0);
    return false;
  }
  for (int k = 0; k < n; k++) {
    if (!ts[k]) {
      if (dc_last_status() == DC_OK)
        dc__err(DC_ERR_ARG, "%s: tensor %d of the list is NULL", op, k);
      return false;
    }
    if (ts[k]->device != ts[0]->device) {
      dc__err(DC_ERR_ARG,
              "%s: tensor %d is on a different device from tensor 0; move it with "
              "dc_to_device",
              op, k);
      return false;
    }
    *dt = k ? dc__promote(*dt, ts[k]->dtype) : ts[k]->dtype;
  }
  return true;
}

/* Copies each ts[k] into out's slab k along dim (width len[k] at offset off[k]; drop: the dim
 * is absent from ts[k], as in stack). */
static bool fill_slabs(dc_tensor *out, dc_tensor *const *ts, int n, int dim, bool drop,
                       const int64_t *len) {
  const dc_backend *be = dc__backend(out->device);
  int64_t off = 0;
  for (int k = 0; k < n; k++) {
    if (len[k] < 0) continue; /* skipped legacy empty input */
    int64_t sh[DC_MAX_DIMS], st[DC_MAX_DIMS];
    int nd = out->ndim;
    memcpy(sh, out->shape, sizeof sh);
    memcpy(st, out->stride, sizeof st);
    sh[dim] = len[k];
    if (drop) {
      for (int d = dim; d < nd - 1; d++) {
        sh[d] = sh[d + 1];
        st[d] = st[d + 1];
      }
      nd--;
    }
    dc_tensor *v = dc__alias(out, nd, sh, st, out->offset + off * out->stride[dim]);
    bool ok = v && be->ew->copy(v, ts[k]) == DC_OK;
    dc_free(v);
    if (!ok) return false;
    off += drop ? 1 : len[k];
  }
  return true;
}

dc_tensor *dc_cat(dc_tensor *const *ts, int n, int dim) {
  dc_dtype dt;
  if (!check_list("cat", ts, n, &dt)) return NULL;
  /* torch skips legacy empty 1-D inputs ([0]) when the others have another rank */
  int ref = -1;
  for (int k = 0; k < n && ref < 0; k++)
    if (!(ts[k]->ndim == 1 && ts[k]->shape[0] == 0)) ref = k;
  bool skip_empty = ref >= 0 && ts[ref]->ndim != 1;
  if (ref < 0) ref = 0;
  const dc_tensor *r = ts[ref];
  char s0[128], s1[128];
  if (r->ndim == 0)
    return dc__err(DC_ERR_ARG,
                   "cat: tensor %d is 0-d and cannot be concatenated; use dc_stack, "
                   "or dc_unsqueeze it first",
                   ref);
  if (!dc__wrap_dim("cat", &dim, r->ndim)) return NULL;
  int64_t lens[64], *len = n <= 64 ? lens : dc__malloc(sizeof(int64_t) * (size_t)n);
  if (!len) return NULL;
  dc_shape os = dc_shape_of(r);
  os.d[dim] = 0;
  for (int k = 0; k < n; k++) {
    const dc_tensor *t = ts[k];
    if (skip_empty && t->ndim == 1 && t->shape[0] == 0) {
      len[k] = -1;
      continue;
    }
    bool match = t->ndim == r->ndim;
    int bad = -1;
    for (int d = 0; match && d < r->ndim; d++)
      if (d != dim && t->shape[d] != r->shape[d]) {
        bad = d;
        match = false;
      }
    if (!match) {
      if (len != lens) dc__free(len);
      if (bad < 0)
        return dc__err(DC_ERR_ARG,
                       "cat: tensor %d has %d dims but tensor %d has %d (shapes %s and "
                       "%s); all inputs need the same number of dims",
                       k, t->ndim, ref, r->ndim, dc_shape_str(dc_shape_of(t), s1, sizeof s1),
                       dc_shape_str(dc_shape_of(r), s0, sizeof s0));
      return dc__err(DC_ERR_ARG,
                     "cat: sizes must match except in dim %d, but tensor %d has size "
                     "%lld in dim %d where tensor %d has %lld (shapes %s and %s)",
                     dim, k, (long long)t->shape[bad], bad, ref, (long long)r->shape[bad],
                     dc_shape_str(dc_shape_of(t), s1, sizeof s1),
                     dc_shape_str(dc_shape_of(r), s0, sizeof s0));
    }
    len[k] = t->shape[dim];
    os.d[dim] += len[k];
  }
  dc_tensor *out = dc__new(os, dt, r->device);
  bool ok = out && fill_slabs(out, ts, n, dim, false, len);
  if (len != lens) dc__free(len);
  dc_node *node;
  if (!ok || !dc__record(&dc__op_CAT, out, n, ts, &node)) {
    dc_free(out);
    return NULL;
  }
  if (node) *DC__ARGS(node, cat) = (dc__cat_args){dim, skip_empty};
  return out;
}

dc_tensor *dc_stack(dc_tensor *const *ts, int n, int dim) {
  dc_dtype dt;
  if (!check_list("stack", ts, n, &dt)) return NULL;
  const dc_tensor *r = ts[0];
  if (r->ndim >= DC_MAX_DIMS)
    return dc__err(DC_ERR_ARG, "stack: inputs have %d dims; the result would exceed %d", r->ndim,
                   DC_MAX_DIMS);
  if (!dc__wrap_dim("stack", &dim, r->ndim + 1)) return NULL;
  char s0[128], s1[128];
  for (int k = 1; k < n; k++)
    if (!dc_shape_equal(dc_shape_of(ts[k]), dc_shape_of(r))) {
      int bad = -1;
      for (int d = 0; bad < 0 && d < r->ndim && d < ts[k]->ndim; d++)
        if (ts[k]->shape[d] != r->shape[d]) bad = d;
      return dc__err(DC_ERR_ARG,
                     "stack: every tensor must have the same shape, but tensor %d is "
                     "%s and tensor 0 is %s (first difference in dim %d)",
                     k, dc_shape_str(dc_shape_of(ts[k]), s1, sizeof s1),
                     dc_shape_str(dc_shape_of(r), s0, sizeof s0), bad < 0 ? r->ndim : bad);
    }
  dc_shape os = {.ndim = r->ndim + 1};
  for (int d = 0, k = 0; d < os.ndim; d++) os.d[d] = d == dim ? n : r->shape[k++];
  int64_t lens[64], *len = n <= 64 ? lens : dc__malloc(sizeof(int64_t) * (size_t)n);
  if (!len) return NULL;
  for (int k = 0; k < n; k++) len[k] = 1;
  dc_tensor *out = dc__new(os, dt, r->device);
  bool ok = out && fill_slabs(out, ts, n, dim, true, len);
  if (len != lens) dc__free(len);
  dc_node *node;
  if (!ok || !dc__record(&dc__op_STACK, out, n, ts, &node)) {
    dc_free(out);
    return NULL;
  }
  if (node) DC__ARGS(node, dim)->dim = dim;
  return out;
}
