/* PyTorch .pth/.pt files (torch.save's zip format): the archive's layout is checked (one folder,
 * no entry outside it, no duplicates, TorchScript and legacy files named as such), data.pkl runs
 * through the restricted pickle VM with the rules of a state dict (OrderedDict, tensors rebuilt
 * from storages by persistent id, parameters, _metadata), views are bounds-checked against their
 * storage and copied out contiguously, nested dicts are flattened. Writing produces what
 * torch.save(state_dict) writes: protocol 2 pickle, stored 64-byte-aligned entries. */
#include "pickle-vm.h"
#include "weights-impl.h"

#include <cjson/cJSON.h>
#include <string.h>

#define PTH_MAX_PICKLE ((uint64_t)256 << 20) /* data.pkl of a state dict is far smaller */

typedef enum pth_global { G_ODICT, G_REBUILD_V2, G_REBUILD_PARAM, G_STORAGE } pth_global;
enum { T_STORAGE = 1, T_TENSOR = 2 }; /* tags of the VM objects we make */

typedef struct pth_storage {
  char key[64]; /* "0", "1", ... (file data/<key>) */
  dc__wdt dt;
  int64_t numel; /* elements */
  int64_t entry; /* zip entry index */
  uint8_t *data; /* read on first use */
  int uses;      /* tensors viewing it */
} pth_storage;

typedef struct pth_tensor {
  int storage;
  int64_t offset; /* elements */
  int ndim;
  int64_t size[DC_MAX_DIMS], stride[DC_MAX_DIMS];
} pth_tensor;

typedef struct pth_ctx {
  dc__zipr *z;
  const char *what;
  char folder[256]; /* "P/" */
  pth_storage *st;
  int nst, capst;
  pth_tensor *t;
  int nt, capt;
  dc_weights *out;
  int64_t visits, max_visits; /* flattening budget (shared sub-objects) */
  char refused[160];          /* last refused global, for hints */
} pth_ctx;

static const char ALLOWED[] = "collections.OrderedDict, torch._utils._rebuild_tensor_v2, "
                              "torch._utils._rebuild_parameter and torch.*Storage";

/* ---- the rules of a state dict ---- */
static int rule_global(void *ud, const char *module, const char *name) {
  pth_ctx *c = ud;
  dc__wdt dt;
  if (strcmp(module, "collections") == 0 && strcmp(name, "OrderedDict") == 0) return G_ODICT;
  if (strcmp(module, "torch._utils") == 0 && strcmp(name, "_rebuild_tensor_v2") == 0)
    return G_REBUILD_V2;
  if (strcmp(module, "torch._utils") == 0 && strcmp(name, "_rebuild_parameter") == 0)
    return G_REBUILD_PARAM;
  if (strcmp(module, "torch") == 0 && dc__wdt_from_storage(name, &dt)) return G_STORAGE + (int)dt;
  snprintf(c->refused, sizeof c->refused, "%s.%s", module, name);
  return -1;
}

static bool is_int(const dc__pv *v) { return v->kind == DC__PV_INT; }

/* size / stride tuples of ints >= 0 */
static bool int_tuple(dc__pickle_vm *vm, const dc__pv *v, const char *what, int64_t *out, int *n) {
  if (v->kind != DC__PV_TUPLE) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "tensor %s is a %s, not a tuple", what,
                    dc__pv_kind_name(v->kind));
    return false;
  }
  if (v->n > DC_MAX_DIMS) {
    dc__pickle_fail(vm, DC_ERR_UNSUPPORTED,
                    "a tensor with %lld dimensions (deepc handles up to %d)", (long long)v->n,
                    DC_MAX_DIMS);
    return false;
  }
  for (int64_t i = 0; i < v->n; i++) {
    if (!is_int(v->items[i]) || v->items[i]->i < 0) {
      dc__pickle_fail(vm, DC_ERR_FORMAT, "tensor %s[%lld] is not an integer >= 0", what,
                      (long long)i);
      return false;
    }
    out[i] = v->items[i]->i;
  }
  *n = (int)v->n;
  return true;
}

static dc__pv *rebuild_tensor(dc__pickle_vm *vm, pth_ctx *c, const dc__pv *args) {
  int64_t na = args->n;
  dc__pv *const *a = args->items;
  if (na != 6 && na != 7)
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "_rebuild_tensor_v2 takes 6 or 7 arguments, got %lld",
                           (long long)na);
  if (a[0]->kind != DC__PV_OBJ || a[0]->tag != T_STORAGE)
    return dc__pickle_fail(vm, DC_ERR_FORMAT,
                           "_rebuild_tensor_v2: argument 1 is a %s, not a storage",
                           dc__pv_kind_name(a[0]->kind));
  if (!is_int(a[1]) || a[1]->i < 0)
    return dc__pickle_fail(vm, DC_ERR_FORMAT,
                           "_rebuild_tensor_v2: storage offset is not an integer >= 0");
  pth_tensor t = {.storage = (int)a[0]->i, .offset = a[1]->i};
  int ns = 0;
  if (!int_tuple(vm, a[2], "size", t.size, &t.ndim) ||
      !int_tuple(vm, a[3], "stride", t.stride, &ns))
    return NULL;
  if (ns != t.ndim)
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "tensor size has %d dimensions but stride %d", t.ndim,
                           ns);
  if (a[4]->kind != DC__PV_BOOL)
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "_rebuild_tensor_v2: requires_grad is not a bool");
  if ((a[5]->kind != DC__PV_DICT || a[5]->n != 0))
    return dc__pickle_fail(vm, DC_ERR_UNSUPPORTED,
                           "a tensor with backward hooks (only plain state is read)");
  if (na == 7 && a[6]->kind != DC__PV_NONE && !(a[6]->kind == DC__PV_DICT && a[6]->n == 0))
    return dc__pickle_fail(vm, DC_ERR_UNSUPPORTED,
                           "tensor metadata (conj/neg bits) is not supported");
  /* the view must lie inside its storage: offset + sum((size - 1) * stride) < numel */
  pth_storage *s = &c->st[t.storage];
  int64_t numel = 1, last = t.offset;
  for (int d = 0; d < t.ndim; d++)
    if (__builtin_mul_overflow(numel, t.size[d], &numel)) numel = INT64_MAX;
  for (int d = 0; numel > 0 && d < t.ndim; d++) {
    int64_t span;
    if (__builtin_mul_overflow(t.size[d] - 1, t.stride[d], &span) ||
        __builtin_add_overflow(last, span, &last))
      last = INT64_MAX;
  }
  if (numel == INT64_MAX || (numel > 0 && last >= s->numel)) {
    char sz[160];
    dc_shape shp = {.ndim = t.ndim};
    for (int d = 0; d < t.ndim; d++) shp.d[d] = t.size[d];
    return dc__pickle_fail(
        vm, DC_ERR_FORMAT,
        "a tensor of size %s (offset %lld) reaches element %lld of storage '%s', "
        "which holds only %lld elements",
        dc_shape_str(shp, sz, sizeof sz), (long long)t.offset, (long long)last, s->key,
        (long long)s->numel);
  }
  if (c->nt == c->capt) {
    int cap = c->capt ? 2 * c->capt : 64;
    pth_tensor *nt = dc__realloc(c->t, sizeof *nt * (size_t)c->capt, sizeof *nt * (size_t)cap);
    if (!nt) return NULL;
    c->t = nt;
    c->capt = cap;
  }
  s->uses++;
  c->t[c->nt] = t;
  dc__pv *x = dc__pv_new(vm, DC__PV_OBJ);
  if (x) x->tag = T_TENSOR, x->i = c->nt++;
  return x;
}

static dc__pv *rule_reduce(dc__pickle_vm *vm, void *ud, dc__pv *fn, dc__pv *args) {
  pth_ctx *c = ud;
  switch (fn->tag) {
  case G_ODICT:
    if (args->n != 0)
      return dc__pickle_fail(vm, DC_ERR_FORMAT, "OrderedDict is only called with no arguments");
    return dc__pv_new(vm, DC__PV_DICT);
  case G_REBUILD_V2:
    return rebuild_tensor(vm, c, args);
  case G_REBUILD_PARAM:
    if ((args->n != 3) || args->items[0]->kind != DC__PV_OBJ || args->items[0]->tag != T_TENSOR)
      return dc__pickle_fail(vm, DC_ERR_FORMAT,
                             "_rebuild_parameter takes (tensor, requires_grad, hooks)");
    return args->items[0];
  default:
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "a storage class cannot be called");
  }
}

/* BUILD: only an OrderedDict's attributes ({"_metadata": ...}) */
static dc__pv *rule_build(dc__pickle_vm *vm, void *ud, dc__pv *obj, dc__pv *state) {
  if (obj->kind != DC__PV_DICT || state->kind != DC__PV_DICT || obj->attrs)
    return dc__pickle_fail(vm, DC_ERR_FORMAT,
                           "BUILD on a %s with a %s: only an OrderedDict's "
                           "_metadata can be set",
                           dc__pv_kind_name(obj->kind), dc__pv_kind_name(state->kind));
  obj->attrs = state;
  return obj;
}

static bool safe_key(const char *k) {
  if (!*k || strcmp(k, ".") == 0 || strcmp(k, "..") == 0) return false;
  for (; *k; k++)
    if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
          *k == '_' || *k == '-' || *k == '.'))
      return false;
  return true;
}

/* ('storage', storage class, key, location, numel) */
static dc__pv *rule_persid(dc__pickle_vm *vm, void *ud, dc__pv *pid) {
  pth_ctx *c = ud;
  dc__pv *const *a = pid->items;
  if (pid->kind != DC__PV_TUPLE || pid->n != 5 || a[0]->kind != DC__PV_STR ||
      strcmp(a[0]->s, "storage") != 0 || a[1]->kind != DC__PV_GLOBAL || a[1]->tag < G_STORAGE ||
      a[2]->kind != DC__PV_STR || a[3]->kind != DC__PV_STR || !is_int(a[4]) || a[4]->i < 0)
    return dc__pickle_fail(vm, DC_ERR_FORMAT,
                           "persistent id is not ('storage', torch.<T>Storage, "
                           "key, location, numel)");
  const char *key = a[2]->s;
  if (strlen(key) != a[2]->len || a[2]->len >= sizeof c->st[0].key || !safe_key(key))
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "storage key is not a short plain name");
  dc__wdt dt = (dc__wdt)(a[1]->tag - G_STORAGE);
  int64_t numel = a[4]->i;
  for (int i = 0; i < c->nst; i++)
    if (strcmp(c->st[i].key, key) == 0) {
      if (c->st[i].dt != dt || c->st[i].numel != numel)
        return dc__pickle_fail(vm, DC_ERR_FORMAT, "storage '%s' is declared twice differently",
                               key);
      dc__pv *x = dc__pv_new(vm, DC__PV_OBJ);
      if (x) x->tag = T_STORAGE, x->i = i;
      return x;
    }
  char name[512];
  snprintf(name, sizeof name, "%sdata/%s", c->folder, key);
  int64_t e = dc__zipr_find(c->z, name);
  if (e < 0)
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "storage '%s' has no entry %s in the archive", key,
                           name);
  int64_t want;
  dc__zip_entry ze;
  if (dc__zipr_entry(c->z, e, &ze) != DC_OK) return NULL; /* names the file and the entry */
  uint64_t have = ze.size;
  if (__builtin_mul_overflow(numel, (int64_t)dc__wdt_table[dt].size, &want) ||
      (uint64_t)want != have)
    return dc__pickle_fail(vm, DC_ERR_FORMAT,
                           "storage '%s' declares %lld elements of %s but %s holds %llu bytes "
                           "(storage smaller or larger than declared)",
                           key, (long long)numel, dc__wdt_table[dt].torch, name,
                           (unsigned long long)have);
  if (c->nst == c->capst) {
    int cap = c->capst ? 2 * c->capst : 64;
    pth_storage *ns = dc__realloc(c->st, sizeof *ns * (size_t)c->capst, sizeof *ns * (size_t)cap);
    if (!ns) return NULL;
    c->st = ns;
    c->capst = cap;
  }
  pth_storage *s = &c->st[c->nst];
  *s = (pth_storage){.dt = dt, .numel = numel, .entry = e};
  snprintf(s->key, sizeof s->key, "%s", key);
  dc__pv *x = dc__pv_new(vm, DC__PV_OBJ);
  if (x) x->tag = T_STORAGE, x->i = c->nst++;
  return x;
}

static const dc__pickle_rules RULES = {
    .allowed = ALLOWED,
    .global = rule_global,
    .reduce = rule_reduce,
    .build = rule_build,
    .persistent_load = rule_persid,
};

/* ---- tensors out of storages ---- */
static int storage_bytes(pth_ctx *c, pth_storage *s) {
  if (s->data || s->numel == 0) return DC_OK;
  uint64_t nb = (uint64_t)s->numel * (uint64_t)dc__wdt_table[s->dt].size;
  if (!(s->data = dc__malloc((size_t)nb))) return DC_ERR_NOMEM;
  return dc__zipr_read(c->z, s->entry, s->data, nb);
}

/* Copies the strided view into a new contiguous buffer (or takes the storage's buffer when the
 * tensor is its only, complete, contiguous user). */
static int materialise(pth_ctx *c, const pth_tensor *t, uint8_t **out, uint64_t *nbytes) {
  pth_storage *s = &c->st[t->storage];
  int es = dc__wdt_table[s->dt].size;
  int64_t numel = 1, expect = 1;
  bool contiguous = true;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->size[d] != 1 && t->stride[d] != expect) contiguous = false;
    expect *= t->size[d];
    numel *= t->size[d];
  }
  *nbytes = (uint64_t)numel * (uint64_t)es;
  *out = NULL;
  if (numel == 0) return DC_OK;
  int rc = storage_bytes(c, s);
  if (rc != DC_OK) return rc;
  if (contiguous && t->offset == 0 && numel == s->numel && s->uses == 1) {
    *out = s->data;
    s->data = NULL;
    return DC_OK;
  }
  uint8_t *dst = dc__malloc((size_t)*nbytes);
  if (!dst) return DC_ERR_NOMEM;
  *out = dst;
  if (contiguous) {
    memcpy(dst, s->data + t->offset * es, (size_t)*nbytes);
    return DC_OK;
  }
  /* rows along the last dim, outer dims by counters */
  int nd = t->ndim;
  int64_t inner = t->size[nd - 1], istride = t->stride[nd - 1], idx[DC_MAX_DIMS] = {0},
          off = t->offset;
  for (int64_t row = 0; row < numel / inner; row++) {
    if (istride == 1)
      memcpy(dst, s->data + off * es, (size_t)(inner * es));
    else
      for (int64_t k = 0; k < inner; k++)
        memcpy(dst + k * es, s->data + (off + k * istride) * es, (size_t)es);
    dst += inner * es;
    for (int d = nd - 2; d >= 0; d--) {
      off += t->stride[d];
      if (++idx[d] < t->size[d]) break;
      off -= t->stride[d] * t->size[d];
      idx[d] = 0;
    }
  }
  return DC_OK;
}

/* ---- flattening the root dict ---- */
static cJSON *to_json(pth_ctx *c, const dc__pv *v, int depth) {
  if (++c->visits > c->max_visits || depth > DC__PICKLE_MAX_DEPTH) return NULL;
  switch (v->kind) {
  case DC__PV_NONE:
    return cJSON_CreateNull();
  case DC__PV_BOOL:
    return cJSON_CreateBool(v->i != 0);
  case DC__PV_INT:
    return cJSON_CreateNumber((double)v->i);
  case DC__PV_FLOAT:
    return cJSON_CreateNumber(v->f);
  case DC__PV_STR:
    return cJSON_CreateString(v->s);
  case DC__PV_DICT: {
    cJSON *o = cJSON_CreateObject();
    for (int64_t i = 0; o && i < v->n; i++) {
      const dc__pv *k = v->items[2 * i];
      char kb[32];
      const char *ks =
          k->kind == DC__PV_STR ? k->s : (snprintf(kb, sizeof kb, "%lld", (long long)k->i), kb);
      cJSON *x = to_json(c, v->items[2 * i + 1], depth + 1);
      if (!x || (k->kind != DC__PV_STR && k->kind != DC__PV_INT)) {
        cJSON_Delete(x);
        cJSON_Delete(o);
        return NULL;
      }
      cJSON_AddItemToObject(o, ks, x);
    }
    return o;
  }
  case DC__PV_TUPLE:
  case DC__PV_LIST: {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; a && i < v->n; i++) {
      cJSON *x = to_json(c, v->items[i], depth + 1);
      if (!x) {
        cJSON_Delete(a);
        return NULL;
      }
      cJSON_AddItemToArray(a, x);
    }
    return a;
  }
  default:
    return NULL;
  }
}

static int add_meta_json(pth_ctx *c, const char *key, const dc__pv *v) {
  cJSON *j = to_json(c, v, 0);
  char *s = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  if (!s) return dc__errs(DC_ERR_FORMAT, "%s: '%s' is not plain data", c->what, key);
  int rc = dc_weights_set_meta(c->out, key, s);
  free(s);
  return rc;
}

static bool holds_tensors(const dc__pv *v) {
  for (int64_t i = 0; i < v->n; i++) {
    dc__pv_kind k = v->items[i]->kind;
    if (k == DC__PV_OBJ || k == DC__PV_DICT || k == DC__PV_LIST || k == DC__PV_TUPLE) return true;
  }
  return false;
}

static int flatten(pth_ctx *c, const dc__pv *v, const char *prefix, int depth);

static int flatten_value(pth_ctx *c, const dc__pv *v, const char *name, int depth) {
  if (++c->visits > c->max_visits)
    return dc__errs(DC_ERR_FORMAT, "%s: the pickle shares objects far more than a state dict does",
                    c->what);
  if (depth > DC__PICKLE_MAX_DEPTH)
    return dc__errs(DC_ERR_FORMAT, "%s: dicts nested deeper than %d levels (or a cycle)", c->what,
                    DC__PICKLE_MAX_DEPTH);
  if (strlen(name) > 1024)
    return dc__errs(DC_ERR_FORMAT, "%s: a key longer than 1024 bytes", c->what);
  if (v->kind == DC__PV_OBJ && v->tag == T_TENSOR) {
    const pth_tensor *t = &c->t[v->i];
    uint8_t *data;
    uint64_t nb;
    int rc = materialise(c, t, &data, &nb);
    if (rc != DC_OK) return rc;
    return dc__weights_push(c->out, name, c->st[t->storage].dt, t->ndim, t->size, data, nb);
  }
  char sub[1100];
  if (v->kind == DC__PV_DICT) {
    snprintf(sub, sizeof sub, "%s.", name);
    return flatten(c, v, sub, depth + 1);
  }
  if ((v->kind == DC__PV_LIST || v->kind == DC__PV_TUPLE) && holds_tensors(v)) {
    for (int64_t i = 0; i < v->n; i++) {
      snprintf(sub, sizeof sub, "%s.%lld", name, (long long)i);
      int rc = flatten_value(c, v->items[i], sub, depth + 1);
      if (rc != DC_OK) return rc;
    }
    return DC_OK;
  }
  if (v->kind == DC__PV_OBJ || v->kind == DC__PV_GLOBAL)
    return dc__errs(DC_ERR_FORMAT, "%s: '%s' is a bare %s, not a tensor or plain value", c->what,
                    name, v->kind == DC__PV_OBJ ? "storage" : "class");
  char repr[512];
  return dc_weights_set_meta(c->out, name, dc__pv_repr(v, repr, sizeof repr));
}

static int flatten(pth_ctx *c, const dc__pv *d, const char *prefix, int depth) {
  for (int64_t i = 0; i < d->n; i++) {
    const dc__pv *k = d->items[2 * i];
    char name[1100];
    if (k->kind == DC__PV_STR) {
      if (strlen(k->s) != k->len)
        return dc__errs(DC_ERR_FORMAT, "%s: a key holds a NUL byte", c->what);
      snprintf(name, sizeof name, "%s%s", prefix, k->s);
    } else if (k->kind == DC__PV_INT) {
      snprintf(name, sizeof name, "%s%lld", prefix, (long long)k->i);
    } else {
      return dc__errs(DC_ERR_FORMAT, "%s: a dict key is a %s (str or int expected)", c->what,
                      dc__pv_kind_name(k->kind));
    }
    int rc = flatten_value(c, d->items[2 * i + 1], name, depth);
    if (rc != DC_OK) return rc;
  }
  const dc__pv *md = d->attrs ? dc__pv_get(d->attrs, "_metadata") : NULL;
  if (md) {
    char key[1100];
    snprintf(key, sizeof key, "%s_metadata", prefix);
    return add_meta_json(c, key, md);
  }
  return DC_OK;
}

/* ---- the archive ---- */
static int check_layout(pth_ctx *c) {
  int64_t n = dc__zipr_count(c->z), pkl = -1;
  for (int64_t i = 0; i < n; i++) {
    const char *nm = dc__zipr_name(c->z, i);
    const char *slash = strchr(nm, '/');
    if (slash && strcmp(slash, "/data.pkl") == 0 && (size_t)(slash - nm) + 2 < sizeof c->folder) {
      if (pkl >= 0)
        return dc__errs(DC_ERR_FORMAT, "%s: two pickles (%s and %s): not one torch.save archive",
                        c->what, dc__zipr_name(c->z, pkl), nm);
      pkl = i;
      snprintf(c->folder, sizeof c->folder, "%.*s/", (int)(slash - nm), nm);
    }
  }
  if (pkl < 0) {
    for (int64_t i = 0; i < n; i++)
      if (strstr(dc__zipr_name(c->z, i), "constants.pkl"))
        return dc__errs(DC_ERR_UNSUPPORTED,
                        "%s: entry '%s': a TorchScript archive (torch.jit.save) is not "
                        "supported; save model.state_dict() with torch.save",
                        c->what, dc__zipr_name(c->z, i));
    return dc__errs(DC_ERR_FORMAT,
                    "%s: a zip archive without <folder>/data.pkl: not a torch.save file", c->what);
  }
  size_t fl = strlen(c->folder);
  for (int64_t i = 0; i < n; i++) {
    const char *nm = dc__zipr_name(c->z, i);
    if (!dc__zip_name_safe(nm) || strncmp(nm, c->folder, fl) != 0)
      return dc__errs(DC_ERR_FORMAT, "%s: entry '%s' lies outside the archive folder '%s'", c->what,
                      nm, c->folder);
    if (strcmp(nm + fl, "constants.pkl") == 0 || strncmp(nm + fl, "code/", 5) == 0)
      return dc__errs(DC_ERR_UNSUPPORTED,
                      "%s: entry '%s': a TorchScript archive (torch.jit.save) is not supported; "
                      "save model.state_dict() with torch.save instead",
                      c->what, nm);
    if (dc__zipr_find(c->z, nm) != i)
      return dc__errs(DC_ERR_FORMAT, "%s: entry '%s' appears twice", c->what, nm);
  }
  char bo[300];
  snprintf(bo, sizeof bo, "%sbyteorder", c->folder);
  int64_t b = dc__zipr_find(c->z, bo);
  if (b >= 0) {
    uint8_t txt[16] = {0};
    dc__zip_entry ze;
    int rc = dc__zipr_entry(c->z, b, &ze);
    if (rc != DC_OK) return rc;
    if (ze.size > 8) return dc__errs(DC_ERR_FORMAT, "%s: bad byteorder entry", c->what);
    rc = dc__zipr_read(c->z, b, txt, ze.size);
    if (rc != DC_OK) return rc;
    if (strcmp((char *)txt, "little") != 0)
      return dc__errs(DC_ERR_UNSUPPORTED,
                      "%s: saved with byte order '%s'; only little-endian "
                      "files are read",
                      c->what, (char *)txt);
  }
  return DC_OK;
}

static void ctx_free(pth_ctx *c) {
  for (int i = 0; i < c->nst; i++) dc__free(c->st[i].data);
  dc__free(c->st);
  dc__free(c->t);
  dc__zipr_close(c->z);
}

dc_weights *dc__pth_parse(const uint8_t *mem, size_t n, const char *what) {
  pth_ctx c = {.what = what};
  dc__pickle_vm *vm = NULL;
  uint8_t *pkl = NULL;
  if (!(c.z = dc__zipr_open(mem, n, what, ".pth (zip)")) || check_layout(&c) != DC_OK) goto fail;
  char name[300];
  snprintf(name, sizeof name, "%sdata.pkl", c.folder);
  int64_t pi = dc__zipr_find(c.z, name);
  dc__zip_entry pe;
  if (dc__zipr_entry(c.z, pi, &pe) != DC_OK) goto fail;
  uint64_t psz = pe.size;
  if (psz > PTH_MAX_PICKLE) {
    dc__err(DC_ERR_FORMAT, "%s: %s is %llu bytes; a state dict's pickle is far smaller", what, name,
            (unsigned long long)psz);
    goto fail;
  }
  if (!(pkl = dc__malloc((size_t)psz + 1)) || dc__zipr_read(c.z, pi, pkl, psz) != DC_OK) goto fail;
  char vwhat[600];
  snprintf(vwhat, sizeof vwhat, "%s: %s", what, name);
  dc__pv *root;
  if (!(vm = dc__pickle_run(pkl, (size_t)psz, vwhat, &RULES, &c, &root))) {
    if (c.refused[0] && (strstr(c.refused, "torch.nn") || strstr(c.refused, "models"))) {
      char msg[1600];
      snprintf(msg, sizeof msg, "%s", dc_last_error());
      dc__err(dc_last_status(),
              "%s (this looks like a whole model saved with torch.save(model); "
              "save model.state_dict() instead)",
              msg);
    }
    goto fail;
  }
  if (root->kind != DC__PV_DICT) {
    dc__err(DC_ERR_FORMAT, "%s: the pickle holds a %s, not a state dict (a dict of tensors)", what,
            dc__pv_kind_name(root->kind));
    goto fail;
  }
  if (!(c.out = dc_weights_new())) goto fail;
  c.out->format = DC_WEIGHTS_PTH;
  c.max_visits = 4 * (int64_t)c.nt + 4 * (int64_t)psz + 64;
  if (flatten(&c, root, "", 0) != DC_OK || dc__weights_check_unique(c.out, what) != DC_OK)
    goto fail;
  dc__pickle_free(vm);
  dc__free(pkl);
  ctx_free(&c);
  return c.out;
fail:
  if (!dc_last_status()) dc__err(DC_ERR_NOMEM, "%s: out of memory", what);
  dc_weights_free(c.out);
  dc__pickle_free(vm);
  dc__free(pkl);
  ctx_free(&c);
  return NULL;
}

/* ======================= writing ======================= */
typedef struct pbuf {
  uint8_t *b;
  size_t n, cap;
  int64_t memo; /* next memo index */
  bool oom;
} pbuf;

static void pb_put(pbuf *p, const void *d, size_t n) {
  if (p->oom) return;
  if (p->n + n > p->cap) {
    size_t cap = p->cap ? p->cap : 4096;
    while (cap < p->n + n) cap *= 2;
    uint8_t *b = dc__realloc(p->b, p->cap, cap);
    if (!b) {
      p->oom = true;
      return;
    }
    p->b = b;
    p->cap = cap;
  }
  memcpy(p->b + p->n, d, n);
  p->n += n;
}

static void pb_op(pbuf *p, uint8_t op) { pb_put(p, &op, 1); }

static void pb_le(pbuf *p, uint64_t v, int bytes) {
  uint8_t b[8];
  for (int i = 0; i < bytes; i++) b[i] = (uint8_t)(v >> (8 * i));
  pb_put(p, b, (size_t)bytes);
}

/* memoizes the top of the stack; returns its index */
static int64_t pb_memo(pbuf *p) {
  int64_t i = p->memo++;
  if (i < 256) {
    pb_op(p, 'q');
    pb_le(p, (uint64_t)i, 1);
  } else {
    pb_op(p, 'r');
    pb_le(p, (uint64_t)i, 4);
  }
  return i;
}

static void pb_get(pbuf *p, int64_t i) {
  if (i < 256) {
    pb_op(p, 'h');
    pb_le(p, (uint64_t)i, 1);
  } else {
    pb_op(p, 'j');
    pb_le(p, (uint64_t)i, 4);
  }
}

static void pb_int(pbuf *p, int64_t v) {
  if (v >= 0 && v < 256) {
    pb_op(p, 'K');
    pb_le(p, (uint64_t)v, 1);
  } else if (v >= 0 && v < 65536) {
    pb_op(p, 'M');
    pb_le(p, (uint64_t)v, 2);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    pb_op(p, 'J');
    pb_le(p, (uint64_t)(uint32_t)(int32_t)v, 4);
  } else {
    pb_op(p, 0x8a);
    pb_le(p, 8, 1);
    pb_le(p, (uint64_t)v, 8);
  }
}

static void pb_str(pbuf *p, const char *s) {
  size_t n = strlen(s);
  pb_op(p, 'X');
  pb_le(p, n, 4);
  pb_put(p, s, n);
}

static void pb_global(pbuf *p, const char *module, const char *name) {
  pb_op(p, 'c');
  pb_put(p, module, strlen(module));
  pb_op(p, '\n');
  pb_put(p, name, strlen(name));
  pb_op(p, '\n');
}

static void pb_tuple(pbuf *p, const int64_t *v, int n) {
  if (n == 0) {
    pb_op(p, ')');
    return;
  }
  pb_op(p, '(');
  for (int i = 0; i < n; i++) pb_int(p, v[i]);
  pb_op(p, 't');
}

/* A JSON value of _metadata as plain pickle values (objects as dicts). */
static void pb_json(pbuf *p, const cJSON *j, int depth) {
  if (depth > 32 || cJSON_IsNull(j) || !j) {
    pb_op(p, 'N');
  } else if (cJSON_IsBool(j)) {
    pb_op(p, cJSON_IsTrue(j) ? 0x88 : 0x89);
  } else if (cJSON_IsNumber(j)) {
    double v = j->valuedouble;
    if (v == (double)(int64_t)v && v > -9e15 && v < 9e15) {
      pb_int(p, (int64_t)v);
    } else {
      uint64_t u;
      memcpy(&u, &v, 8);
      pb_op(p, 'G');
      for (int i = 7; i >= 0; i--) pb_op(p, (uint8_t)(u >> (8 * i)));
    }
  } else if (cJSON_IsString(j)) {
    pb_str(p, j->valuestring);
  } else if (cJSON_IsArray(j)) {
    pb_op(p, ']');
    pb_op(p, '(');
    for (const cJSON *x = j->child; x; x = x->next) pb_json(p, x, depth + 1);
    pb_op(p, 'e');
  } else {
    pb_op(p, '}');
    pb_op(p, '(');
    for (const cJSON *x = j->child; x; x = x->next) {
      pb_str(p, x->string);
      pb_json(p, x, depth + 1);
    }
    pb_op(p, 'u');
  }
}

/* data.pkl of OrderedDict(name -> tensor on storage "i"), with _metadata when present */
static int build_pickle(const dc_weights *w, pbuf *p) {
  pb_op(p, 0x80);
  pb_op(p, 2);
  pb_global(p, "collections", "OrderedDict");
  int64_t odict = pb_memo(p);
  pb_op(p, ')');
  pb_op(p, 'R');
  pb_memo(p);
  int64_t rebuild = -1, storage_memo[DC__W_COUNT];
  for (int k = 0; k < DC__W_COUNT; k++) storage_memo[k] = -1;
  for (int i = 0; i < w->n; i++) {
    const dc__wentry *e = &w->e[i];
    if (i % 1000 == 0) pb_op(p, '(');
    pb_str(p, e->name);
    if (rebuild < 0) {
      pb_global(p, "torch._utils", "_rebuild_tensor_v2");
      rebuild = pb_memo(p);
    } else {
      pb_get(p, rebuild);
    }
    pb_op(p, '(');
    pb_op(p, '(');
    pb_str(p, "storage");
    if (storage_memo[e->dt] < 0) {
      pb_global(p, "torch", dc__wdt_table[e->dt].storage);
      storage_memo[e->dt] = pb_memo(p);
    } else {
      pb_get(p, storage_memo[e->dt]);
    }
    char key[32];
    snprintf(key, sizeof key, "%d", i);
    pb_str(p, key);
    pb_str(p, "cpu");
    int64_t numel = 1, stride[DC_MAX_DIMS];
    for (int d = e->ndim - 1; d >= 0; d--) {
      stride[d] = numel;
      numel *= e->shape[d];
    }
    pb_int(p, numel);
    pb_op(p, 't');
    pb_op(p, 'Q');
    pb_int(p, 0);
    pb_tuple(p, e->shape, e->ndim);
    pb_tuple(p, stride, e->ndim);
    pb_op(p, 0x89);
    pb_get(p, odict);
    pb_op(p, ')');
    pb_op(p, 'R');
    pb_op(p, 't');
    pb_op(p, 'R');
    if (i % 1000 == 999 || i == w->n - 1) pb_op(p, 'u');
  }
  const char *md = dc_weights_meta(w, "_metadata");
  cJSON *j = md ? cJSON_Parse(md) : NULL;
  if (j && cJSON_IsObject(j)) { /* state = {"_metadata": OrderedDict(...)} */
    pb_op(p, '}');
    pb_str(p, "_metadata");
    pb_get(p, odict);
    pb_op(p, ')');
    pb_op(p, 'R');
    pb_op(p, '(');
    for (const cJSON *x = j->child; x; x = x->next) {
      pb_str(p, x->string);
      pb_json(p, x, 1);
    }
    pb_op(p, 'u');
    pb_op(p, 's');
    pb_op(p, 'b');
  }
  cJSON_Delete(j);
  pb_op(p, '.');
  return p->oom ? DC_ERR_NOMEM : DC_OK;
}

int dc__pth_write(const dc_weights *w, FILE *f, const char *folder, const char *what) {
  pbuf p = {0};
  int rc = build_pickle(w, &p);
  dc__zipw z = {.f = f, .what = what};
  char name[400];
  snprintf(name, sizeof name, "%s/data.pkl", folder);
  if (rc == DC_OK) rc = dc__zipw_add(&z, name, p.b, p.n);
  dc__free(p.b);
  snprintf(name, sizeof name, "%s/byteorder", folder);
  if (rc == DC_OK) rc = dc__zipw_add(&z, name, "little", 6);
  for (int i = 0; i < w->n && rc == DC_OK; i++) {
    snprintf(name, sizeof name, "%s/data/%d", folder, i);
    rc = dc__zipw_add(&z, name, w->e[i].data, w->e[i].nbytes);
  }
  snprintf(name, sizeof name, "%s/version", folder);
  if (rc == DC_OK) rc = dc__zipw_add(&z, name, "3\n", 2);
  if (rc == DC_OK) return dc__zipw_finish(&z);
  dc__zipw_discard(&z);
  return rc;
}
