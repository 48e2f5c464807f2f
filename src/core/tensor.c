/* Tensor lifetime: construction, references, scopes and freeing. Storage is refcounted so
 * views stay valid; a tensor holds its grad and its grad_fn node. */
#include "core-impl.h"

#include <deepc/autograd.h>

#include <string.h>

/* ---- scopes (thread-local stack of tensor lists) ---- */
#define DC__MAX_SCOPES 64
typedef struct scope_list {
  dc_tensor **items;
  int32_t n, cap;
} scope_list;

static _Thread_local scope_list g_scopes[DC__MAX_SCOPES + 1]; /* level 1..64 */
static _Thread_local int g_level;
static int64_t g_live;

int64_t dc_live_tensors(void) { return __atomic_load_n(&g_live, __ATOMIC_RELAXED); }

static bool scope_push(int level, dc_tensor *t) {
  scope_list *l = &g_scopes[level];
  if (l->n == l->cap) {
    int32_t cap = l->cap ? l->cap * 2 : 256;
    dc_tensor **it = dc__realloc(l->items, sizeof *it * (size_t)l->cap, sizeof *it * (size_t)cap);
    if (!it) return false;
    l->items = it;
    l->cap = cap;
  }
  t->scope_level = level;
  t->scope_slot = l->n;
  l->items[l->n++] = t;
  return true;
}

static void scope_remove(dc_tensor *t) {
  if (t->scope_level <= 0) return;
  scope_list *l = &g_scopes[t->scope_level];
  if (t->scope_slot >= 0 && t->scope_slot < l->n && l->items[t->scope_slot] == t)
    l->items[t->scope_slot] = NULL;
  t->scope_level = 0;
  t->scope_slot = -1;
}

int dc_scope_begin(void) {
  if (g_level >= DC__MAX_SCOPES)
    return dc__errs(DC_ERR_STATE,
                    "dc_scope_begin: more than %d nested scopes; is a "
                    "dc_scope_end missing?",
                    DC__MAX_SCOPES);
  g_level++;
  g_scopes[g_level].n = 0;
  return DC_OK;
}

void dc_scope_end(void) {
  if (g_level <= 0) return;
  scope_list *l = &g_scopes[g_level];
  /* Free newest first: later tensors usually depend on earlier ones. */
  for (int32_t k = l->n - 1; k >= 0; k--) {
    dc_tensor *t = l->items[k];
    if (!t) continue;
    t->scope_level = 0;
    t->scope_slot = -1;
    dc__unref(t);
  }
  l->n = 0;
  if (l->cap > 65536) { /* give back an unusually large list */
    dc__free(l->items);
    l->items = NULL;
    l->cap = 0;
  }
  g_level--;
}

dc_tensor *dc_keep(dc_tensor *t) {
  if (!t || t->scope_level != g_level || g_level == 0) return t;
  scope_remove(t);
  if (g_level > 1 && !scope_push(g_level - 1, t)) return NULL;
  return t;
}

bool dc__in_current_scope(const dc_tensor *t) { return g_level > 0 && t->scope_level == g_level; }

dc_tensor *dc__take(dc_tensor *t) {
  if (!t) return NULL;
  if (dc__in_current_scope(t))
    scope_remove(t);
  else
    dc__ref(t);
  return t;
}

void dc__unscope(dc_tensor *t) {
  if (t) scope_remove(t);
}

/* ---- construction ---- */
static dc_tensor *tensor_header(void) {
  dc_tensor *t = dc__malloc(sizeof *t);
  if (!t) return NULL;
  memset(t, 0, sizeof *t);
  t->refcount = 1;
  t->scope_slot = -1;
  if (g_level > 0 && !scope_push(g_level, t)) {
    dc__free(t);
    return NULL;
  }
  __atomic_add_fetch(&g_live, 1, __ATOMIC_RELAXED);
  return t;
}

void dc__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride) {
  int64_t s = 1;
  for (int d = ndim - 1; d >= 0; d--) {
    stride[d] = s;
    s *= shape[d] > 0 ? shape[d] : 1;
  }
}

int64_t dc__shape_numel(const dc_shape *s) {
  int64_t n = 1;
  for (int d = 0; d < s->ndim; d++) n *= s->d[d];
  return n;
}

bool dc__check_shape(const char *op, dc_shape s) {
  if (s.ndim < 0 || s.ndim > DC_MAX_DIMS) {
    dc__err(DC_ERR_ARG, "%s: a tensor has 0 to %d dims, got %d", op, DC_MAX_DIMS, s.ndim);
    return false;
  }
  int64_t n = 1, span = 1; /* span: product of the sizes with 0 taken as 1 (what strides hold) */
  for (int d = 0; d < s.ndim; d++) {
    if (s.d[d] < 0) {
      char buf[128];
      dc__err(DC_ERR_ARG, "%s: negative size %lld in dim %d of shape %s", op, (long long)s.d[d], d,
              dc_shape_str(s, buf, sizeof buf));
      return false;
    }
    if (dc__mul_overflow(n, s.d[d], &n) || n > ((int64_t)1 << 48) ||
        dc__mul_overflow(span, s.d[d] > 0 ? s.d[d] : 1, &span) || span > ((int64_t)1 << 62)) {
      char buf[128];
      dc__err(DC_ERR_ARG, "%s: shape %s has too many elements", op,
              dc_shape_str(s, buf, sizeof buf));
      return false;
    }
  }
  return true;
}

dc_tensor *dc__new(dc_shape s, dc_dtype dt, dc_device dev) {
  if (!dc__check_shape("tensor", s)) return NULL;
  if ((int)dt < 0 || dt >= DC_DTYPE_COUNT)
    return dc__err(DC_ERR_ARG, "tensor: invalid dtype %d", (int)dt);
  int64_t n = dc__shape_numel(&s);
  dc_storage *st = dc__storage_new((size_t)n * dc_dtype_size(dt), dev);
  if (!st) return NULL;
  dc_tensor *t = tensor_header();
  if (!t) {
    dc__storage_release(st);
    return NULL;
  }
  t->storage = st;
  t->ndim = s.ndim;
  memcpy(t->shape, s.d, sizeof(int64_t) * (size_t)s.ndim);
  dc__contiguous_strides(s.ndim, t->shape, t->stride);
  t->dtype = dt;
  t->device = dev;
  return t;
}

dc_tensor *dc__alias(const dc_tensor *src, int ndim, const int64_t *shape, const int64_t *stride,
                     int64_t offset) {
  dc_tensor *t = tensor_header();
  if (!t) return NULL;
  t->storage = src->storage;
  dc__storage_retain(src->storage);
  t->offset = offset;
  t->ndim = ndim;
  memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
  memcpy(t->stride, stride, sizeof(int64_t) * (size_t)ndim);
  t->dtype = src->dtype;
  t->device = src->device;
  return t;
}

dc_tensor *dc__alias_same(const dc_tensor *t) {
  return dc__alias(t, t->ndim, t->shape, t->stride, t->offset);
}

dc_tensor *dc__ref(dc_tensor *t) {
  if (t) __atomic_add_fetch(&t->refcount, 1, __ATOMIC_RELAXED);
  return t;
}

void dc_free(dc_tensor *t) {
  if (!t) return;
  scope_remove(t);
  dc__unref(t);
}

/* t's grad_fn as core sees it: the node's head (core-impl.h) */
static const dc__node_vt *node_vt(const dc_node *n) {
  return ((const dc__node_head *)(const void *)n)->vt;
}

const char *dc_grad_fn_name(const dc_tensor *t) {
  return t && t->grad_fn ? node_vt(t->grad_fn)->name(t->grad_fn) : NULL;
}

void dc__unref(dc_tensor *t) {
  if (!t) return;
  if (__atomic_sub_fetch(&t->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
  DC__CHECK(t->scope_level == 0, );
  if (t->grad_fn) node_vt(t->grad_fn)->release(t->grad_fn, t);
  dc_free(t->grad);
  dc__storage_release(t->storage);
  dc__free(t);
  __atomic_sub_fetch(&g_live, 1, __ATOMIC_RELAXED);
}

dc_tensor *dc_requires_grad_(dc_tensor *t, bool on) {
  if (!t) return NULL;
  if (on && !dc_dtype_is_float(t->dtype))
    return dc__err(DC_ERR_ARG,
                   "requires_grad: only floating-point tensors can require gradients, "
                   "this one is %s; convert it with dc_to_dtype first",
                   dc_dtype_name(t->dtype));
  if (t->grad_fn && !on)
    return dc__err(DC_ERR_ARG, "requires_grad: cannot turn off gradients of a non-leaf tensor; "
                               "use dc_detach");
  t->requires_grad = on;
  return t;
}
