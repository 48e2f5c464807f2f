/* A restricted Python unpickler for data files: protocols 2-5, only the opcodes that build plain
 * values and containers, and only the globals NumPy uses to rebuild arrays (_reconstruct /
 * ndarray / dtype, scalar, _frombuffer, _codecs.encode, OrderedDict, bytes()). Every other opcode
 * or global is refused with its name and byte offset, so nothing in a file can run code. Also the
 * pickle dataset: (features, targets) found in a tuple, list or dict. */
#include "data-impl.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#define DC__PICKLE_MAX_FILE ((size_t)1 << 36)
#define DC__PICKLE_MAX_OBJECTS ((int64_t)1 << 21) /* bounds memory to a few hundred MB */
#define DC__PICKLE_MAX_DEPTH 100

/* Internal kinds beyond the public ones (pub.kind is DC_PY_OTHER for them). */
typedef enum pk_kind { PK_PUBLIC = 0, PK_GLOBAL, PK_DTYPE, PK_PENDING_ARRAY } pk_kind;

typedef enum pk_global {
  G_RECONSTRUCT,
  G_NDARRAY,
  G_DTYPE,
  G_SCALAR,
  G_FROMBUFFER,
  G_ENCODE,
  G_ODICT,
  G_BYTES,
  G_COUNT
} pk_global;

static const struct {
  const char *module, *name;
  pk_global g;
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

typedef struct pyo {
  dc_pyobj pub; /* first: the public view */
  pk_kind ik;
  int64_t cap;   /* items capacity (list, dict) */
  pk_global g;   /* PK_GLOBAL */
  bool seen;     /* visited by finish() */
  int depth;     /* containers nested inside (0 for a scalar or an empty container) */
  char descr[8]; /* PK_DTYPE: "f4"; byte order from BUILD */
  char order;
} pyo;

struct dc_pickle {
  pyo **objs; /* every object made, freed together */
  int64_t nobjs;
  pyo *root;
};

typedef struct pk {
  const uint8_t *b;
  size_t n, pos, op_at;
  const char *what;
  dc_pickle *out;
  int64_t capobjs;
  pyo **stack;
  int64_t sp, capstack;
  int64_t *marks;
  int64_t nmarks, capmarks;
  pyo **memo;
  int64_t capmemo, nmemo; /* slots, entries set (MEMOIZE's next index) */
  pyo *none, *yes, *no;   /* shared None / True / False */
} pk;

static const char *op_name(uint8_t op) {
  switch (op) {
  case 'c':
    return "GLOBAL";
  case 'i':
    return "INST";
  case 'o':
    return "OBJ";
  case 0x81:
    return "NEWOBJ";
  case 0x92:
    return "NEWOBJ_EX";
  case 'P':
    return "PERSID";
  case 'Q':
    return "BINPERSID";
  case 0x82:
    return "EXT1";
  case 0x83:
    return "EXT2";
  case 0x84:
    return "EXT4";
  case 'I':
    return "INT";
  case 'L':
    return "LONG";
  case 'F':
    return "FLOAT";
  case 'S':
    return "STRING";
  case 'V':
    return "UNICODE";
  case 'p':
    return "PUT";
  case 'g':
    return "GET";
  case 0x97:
    return "NEXT_BUFFER";
  case 0x98:
    return "READONLY_BUFFER";
  case 0x8f:
    return "EMPTY_SET";
  case 0x90:
    return "ADDITEMS";
  case 0x91:
    return "FROZENSET";
  case 0x8b:
    return "LONG4";
  default:
    return "unknown";
  }
}

static void *pk_fail(pk *p, dc_status st, const char *fmt, ...) DC__PRINTF(3, 4);
static void *pk_fail(pk *p, dc_status st, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return dc__err(st, "%s: offset %zu: %s", p->what, p->op_at, msg);
}

static pyo *pk_new(pk *p, dc_py_kind kind) {
  dc_pickle *o = p->out;
  if (o->nobjs >= DC__PICKLE_MAX_OBJECTS)
    return pk_fail(p, DC_ERR_FORMAT,
                   "more than 2097152 objects; store large data as NumPy "
                   "arrays");
  if (o->nobjs == p->capobjs) {
    int64_t cap = p->capobjs ? p->capobjs * 2 : 64;
    pyo **a = dc__realloc(o->objs, sizeof *a * (size_t)p->capobjs, sizeof *a * (size_t)cap);
    if (!a) return NULL;
    o->objs = a;
    p->capobjs = cap;
  }
  pyo *x = dc__calloc(1, sizeof *x);
  if (!x) return NULL;
  x->pub.kind = kind;
  o->objs[o->nobjs++] = x;
  return x;
}

static void obj_free(pyo *x) {
  if (x->pub.kind == DC_PY_ARRAY) dc__unref(x->pub.array);
  dc__free((void *)(uintptr_t)x->pub.str);
  dc__free(x->pub.items);
  dc__free(x);
}

void dc_pickle_free(dc_pickle *pkl) {
  if (!pkl) return;
  for (int64_t i = 0; i < pkl->nobjs; i++) obj_free(pkl->objs[i]);
  dc__free(pkl->objs);
  dc__free(pkl);
}

/* ---- reading the byte stream ---- */

static bool pk_bytes(pk *p, size_t k, const uint8_t **out) {
  if (k > p->n - p->pos) {
    char need[64];
    snprintf(need, sizeof need, "%zu", k);
    pk_fail(p, DC_ERR_FORMAT, "truncated: the opcode needs %s more bytes", need);
    return false;
  }
  *out = p->b + p->pos;
  p->pos += k;
  return true;
}

static bool pk_uint(pk *p, int k, uint64_t *v) {
  const uint8_t *d;
  if (!pk_bytes(p, (size_t)k, &d)) return false;
  *v = 0;
  for (int i = k - 1; i >= 0; i--) *v = *v << 8 | d[i];
  return true;
}

/* ---- the stack ---- */

static bool push(pk *p, pyo *x) {
  if (!x) return false;
  if (p->sp == p->capstack) {
    int64_t cap = p->capstack ? p->capstack * 2 : 64;
    pyo **s = dc__realloc(p->stack, sizeof *s * (size_t)p->capstack, sizeof *s * (size_t)cap);
    if (!s) return false;
    p->stack = s;
    p->capstack = cap;
  }
  p->stack[p->sp++] = x;
  return true;
}

/* &stack[i] (NULL while nothing was ever pushed: no offset may be added to a null pointer) */
static pyo **stack_at(pk *p, int64_t i) { return p->stack ? p->stack + i : NULL; }

static int64_t stack_floor(const pk *p) { return p->nmarks ? p->marks[p->nmarks - 1] : 0; }

static pyo *pop(pk *p) {
  if (p->sp <= stack_floor(p)) {
    pk_fail(p, DC_ERR_FORMAT, "stack underflow (the pickle is corrupt)");
    return NULL;
  }
  return p->stack[--p->sp];
}

static pyo *top(pk *p) {
  if (p->sp <= stack_floor(p)) {
    pk_fail(p, DC_ERR_FORMAT, "empty stack (the pickle is corrupt)");
    return NULL;
  }
  return p->stack[p->sp - 1];
}

/* Pops everything above the last mark (and the mark): the items are stack[*from .. sp). */
static bool pop_mark(pk *p, int64_t *from) {
  if (!p->nmarks) {
    pk_fail(p, DC_ERR_FORMAT, "no MARK before this opcode (the pickle is corrupt)");
    return false;
  }
  *from = p->marks[--p->nmarks];
  return true;
}

static bool items_reserve(pyo *x, int64_t n) {
  if (n <= x->cap) return true;
  int64_t cap = x->cap ? x->cap : 4;
  while (cap < n) cap *= 2;
  dc_pyobj **it = dc__realloc(x->pub.items, sizeof *it * (size_t)x->cap, sizeof *it * (size_t)cap);
  if (!it) return false;
  x->pub.items = it;
  x->cap = cap;
  return true;
}

/* Raises container x's depth to hold item y; an error (at the opcode) past the limit, checked as
 * the pickle runs so a million nested lists stop at the 101st. */
static bool deepen(pk *p, pyo *x, const pyo *y) {
  if (y->depth + 1 > x->depth) x->depth = y->depth + 1;
  if (x->depth <= DC__PICKLE_MAX_DEPTH) return true;
  pk_fail(p, DC_ERR_FORMAT, "containers nested deeper than %d levels", DC__PICKLE_MAX_DEPTH);
  return false;
}

static pyo *make_seq(pk *p, dc_py_kind kind, pyo *const *items, int64_t n) {
  pyo *x = pk_new(p, kind);
  if (!x || !items_reserve(x, n)) return NULL;
  for (int64_t i = 0; i < n; i++)
    if (!deepen(p, x, items[i])) return NULL;
  for (int64_t i = 0; i < n; i++) x->pub.items[i] = &items[i]->pub;
  x->pub.n = n;
  return x;
}

static const char *kind_name(const pyo *x) {
  switch (x->ik) {
  case PK_GLOBAL:
    return "global";
  case PK_DTYPE:
    return "numpy.dtype";
  case PK_PENDING_ARRAY:
    return "ndarray under construction";
  case PK_PUBLIC:
    break;
  }
  switch (x->pub.kind) {
  case DC_PY_NONE:
    return "None";
  case DC_PY_BOOL:
    return "bool";
  case DC_PY_INT:
    return "int";
  case DC_PY_FLOAT:
    return "float";
  case DC_PY_STR:
    return "str";
  case DC_PY_BYTES:
    return "bytes";
  case DC_PY_TUPLE:
    return "tuple";
  case DC_PY_LIST:
    return "list";
  case DC_PY_DICT:
    return "dict";
  case DC_PY_ARRAY:
    return "ndarray";
  case DC_PY_OTHER:
    return "object";
  }
  return "object";
}

static bool list_append(pk *p, pyo *list, pyo *const *items, int64_t n) {
  if (list->pub.kind != DC_PY_LIST || list->ik != PK_PUBLIC) {
    pk_fail(p, DC_ERR_FORMAT, "APPEND to a %s (only lists are allowed)", kind_name(list));
    return false;
  }
  if (!items_reserve(list, list->pub.n + n)) return false;
  for (int64_t i = 0; i < n; i++)
    if (!deepen(p, list, items[i])) return false;
  for (int64_t i = 0; i < n; i++) list->pub.items[list->pub.n++] = &items[i]->pub;
  return true;
}

static bool dict_set(pk *p, pyo *d, pyo *const *kv, int64_t n) {
  if (d->pub.kind != DC_PY_DICT || d->ik != PK_PUBLIC) {
    pk_fail(p, DC_ERR_FORMAT, "SETITEM on a %s (only dicts are allowed)", kind_name(d));
    return false;
  }
  if (n % 2) {
    pk_fail(p, DC_ERR_FORMAT, "SETITEMS with an odd number of items");
    return false;
  }
  for (int64_t k = 0; k < n; k++)
    if (!deepen(p, d, kv[k])) return false;
  for (int64_t k = 0; k < n; k += 2) {
    dc_py_kind kk = kv[k]->pub.kind;
    if (kv[k]->ik == PK_PENDING_ARRAY || kk == DC_PY_LIST || kk == DC_PY_DICT ||
        kk == DC_PY_ARRAY) {
      pk_fail(p, DC_ERR_FORMAT, "a dict key is a %s (unhashable in Python)", kind_name(kv[k]));
      return false;
    }
  }
  for (int64_t k = 0; k < n; k += 2) {
    const dc_pyobj *key = &kv[k]->pub;
    int64_t at = -1;
    for (int64_t j = 0; key->kind == DC_PY_STR && j < d->pub.n && at < 0; j++) {
      const dc_pyobj *o = d->pub.items[2 * j];
      if (o->kind == DC_PY_STR && o->len == key->len && memcmp(o->str, key->str, key->len) == 0)
        at = j;
    }
    if (at < 0) {
      if (!items_reserve(d, 2 * (d->pub.n + 1))) return false;
      at = d->pub.n++;
    }
    d->pub.items[2 * at] = &kv[k]->pub;
    d->pub.items[2 * at + 1] = &kv[k + 1]->pub;
  }
  return true;
}

/* A string / bytes object holding a copy of len bytes. */
static pyo *make_str(pk *p, dc_py_kind kind, const uint8_t *d, size_t len) {
  pyo *x = pk_new(p, kind);
  if (!x) return NULL;
  char *s = dc__malloc(len + 1);
  if (!s) return NULL;
  if (len) memcpy(s, d, len);
  s[len] = '\0';
  x->pub.str = s;
  x->pub.len = len;
  return x;
}

/* ---- NumPy reconstruction ---- */

static bool tuple_of(const pyo *x, int64_t n) {
  return x->ik == PK_PUBLIC && x->pub.kind == DC_PY_TUPLE && (n < 0 || x->pub.n == n);
}

static pyo *item(const pyo *t, int64_t i) { return (pyo *)t->pub.items[i]; }

static bool get_shape(pk *p, const pyo *t, dc_shape *s) {
  if (!tuple_of(t, -1) || t->pub.n > DC_MAX_DIMS) {
    pk_fail(p, DC_ERR_FORMAT, "array shape must be a tuple of at most 8 ints, got a %s",
            kind_name(t));
    return false;
  }
  s->ndim = (int)t->pub.n;
  for (int d = 0; d < s->ndim; d++) {
    const pyo *v = item(t, d);
    if (v->pub.kind != DC_PY_INT || v->ik || v->pub.i < 0) {
      pk_fail(p, DC_ERR_FORMAT, "array shape entries must be ints >= 0");
      return false;
    }
    s->d[d] = v->pub.i;
  }
  return true;
}

static bool dtype_type(pk *p, const pyo *dt, dc__npy_type *t) {
  if (dt->ik != PK_DTYPE) {
    pk_fail(p, DC_ERR_FORMAT, "expected a numpy.dtype, got a %s", kind_name(dt));
    return false;
  }
  char d[12];
  snprintf(d, sizeof d, "%c%s", dt->order ? dt->order : '|', dt->descr);
  if (!dc__npy_type_parse(d, t)) {
    pk_fail(p, DC_ERR_UNSUPPORTED, "dtype '%s' is not supported (numbers and bools only)", d);
    return false;
  }
  return true;
}

/* Array from raw bytes, checking numel x itemsize == len first. */
static pyo *make_array(pk *p, const pyo *dt, dc_shape shape, bool fortran, const pyo *raw) {
  dc__npy_type t;
  if (!dtype_type(p, dt, &t)) return NULL;
  if ((raw->pub.kind != DC_PY_BYTES && raw->pub.kind != DC_PY_STR) || raw->ik) {
    pk_fail(p, DC_ERR_UNSUPPORTED, "array data is a %s, not bytes (object arrays are refused)",
            kind_name(raw));
    return NULL;
  }
  int64_t numel = 1, bytes;
  for (int d = 0; d < shape.ndim; d++)
    if (__builtin_mul_overflow(numel, shape.d[d], &numel)) numel = INT64_MAX;
  if (__builtin_mul_overflow(numel, (int64_t)t.fsize, &bytes) || (uint64_t)bytes != raw->pub.len) {
    char b1[128], b2[64];
    snprintf(b2, sizeof b2, "%zu", raw->pub.len);
    pk_fail(p, DC_ERR_FORMAT, "array shape %s disagrees with its %s data bytes",
            dc_shape_str(shape, b1, sizeof b1), b2);
    return NULL;
  }
  dc_tensor *a = dc__npy_make(&t, shape, fortran, (const uint8_t *)raw->pub.str);
  if (!a) return NULL;
  dc__ref(a);
  dc_free(a); /* keep one unscoped reference, released by dc_pickle_free */
  pyo *x = pk_new(p, DC_PY_ARRAY);
  if (!x) {
    dc__unref(a);
    return NULL;
  }
  x->pub.array = a;
  return x;
}

/* UTF-8 text whose code points are all < 256 -> bytes (protocol 2's _codecs.encode(s, 'latin1')).
 */
static pyo *latin1_bytes(pk *p, const pyo *s) {
  uint8_t *out = dc__malloc(s->pub.len + 1);
  if (!out) return NULL;
  size_t k = 0;
  const uint8_t *u = (const uint8_t *)s->pub.str;
  for (size_t i = 0; i < s->pub.len; k++) {
    if (u[i] < 0x80)
      out[k] = u[i++];
    else if ((u[i] & 0xE0) == 0xC0 && i + 1 < s->pub.len && u[i] <= 0xC3) {
      out[k] = (uint8_t)((u[i] & 0x1F) << 6 | (u[i + 1] & 0x3F));
      i += 2;
    } else {
      dc__free(out);
      pk_fail(p, DC_ERR_FORMAT, "_codecs.encode: text is not latin-1");
      return NULL;
    }
  }
  pyo *x = make_str(p, DC_PY_BYTES, out, k);
  dc__free(out);
  return x;
}

static pyo *reduce(pk *p, pyo *fn, pyo *args) {
  if (fn->ik != PK_GLOBAL) {
    pk_fail(p, DC_ERR_FORMAT,
            "REDUCE calls a %s; only the allowed NumPy globals can be "
            "called",
            kind_name(fn));
    return NULL;
  }
  if (!tuple_of(args, -1)) {
    pk_fail(p, DC_ERR_FORMAT, "REDUCE arguments are a %s, not a tuple", kind_name(args));
    return NULL;
  }
  int64_t na = args->pub.n;
  switch (fn->g) {
  case G_RECONSTRUCT: {
    if (na < 1 || item(args, 0)->ik != PK_GLOBAL || item(args, 0)->g != G_NDARRAY) {
      pk_fail(p, DC_ERR_FORMAT, "_reconstruct must rebuild numpy.ndarray");
      return NULL;
    }
    pyo *x = pk_new(p, DC_PY_OTHER);
    if (x) x->ik = PK_PENDING_ARRAY;
    return x;
  }
  case G_DTYPE: {
    const pyo *d = na >= 1 ? item(args, 0) : NULL;
    if (!d || d->pub.kind != DC_PY_STR || d->ik || d->pub.len >= sizeof((pyo *)0)->descr) {
      pk_fail(p, DC_ERR_FORMAT, "numpy.dtype needs a short type string");
      return NULL;
    }
    pyo *x = pk_new(p, DC_PY_OTHER);
    if (!x) return NULL;
    x->ik = PK_DTYPE;
    memcpy(x->descr, d->pub.str, d->pub.len + 1);
    x->order = '|';
    return x;
  }
  case G_SCALAR: {
    if (na != 2) {
      pk_fail(p, DC_ERR_FORMAT, "numpy scalar needs (dtype, bytes)");
      return NULL;
    }
    return make_array(p, item(args, 0), (dc_shape){.ndim = 0}, false, item(args, 1));
  }
  case G_FROMBUFFER: {
    dc_shape s;
    if (na != 4 || !get_shape(p, item(args, 2), &s)) {
      if (na != 4) pk_fail(p, DC_ERR_FORMAT, "_frombuffer needs (buffer, dtype, shape, order)");
      return NULL;
    }
    const pyo *order = item(args, 3);
    bool fortran = order->pub.kind == DC_PY_STR && order->pub.len == 1 && order->pub.str[0] == 'F';
    return make_array(p, item(args, 1), s, fortran, item(args, 0));
  }
  case G_ENCODE: {
    if (na != 2 || item(args, 0)->pub.kind != DC_PY_STR || item(args, 0)->ik ||
        item(args, 1)->pub.kind != DC_PY_STR || item(args, 1)->ik ||
        (strcmp(item(args, 1)->pub.str, "latin1") != 0 &&
         strcmp(item(args, 1)->pub.str, "latin-1") != 0)) {
      pk_fail(p, DC_ERR_FORMAT, "_codecs.encode is only allowed as encode(str, 'latin1')");
      return NULL;
    }
    return latin1_bytes(p, item(args, 0));
  }
  case G_ODICT: {
    if (na != 0) {
      pk_fail(p, DC_ERR_FORMAT, "OrderedDict is only allowed empty (items come by SETITEMS)");
      return NULL;
    }
    return pk_new(p, DC_PY_DICT);
  }
  case G_BYTES:
    if (na != 0) {
      pk_fail(p, DC_ERR_FORMAT, "bytes is only allowed as bytes() (protocol 2's empty bytes)");
      return NULL;
    }
    return make_str(p, DC_PY_BYTES, (const uint8_t *)"", 0);
  case G_NDARRAY:
  case G_COUNT:
    break;
  }
  pk_fail(p, DC_ERR_FORMAT, "calling numpy.ndarray directly is not allowed");
  return NULL;
}

/* BUILD: state into an array under construction or a dtype. Returns the finished object. */
static pyo *build(pk *p, pyo *obj, pyo *state) {
  if (obj->ik == PK_DTYPE) {
    if (!tuple_of(state, -1) || state->pub.n < 2 || item(state, 1)->pub.kind != DC_PY_STR) {
      pk_fail(p, DC_ERR_FORMAT, "unexpected numpy.dtype state");
      return NULL;
    }
    for (int64_t k = 3; k < 5 && k < state->pub.n; k++)
      if (item(state, k)->pub.kind != DC_PY_NONE) {
        pk_fail(p, DC_ERR_UNSUPPORTED, "structured dtypes are not supported");
        return NULL;
      }
    obj->order = item(state, 1)->pub.len ? item(state, 1)->pub.str[0] : '|';
    return obj;
  }
  if (obj->ik != PK_PENDING_ARRAY) {
    pk_fail(p, DC_ERR_FORMAT,
            "BUILD on a %s: only NumPy arrays and dtypes may be built (setting "
            "attributes of other objects is refused)",
            kind_name(obj));
    return NULL;
  }
  /* (version, shape, dtype, is_fortran, data) or the older form without version */
  if (!tuple_of(state, -1) || (state->pub.n != 5 && state->pub.n != 4)) {
    pk_fail(p, DC_ERR_FORMAT, "unexpected ndarray state (a %s)", kind_name(state));
    return NULL;
  }
  int64_t o = state->pub.n == 5 ? 1 : 0;
  dc_shape s;
  if (!get_shape(p, item(state, o), &s)) return NULL;
  pyo *ret =
      make_array(p, item(state, o + 1), s,
                 item(state, o + 2)->pub.kind == DC_PY_BOOL && item(state, o + 2)->pub.i != 0,
                 item(state, o + 3));
  if (!ret) return NULL;
  /* the memo may hold obj: turn obj itself into the array */
  obj->pub = ret->pub;
  obj->ik = PK_PUBLIC;
  ret->pub.kind = DC_PY_NONE;
  ret->pub.array = NULL;
  return obj;
}

static bool memo_put(pk *p, uint64_t idx, pyo *x) {
  if (idx >= p->n + 1) {
    pk_fail(p, DC_ERR_FORMAT, "memo index beyond anything the file can define");
    return false;
  }
  if ((int64_t)idx >= p->capmemo) {
    int64_t cap = p->capmemo ? p->capmemo : 64;
    while (cap <= (int64_t)idx) cap *= 2;
    pyo **m = dc__realloc(p->memo, sizeof *m * (size_t)p->capmemo, sizeof *m * (size_t)cap);
    if (!m) return false;
    memset(m + p->capmemo, 0, sizeof *m * (size_t)(cap - p->capmemo));
    p->memo = m;
    p->capmemo = cap;
  }
  if (!p->memo[idx]) p->nmemo++;
  p->memo[idx] = x;
  return true;
}

static pyo *memo_get(pk *p, uint64_t idx) {
  if ((int64_t)idx >= p->capmemo || !p->memo[idx]) {
    char b[32];
    snprintf(b, sizeof b, "%llu", (unsigned long long)idx);
    return pk_fail(p, DC_ERR_FORMAT, "memo entry %s was never stored", b);
  }
  return p->memo[idx];
}

static pyo *global(pk *p, const char *module, const char *name) {
  for (size_t k = 0; k < sizeof ALLOWED / sizeof *ALLOWED; k++)
    if (strcmp(ALLOWED[k].module, module) == 0 && strcmp(ALLOWED[k].name, name) == 0) {
      pyo *x = pk_new(p, DC_PY_OTHER);
      if (!x) return NULL;
      x->ik = PK_GLOBAL;
      x->g = ALLOWED[k].g;
      return x;
    }
  char full[300];
  snprintf(full, sizeof full, "%.140s.%.140s", module, name);
  return pk_fail(p, DC_ERR_FORMAT,
                 "refusing global '%s': only NumPy arrays and plain containers "
                 "are loaded (a pickle naming other globals can run code)",
                 full);
}

/* ---- the interpreter ---- */

static int run(pk *p) {
  for (;;) {
    p->op_at = p->pos;
    const uint8_t *d;
    if (!pk_bytes(p, 1, &d)) return dc_last_status();
    uint8_t op = d[0];
    uint64_t v;
    pyo *x = NULL, *y;
    int64_t from;
    switch (op) {
    case 0x80: /* PROTO */
      if (!pk_uint(p, 1, &v)) return dc_last_status();
      if (v < 2 || v > 5) {
        char b[16];
        snprintf(b, sizeof b, "%llu", (unsigned long long)v);
        pk_fail(p, DC_ERR_UNSUPPORTED, "pickle protocol %s is not supported (2 to 5)", b);
        return dc_last_status();
      }
      continue;
    case 0x95: /* FRAME */
      if (!pk_uint(p, 8, &v)) return dc_last_status();
      if (v > p->n - p->pos) {
        pk_fail(p, DC_ERR_FORMAT, "frame longer than the rest of the file (truncated)");
        return dc_last_status();
      }
      continue;
    case '.': /* STOP */
      if (!(x = pop(p))) return dc_last_status();
      p->out->root = x;
      return DC_OK;
    case '(': /* MARK */
      if (p->nmarks == p->capmarks) {
        int64_t cap = p->capmarks ? p->capmarks * 2 : 16;
        int64_t *m =
            dc__realloc(p->marks, sizeof *m * (size_t)p->capmarks, sizeof *m * (size_t)cap);
        if (!m) return DC_ERR_NOMEM;
        p->marks = m;
        p->capmarks = cap;
      }
      p->marks[p->nmarks++] = p->sp;
      continue;
    case '0': /* POP */
      if (!pop(p)) return dc_last_status();
      continue;
    case '1': /* POP_MARK */
      if (!pop_mark(p, &from)) return dc_last_status();
      p->sp = from;
      continue;
    case '2': /* DUP */
      if (!(x = top(p))) return dc_last_status();
      break;
    case 'N': /* None, True, False: one shared object each (they are never mutated) */
      x = p->none ? p->none : (p->none = pk_new(p, DC_PY_NONE));
      break;
    case 0x88:
    case 0x89: {
      pyo **b = op == 0x88 ? &p->yes : &p->no;
      if (!*b && (*b = pk_new(p, DC_PY_BOOL))) (*b)->pub.i = op == 0x88;
      x = *b;
      break;
    }
    case 'J':
    case 'K':
    case 'M':
      if (!pk_uint(p, op == 'J' ? 4 : op == 'K' ? 1 : 2, &v)) return dc_last_status();
      if ((x = pk_new(p, DC_PY_INT))) x->pub.i = op == 'J' ? (int32_t)(uint32_t)v : (int64_t)v;
      break;
    case 0x8a: { /* LONG1 */
      if (!pk_uint(p, 1, &v)) return dc_last_status();
      int k = (int)v;
      if (k > 8) {
        pk_fail(p, DC_ERR_UNSUPPORTED, "integer wider than 64 bits");
        return dc_last_status();
      }
      uint64_t u = 0;
      if (k && !pk_uint(p, k, &u)) return dc_last_status();
      if (k && k < 8 && (u >> (8 * k - 1)) & 1) u |= ~(uint64_t)0 << (8 * k); /* sign */
      if ((x = pk_new(p, DC_PY_INT))) x->pub.i = (int64_t)u;
      break;
    }
    case 'G': { /* BINFLOAT, big-endian */
      const uint8_t *f;
      if (!pk_bytes(p, 8, &f)) return dc_last_status();
      uint64_t u = 0;
      for (int i = 0; i < 8; i++) u = u << 8 | f[i];
      if ((x = pk_new(p, DC_PY_FLOAT))) memcpy(&x->pub.f, &u, 8);
      break;
    }
    case 'X':
    case 0x8c:
    case 0x8d: /* BINUNICODE, SHORT_BINUNICODE, BINUNICODE8 */
    case 'B':
    case 'C':
    case 0x8e:
    case 0x96: /* BINBYTES, SHORT_BINBYTES, BINBYTES8, BYTEARRAY8 */
    case 'T':
    case 'U': { /* BINSTRING, SHORT_BINSTRING (Python 2 str: bytes) */
      int w = (op == 0x8c || op == 'C' || op == 'U')  ? 1
              : (op == 'X' || op == 'B' || op == 'T') ? 4
                                                      : 8;
      if (!pk_uint(p, w, &v)) return dc_last_status();
      const uint8_t *s;
      if (!pk_bytes(p, v > SIZE_MAX ? SIZE_MAX : (size_t)v, &s)) return dc_last_status();
      bool text = op == 'X' || op == 0x8c || op == 0x8d;
      x = make_str(p, text ? DC_PY_STR : DC_PY_BYTES, s, (size_t)v);
      break;
    }
    case ')':
      x = pk_new(p, DC_PY_TUPLE);
      break;
    case ']':
      x = pk_new(p, DC_PY_LIST);
      break;
    case '}':
      x = pk_new(p, DC_PY_DICT);
      break;
    case 0x85:
    case 0x86:
    case 0x87: { /* TUPLE1..3 */
      int k = op - 0x84;
      if (p->sp - stack_floor(p) < k) {
        pk_fail(p, DC_ERR_FORMAT, "TUPLE%s with too few items on the stack",
                k == 1   ? "1"
                : k == 2 ? "2"
                         : "3");
        return dc_last_status();
      }
      p->sp -= k;
      x = make_seq(p, DC_PY_TUPLE, stack_at(p, p->sp), k);
      break;
    }
    case 't':
    case 'l':
      if (!pop_mark(p, &from)) return dc_last_status();
      x = make_seq(p, op == 't' ? DC_PY_TUPLE : DC_PY_LIST, stack_at(p, from), p->sp - from);
      p->sp = from;
      break;
    case 'd':
      if (!pop_mark(p, &from)) return dc_last_status();
      if (!(x = pk_new(p, DC_PY_DICT)) || !dict_set(p, x, stack_at(p, from), p->sp - from))
        return dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
      p->sp = from;
      break;
    case 'a':
      if (!(y = pop(p)) || !(x = top(p)) || !list_append(p, x, &y, 1)) return dc_last_status();
      continue;
    case 'e':
      if (!pop_mark(p, &from)) return dc_last_status();
      if (from <= stack_floor(p)) {
        pk_fail(p, DC_ERR_FORMAT, "APPENDS without a list below the mark");
        return dc_last_status();
      }
      if (!list_append(p, p->stack[from - 1], stack_at(p, from), p->sp - from))
        return dc_last_status();
      p->sp = from;
      continue;
    case 's':
      if (p->sp - stack_floor(p) < 3) {
        pk_fail(p, DC_ERR_FORMAT, "SETITEM with too few items on the stack");
        return dc_last_status();
      }
      if (!dict_set(p, p->stack[p->sp - 3], stack_at(p, p->sp - 2), 2)) return dc_last_status();
      p->sp -= 2;
      continue;
    case 'u':
      if (!pop_mark(p, &from)) return dc_last_status();
      if (from <= stack_floor(p)) {
        pk_fail(p, DC_ERR_FORMAT, "SETITEMS without a dict below the mark");
        return dc_last_status();
      }
      if (!dict_set(p, p->stack[from - 1], stack_at(p, from), p->sp - from))
        return dc_last_status();
      p->sp = from;
      continue;
    case 'q':
    case 'r':
      if (!pk_uint(p, op == 'q' ? 1 : 4, &v) || !(x = top(p)) || !memo_put(p, v, x))
        return dc_last_status();
      continue;
    case 0x94: /* MEMOIZE */
      if (!(x = top(p)) || !memo_put(p, (uint64_t)p->nmemo, x)) return dc_last_status();
      continue;
    case 'h':
    case 'j':
      if (!pk_uint(p, op == 'h' ? 1 : 4, &v)) return dc_last_status();
      x = memo_get(p, v);
      break;
    case 'c': { /* GLOBAL module\nname\n */
      char mod[160], name[160];
      for (int part = 0; part < 2; part++) {
        char *dst = part ? name : mod;
        size_t k = 0;
        for (;;) {
          const uint8_t *ch;
          if (!pk_bytes(p, 1, &ch)) return dc_last_status();
          if (*ch == '\n') break;
          if (k + 1 >= sizeof mod) {
            pk_fail(p, DC_ERR_FORMAT, "GLOBAL name too long");
            return dc_last_status();
          }
          dst[k++] = (char)*ch;
        }
        dst[k] = '\0';
      }
      x = global(p, mod, name);
      break;
    }
    case 0x93: { /* STACK_GLOBAL */
      pyo *name = pop(p), *mod = name ? pop(p) : NULL;
      if (!mod) return dc_last_status();
      if (mod->pub.kind != DC_PY_STR || name->pub.kind != DC_PY_STR || mod->ik || name->ik) {
        pk_fail(p, DC_ERR_FORMAT, "STACK_GLOBAL needs two strings");
        return dc_last_status();
      }
      x = global(p, mod->pub.str, name->pub.str);
      break;
    }
    case 'R': { /* REDUCE */
      pyo *args = pop(p), *fn = args ? pop(p) : NULL;
      if (!fn) return dc_last_status();
      x = reduce(p, fn, args);
      break;
    }
    case 'b': { /* BUILD */
      pyo *state = pop(p), *obj = state ? pop(p) : NULL;
      if (!obj) return dc_last_status();
      x = build(p, obj, state);
      break;
    }
    default: {
      char b[64];
      snprintf(b, sizeof b, "0x%02x '%c' (%s)", op, op >= 32 && op < 127 ? op : '?', op_name(op));
      pk_fail(p, DC_ERR_FORMAT,
              "opcode %s is not allowed: this reader only builds data (NumPy "
              "arrays, numbers, strings, containers)",
              b);
      return dc_last_status();
    }
    }
    if (!push(p, x)) return dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
  }
}

/* Turns leftover globals and dtypes into OTHER descriptions; pending arrays are errors. */
static int finish(pk *p, pyo *x, int depth) {
  if (x->seen) return DC_OK; /* shared or cyclic: done once */
  x->seen = true;
  if (depth > DC__PICKLE_MAX_DEPTH)
    return dc__errs(DC_ERR_FORMAT, "%s: containers nested deeper than %d", p->what,
                    DC__PICKLE_MAX_DEPTH);
  if (x->ik == PK_PENDING_ARRAY)
    return dc__errs(DC_ERR_FORMAT, "%s: an ndarray never received its data (BUILD missing)",
                    p->what);
  if (x->ik == PK_GLOBAL || x->ik == PK_DTYPE) {
    char d[64];
    if (x->ik == PK_DTYPE)
      snprintf(d, sizeof d, "numpy.dtype('%c%s')", x->order, x->descr);
    else
      snprintf(d, sizeof d, "global %d", (int)x->g);
    x->ik = PK_PUBLIC;
    x->pub.kind = DC_PY_OTHER;
    x->pub.str = dc__strdup(d);
    x->pub.len = x->pub.str ? strlen(x->pub.str) : 0;
    return x->pub.str ? DC_OK : DC_ERR_NOMEM;
  }
  int64_t n = x->pub.kind == DC_PY_DICT ? 2 * x->pub.n : x->pub.n;
  if (x->pub.kind == DC_PY_TUPLE || x->pub.kind == DC_PY_LIST || x->pub.kind == DC_PY_DICT)
    for (int64_t i = 0; i < n; i++) {
      int rc = finish(p, (pyo *)x->pub.items[i], depth + 1);
      if (rc) return rc;
    }
  return DC_OK;
}

dc_pickle *dc_pickle_loads(const void *data, size_t n) {
  if (!data && n) return dc__err(DC_ERR_ARG, "pickle_loads: data is NULL");
  pk p = {.b = data, .n = n, .what = "pickle"};
  p.out = dc__calloc(1, sizeof *p.out);
  if (!p.out) return NULL;
  int rc = run(&p); /* bytes after STOP are ignored, as Python does */
  if (rc == DC_OK) rc = finish(&p, p.out->root, 0);
  dc__free(p.stack);
  dc__free(p.marks);
  dc__free(p.memo);
  if (rc) {
    dc_pickle_free(p.out);
    return NULL;
  }
  return p.out;
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

const dc_pyobj *dc_pickle_root(const dc_pickle *p) { return p ? &p->root->pub : NULL; }

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
