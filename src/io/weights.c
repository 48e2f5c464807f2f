/* Weight files as one list of named raw tensors (dc_weights): format detection, loading (the
 * file is mapped, then parsed by pth.c or safetensors.c), atomic saving, conversion to and from
 * dc_tensor / state dicts, selection by prefix, CRC-32 checksums. Entries are host bytes: a
 * tensor on any device is read with dc_copy_to_buffer; tensors made from entries are cpu ones
 * (dc_module_load_state_dict copies them onto the module's device). */
#include "weights-impl.h"

#include <deepc/autograd.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

const dc__wdt_info dc__wdt_table[DC__W_COUNT] = {
#define DC__X(e, t, s, st, sz, dc) {t, s, st, sz, dc},
    DC__WDT_LIST(DC__X)
#undef DC__X
};

bool dc__wdt_from_st(const char *code, dc__wdt *out) {
  for (int i = 0; i < DC__W_COUNT; i++)
    if (strcmp(dc__wdt_table[i].st, code) == 0) {
      *out = (dc__wdt)i;
      return true;
    }
  return false;
}

bool dc__wdt_from_storage(const char *storage_class, dc__wdt *out) {
  for (int i = 0; i < DC__W_COUNT; i++)
    if (strcmp(dc__wdt_table[i].storage, storage_class) == 0) {
      *out = (dc__wdt)i;
      return true;
    }
  return false;
}

dc__wdt dc__wdt_from_dc(dc_dtype dt) {
  switch (dt) {
  case DC_F32:
    return DC__W_F32;
  case DC_F64:
    return DC__W_F64;
  case DC_I64:
    return DC__W_I64;
  case DC_I32:
    return DC__W_I32;
  case DC_U8:
    return DC__W_U8;
  case DC_BOOL:
    return DC__W_BOOL;
  case DC_BF16:
    return DC__W_BF16;
  case DC_F16:
    return DC__W_F16;
  case DC_DTYPE_COUNT:
    break;
  }
  return DC__W_F32;
}

/* ---- the list ---- */
dc_weights *dc_weights_new(void) { return dc__calloc(1, sizeof(dc_weights)); }

void dc_weights_free(dc_weights *w) {
  if (!w) return;
  for (int i = 0; i < w->n; i++) {
    dc__free(w->e[i].name);
    if (!w->borrowed) dc__free(w->e[i].data);
  }
  dc__meta_free(w->mkeys, w->mvals, w->nmeta);
  dc__free(w->e);
  dc__free(w);
}

int dc__weights_push(dc_weights *w, const char *name, dc__wdt dt, int ndim, const int64_t *shape,
                     uint8_t *data, uint64_t nbytes) {
  if (w->n == w->cap) {
    int cap = w->cap ? 2 * w->cap : 64;
    dc__wentry *e = dc__realloc(w->e, sizeof *e * (size_t)w->cap, sizeof *e * (size_t)cap);
    if (!e) {
      if (!w->borrowed) dc__free(data);
      return DC_ERR_NOMEM;
    }
    w->e = e;
    w->cap = cap;
  }
  char *nm = dc__strdup(name);
  if (!nm) {
    if (!w->borrowed) dc__free(data);
    return DC_ERR_NOMEM;
  }
  dc__wentry *e = &w->e[w->n++];
  *e = (dc__wentry){.name = nm, .dt = dt, .ndim = ndim, .data = data, .nbytes = nbytes};
  for (int d = 0; d < ndim; d++) e->shape[d] = shape[d];
  return DC_OK;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int dc__weights_check_unique(const dc_weights *w, const char *what) {
  if (w->n < 2) return DC_OK;
  char **names = dc__malloc(sizeof *names * (size_t)w->n);
  if (!names) return DC_ERR_NOMEM;
  for (int i = 0; i < w->n; i++) names[i] = w->e[i].name;
  qsort(names, (size_t)w->n, sizeof *names, cmp_names);
  int rc = DC_OK;
  for (int i = 1; i < w->n && rc == DC_OK; i++)
    if (strcmp(names[i - 1], names[i]) == 0)
      rc = dc__errs(DC_ERR_FORMAT, "%s: the name '%s' appears twice", what, names[i]);
  dc__free(names);
  return rc;
}

dc_weights_format dc_weights_get_format(const dc_weights *w) {
  return w ? w->format : DC_WEIGHTS_AUTO;
}

const char *dc_weights_format_name(dc_weights_format f) {
  switch (f) {
  case DC_WEIGHTS_AUTO:
    return "auto";
  case DC_WEIGHTS_PTH:
    return "pth";
  case DC_WEIGHTS_SAFETENSORS:
    return "safetensors";
  case DC_WEIGHTS_CKPT:
    return "deepc-checkpoint";
  }
  return "unknown";
}

int dc_weights_count(const dc_weights *w) { return w ? w->n : 0; }

int dc_weights_find(const dc_weights *w, const char *name) {
  for (int i = 0; w && name && i < w->n; i++)
    if (strcmp(w->e[i].name, name) == 0) return i;
  return -1;
}

static const dc__wentry *entry(const dc_weights *w, int i) {
  return w && i >= 0 && i < w->n ? &w->e[i] : NULL;
}

const char *dc_weights_name(const dc_weights *w, int i) {
  const dc__wentry *e = entry(w, i);
  return e ? e->name : NULL;
}

const char *dc_weights_dtype_name(const dc_weights *w, int i) {
  const dc__wentry *e = entry(w, i);
  return e ? dc__wdt_table[e->dt].torch : NULL;
}

dc_shape dc_weights_shape(const dc_weights *w, int i) {
  const dc__wentry *e = entry(w, i);
  dc_shape s = {0};
  if (!e) return s;
  s.ndim = e->ndim;
  for (int d = 0; d < e->ndim; d++) s.d[d] = e->shape[d];
  return s;
}

const void *dc_weights_data(const dc_weights *w, int i, size_t *nbytes) {
  const dc__wentry *e = entry(w, i);
  if (nbytes) *nbytes = e ? (size_t)e->nbytes : 0;
  return e ? e->data : NULL;
}

uint32_t dc_weights_crc32(const dc_weights *w, int i) {
  const dc__wentry *e = entry(w, i);
  if (!e || !e->nbytes) return 0;
  return (uint32_t)crc32_z(0, e->data, (size_t)e->nbytes);
}

/* ---- to and from tensors ---- */
static int64_t load_int(const uint8_t *p, dc__wdt dt) {
  switch (dt) {
  case DC__W_I8:
    return (int8_t)p[0];
  case DC__W_I16: {
    int16_t v;
    memcpy(&v, p, 2);
    return v;
  }
  case DC__W_U16: {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
  }
  case DC__W_U32: {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
  }
  default: {
    int64_t v;
    memcpy(&v, p, 8);
    return v;
  } /* U64: reinterpreted */
  }
}

dc_tensor *dc_weights_tensor(const dc_weights *w, int i) {
  const dc__wentry *e = entry(w, i);
  if (!e) return dc__err(DC_ERR_ARG, "weights_tensor: no entry %d", i);
  const dc__wdt_info *info = &dc__wdt_table[e->dt];
  if (info->dc < 0)
    return dc__err(DC_ERR_UNSUPPORTED,
                   "weights: '%s' holds %s values, which deepc cannot compute "
                   "with (convert the tensor to a real dtype first)",
                   e->name, info->torch);
  dc_shape s = dc_weights_shape(w, i);
  dc_tensor *t = dc_empty(s, (dc_dtype)info->dc);
  if (!t) return NULL;
  int64_t n = dc_numel(t);
  if (dc_dtype_size(t->dtype) == (size_t)info->size) {
    if (e->nbytes) memcpy(dc_data(t), e->data, (size_t)e->nbytes);
    return t;
  }
  /* widening of small / unsigned integers */
  for (int64_t k = 0; k < n; k++) {
    int64_t v = load_int(e->data + k * info->size, e->dt);
    if (t->dtype == DC_I32)
      ((int32_t *)dc_data(t))[k] = (int32_t)v;
    else
      ((int64_t *)dc_data(t))[k] = v;
  }
  return t;
}

int dc_weights_add(dc_weights *w, const char *name, dc_tensor *t) {
  if (!w || !name || !t) return dc__errs(DC_ERR_ARG, "weights_add: NULL argument");
  size_t nb = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
  uint8_t *buf = nb ? dc__malloc(nb) : NULL;
  if (nb && !buf) return DC_ERR_NOMEM;
  if (nb && dc_copy_to_buffer(t, buf, nb) != DC_OK) {
    dc__free(buf);
    return dc_last_status();
  }
  int at = dc_weights_find(w, name);
  if (at >= 0) {
    dc__wentry *e = &w->e[at];
    dc__free(e->data);
    e->data = buf;
    e->nbytes = nb;
    e->dt = dc__wdt_from_dc(t->dtype);
    e->ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) e->shape[d] = t->shape[d];
    return DC_OK;
  }
  return dc__weights_push(w, name, dc__wdt_from_dc(t->dtype), t->ndim, t->shape, buf, nb);
}

/* ---- metadata ---- */
int dc_weights_meta_count(const dc_weights *w) { return w ? w->nmeta : 0; }
const char *dc_weights_meta_key(const dc_weights *w, int i) {
  return w && i >= 0 && i < w->nmeta ? w->mkeys[i] : NULL;
}
const char *dc_weights_meta_value(const dc_weights *w, int i) {
  return w && i >= 0 && i < w->nmeta ? w->mvals[i] : NULL;
}

const char *dc__meta_get(char *const *keys, char *const *vals, int n, const char *key) {
  for (int i = 0; key && i < n; i++)
    if (strcmp(keys[i], key) == 0) return vals[i];
  return NULL;
}

int dc__meta_set(char ***keys, char ***vals, int *n, int *cap, const char *key, const char *value) {
  char *v = dc__strdup(value);
  if (!v) return DC_ERR_NOMEM;
  for (int i = 0; i < *n; i++)
    if (strcmp((*keys)[i], key) == 0) {
      dc__free((*vals)[i]);
      (*vals)[i] = v;
      return DC_OK;
    }
  if (*n == *cap) {
    int nc = *cap ? 2 * *cap : 16;
    char **k = dc__realloc(*keys, sizeof *k * (size_t)*cap, sizeof *k * (size_t)nc);
    if (k) *keys = k;
    char **vv = k ? dc__realloc(*vals, sizeof *vv * (size_t)*cap, sizeof *vv * (size_t)nc) : NULL;
    if (!vv) {
      dc__free(v);
      return DC_ERR_NOMEM;
    }
    *vals = vv;
    *cap = nc;
  }
  char *k = dc__strdup(key);
  if (!k) {
    dc__free(v);
    return DC_ERR_NOMEM;
  }
  (*keys)[*n] = k;
  (*vals)[(*n)++] = v;
  return DC_OK;
}

void dc__meta_free(char **keys, char **vals, int n) {
  for (int i = 0; i < n; i++) {
    dc__free(keys[i]);
    dc__free(vals[i]);
  }
  dc__free(keys);
  dc__free(vals);
}

const char *dc_weights_meta(const dc_weights *w, const char *key) {
  return w ? dc__meta_get(w->mkeys, w->mvals, w->nmeta, key) : NULL;
}

int dc_weights_set_meta(dc_weights *w, const char *key, const char *value) {
  if (!w || !key || !value) return dc__errs(DC_ERR_ARG, "weights_set_meta: NULL argument");
  return dc__meta_set(&w->mkeys, &w->mvals, &w->nmeta, &w->mcap, key, value);
}

/* ---- selection and state dicts ---- */
dc_weights *dc_weights_select(const dc_weights *w, const char *prefix, const char *new_prefix) {
  if (!w) return dc__err(DC_ERR_ARG, "weights_select: NULL weights");
  size_t pl = prefix ? strlen(prefix) : 0;
  dc_weights *out = dc_weights_new();
  if (!out) return NULL;
  out->format = w->format;
  for (int i = 0; i < w->nmeta; i++)
    if (dc_weights_set_meta(out, w->mkeys[i], w->mvals[i]) != DC_OK) goto fail;
  for (int i = 0; i < w->n; i++) {
    const dc__wentry *e = &w->e[i];
    if (pl && strncmp(e->name, prefix, pl) != 0) continue;
    char name[4096];
    snprintf(name, sizeof name, "%s%s", new_prefix ? new_prefix : "", e->name + pl);
    uint8_t *buf = e->nbytes ? dc__malloc((size_t)e->nbytes) : NULL;
    if (e->nbytes && !buf) goto fail;
    if (e->nbytes) memcpy(buf, e->data, (size_t)e->nbytes);
    if (dc__weights_push(out, name, e->dt, e->ndim, e->shape, buf, e->nbytes) != DC_OK) goto fail;
  }
  if (!out->n && w->n) {
    dc__err(DC_ERR_ARG, "weights: no entry starts with '%s' (the first is '%s')", prefix,
            w->e[0].name);
    goto fail;
  }
  if (dc__weights_check_unique(out, "weights_select") != DC_OK) goto fail;
  return out;
fail:
  dc_weights_free(out);
  return NULL;
}

dc_state_dict *dc_weights_state_dict(const dc_weights *w, const char *prefix) {
  if (!w) return dc__err(DC_ERR_ARG, "weights_state_dict: NULL weights");
  size_t pl = prefix ? strlen(prefix) : 0;
  dc_state_dict *sd = dc_state_dict_new();
  if (!sd) return NULL;
  for (int i = 0; i < w->n; i++) {
    if (pl && strncmp(w->e[i].name, prefix, pl) != 0) continue;
    dc_tensor *t = dc_weights_tensor(w, i);
    int rc = t ? dc_state_dict_set(sd, w->e[i].name + pl, t) : (int)dc_last_status();
    dc_free(t);
    if (rc != DC_OK) {
      dc_state_dict_free(sd);
      return NULL;
    }
  }
  return sd;
}

dc_weights *dc_weights_from_state_dict(const dc_state_dict *sd, const char *prefix) {
  if (!sd) return dc__err(DC_ERR_ARG, "weights_from_state_dict: NULL state dict");
  dc_weights *w = dc_weights_new();
  if (!w) return NULL;
  for (int i = 0; i < dc_state_dict_size(sd); i++) {
    char name[4096];
    snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", dc_state_dict_key_at(sd, i));
    if (dc_weights_add(w, name, dc_state_dict_tensor_at(sd, i)) != DC_OK) {
      dc_weights_free(w);
      return NULL;
    }
  }
  return w;
}

/* ---- reading ---- */
static bool is_legacy_pickle(const uint8_t *m, size_t n) {
  return n >= 2 && m[0] == 0x80 && m[1] >= 2 && m[1] <= 5;
}

dc_weights *dc_weights_parse(const void *data, size_t n, const char *what) {
  const uint8_t *m = data;
  if (!what) what = "weights";
  if (!m && n) return dc__err(DC_ERR_ARG, "weights_parse: NULL data");
  if (n >= 4 && m[0] == 'P' && m[1] == 'K' && (m[2] == 3 || m[2] == 5))
    return dc__pth_parse(m, n, what);
  if (is_legacy_pickle(m, n))
    return dc__err(DC_ERR_UNSUPPORTED,
                   "%s: a plain pickle: PyTorch's legacy (pre-1.6) torch.save format is not "
                   "supported; re-save it with a current PyTorch: "
                   "torch.save(torch.load(path), new_path)",
                   what);
  if (n >= 262 && memcmp(m + 257, "ustar", 5) == 0)
    return dc__err(DC_ERR_UNSUPPORTED,
                   "%s: a tar archive: PyTorch's oldest torch.save format is not supported; "
                   "re-save it with torch.save(torch.load(path), new_path)",
                   what);
  uint64_t hl = 0;
  for (int i = 0; i < 8 && n >= 8; i++) hl |= (uint64_t)m[i] << (8 * i);
  if ((n >= 9 && m[8] == '{') || (n >= 8 && hl <= n - 8)) { /* safetensors-like */
    dc_weights *w = dc__safetensors_parse(m, n, what);
    if (w) {
      const char *f = dc_weights_meta(w, "format");
      w->format =
          f && strcmp(f, "deepc-checkpoint") == 0 ? DC_WEIGHTS_CKPT : DC_WEIGHTS_SAFETENSORS;
    }
    return w;
  }
  return dc__err(DC_ERR_FORMAT,
                 "%s: not a weight file deepc reads (%zu bytes; expected a torch.save zip "
                 "archive, a safetensors file or a deepc checkpoint)",
                 what, n);
}

int dc__map_file(const char *path, const char *kind, const uint8_t **mem, size_t *n) {
  *mem = NULL, *n = 0;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return dc__errs(DC_ERR_IO, "%s: cannot open %s (%s)", path, kind, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return dc__errs(DC_ERR_IO, "%s: not a regular file", path);
  }
  size_t len = (size_t)st.st_size;
  void *m = len ? mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
  close(fd);
  if (len && m == MAP_FAILED)
    return dc__errs(DC_ERR_IO, "%s: cannot map %s (%s)", path, kind, strerror(errno));
  *mem = m, *n = len;
  return DC_OK;
}

void dc__unmap_file(const uint8_t *mem, size_t n) {
  if (n) munmap((void *)(uintptr_t)mem, n);
}

dc_weights *dc_weights_load(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "weights_load: path is NULL");
  const uint8_t *m;
  size_t n;
  if (dc__map_file(path, "the weight file", &m, &n) != DC_OK) return NULL;
  dc_weights *w = dc_weights_parse(m, n, path);
  dc__unmap_file(m, n);
  return w;
}

/* ---- writing ---- */
static dc_weights_format format_of_path(const char *path) {
  const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
  if (!dot || (slash && dot < slash)) return DC_WEIGHTS_AUTO;
  if (strcmp(dot, ".pth") == 0 || strcmp(dot, ".pt") == 0 || strcmp(dot, ".bin") == 0)
    return DC_WEIGHTS_PTH;
  if (strcmp(dot, ".safetensors") == 0) return DC_WEIGHTS_SAFETENSORS;
  if (strcmp(dot, ".ckpt") == 0) return DC_WEIGHTS_CKPT;
  return DC_WEIGHTS_AUTO;
}

/* The archive folder torch.save would use: the file's stem, reduced to safe characters. */
static void folder_name(const char *path, char *buf, size_t n) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t k = 0;
  for (; base[k] && base[k] != '.' && k + 1 < n && k < 64; k++) {
    char c = base[k];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-';
    buf[k] = ok ? c : '_';
  }
  buf[k] = '\0';
  if (!k) snprintf(buf, n, "archive");
}

/* safetensors with the "format" item set for a checkpoint, or a checkpoint's marker dropped for
 * a plain safetensors file (a shallow copy with another metadata list). */
static int write_st(const dc_weights *w, FILE *f, const char *path, bool ckpt) {
  dc_weights copy = *w;
  char **k = dc__malloc(sizeof *k * (size_t)(w->nmeta + 1)),
       **v = dc__malloc(sizeof *v * (size_t)(w->nmeta + 1));
  if (!k || !v) {
    dc__free(k);
    dc__free(v);
    return DC_ERR_NOMEM;
  }
  copy.nmeta = 0;
  if (ckpt) k[copy.nmeta] = "format", v[copy.nmeta++] = "deepc-checkpoint";
  for (int i = 0; i < w->nmeta; i++)
    if (strcmp(w->mkeys[i], "format") != 0 ||
        (!ckpt && strcmp(w->mvals[i], "deepc-checkpoint") != 0))
      k[copy.nmeta] = w->mkeys[i], v[copy.nmeta++] = w->mvals[i];
  copy.mkeys = k, copy.mvals = v;
  int rc = dc__safetensors_write(&copy, f, path);
  dc__free(k);
  dc__free(v);
  return rc;
}

typedef struct weights_fill {
  const dc_weights *w;
  const char *path;
  dc_weights_format fmt;
} weights_fill;

static int fill_weights(FILE *f, const char *tmp, void *ctx) {
  (void)tmp;
  const weights_fill *k = ctx;
  if (k->fmt != DC_WEIGHTS_PTH) return write_st(k->w, f, k->path, k->fmt == DC_WEIGHTS_CKPT);
  char folder[80];
  folder_name(k->path, folder, sizeof folder);
  return dc__pth_write(k->w, f, folder, k->path);
}

int dc_weights_save(const dc_weights *w, const char *path, dc_weights_format fmt) {
  if (!w || !path) return dc__errs(DC_ERR_ARG, "weights_save: NULL argument");
  if (fmt == DC_WEIGHTS_AUTO) fmt = format_of_path(path);
  if (fmt == DC_WEIGHTS_AUTO)
    return dc__errs(DC_ERR_ARG, "%s: unknown extension; use .pth/.pt, .safetensors or .ckpt", path);
  weights_fill k = {w, path, fmt};
  return dc__write_atomic(path, "the weights", fill_weights, &k);
}

/* ---- state-dict shortcuts ---- */
static dc_state_dict *load_sd(const char *path) {
  dc_weights *w = dc_weights_load(path);
  if (!w) return NULL;
  dc_state_dict *sd = dc_weights_state_dict(w, NULL);
  dc_weights_free(w);
  return sd;
}

static int save_sd(const dc_state_dict *sd, const char *path, dc_weights_format fmt) {
  dc_weights *w = dc_weights_from_state_dict(sd, NULL);
  if (!w) return dc_last_status();
  int rc = dc_weights_save(w, path, fmt);
  dc_weights_free(w);
  return rc;
}

dc_state_dict *dc_pth_load(const char *path) { return load_sd(path); }
int dc_pth_save(const dc_state_dict *sd, const char *path) {
  return save_sd(sd, path, DC_WEIGHTS_PTH);
}
dc_state_dict *dc_safetensors_load(const char *path) { return load_sd(path); }
int dc_safetensors_save(const dc_state_dict *sd, const char *path) {
  return save_sd(sd, path, DC_WEIGHTS_SAFETENSORS);
}
