/* Checkpoints: named tensors and string metadata in the safetensors layout (8-byte LE header
 * length, JSON header, raw little-endian data), written atomically (dc__write_atomic) and read
 * as a typed view of the one safetensors codec (safetensors.c checks every field; this file
 * keeps the dtypes deepc computes with). What a training run puts in one is the trainer's
 * business (src/train/trainer.c). */
#include <deepc/autograd.h>
#include <deepc/io.h>

#include "../core/core-impl.h"
#include "weights-impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dc_ckpt {
  int n, cap;
  char **names;        /* [n] */
  dc_tensor **tensors; /* [n], one reference each */
  int nmeta, mcap;
  char **mkeys, **mvals; /* [nmeta] */
};

dc_ckpt *dc_ckpt_new(void) { return dc__calloc(1, sizeof(dc_ckpt)); }

void dc_ckpt_free(dc_ckpt *c) {
  if (!c) return;
  for (int i = 0; i < c->n; i++) {
    dc__free(c->names[i]);
    dc__unref(c->tensors[i]);
  }
  dc__meta_free(c->mkeys, c->mvals, c->nmeta);
  dc__free(c->names);
  dc__free(c->tensors);
  dc__free(c);
}

static int grow(void **p, int cap, int newcap, size_t elem) {
  void *q = dc__realloc(*p, elem * (size_t)cap, elem * (size_t)newcap);
  if (!q) return DC_ERR_NOMEM;
  *p = q;
  return DC_OK;
}

/* Appends (name, t), t being a reference the checkpoint now owns. */
static int push(dc_ckpt *c, const char *name, dc_tensor *t) {
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->names[i], name) == 0) {
      dc__unref(c->tensors[i]);
      c->tensors[i] = t;
      return DC_OK;
    }
  if (c->n == c->cap) {
    int cap = c->cap ? 2 * c->cap : 64;
    if (grow((void **)&c->names, c->cap, cap, sizeof(char *)) != DC_OK ||
        grow((void **)&c->tensors, c->cap, cap, sizeof(dc_tensor *)) != DC_OK)
      return DC_ERR_NOMEM;
    c->cap = cap;
  }
  char *nm = dc__strdup(name);
  if (!nm) return DC_ERR_NOMEM;
  c->names[c->n] = nm;
  c->tensors[c->n++] = t;
  return DC_OK;
}

int dc_ckpt_set_tensor(dc_ckpt *c, const char *name, dc_tensor *t) {
  if (!c || !name || !t) return dc__errs(DC_ERR_ARG, "ckpt_set_tensor: NULL argument");
  if (!*name || strcmp(name, "__metadata__") == 0)
    return dc__errs(DC_ERR_ARG, "ckpt_set_tensor: '%s' cannot name a tensor", name);
  dc__ref(t);
  int rc = push(c, name, t);
  if (rc != DC_OK) dc__unref(t);
  return rc;
}

dc_tensor *dc_ckpt_tensor(const dc_ckpt *c, const char *name) {
  if (!c || !name) return NULL;
  for (int i = 0; i < c->n; i++)
    if (strcmp(c->names[i], name) == 0) return c->tensors[i];
  return NULL;
}

int dc_ckpt_num_tensors(const dc_ckpt *c) { return c ? c->n : 0; }
const char *dc_ckpt_name_at(const dc_ckpt *c, int i) {
  return c && i >= 0 && i < c->n ? c->names[i] : NULL;
}
dc_tensor *dc_ckpt_tensor_at(const dc_ckpt *c, int i) {
  return c && i >= 0 && i < c->n ? c->tensors[i] : NULL;
}

int dc_ckpt_set_meta(dc_ckpt *c, const char *key, const char *value) {
  if (!c || !key || !value) return dc__errs(DC_ERR_ARG, "ckpt_set_meta: NULL argument");
  return dc__meta_set(&c->mkeys, &c->mvals, &c->nmeta, &c->mcap, key, value);
}

const char *dc_ckpt_meta(const dc_ckpt *c, const char *key) {
  return c ? dc__meta_get(c->mkeys, c->mvals, c->nmeta, key) : NULL;
}

/* ---- saving ---- */
static char *header_json(const dc_ckpt *c, uint64_t *data_len, const char *path) {
  dc__st_entry *ent = dc__calloc((size_t)c->n + 1, sizeof *ent);
  if (!ent) return dc__err(DC_ERR_NOMEM, "%s: out of memory building the header", path);
  for (int i = 0; i < c->n; i++) {
    const dc_tensor *t = c->tensors[i];
    ent[i] = (dc__st_entry){c->names[i], dc__wdt_table[dc__wdt_from_dc(t->dtype)].st, t->ndim,
                            t->shape, (uint64_t)dc_numel(t) * dc_dtype_size(t->dtype)};
  }
  char *json = dc__st_header_json(ent, c->n, c->mkeys, c->mvals, c->nmeta, data_len, path);
  dc__free(ent);
  return json;
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

/* Writes the tensors' data in order; contiguous CPU tensors straight from their storage. */
static int write_data(const dc_ckpt *c, FILE *f) {
  for (int i = 0; i < c->n; i++) {
    dc_tensor *t = c->tensors[i];
    size_t nb = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
    if (nb == 0) continue;
    if (t->device == DC_CPU && dc_is_contiguous(t)) {
      if (write_all(f, dc_data(t), nb)) return -1;
      continue;
    }
    void *buf = dc__malloc(nb);
    if (!buf) return -2;
    int rc = dc_copy_to_buffer(t, buf, nb) == DC_OK ? write_all(f, buf, nb) : -2;
    dc__free(buf);
    if (rc) return rc;
  }
  return 0;
}

/* DEEPC_DEBUG_CKPT_DELAY_MS=n (tests/fault/kill_trials.sh): sleep n ms after the header and
 * again after the data, so that kills land inside checkpoint writes. */
static void debug_delay(void) {
  const char *e = getenv("DEEPC_DEBUG_CKPT_DELAY_MS");
  long ms = e ? strtol(e, NULL, 10) : 0;
  if (ms > 0 && ms < 100000) usleep((useconds_t)ms * 1000);
}

typedef struct ckpt_fill {
  const dc_ckpt *c;
  const char *json, *path;
} ckpt_fill;

/* The file's bytes: the safetensors header, then the tensors' data. */
static int fill_ckpt(FILE *f, const char *tmp, void *ctx) {
  (void)tmp;
  const ckpt_fill *k = ctx;
  if (dc__st_write_header(f, k->json) != DC_OK) return DC__WRITE_FAILED;
  debug_delay();
  int bad = write_data(k->c, f);
  if (bad == -2) return dc__errs(DC_ERR_NOMEM, "%s: out of memory writing the checkpoint", k->path);
  if (!bad) debug_delay();
  return bad ? DC__WRITE_FAILED : DC_OK;
}

int dc_ckpt_save(const dc_ckpt *c, const char *path) {
  if (!c || !path) return dc__errs(DC_ERR_ARG, "ckpt_save: NULL argument");
  uint64_t data_len = 0;
  char *json = header_json(c, &data_len, path);
  if (!json) return dc_last_status();
  ckpt_fill k = {c, json, path};
  int rc = dc__write_atomic(path, "the checkpoint", fill_ckpt, &k);
  free(json);
  return rc;
}

/* ---- loading: a typed view of the safetensors codec (safetensors.c) ---- */

/* A checkpoint tensor holding entry e's values, in one of the dtypes checkpoints keep. */
static dc_tensor *entry_tensor(const dc__wentry *e, const char *path) {
  int dt = dc__wdt_table[e->dt].dc; /* exactly: checkpoints do not widen */
  if (dt < 0 || dc__wdt_from_dc((dc_dtype)dt) != e->dt)
    return dc__err(DC_ERR_UNSUPPORTED, "%s: entry '%s': dtype %s is not supported", path, e->name,
                   dc__wdt_table[e->dt].st);
  dc_shape s = {.ndim = e->ndim};
  for (int d = 0; d < e->ndim; d++) s.d[d] = e->shape[d];
  dc_tensor *t = dc__new(s, (dc_dtype)dt, DC_CPU);
  if (!t) return NULL;
  dc__unscope(t);
  if (e->nbytes) memcpy(dc_data(t), e->data, (size_t)e->nbytes);
  return t;
}

/* The checkpoint of a parsed file (a view of its bytes): its tensors and metadata. */
static dc_ckpt *from_weights(dc_weights *w, const char *path) {
  dc_ckpt *c = dc_ckpt_new();
  for (int i = 0; c && i < w->nmeta; i++)
    if (dc_ckpt_set_meta(c, w->mkeys[i], w->mvals[i]) != DC_OK) goto fail;
  for (int i = 0; c && i < w->n; i++) {
    dc_tensor *t = entry_tensor(&w->e[i], path);
    if (!t) goto fail;
    if (push(c, w->e[i].name, t) != DC_OK) {
      dc__unref(t);
      goto fail;
    }
  }
  return c;
fail:
  dc_ckpt_free(c);
  return NULL;
}

dc_ckpt *dc_ckpt_load(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "ckpt_load: path is NULL");
  const uint8_t *mem;
  size_t n;
  if (dc__map_file(path, "the checkpoint", &mem, &n) != DC_OK) return NULL;
  dc_weights *w = dc__safetensors_view(mem, n, path);
  dc_ckpt *c = w ? from_weights(w, path) : NULL;
  dc_weights_free(w);
  dc__unmap_file(mem, n);
  return c;
}

/* ---- state dicts and optimizer states ---- */
/* A copy of t (unscoped), so the checkpoint holds the values of this moment. */
static dc_tensor *snapshot(dc_tensor *t) {
  bool prev = dc_set_grad_enabled(false);
  dc_tensor *c = dc__new(dc_shape_of(t), t->dtype, DC_CPU);
  if (c) {
    dc__unscope(c);
    if (dc_copy_(c, t) != DC_OK) {
      dc__unref(c);
      c = NULL;
    }
  }
  dc_set_grad_enabled(prev);
  return c;
}

static int add_copy(dc_ckpt *c, const char *prefix, const char *key, dc_tensor *t) {
  char name[1024];
  snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", key);
  dc_tensor *s = snapshot(t);
  if (!s) return dc_last_status();
  int rc = push(c, name, s);
  if (rc != DC_OK) dc__unref(s);
  return rc;
}

int dc_ckpt_add_state_dict(dc_ckpt *c, const char *prefix, const dc_state_dict *sd) {
  if (!c || !sd) return dc__errs(DC_ERR_ARG, "ckpt_add_state_dict: NULL argument");
  for (int i = 0; i < dc_state_dict_size(sd); i++) {
    int rc = add_copy(c, prefix, dc_state_dict_key_at(sd, i), dc_state_dict_tensor_at(sd, i));
    if (rc != DC_OK) return rc;
  }
  return DC_OK;
}

dc_state_dict *dc_ckpt_get_state_dict(const dc_ckpt *c, const char *prefix) {
  if (!c) return dc__err(DC_ERR_ARG, "ckpt_get_state_dict: NULL checkpoint");
  size_t pl = prefix ? strlen(prefix) : 0;
  dc_state_dict *sd = dc_state_dict_new();
  if (!sd) return NULL;
  for (int i = 0; i < c->n; i++)
    if (strncmp(c->names[i], prefix ? prefix : "", pl) == 0 &&
        dc_state_dict_set(sd, c->names[i] + pl, c->tensors[i]) != DC_OK) {
      dc_state_dict_free(sd);
      return NULL;
    }
  return sd;
}

int dc_ckpt_add_optim_state(dc_ckpt *c, const char *prefix, const dc_optim_state *st) {
  if (!c || !st) return dc__errs(DC_ERR_ARG, "ckpt_add_optim_state: NULL argument");
  for (int i = 0; i < st->n; i++) {
    int rc = add_copy(c, prefix, st->names[i], st->tensors[i]);
    if (rc != DC_OK) return rc;
  }
  return DC_OK;
}

int dc_ckpt_get_optim_state(const dc_ckpt *c, const char *prefix, dc_optim_state *out) {
  if (!c || !out) return dc__errs(DC_ERR_ARG, "ckpt_get_optim_state: NULL argument");
  memset(out, 0, sizeof *out);
  size_t pl = prefix ? strlen(prefix) : 0;
  for (int i = 0; i < c->n; i++)
    if (strncmp(c->names[i], prefix ? prefix : "", pl) == 0) {
      int rc = dc_optim_state_set(out, c->names[i] + pl, c->tensors[i]);
      if (rc != DC_OK) {
        dc_optim_state_free(out);
        return rc;
      }
    }
  return DC_OK;
}
