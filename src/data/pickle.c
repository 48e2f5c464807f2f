/* Pickled datasets: the NumPy rule set of the one pickle VM (src/io/pickle-vm.h), which allows
 * only the globals NumPy uses to rebuild arrays (_reconstruct / ndarray / dtype, scalar,
 * _frombuffer, _codecs.encode, OrderedDict, bytes()); every other opcode or global is refused by
 * the VM or here with its name and byte offset, so nothing in a file can run code. The values
 * become the public dc_pyobj tree. Also the pickle dataset: (features, targets) found in a
 * tuple, list or dict. */
#include "data-impl.h"
#include "../io/pickle-vm.h"

#include <string.h>

#define DC__PICKLE_MAX_FILE ((size_t)1 << 36)

typedef enum np_global {
  G_RECONSTRUCT,
  G_NDARRAY,
  G_DTYPE,
  G_SCALAR,
  G_FROMBUFFER,
  G_ENCODE,
  G_ODICT,
  G_BYTES
} np_global;
/* Tags of the VM objects these rules make (DC__PV_OBJ): i is the array's index for T_ARRAY,
 * the byte-order character for T_DTYPE (s: its type string, "f4"). */
enum { T_PENDING_ARRAY = 1, T_DTYPE, T_ARRAY };

static const struct {
  const char *module, *name;
  np_global g;
} ALLOWED[] = {
    {"numpy.core.multiarray", "_reconstruct", G_RECONSTRUCT},
    {"numpy._core.multiarray", "_reconstruct", G_RECONSTRUCT},
    {"numpy", "ndarray", G_NDARRAY},
    {"numpy", "dtype", G_DTYPE},
    {"numpy.core.multiarray", "scalar", G_SCALAR},
    {"numpy._core.multiarray", "scalar", G_SCALAR},
    {"numpy.core.numeric", "_frombuffer", G_FROMBUFFER},
    {"numpy._core.numeric", "_frombuffer", G_FROMBUFFER},
    {"_codecs", "encode", G_ENCODE},
    {"collections", "OrderedDict", G_ODICT},
    {"__builtin__", "bytes", G_BYTES}, /* protocol 2's empty bytes: bytes() */
    {"builtins", "bytes", G_BYTES},
};

/* The arrays made while the pickle runs, one reference each (moved into the views at the end). */
typedef struct np_ctx {
  dc_tensor **arrays;
  int64_t n, cap;
} np_ctx;

struct dc_pickle {
  dc_pyobj **objs; /* every view made, freed together */
  int64_t nobjs, capobjs;
  dc_pyobj *root;
};

static const char *kind_name(const dc__pv *x) {
  if (x->kind != DC__PV_OBJ) return dc__pv_kind_name(x->kind);
  return x->tag == T_DTYPE   ? "numpy.dtype"
         : x->tag == T_ARRAY ? "ndarray"
                             : "ndarray under construction";
}

static bool is_obj(const dc__pv *x, int tag) { return x->kind == DC__PV_OBJ && x->tag == tag; }

/* ---- the rules: NumPy arrays ---- */
static int rule_global(void *ud, const char *module, const char *name) {
  for (size_t k = 0; k < sizeof ALLOWED / sizeof *ALLOWED; k++)
    if (strcmp(ALLOWED[k].module, module) == 0 && strcmp(ALLOWED[k].name, name) == 0)
      return (int)ALLOWED[k].g;
  return -1;
}

static bool get_shape(dc__pickle_vm *vm, const dc__pv *t, dc_shape *s) {
  if (t->kind != DC__PV_TUPLE || t->n > DC_MAX_DIMS) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "array shape must be a tuple of at most 8 ints, got a %s",
                    kind_name(t));
    return false;
  }
  s->ndim = (int)t->n;
  for (int d = 0; d < s->ndim; d++) {
    const dc__pv *v = t->items[d];
    if (v->kind != DC__PV_INT || v->i < 0) {
      dc__pickle_fail(vm, DC_ERR_FORMAT, "array shape entries must be ints >= 0");
      return false;
    }
    s->d[d] = v->i;
  }
  return true;
}

static bool dtype_type(dc__pickle_vm *vm, const dc__pv *dt, dc__npy_type *t) {
  if (!is_obj(dt, T_DTYPE)) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "expected a numpy.dtype, got a %s", kind_name(dt));
    return false;
  }
  char d[12];
  snprintf(d, sizeof d, "%c%s", (char)dt->i, dt->s);
  if (!dc__npy_type_parse(d, t)) {
    dc__pickle_fail(vm, DC_ERR_UNSUPPORTED, "dtype '%s' is not supported (numbers and bools only)",
                    d);
    return false;
  }
  return true;
}

/* Array from raw bytes, checking numel x itemsize == len first; kept in the context (x: the
 * object that becomes it). */
static dc__pv *make_array(dc__pickle_vm *vm, np_ctx *c, dc__pv *x, const dc__pv *dt, dc_shape shape,
                          bool fortran, const dc__pv *raw) {
  dc__npy_type t;
  if (!dtype_type(vm, dt, &t)) return NULL;
  if (raw->kind != DC__PV_BYTES && raw->kind != DC__PV_STR)
    return dc__pickle_fail(vm, DC_ERR_UNSUPPORTED,
                           "array data is a %s, not bytes (object arrays are refused)",
                           kind_name(raw));
  int64_t numel = 1, bytes;
  for (int d = 0; d < shape.ndim; d++)
    if (__builtin_mul_overflow(numel, shape.d[d], &numel)) numel = INT64_MAX;
  if (__builtin_mul_overflow(numel, (int64_t)t.fsize, &bytes) || (uint64_t)bytes != raw->len) {
    char b1[128];
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "array shape %s disagrees with its %zu data bytes",
                           dc_shape_str(shape, b1, sizeof b1), raw->len);
  }
  if (c->n == c->cap) {
    int64_t cap = c->cap ? 2 * c->cap : 16;
    dc_tensor **a = dc__realloc(c->arrays, sizeof *a * (size_t)c->cap, sizeof *a * (size_t)cap);
    if (!a) return NULL;
    c->arrays = a;
    c->cap = cap;
  }
  if (!x && !(x = dc__pv_new(vm, DC__PV_OBJ))) return NULL;
  dc_tensor *a = dc__npy_make(&t, shape, fortran, (const uint8_t *)raw->s);
  if (!a) return NULL;
  dc__ref(a);
  dc_free(a); /* one unscoped reference, moved into the view or released with the context */
  c->arrays[c->n] = a;
  x->kind = DC__PV_OBJ, x->tag = T_ARRAY, x->i = c->n++;
  return x;
}

static dc__pv *new_bytes(dc__pickle_vm *vm, const uint8_t *d, size_t len) {
  dc__pv *x = dc__pv_new(vm, DC__PV_BYTES);
  if (!x || !(x->s = dc__malloc(len + 1))) return NULL;
  if (len) memcpy(x->s, d, len);
  x->s[len] = '\0';
  x->len = len;
  return x;
}

/* UTF-8 text whose code points are all < 256 -> bytes (protocol 2's _codecs.encode(s, 'latin1')) */
static dc__pv *latin1_bytes(dc__pickle_vm *vm, const dc__pv *s) {
  uint8_t *out = dc__malloc(s->len + 1);
  if (!out) return NULL;
  size_t k = 0;
  const uint8_t *u = (const uint8_t *)s->s;
  for (size_t i = 0; i < s->len; k++) {
    if (u[i] < 0x80) {
      out[k] = u[i++];
    } else if ((u[i] & 0xE0) == 0xC0 && i + 1 < s->len && u[i] <= 0xC3) {
      out[k] = (uint8_t)((u[i] & 0x1F) << 6 | (u[i + 1] & 0x3F));
      i += 2;
    } else {
      dc__free(out);
      return dc__pickle_fail(vm, DC_ERR_FORMAT, "_codecs.encode: text is not latin-1");
    }
  }
  dc__pv *x = new_bytes(vm, out, k);
  dc__free(out);
  return x;
}

static dc__pv *reduce_dtype(dc__pickle_vm *vm, const dc__pv *args) {
  const dc__pv *d = args->n >= 1 ? args->items[0] : NULL;
  if (!d || d->kind != DC__PV_STR || d->len >= 8)
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "numpy.dtype needs a short type string");
  dc__pv *x = dc__pv_new(vm, DC__PV_OBJ);
  if (!x || !(x->s = dc__strdup(d->s))) return NULL;
  x->len = d->len;
  x->tag = T_DTYPE;
  x->i = '|';
  return x;
}

static dc__pv *reduce_frombuffer(dc__pickle_vm *vm, np_ctx *c, dc__pv *const *a) {
  dc_shape s;
  if (!get_shape(vm, a[2], &s)) return NULL;
  bool fortran = a[3]->kind == DC__PV_STR && a[3]->len == 1 && a[3]->s[0] == 'F';
  return make_array(vm, c, NULL, a[1], s, fortran, a[0]);
}

static dc__pv *rule_reduce(dc__pickle_vm *vm, void *ud, dc__pv *fn, dc__pv *args) {
  np_ctx *c = ud;
  int64_t na = args->n;
  dc__pv *const *a = args->items;
  switch ((np_global)fn->tag) {
  case G_RECONSTRUCT: {
    if (na < 1 || a[0]->kind != DC__PV_GLOBAL || a[0]->tag != G_NDARRAY)
      return dc__pickle_fail(vm, DC_ERR_FORMAT, "_reconstruct must rebuild numpy.ndarray");
    dc__pv *x = dc__pv_new(vm, DC__PV_OBJ);
    if (x) x->tag = T_PENDING_ARRAY;
    return x;
  }
  case G_DTYPE:
    return reduce_dtype(vm, args);
  case G_SCALAR:
    if (na != 2) return dc__pickle_fail(vm, DC_ERR_FORMAT, "numpy scalar needs (dtype, bytes)");
    return make_array(vm, c, NULL, a[0], (dc_shape){.ndim = 0}, false, a[1]);
  case G_FROMBUFFER:
    if (na != 4)
      return dc__pickle_fail(vm, DC_ERR_FORMAT, "_frombuffer needs (buffer, dtype, shape, order)");
    return reduce_frombuffer(vm, c, a);
  case G_ENCODE:
    if (na != 2 || a[0]->kind != DC__PV_STR || a[1]->kind != DC__PV_STR ||
        (strcmp(a[1]->s, "latin1") != 0 && strcmp(a[1]->s, "latin-1") != 0))
      return dc__pickle_fail(vm, DC_ERR_FORMAT,
                             "_codecs.encode is only allowed as encode(str, 'latin1')");
    return latin1_bytes(vm, a[0]);
  case G_ODICT:
    if (na != 0)
      return dc__pickle_fail(vm, DC_ERR_FORMAT,
                             "OrderedDict is only allowed empty (items come by SETITEMS)");
    return dc__pv_new(vm, DC__PV_DICT);
  case G_BYTES:
    if (na != 0)
      return dc__pickle_fail(vm, DC_ERR_FORMAT,
                             "bytes is only allowed as bytes() (protocol 2's empty bytes)");
    return new_bytes(vm, (const uint8_t *)"", 0);
  case G_NDARRAY:
    break;
  }
  return dc__pickle_fail(vm, DC_ERR_FORMAT, "calling numpy.ndarray directly is not allowed");
}

/* BUILD: the state of a dtype (byte order) or of an array under construction, which becomes the
 * array itself (the memo may hold it). */
static dc__pv *rule_build(dc__pickle_vm *vm, void *ud, dc__pv *obj, dc__pv *st) {
  if (is_obj(obj, T_DTYPE)) {
    if (st->kind != DC__PV_TUPLE || st->n < 2 || st->items[1]->kind != DC__PV_STR)
      return dc__pickle_fail(vm, DC_ERR_FORMAT, "unexpected numpy.dtype state");
    for (int64_t k = 3; k < 5 && k < st->n; k++)
      if (st->items[k]->kind != DC__PV_NONE)
        return dc__pickle_fail(vm, DC_ERR_UNSUPPORTED, "structured dtypes are not supported");
    obj->i = st->items[1]->len ? st->items[1]->s[0] : '|';
    return obj;
  }
  if (!is_obj(obj, T_PENDING_ARRAY))
    return dc__pickle_fail(vm, DC_ERR_FORMAT,
                           "BUILD on a %s: only NumPy arrays and dtypes may be built (setting "
                           "attributes of other objects is refused)",
                           kind_name(obj));
  /* (version, shape, dtype, is_fortran, data) or the older form without version */
  if (st->kind != DC__PV_TUPLE || (st->n != 5 && st->n != 4))
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "unexpected ndarray state (a %s)", kind_name(st));
  dc__pv *const *a = st->items + (st->n == 5 ? 1 : 0);
  dc_shape s;
  if (!get_shape(vm, a[0], &s)) return NULL;
  bool fortran = a[2]->kind == DC__PV_BOOL && a[2]->i != 0;
  return make_array(vm, ud, obj, a[1], s, fortran, a[3]);
}

static const dc__pickle_rules RULES = {
    .allowed = "NumPy arrays and plain containers (numpy.core.multiarray._reconstruct, "
               "numpy.ndarray, numpy.dtype, numpy scalars, _frombuffer, _codecs.encode, "
               "collections.OrderedDict, bytes)",
    .global = rule_global,
    .reduce = rule_reduce,
    .build = rule_build,
};

/* ---- the values as the public dc_pyobj tree ---- */
static dc_pyobj *view_new(dc_pickle *p) {
  if (p->nobjs == p->capobjs) {
    int64_t cap = p->capobjs ? p->capobjs * 2 : 64;
    dc_pyobj **a = dc__realloc(p->objs, sizeof *a * (size_t)p->capobjs, sizeof *a * (size_t)cap);
    if (!a) return NULL;
    p->objs = a;
    p->capobjs = cap;
  }
  dc_pyobj *x = dc__calloc(1, sizeof *x);
  if (x) p->objs[p->nobjs++] = x;
  return x;
}

static bool view_str(dc_pyobj *o, dc_py_kind kind, const char *s, size_t len) {
  char *d = dc__malloc(len + 1);
  if (!d) return false;
  if (len) memcpy(d, s, len);
  d[len] = '\0';
  o->kind = kind, o->str = d, o->len = len;
  return true;
}

static dc_pyobj *view(dc_pickle *p, np_ctx *c, dc__pv *v, int depth);

static bool view_items(dc_pickle *p, np_ctx *c, dc_pyobj *o, dc__pv *v, int depth) {
  int64_t n = v->kind == DC__PV_DICT ? 2 * v->n : v->n;
  if (n && !(o->items = dc__malloc(sizeof *o->items * (size_t)n))) return false;
  for (int64_t i = 0; i < n; i++)
    if (!(o->items[i] = view(p, c, v->items[i], depth + 1))) return false;
  o->n = v->n;
  return true;
}

/* The view of v, made once (shared and cyclic values stay shared); arrays move into it. */
static dc_pyobj *view(dc_pickle *p, np_ctx *c, dc__pv *v, int depth) {
  if (v->user) return v->user;
  if (depth > DC__PICKLE_MAX_DEPTH)
    return dc__err(DC_ERR_FORMAT, "pickle: containers nested deeper than %d", DC__PICKLE_MAX_DEPTH);
  if (is_obj(v, T_PENDING_ARRAY))
    return dc__err(DC_ERR_FORMAT,
                   "pickle: offset %zu: an ndarray never received its data "
                   "(BUILD missing)",
                   v->at);
  dc_pyobj *o = view_new(p);
  if (!o) return NULL;
  v->user = o;
  char d[64];
  bool ok = true;
  switch (v->kind) {
  case DC__PV_NONE:
  case DC__PV_BOOL:
  case DC__PV_INT:
  case DC__PV_FLOAT:
    o->kind = (dc_py_kind)v->kind; /* the first kinds have the same order */
    o->i = v->i, o->f = v->f;
    break;
  case DC__PV_STR:
  case DC__PV_BYTES:
    ok = view_str(o, v->kind == DC__PV_STR ? DC_PY_STR : DC_PY_BYTES, v->s, v->len);
    break;
  case DC__PV_TUPLE:
  case DC__PV_LIST:
  case DC__PV_DICT:
    o->kind = (dc_py_kind)v->kind;
    ok = view_items(p, c, o, v, depth);
    break;
  case DC__PV_GLOBAL:
  case DC__PV_OBJ:
    if (is_obj(v, T_ARRAY)) {
      o->kind = DC_PY_ARRAY;
      o->array = c->arrays[v->i];
      c->arrays[v->i] = NULL;
      break;
    }
    if (v->kind == DC__PV_OBJ)
      snprintf(d, sizeof d, "numpy.dtype('%c%s')", (char)v->i, v->s);
    else
      snprintf(d, sizeof d, "global %d", v->tag);
    ok = view_str(o, DC_PY_OTHER, d, strlen(d));
    break;
  }
  return ok ? o : NULL;
}

_Static_assert((int)DC__PV_NONE == (int)DC_PY_NONE && (int)DC__PV_BOOL == (int)DC_PY_BOOL &&
                   (int)DC__PV_INT == (int)DC_PY_INT && (int)DC__PV_FLOAT == (int)DC_PY_FLOAT &&
                   (int)DC__PV_TUPLE == (int)DC_PY_TUPLE && (int)DC__PV_LIST == (int)DC_PY_LIST &&
                   (int)DC__PV_DICT == (int)DC_PY_DICT,
               "the VM's plain kinds and dc_py_kind agree");

static void obj_free(dc_pyobj *x) {
  if (x->kind == DC_PY_ARRAY) dc__unref(x->array);
  dc__free((void *)(uintptr_t)x->str);
  dc__free(x->items);
  dc__free(x);
}

void dc_pickle_free(dc_pickle *pkl) {
  if (!pkl) return;
  for (int64_t i = 0; i < pkl->nobjs; i++) obj_free(pkl->objs[i]);
  dc__free(pkl->objs);
  dc__free(pkl);
}

dc_pickle *dc_pickle_loads(const void *data, size_t n) {
  if (!data && n) return dc__err(DC_ERR_ARG, "pickle_loads: data is NULL");
  np_ctx c = {0};
  dc__pv *root;
  /* bytes after STOP are ignored, as Python does */
  dc__pickle_vm *vm = dc__pickle_run(data, n, "pickle", &RULES, &c, &root);
  dc_pickle *out = vm ? dc__calloc(1, sizeof *out) : NULL;
  if (out && !(out->root = view(out, &c, root, 0))) {
    dc_pickle_free(out);
    out = NULL;
  }
  dc__pickle_free(vm);
  for (int64_t i = 0; i < c.n; i++) dc__unref(c.arrays[i]); /* arrays no value holds */
  dc__free(c.arrays);
  return out;
}

dc_pickle *dc_pickle_load(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "pickle_load: path is NULL");
  uint8_t *mem;
  size_t n;
  if (dc__read_file(path, DC__PICKLE_MAX_FILE, &mem, &n)) return NULL;
  dc_pickle *r = dc_pickle_loads(mem, n);
  if (!r) {
    /* name the file instead of "pickle" */
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", dc_last_error());
    dc_status st = dc_last_status();
    if (strncmp(msg, "pickle:", 7) == 0) dc__err(st, "%s:%s", path, msg + 7);
  }
  dc__free(mem);
  return r;
}

const dc_pyobj *dc_pickle_root(const dc_pickle *p) { return p ? p->root : NULL; }

const dc_pyobj *dc_pyobj_get(const dc_pyobj *dict, const char *key) {
  if (!dict || !key || dict->kind != DC_PY_DICT) return NULL;
  for (int64_t i = 0; i < dict->n; i++) {
    const dc_pyobj *k = dict->items[2 * i];
    if (k->kind == DC_PY_STR && strcmp(k->str, key) == 0) return dict->items[2 * i + 1];
  }
  return NULL;
}

/* ---- the pickle dataset ---- */

/* An array, or a list/tuple of numbers made into one (caller's scope). NULL otherwise. */
static dc_tensor *as_array(const dc_pyobj *o) {
  if (o->kind == DC_PY_ARRAY) return dc_contiguous(o->array);
  if ((o->kind != DC_PY_LIST && o->kind != DC_PY_TUPLE) || o->n == 0) return NULL;
  bool ints = true;
  for (int64_t i = 0; i < o->n; i++) {
    dc_py_kind k = o->items[i]->kind;
    if (k != DC_PY_INT && k != DC_PY_BOOL && k != DC_PY_FLOAT) return NULL;
    ints = ints && k != DC_PY_FLOAT;
  }
  dc_tensor *t = dc_empty(DC_SHAPE(o->n), ints ? DC_I64 : DC_F32);
  for (int64_t i = 0; t && i < o->n; i++) {
    const dc_pyobj *v = o->items[i];
    if (ints)
      ((int64_t *)dc_data(t))[i] = v->i;
    else
      ((float *)dc_data(t))[i] = (float)(v->kind == DC_PY_FLOAT ? v->f : (double)v->i);
  }
  return t;
}

static bool is_pair(const dc_pyobj *o) {
  return (o->kind == DC_PY_TUPLE || o->kind == DC_PY_LIST) && o->n == 2 &&
         o->items[0]->kind == DC_PY_ARRAY;
}

/* Where a pickle holds its features and targets: *xo, *yo (NULL when absent) and the names of
 * those places for messages (xf, yf: n bytes each). */
static void pick_arrays(const dc_pyobj *r, const dc_pyobj **xo, const dc_pyobj **yo, char *xf,
                        char *yf, size_t n) {
  *xo = *yo = NULL;
  if (r->kind == DC_PY_ARRAY) {
    *xo = r;
    snprintf(xf, n, "the pickled array");
  } else if (is_pair(r)) {
    *xo = r->items[0], *yo = r->items[1];
    snprintf(xf, n, "item 0 of the pickled pair"), snprintf(yf, n, "item 1 of the pickled pair");
  } else if ((r->kind == DC_PY_TUPLE || r->kind == DC_PY_LIST) && r->n >= 1 &&
             is_pair(r->items[0])) {
    *xo = r->items[0]->items[0], *yo = r->items[0]->items[1];
    snprintf(xf, n, "item 0 of the first pair"), snprintf(yf, n, "item 1 of the first pair");
  } else if (r->kind == DC_PY_DICT) {
    const dc_pyobj *train = dc_pyobj_get(r, "train");
    if (train && is_pair(train)) {
      *xo = train->items[0], *yo = train->items[1];
      snprintf(xf, n, "item 0 of key 'train'"), snprintf(yf, n, "item 1 of key 'train'");
      return;
    }
    char *names[64];
    int nn = 0;
    for (int64_t i = 0; i < r->n && nn < 64; i++)
      if (r->items[2 * i]->kind == DC_PY_STR) names[nn++] = (char *)(uintptr_t)r->items[2 * i]->str;
    int xi, yi;
    if (dc__pick_xy(nn, names, NULL, NULL, &xi, &yi) == DC_OK) {
      *xo = dc_pyobj_get(r, names[xi]);
      snprintf(xf, n, "key '%.64s'", names[xi]);
      *yo = yi >= 0 ? dc_pyobj_get(r, names[yi]) : NULL;
      if (yi >= 0) snprintf(yf, n, "key '%.64s'", names[yi]);
    }
  }
}

dc_dataset *dc_pickle_dataset(const char *path) {
  dc_pickle *pkl = dc_pickle_load(path);
  if (!pkl) return NULL;
  const dc_pyobj *xo, *yo;
  char xf[96] = "", yf[96] = "";
  pick_arrays(dc_pickle_root(pkl), &xo, &yo, xf, yf, sizeof xf);
  dc_tensor *x = xo ? as_array(xo) : NULL, *y = yo ? as_array(yo) : NULL;
  dc_dataset *ds = NULL;
  if (!x || (yo && !y))
    dc__err(DC_ERR_FORMAT,
            "%s: expected NumPy arrays as (features, targets), [features, "
            "targets] or a dict with keys like x/y, data/labels, "
            "features/targets",
            path);
  else if (!dc__refuse_empty_samples(x, path, xf) && (!y || !dc__refuse_empty_samples(y, path, yf)))
    ds = dc__xy_dataset(x, y, "Pickle", path);
  dc_free(x);
  dc_free(y);
  dc_pickle_free(pkl);
  return ds;
}
