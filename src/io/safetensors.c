/* safetensors files: 8-byte little-endian header length N (at most 100,000,000, as the reference
 * implementation), N bytes of JSON ({"name": {"dtype", "shape", "data_offsets"}, "__metadata__":
 * {str: str}}, starting with '{', padded with spaces), then the data. Every rule of the format is
 * enforced: known dtypes, integral sizes and offsets, shape x dtype size == end - begin, tensors
 * tiling the data with no gap or overlap, the data ending exactly at the end of the file, no
 * duplicate names. Writing puts __metadata__ first and pads the header to 8 bytes. deepc
 * checkpoints (ckpt.c) are read and written through this codec too. */
#include "weights-impl.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <string.h>

#define ST_MAX_HEADER 100000000ull
#define ST_MAX_INT 9007199254740992.0 /* 2^53: larger JSON numbers are not exact */

typedef struct span {
  uint64_t begin, end;
  int entry;
} span;

static int cmp_span(const void *a, const void *b) {
  const span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool json_uint(const cJSON *x, uint64_t *out) {
  if (!cJSON_IsNumber(x)) return false;
  double v = x->valuedouble;
  if (!(v >= 0 && v <= ST_MAX_INT) || v != floor(v)) return false;
  *out = (uint64_t)v;
  return true;
}

/* Reads one tensor entry's dtype, shape and offsets (data copied after the tiling check). */
static int parse_entry(const cJSON *e, const char *what, uint64_t data_len, dc__wdt *dt,
                       dc_shape *s, span *sp) {
  const char *name = e->string;
  if (!cJSON_IsObject(e))
    return dc__errs(DC_ERR_FORMAT, "%s: entry '%s' is not an object", what, name);
  const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
  const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
  const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
  if (!cJSON_IsString(jd))
    return dc__errs(DC_ERR_FORMAT, "%s: entry '%s' has no dtype string", what, name);
  if (!dc__wdt_from_st(jd->valuestring, dt))
    return dc__errs(DC_ERR_FORMAT, "%s: entry '%s': unknown dtype '%s'", what, name,
                    jd->valuestring);
  if (!cJSON_IsArray(js))
    return dc__errs(DC_ERR_FORMAT, "%s: entry '%s': shape is not a list", what, name);
  int nd = cJSON_GetArraySize(js);
  if (nd > DC_MAX_DIMS)
    return dc__errs(DC_ERR_UNSUPPORTED, "%s: entry '%s' has %d dimensions (deepc handles up to %d)",
                    what, name, nd, DC_MAX_DIMS);
  s->ndim = nd;
  uint64_t numel = 1;
  bool overflow = false;
  int d = 0;
  for (const cJSON *x = js->child; x; x = x->next, d++) {
    uint64_t v;
    if (!json_uint(x, &v))
      return dc__errs(DC_ERR_FORMAT, "%s: entry '%s': shape[%d] is not a size", what, name, d);
    s->d[d] = (int64_t)v;
    if (__builtin_mul_overflow(numel, v, &numel)) overflow = true;
  }
  if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &sp->begin) ||
      !json_uint(jo->child->next, &sp->end))
    return dc__errs(DC_ERR_FORMAT, "%s: entry '%s': data_offsets must be [begin, end] integers",
                    what, name);
  if (sp->end < sp->begin || sp->end > data_len)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: entry '%s': data_offsets [%llu, %llu] outside the %llu data bytes", what,
                    name, (unsigned long long)sp->begin, (unsigned long long)sp->end,
                    (unsigned long long)data_len);
  uint64_t nb;
  if (overflow || __builtin_mul_overflow(numel, (uint64_t)dc__wdt_table[*dt].size, &nb) ||
      nb != sp->end - sp->begin) {
    char sh[160], need[32] = "too many";
    if (!overflow) snprintf(need, sizeof need, "%llu", (unsigned long long)nb);
    return dc__errs(DC_ERR_FORMAT,
                    "%s: entry '%s': shape %s of %s needs %s bytes but data_offsets span %llu",
                    what, name, dc_shape_str(*s, sh, sizeof sh), jd->valuestring, need,
                    (unsigned long long)(sp->end - sp->begin));
  }
  return DC_OK;
}

static int parse_metadata(const cJSON *m, const char *what, dc_weights *w) {
  if (!cJSON_IsObject(m)) return dc__errs(DC_ERR_FORMAT, "%s: __metadata__ is not an object", what);
  for (const cJSON *x = m->child; x; x = x->next) {
    if (!cJSON_IsString(x))
      return dc__errs(DC_ERR_FORMAT, "%s: __metadata__['%s'] is not a string", what, x->string);
    int rc = dc_weights_set_meta(w, x->string, x->valuestring);
    if (rc != DC_OK) return rc;
  }
  return DC_OK;
}

/* Names must be unique (cJSON keeps duplicates: the format forbids them). */
static int check_duplicates(const cJSON *root, int n, const char *what) {
  const char **names = dc__malloc(sizeof *names * (size_t)(n ? n : 1));
  if (!names) return DC_ERR_NOMEM;
  int k = 0;
  for (const cJSON *e = root->child; e; e = e->next) names[k++] = e->string;
  qsort(names, (size_t)k, sizeof *names, cmp_str);
  int rc = DC_OK;
  for (int i = 1; i < k && rc == DC_OK; i++)
    if (strcmp(names[i - 1], names[i]) == 0)
      rc = dc__errs(DC_ERR_FORMAT, "%s: the name '%s' appears twice in the header", what, names[i]);
  dc__free(names);
  return rc;
}

/* The JSON header of the file (mem[0..n)): its length *hl and the parsed object, or NULL. */
static cJSON *parse_header(const uint8_t *mem, size_t n, const char *what, uint64_t *hl) {
  if (n < 8)
    return dc__err(DC_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file", what, n);
  *hl = 0;
  for (int i = 0; i < 8; i++) *hl |= (uint64_t)mem[i] << (8 * i);
  if (*hl > ST_MAX_HEADER || *hl > n - 8)
    return dc__err(DC_ERR_FORMAT, "%s: offset 0: header length %llu %s (file of %zu bytes)", what,
                   (unsigned long long)*hl,
                   *hl > ST_MAX_HEADER ? "exceeds the limit of 100,000,000" : "runs past the end",
                   n);
  const char *h = (const char *)mem + 8;
  size_t hn = (size_t)*hl;
  if (hn == 0 || h[0] != '{')
    return dc__err(DC_ERR_FORMAT, "%s: offset 8: the header does not start with '{'", what);
  while (hn > 0 && h[hn - 1] == ' ') hn--; /* padding */
  const char *end = NULL;
  cJSON *root = cJSON_ParseWithLengthOpts(h, hn, &end, false);
  if (!root || !cJSON_IsObject(root) || end != h + hn) {
    size_t at = end ? (size_t)(end - h) : 0;
    cJSON_Delete(root);
    return dc__err(DC_ERR_FORMAT, "%s: offset %zu: the header is not one JSON object", what,
                   8 + at);
  }
  return root;
}

/* The header's tensor entries, in header order. */
typedef struct st_entries {
  span *spans;
  dc__wdt *dts;
  dc_shape *shapes;
  const cJSON **ents;
  int n;
} st_entries;

static void entries_free(st_entries *E) {
  dc__free(E->spans);
  dc__free(E->dts);
  dc__free(E->shapes);
  dc__free(E->ents);
}

/* Reads every entry of root (the metadata into w), each checked against data_len. */
static int read_entries(const cJSON *root, const char *what, uint64_t data_len, dc_weights *w,
                        st_entries *E) {
  int nent = cJSON_GetArraySize(root);
  E->spans = dc__malloc(sizeof *E->spans * (size_t)(nent + 1));
  E->dts = dc__malloc(sizeof *E->dts * (size_t)(nent + 1));
  E->shapes = dc__malloc(sizeof *E->shapes * (size_t)(nent + 1));
  E->ents = dc__malloc(sizeof *E->ents * (size_t)(nent + 1));
  if (!E->spans || !E->dts || !E->shapes || !E->ents) return DC_ERR_NOMEM;
  int rc = check_duplicates(root, nent, what);
  for (const cJSON *e = root->child; e && rc == DC_OK; e = e->next) {
    if (strcmp(e->string, "__metadata__") == 0) {
      rc = parse_metadata(e, what, w);
      continue;
    }
    int k = E->n;
    rc = parse_entry(e, what, data_len, &E->dts[k], &E->shapes[k], &E->spans[k]);
    E->spans[k].entry = k;
    E->ents[k] = e;
    if (rc == DC_OK) E->n++;
  }
  return rc;
}

/* The data bytes are tiled: sorted by begin, each entry starts where the previous ended, the
 * last ends the file. */
static int check_tiling(const st_entries *E, const char *what, uint64_t data_len) {
  span *sorted = dc__malloc(sizeof *sorted * (size_t)(E->n + 1));
  if (!sorted) return DC_ERR_NOMEM;
  memcpy(sorted, E->spans, sizeof *sorted * (size_t)E->n);
  qsort(sorted, (size_t)E->n, sizeof *sorted, cmp_span);
  uint64_t at = 0;
  int rc = DC_OK;
  for (int i = 0; i < E->n && rc == DC_OK; i++) {
    if (sorted[i].begin != at)
      rc = dc__errs(DC_ERR_FORMAT, "%s: data bytes [%llu, %llu) %s (entry '%s')", what,
                    (unsigned long long)(at < sorted[i].begin ? at : sorted[i].begin),
                    (unsigned long long)(at < sorted[i].begin ? sorted[i].begin : at),
                    sorted[i].begin > at ? "belong to no tensor (gap)"
                                         : "are used by two tensors (overlap)",
                    E->ents[sorted[i].entry]->string);
    at = sorted[i].end;
  }
  dc__free(sorted);
  if (rc == DC_OK && at != data_len)
    rc = dc__errs(DC_ERR_FORMAT,
                  "%s: the tensors end at data byte %llu but the file holds %llu (%s)", what,
                  (unsigned long long)at, (unsigned long long)data_len,
                  at < data_len ? "trailing bytes" : "truncated");
  return rc;
}

/* The entries' tensors into w: copies of data's bytes, or pointers into data when borrowing. */
static int push_entries(const st_entries *E, const uint8_t *data, bool borrow, dc_weights *w) {
  for (int i = 0; i < E->n; i++) {
    uint64_t nb = E->spans[i].end - E->spans[i].begin;
    uint8_t *buf = NULL;
    if (nb && borrow) buf = (uint8_t *)(uintptr_t)(data + E->spans[i].begin);
    if (nb && !borrow && !(buf = dc__malloc((size_t)nb))) return DC_ERR_NOMEM;
    if (nb && !borrow) memcpy(buf, data + E->spans[i].begin, (size_t)nb);
    int rc = dc__weights_push(w, E->ents[i]->string, E->dts[i], E->shapes[i].ndim, E->shapes[i].d,
                              buf, nb);
    if (rc != DC_OK) return rc;
  }
  return DC_OK;
}

/* Parses and checks the file; borrow: entries point into mem instead of holding copies. */
static dc_weights *parse(const uint8_t *mem, size_t n, const char *what, bool borrow) {
  uint64_t hl = 0;
  cJSON *root = parse_header(mem, n, what, &hl);
  if (!root) return NULL;
  uint64_t data_len = n - 8 - hl;
  const uint8_t *data = mem + 8 + hl;
  st_entries E = {0};
  dc_weights *w = dc_weights_new();
  int rc = w ? DC_OK : DC_ERR_NOMEM;
  if (w) w->borrowed = borrow;
  if (rc == DC_OK) rc = read_entries(root, what, data_len, w, &E);
  if (rc == DC_OK) rc = check_tiling(&E, what, data_len);
  if (rc == DC_OK) rc = push_entries(&E, data, borrow, w);
  entries_free(&E);
  cJSON_Delete(root);
  if (rc != DC_OK) {
    if (!dc_last_status()) dc__err(DC_ERR_NOMEM, "%s: out of memory", what);
    dc_weights_free(w);
    return NULL;
  }
  w->format = DC_WEIGHTS_SAFETENSORS;
  return w;
}

dc_weights *dc__safetensors_parse(const uint8_t *mem, size_t n, const char *what) {
  return parse(mem, n, what, false);
}

dc_weights *dc__safetensors_view(const uint8_t *mem, size_t n, const char *what) {
  return parse(mem, n, what, true);
}

/* ---- writing ---- */
char *dc__st_header_json(const dc__st_entry *e, int n, char *const *mkeys, char *const *mvals,
                         int nmeta, uint64_t *data_len, const char *what) {
  cJSON *root = cJSON_CreateObject();
  bool ok = root != NULL;
  if (ok && nmeta) {
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    ok = meta != NULL;
    for (int i = 0; ok && i < nmeta; i++) ok = cJSON_AddStringToObject(meta, mkeys[i], mvals[i]);
  }
  uint64_t off = 0;
  for (int i = 0; ok && i < n; i++) {
    cJSON *o = cJSON_AddObjectToObject(root, e[i].name);
    cJSON *dt = o ? cJSON_AddStringToObject(o, "dtype", e[i].dtype) : NULL;
    cJSON *sh = dt ? cJSON_AddArrayToObject(o, "shape") : NULL;
    cJSON *offs = sh ? cJSON_AddArrayToObject(o, "data_offsets") : NULL;
    ok = offs != NULL;
    for (int d = 0; ok && d < e[i].ndim; d++)
      ok = cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e[i].shape[d]));
    ok = ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) &&
         cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + e[i].nbytes)));
    off += e[i].nbytes;
  }
  char *json = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  if (!json) return dc__err(DC_ERR_NOMEM, "%s: out of memory building the header", what);
  *data_len = off;
  return json;
}

int dc__st_write_header(FILE *f, const char *json) {
  size_t hl = strlen(json), padded = (hl + 7) / 8 * 8;
  uint8_t len8[8];
  for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
  bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(json, 1, hl, f) == hl &&
            fwrite("        ", 1, padded - hl, f) == padded - hl;
  return ok ? DC_OK : DC__WRITE_FAILED;
}

int dc__safetensors_write(const dc_weights *w, FILE *f, const char *what) {
  for (int i = 0; i < w->n; i++)
    if (strcmp(w->e[i].name, "__metadata__") == 0)
      return dc__errs(DC_ERR_ARG, "%s: '__metadata__' cannot name a tensor", what);
  dc__st_entry *ent = dc__calloc((size_t)w->n + 1, sizeof *ent);
  if (!ent) return dc__errs(DC_ERR_NOMEM, "%s: out of memory building the header", what);
  for (int i = 0; i < w->n; i++)
    ent[i] = (dc__st_entry){w->e[i].name, dc__wdt_table[w->e[i].dt].st, w->e[i].ndim, w->e[i].shape,
                            w->e[i].nbytes};
  uint64_t data_len;
  char *json = dc__st_header_json(ent, w->n, w->mkeys, w->mvals, w->nmeta, &data_len, what);
  dc__free(ent);
  if (!json) return dc_last_status();
  bool ok = dc__st_write_header(f, json) == DC_OK;
  free(json);
  for (int i = 0; ok && i < w->n; i++)
    ok =
        w->e[i].nbytes == 0 || fwrite(w->e[i].data, 1, (size_t)w->e[i].nbytes, f) == w->e[i].nbytes;
  if (!ok) return dc__errs(DC_ERR_IO, "%s: write failed (%s)", what, strerror(errno));
  return DC_OK;
}
