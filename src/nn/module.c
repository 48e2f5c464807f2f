/* The module tree: creation, registration of children/parameters/buffers, forward with error
 * paths, train/eval, lookup by dotted path, child replacement, listing in PyTorch's order,
 * freezing and the repr. State dicts are in state_dict.c, layers in their own files. */
#include "nn-impl.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- small helpers ---- */
void dc__appendf(char *buf, size_t n, const char *fmt, ...) {
  size_t len = strlen(buf);
  if (len + 1 >= n) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf + len, n - len, fmt, ap);
  va_end(ap);
}

char *dc__fmt_float(double v, char *buf, size_t n) {
  if (isnan(v)) {
    snprintf(buf, n, "nan");
    return buf;
  }
  if (isinf(v)) {
    snprintf(buf, n, v > 0 ? "inf" : "-inf");
    return buf;
  }
  for (int p = 1; p <= 17; p++) { /* shortest text that reads back as v, like Python's repr */
    snprintf(buf, n, "%.*g", p, v);
    if (strtod(buf, NULL) == v) break;
  }
  if (!strpbrk(buf, ".e")) dc__appendf(buf, n, ".0");
  return buf;
}

char *dc__fmt_pair(dc__pair p, char *buf, size_t n) {
  if (p.is_pair)
    snprintf(buf, n, "(%d, %d)", p.v[0], p.v[1]);
  else
    snprintf(buf, n, "%d", p.v[0]);
  return buf;
}

static int lower_no_us(const char *s, char *out, int cap) {
  int k = 0;
  for (; *s && k < cap - 1; s++)
    if (*s != '_') out[k++] = (char)tolower((unsigned char)*s);
  out[k] = '\0';
  return k;
}

int dc__name_distance(const char *a, const char *b) {
  char x[64], y[64];
  int n = lower_no_us(a, x, sizeof x), m = lower_no_us(b, y, sizeof y);
  int prev[64], cur[64];
  for (int j = 0; j <= m; j++) prev[j] = j;
  for (int i = 1; i <= n; i++) {
    cur[0] = i;
    for (int j = 1; j <= m; j++) {
      int c = prev[j - 1] + (x[i - 1] != y[j - 1]);
      if (prev[j] + 1 < c) c = prev[j] + 1;
      if (cur[j - 1] + 1 < c) c = cur[j - 1] + 1;
      cur[j] = c;
    }
    memcpy(prev, cur, sizeof(int) * (size_t)(m + 1));
  }
  return prev[m];
}

dc_tensor *dc__nn_tensor(dc_shape s, dc_dtype dt) {
  dc_tensor *t = dc_zeros(s, dt);
  if (t) dc__unscope(t);
  return t;
}

/* ---- entry lists ---- */
static int entries_find(const dc__entries *e, const char *name) {
  for (int i = 0; i < e->n; i++)
    if (strcmp(e->items[i].name, name) == 0) return i;
  return -1;
}

static bool entries_push(dc__entries *e, const char *name, void *ptr, bool persistent) {
  if (e->n == e->cap) {
    int cap = e->cap ? e->cap * 2 : 4;
    dc__entry *it = dc__realloc(e->items, sizeof *it * (size_t)e->cap, sizeof *it * (size_t)cap);
    if (!it) return false;
    e->items = it;
    e->cap = cap;
  }
  char *nm = dc__strdup(name);
  if (!nm) return false;
  e->items[e->n++] = (dc__entry){nm, ptr, persistent};
  return true;
}

dc_tensor *dc__own_param(const dc_module *m, const char *name) {
  int i = entries_find(&m->params, name);
  return i < 0 ? NULL : m->params.items[i].ptr;
}

dc_tensor *dc__own_buffer(const dc_module *m, const char *name) {
  int i = entries_find(&m->buffers, name);
  return i < 0 ? NULL : m->buffers.items[i].ptr;
}

/* ---- lifetime ---- */
dc_module *dc_module_new(const dc_module_type *type, size_t state_size) {
  if (!type || !type->name || !type->forward)
    return dc__err(DC_ERR_ARG, "dc_module_new: the module type needs a name and a forward "
                               "function");
  dc_module *m = dc__calloc(1, sizeof *m);
  if (!m) return NULL;
  m->state = dc__calloc(1, state_size ? state_size : 1);
  if (!m->state) {
    dc__free(m);
    return NULL;
  }
  m->type = type;
  m->refcount = 1;
  m->training = true;
  m->fusion = DC_FUSE_ALL;
  return m;
}

dc_module *dc_module_retain(dc_module *m) {
  if (m) m->refcount++;
  return m;
}

static void free_tensor_entries(dc__entries *e) {
  for (int i = 0; i < e->n; i++) {
    dc__unref(e->items[i].ptr);
    dc__free(e->items[i].name);
  }
  dc__free(e->items);
}

/* Drops one reference to a child of m, detaching its parent link if it points at m. */
static void release_child(dc_module *m, dc_module *c) {
  if (c->parent == m) {
    c->parent = NULL;
    c->name = NULL;
  }
  dc_module_free(c);
}

void dc_module_free(dc_module *m) {
  if (!m || --m->refcount > 0) return;
  for (int i = 0; i < m->children.n; i++) {
    release_child(m, m->children.items[i].ptr);
    dc__free(m->children.items[i].name);
  }
  dc__free(m->children.items);
  free_tensor_entries(&m->params);
  free_tensor_entries(&m->buffers);
  if (m->type->free_state) m->type->free_state(m->state);
  dc__free(m->state);
  dc__free(m);
}

void *dc_module_state(const dc_module *m) { return m ? m->state : NULL; }
const char *dc_module_type_name(const dc_module *m) { return m ? m->type->name : "(null)"; }
const dc_module_type *dc_module_get_type(const dc_module *m) { return m ? m->type : NULL; }

/* ---- registration ---- */
static bool check_name(dc_module *m, const char *what, const char *name, const dc__entries *e) {
  if (!name || !*name || strchr(name, '.')) {
    m->failed = true;
    dc__err(DC_ERR_ARG,
            "%s: invalid name '%s' in %s: names must be non-empty and contain no "
            "'.'",
            what, name ? name : "(null)", m->type->name);
    return false;
  }
  if (entries_find(&m->params, name) >= 0 || entries_find(&m->buffers, name) >= 0 ||
      entries_find(&m->children, name) >= 0) {
    m->failed = true;
    dc__err(DC_ERR_ARG,
            "%s: %s already has an attribute named '%s'; pick another name or "
            "replace the child with dc_module_set_child",
            what, m->type->name, name);
    (void)e;
    return false;
  }
  return true;
}

dc_module *dc_module_add(dc_module *m, const char *name, dc_module *child) {
  if (!m) {
    dc_module_free(child);
    return dc__err(DC_ERR_ARG, "dc_module_add: parent module is NULL");
  }
  if (!child) {
    m->failed = true;
    return NULL; /* keeps the constructor's error */
  }
  if (child == m) {
    m->failed = true;
    dc_module_free(child);
    return dc__err(DC_ERR_ARG, "dc_module_add: a module cannot be its own child");
  }
  if (!check_name(m, "dc_module_add", name, &m->children) ||
      !entries_push(&m->children, name, child, false)) {
    m->failed = true;
    dc_module_free(child);
    return NULL;
  }
  if (!child->parent) {
    child->parent = m;
    child->name = m->children.items[m->children.n - 1].name;
  }
  return child;
}

/* Takes over the caller's reference to t as an owned, unscoped one. */
static dc_tensor *take_tensor(dc_tensor *t) { return t->scope_level == 0 ? t : dc__take(t); }

static dc_tensor *add_tensor(dc_module *m, const char *what, dc__entries *e, const char *name,
                             dc_tensor *t, bool persistent, bool is_param) {
  if (!m) {
    if (t && t->scope_level == 0) dc_free(t);
    return dc__err(DC_ERR_ARG, "%s: module is NULL", what);
  }
  if (!t) {
    m->failed = true;
    return NULL;
  }
  if (is_param && (!dc_dtype_is_float(t->dtype) || t->grad_fn)) {
    m->failed = true;
    if (t->scope_level == 0) dc_free(t);
    return dc__err(DC_ERR_ARG,
                   "%s: parameter '%s' of %s must be a floating-point leaf tensor "
                   "(got %s%s); use dc_detach or dc_to_dtype first",
                   what, name ? name : "(null)", m->type->name, dc_dtype_name(t->dtype),
                   t->grad_fn ? " with a grad_fn" : "");
  }
  if (!check_name(m, what, name, e)) {
    if (t->scope_level == 0) dc_free(t);
    return NULL;
  }
  t = take_tensor(t);
  if (!entries_push(e, name, t, persistent)) {
    m->failed = true;
    dc__unref(t);
    return NULL;
  }
  if (is_param) t->requires_grad = true;
  return t;
}

dc_tensor *dc_module_add_parameter(dc_module *m, const char *name, dc_tensor *t) {
  return add_tensor(m, "dc_module_add_parameter", m ? &m->params : NULL, name, t, true, true);
}

dc_tensor *dc_module_add_buffer(dc_module *m, const char *name, dc_tensor *t, bool persistent) {
  return add_tensor(m, "dc_module_add_buffer", m ? &m->buffers : NULL, name, t, persistent, false);
}

dc_module *dc_module_ok(dc_module *m) {
  if (!m) return NULL;
  if (m->failed) {
    char msg[2048];
    snprintf(msg, sizeof msg, "%s", dc_last_error());
    dc_status st = dc_last_status();
    dc_module_free(m);
    return dc__err(st == DC_OK ? DC_ERR_ARG : st, "%s", msg);
  }
  return m;
}

/* ---- forward ---- */
static _Thread_local bool g_err_tagged; /* the current error already names a module */

char *dc__module_path(const dc_module *m, char *buf, size_t n) {
  const char *parts[64];
  int k = 0;
  for (const dc_module *p = m; p && p->parent && k < 64; p = p->parent) parts[k++] = p->name;
  buf[0] = '\0';
  for (int i = k - 1; i >= 0; i--) dc__appendf(buf, n, "%s%s", i == k - 1 ? "" : ".", parts[i]);
  return buf;
}

dc_tensor *dc_module_forward(dc_module *m, dc_tensor *x) {
  return dc__module_call(m, x, NULL, NULL);
}

dc_tensor *dc__module_call(dc_module *m, dc_tensor *x, dc__forward_fn fn, const void *arg) {
  if (!m) return dc__err(DC_ERR_ARG, "dc_module_forward: module is NULL");
  if (!x) return NULL; /* keeps the error of the call that made x */
  g_err_tagged = false;
  int row = dc__summary_active ? dc__summary_enter(m, x) : -1;
  dc_tensor *y = fn ? fn(m, x, arg) : m->type->forward(m, x);
  if (!y) {
    if (!g_err_tagged) {
      char msg[2048], path[512];
      snprintf(msg, sizeof msg, "%s", dc_last_error());
      dc_status st = dc_last_status();
      dc__module_path(m, path, sizeof path);
      if (*path)
        dc__err(st ? st : DC_ERR_ARG, "%s (%s): %s", path, m->type->name, msg);
      else
        dc__err(st ? st : DC_ERR_ARG, "%s: %s", m->type->name, msg);
      g_err_tagged = true;
    }
    return NULL;
  }
  g_err_tagged = false;
  if (row >= 0) dc__summary_leave(row, m, x, y);
  return y;
}

void dc_module_train(dc_module *m, bool on) {
  if (!m) return;
  m->training = on;
  for (int i = 0; i < m->children.n; i++) dc_module_train(m->children.items[i].ptr, on);
}

void dc_module_eval(dc_module *m) { dc_module_train(m, false); }

unsigned dc_module_set_fusion(dc_module *m, unsigned fusions) {
  if (!m) return DC_FUSE_NONE;
  unsigned old = m->fusion;
  m->fusion = fusions & DC_FUSE_ALL;
  for (int i = 0; i < m->children.n; i++) dc_module_set_fusion(m->children.items[i].ptr, fusions);
  return old;
}

unsigned dc_module_fusion(const dc_module *m) { return m ? m->fusion : DC_FUSE_NONE; }
bool dc_module_is_training(const dc_module *m) { return m && m->training; }

/* ---- lookup ---- */
int dc_module_num_children(const dc_module *m) { return m ? m->children.n : 0; }

dc_module *dc_module_child_at(const dc_module *m, int i) {
  return m && i >= 0 && i < m->children.n ? m->children.items[i].ptr : NULL;
}

const char *dc_module_child_name(const dc_module *m, int i) {
  return m && i >= 0 && i < m->children.n ? m->children.items[i].name : NULL;
}

dc_module *dc_module_child(const dc_module *m, const char *name) {
  if (!m || !name) return NULL;
  int i = entries_find(&m->children, name);
  return i < 0 ? NULL : m->children.items[i].ptr;
}

/* Walks the first `len` characters of a dotted path from m. */
static dc_module *walk(const dc_module *m, const char *path, size_t len, const char *what) {
  const char *p = path, *end = path + len;
  while (p < end) {
    const char *dot = memchr(p, '.', (size_t)(end - p));
    size_t k = dot ? (size_t)(dot - p) : (size_t)(end - p);
    char part[256];
    if (k == 0 || k >= sizeof part)
      return dc__err(DC_ERR_ARG, "%s: malformed path '%s'", what, path);
    memcpy(part, p, k);
    part[k] = '\0';
    dc_module *c = dc_module_child(m, part);
    if (!c)
      return dc__err(DC_ERR_ARG, "%s: '%s': %s has no child named '%s'", what, path, m->type->name,
                     part);
    m = c;
    p += k + (dot ? 1 : 0);
    if (dot && p == end) return dc__err(DC_ERR_ARG, "%s: malformed path '%s'", what, path);
  }
  return (dc_module *)m;
}

dc_module *dc_module_get_submodule(const dc_module *m, const char *path) {
  if (!m || !path) return dc__err(DC_ERR_ARG, "dc_module_get_submodule: NULL argument");
  return walk(m, path, strlen(path), "dc_module_get_submodule");
}

static dc_tensor *get_tensor(const dc_module *m, const char *name, bool param) {
  const char *what = param ? "dc_module_get_parameter" : "dc_module_get_buffer";
  if (!m || !name) return dc__err(DC_ERR_ARG, "%s: NULL argument", what);
  const char *dot = strrchr(name, '.');
  const dc_module *owner = dot ? walk(m, name, (size_t)(dot - name), what) : m;
  if (!owner) return NULL;
  const char *leaf = dot ? dot + 1 : name;
  dc_tensor *t = param ? dc__own_param(owner, leaf) : dc__own_buffer(owner, leaf);
  if (!t)
    return dc__err(DC_ERR_ARG, "%s: %s has no %s named '%s' (looking up '%s')", what,
                   owner->type->name, param ? "parameter" : "buffer", leaf, name);
  return t;
}

dc_tensor *dc_module_get_parameter(const dc_module *m, const char *name) {
  return get_tensor(m, name, true);
}

dc_tensor *dc_module_get_buffer(const dc_module *m, const char *name) {
  return get_tensor(m, name, false);
}

dc_module *dc_module_set_child(dc_module *m, const char *path, dc_module *child) {
  if (!m || !path || !child) {
    dc_module_free(child);
    return child ? dc__err(DC_ERR_ARG, "dc_module_set_child: NULL module or path") : NULL;
  }
  const char *dot = strrchr(path, '.');
  dc_module *owner = dot ? walk(m, path, (size_t)(dot - path), "dc_module_set_child") : m;
  const char *leaf = dot ? dot + 1 : path;
  if (!owner || !*leaf || entries_find(&owner->params, leaf) >= 0 ||
      entries_find(&owner->buffers, leaf) >= 0) {
    dc_module_free(child);
    return owner ? dc__err(DC_ERR_ARG,
                           "dc_module_set_child: '%s' is not a valid child name "
                           "(empty or used by a parameter/buffer)",
                           path)
                 : NULL;
  }
  int i = entries_find(&owner->children, leaf);
  if (i < 0) {
    bool failed = owner->failed;
    dc_module *r = dc_module_add(owner, leaf, child);
    owner->failed = failed;
    return r;
  }
  dc_module *old = owner->children.items[i].ptr;
  if (old == child) return child;
  owner->children.items[i].ptr = child;
  if (!child->parent) {
    child->parent = owner;
    child->name = owner->children.items[i].name;
  }
  release_child(owner, old);
  return child;
}

/* ---- listing ---- */
typedef struct name_list {
  int n, cap;
  dc_named_tensor *t;
  dc_named_module *m;
} name_list;

static bool list_push(name_list *l, const char *prefix, const char *name, void *ptr, bool is_mod) {
  if (l->n == l->cap) {
    int cap = l->cap ? l->cap * 2 : 16;
    size_t z = is_mod ? sizeof(dc_named_module) : sizeof(dc_named_tensor);
    void *old = is_mod ? (void *)l->m : (void *)l->t;
    void *it = dc__realloc(old, z * (size_t)l->cap, z * (size_t)cap);
    if (!it) return false;
    if (is_mod)
      l->m = it;
    else
      l->t = it;
    l->cap = cap;
  }
  size_t len = strlen(prefix) + strlen(name) + 2;
  char *s = dc__malloc(len);
  if (!s) return false;
  snprintf(s, len, "%s%s%s", prefix, *prefix && *name ? "." : "", name);
  if (is_mod)
    l->m[l->n++] = (dc_named_module){s, ptr};
  else
    l->t[l->n++] = (dc_named_tensor){s, ptr};
  return true;
}

static bool seen_tensor(const name_list *l, const dc_tensor *t) {
  for (int i = 0; i < l->n; i++)
    if (l->t[i].tensor == t) return true;
  return false;
}

static bool collect(const dc_module *m, const char *prefix, dc__list_kind kind, name_list *l) {
  if (kind != DC__LIST_BUFFERS)
    for (int i = 0; i < m->params.n; i++) {
      dc_tensor *t = m->params.items[i].ptr;
      if (kind == DC__LIST_TRAINABLE && !t->requires_grad) continue;
      if (kind != DC__LIST_STATE && seen_tensor(l, t)) continue;
      if (!list_push(l, prefix, m->params.items[i].name, t, false)) return false;
    }
  if (kind == DC__LIST_BUFFERS || kind == DC__LIST_STATE)
    for (int i = 0; i < m->buffers.n; i++) {
      dc_tensor *t = m->buffers.items[i].ptr;
      if (kind == DC__LIST_STATE && !m->buffers.items[i].persistent) continue;
      if (kind == DC__LIST_BUFFERS && seen_tensor(l, t)) continue;
      if (!list_push(l, prefix, m->buffers.items[i].name, t, false)) return false;
    }
  for (int i = 0; i < m->children.n; i++) {
    size_t len = strlen(prefix) + strlen(m->children.items[i].name) + 2;
    char *p = dc__malloc(len);
    if (!p) return false;
    snprintf(p, len, "%s%s%s", prefix, *prefix ? "." : "", m->children.items[i].name);
    bool ok = collect(m->children.items[i].ptr, p, kind, l);
    dc__free(p);
    if (!ok) return false;
  }
  return true;
}

void dc_named_tensors_free(dc_named_tensor *list, int n) {
  if (!list) return;
  for (int i = 0; i < n; i++) dc__free(list[i].name);
  dc__free(list);
}

void dc_named_modules_free(dc_named_module *list, int n) {
  if (!list) return;
  for (int i = 0; i < n; i++) dc__free(list[i].name);
  dc__free(list);
}

dc_named_tensor *dc__module_list(const dc_module *m, dc__list_kind kind, int *n) {
  *n = 0;
  if (!m) return dc__err(DC_ERR_ARG, "module list: module is NULL");
  name_list l = {0};
  if (!collect(m, "", kind, &l)) {
    dc_named_tensors_free(l.t, l.n);
    return NULL;
  }
  if (!l.t) { /* an empty list is not an error: hand back a valid pointer */
    l.t = dc__malloc(sizeof *l.t);
    if (!l.t) return NULL;
  }
  *n = l.n;
  return l.t;
}

dc_named_tensor *dc_module_parameters(const dc_module *m, int *n) {
  return dc__module_list(m, DC__LIST_PARAMS, n);
}
dc_named_tensor *dc_module_trainable_parameters(const dc_module *m, int *n) {
  return dc__module_list(m, DC__LIST_TRAINABLE, n);
}
dc_named_tensor *dc_module_buffers(const dc_module *m, int *n) {
  return dc__module_list(m, DC__LIST_BUFFERS, n);
}

static bool collect_modules(const dc_module *m, const char *prefix, name_list *l) {
  for (int i = 0; i < l->n; i++)
    if (l->m[i].module == m) return true; /* each shared module once */
  if (!list_push(l, prefix, "", (void *)m, true)) return false;
  for (int i = 0; i < m->children.n; i++) {
    size_t len = strlen(prefix) + strlen(m->children.items[i].name) + 2;
    char *p = dc__malloc(len);
    if (!p) return false;
    snprintf(p, len, "%s%s%s", prefix, *prefix ? "." : "", m->children.items[i].name);
    bool ok = collect_modules(m->children.items[i].ptr, p, l);
    dc__free(p);
    if (!ok) return false;
  }
  return true;
}

dc_named_module *dc_module_modules(const dc_module *m, int *n) {
  *n = 0;
  if (!m) return dc__err(DC_ERR_ARG, "dc_module_modules: module is NULL");
  name_list l = {0};
  if (!collect_modules(m, "", &l)) {
    dc_named_modules_free(l.m, l.n);
    return NULL;
  }
  *n = l.n;
  return l.m;
}

int64_t dc_module_num_parameters(const dc_module *m, bool trainable_only) {
  int n;
  dc_named_tensor *l =
      dc__module_list(m, trainable_only ? DC__LIST_TRAINABLE : DC__LIST_PARAMS, &n);
  int64_t total = 0;
  for (int i = 0; i < n; i++) total += dc_numel(l[i].tensor);
  dc_named_tensors_free(l, n);
  return total;
}

void dc_module_requires_grad_(dc_module *m, bool on) {
  if (!m) return;
  for (int i = 0; i < m->params.n; i++) ((dc_tensor *)m->params.items[i].ptr)->requires_grad = on;
  for (int i = 0; i < m->children.n; i++) dc_module_requires_grad_(m->children.items[i].ptr, on);
}

void dc_module_zero_grad(dc_module *m) {
  if (!m) return;
  for (int i = 0; i < m->params.n; i++) dc_zero_grad(m->params.items[i].ptr);
  for (int i = 0; i < m->children.n; i++) dc_module_zero_grad(m->children.items[i].ptr);
}

/* Gives t a new storage of dtype dt holding its converted values; the header stays the same. */
static int convert_tensor(dc_tensor *t, dc_dtype dt) {
  if (!dc_dtype_is_float(t->dtype) || t->dtype == dt) return DC_OK;
  dc_tensor *nt = dc__new(dc_shape_of(t), dt, t->device);
  if (!nt) return dc_last_status();
  dc__unscope(nt);
  int rc = dc_copy_(nt, t);
  if (rc == DC_OK) {
    dc_storage *st = t->storage;
    dc_tensor old = *t;
    t->storage = nt->storage;
    t->offset = nt->offset;
    t->dtype = dt;
    memcpy(t->stride, nt->stride, sizeof t->stride);
    nt->storage = st;
    nt->offset = old.offset;
    nt->dtype = old.dtype;
    memcpy(nt->stride, old.stride, sizeof nt->stride);
    dc_zero_grad(t);
  }
  dc__unref(nt);
  return rc;
}

int dc_module_to_dtype(dc_module *m, dc_dtype dt) {
  if (!m) return dc__errs(DC_ERR_ARG, "dc_module_to_dtype: module is NULL");
  if (!dc_dtype_is_float(dt))
    return dc__errs(DC_ERR_ARG, "dc_module_to_dtype: %s is not a floating-point dtype",
                    dc_dtype_name(dt));
  int rc = DC_OK;
  for (int i = 0; i < m->params.n && rc == DC_OK; i++)
    rc = convert_tensor(m->params.items[i].ptr, dt);
  for (int i = 0; i < m->buffers.n && rc == DC_OK; i++)
    rc = convert_tensor(m->buffers.items[i].ptr, dt);
  for (int i = 0; i < m->children.n && rc == DC_OK; i++)
    rc = dc_module_to_dtype(m->children.items[i].ptr, dt);
  return rc;
}

/* Moves each tensor of the list (and its gradient) to dev; a failure names the tensor. */
static int move_list(const dc_named_tensor *l, int n, dc_device dev, const char *what) {
  for (int i = 0; i < n; i++) {
    dc_tensor *t = l[i].tensor;
    bool grad = false;
    int rc = dc_move_to_device_(t, dev);
    if (rc == DC_OK && t->grad) grad = true, rc = dc_move_to_device_(t->grad, dev);
    if (rc != DC_OK) {
      char msg[1024];
      snprintf(msg, sizeof msg, "%s", dc_last_error());
      return dc__errs(rc, "module_to(%s): %s '%s'%s: %s (the tensors before it are moved)",
                      dc_device_name(dev), what, l[i].name, grad ? " (its gradient)" : "", msg);
    }
  }
  return DC_OK;
}

int dc_module_to(dc_module *m, dc_device dev) {
  if (!m) return dc__errs(DC_ERR_ARG, "dc_module_to: module is NULL");
  if (!dc_device_available(dev)) {
    char has[128];
    return dc__errs(DC_ERR_ARG, "module_to: device %s is not in this build of deepc, which has: %s",
                    dc_device_name(dev), dc_devices_available(has, sizeof has));
  }
  int np = 0, nb = 0;
  dc_named_tensor *ps = dc__module_list(m, DC__LIST_PARAMS, &np);
  dc_named_tensor *bs = ps ? dc__module_list(m, DC__LIST_BUFFERS, &nb) : NULL;
  int rc = !ps || !bs ? DC_ERR_NOMEM : move_list(ps, np, dev, "parameter");
  if (rc == DC_OK) rc = move_list(bs, nb, dev, "buffer");
  dc_named_tensors_free(ps, np);
  dc_named_tensors_free(bs, nb);
  return rc;
}

static int apply_rec(dc_module *m, char *path, size_t cap, dc_module_fn fn, void *ud) {
  size_t len = strlen(path);
  for (int i = 0; i < m->children.n; i++) {
    snprintf(path + len, cap - len, "%s%s", len ? "." : "", m->children.items[i].name);
    int rc = apply_rec(m->children.items[i].ptr, path, cap, fn, ud);
    path[len] = '\0';
    if (rc) return rc;
  }
  return fn(m, path, ud);
}

int dc_module_apply(dc_module *m, dc_module_fn fn, void *ud) {
  if (!m || !fn) return dc__errs(DC_ERR_ARG, "dc_module_apply: NULL module or function");
  char path[1024] = "";
  return apply_rec(m, path, sizeof path, fn, ud);
}

static int reset_one(dc_module *m, const char *path, void *ud) {
  (void)path;
  (void)ud;
  return m->type->reset ? m->type->reset(m) : DC_OK;
}

int dc_module_reset_parameters(dc_module *m) { return dc_module_apply(m, reset_one, NULL); }

/* ---- repr ---- */
typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void sput(sbuf *b, const char *s) {
  size_t k = strlen(s);
  if (b->oom) return;
  if (b->n + k + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + k + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, k + 1);
  b->n += k;
}

static void repr_rec(const dc_module *m, sbuf *b, int indent) {
  char extra[512] = "";
  if (m->type->extra_repr) m->type->extra_repr(m, extra, sizeof extra);
  sput(b, m->type->name);
  sput(b, "(");
  if (m->children.n == 0) {
    sput(b, extra);
    sput(b, ")");
    return;
  }
  char pad[256];
  int k = indent + 2 < (int)sizeof pad - 1 ? indent + 2 : (int)sizeof pad - 1;
  memset(pad, ' ', (size_t)k);
  pad[k] = '\0';
  if (*extra) {
    sput(b, "\n");
    sput(b, pad);
    sput(b, extra);
  }
  for (int i = 0; i < m->children.n; i++) {
    sput(b, "\n");
    sput(b, pad);
    sput(b, "(");
    sput(b, m->children.items[i].name);
    sput(b, "): ");
    repr_rec(m->children.items[i].ptr, b, indent + 2);
  }
  sput(b, "\n");
  pad[indent] = '\0';
  sput(b, pad);
  sput(b, ")");
}

char *dc_module_repr(const dc_module *m) {
  if (!m) return dc__err(DC_ERR_ARG, "dc_module_repr: module is NULL");
  sbuf b = {0};
  repr_rec(m, &b, 0);
  if (b.oom) {
    free(b.p);
    return dc__err(DC_ERR_NOMEM, "dc_module_repr: out of memory");
  }
  return b.p;
}

int dc_module_print(FILE *f, const dc_module *m) {
  char *s = dc_module_repr(m);
  if (!s) return dc_last_status();
  fprintf(f, "%s\n", s);
  free(s);
  return DC_OK;
}
