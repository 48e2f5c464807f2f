/* NumPy .npy and .npz (through the zip codec of src/io, stored or deflated): the header dict is
 * parsed by a small strict reader (no eval, no pickled objects), the data length checked against
 * the shape before any allocation, big-endian and Fortran-ordered arrays converted. Also
 * dc_npy_save and the npz dataset (features/targets picked by the usual key names). */
#include "data-impl.h"
#include "../io/zip-impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DC__NPY_MAX_FILE ((size_t)1 << 36) /* 64 GiB */
#define DC__NPY_MAX_HEADER 65536

/* The parsed header. */
typedef struct npy_header {
  dc__npy_type t;
  bool fortran;
  dc_shape shape;
} npy_header;

/* ---- the header dict: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } ---- */

typedef struct hparse {
  const char *p, *end, *what;
  size_t base; /* file offset of p's start, for messages */
  const char *start;
} hparse;

static int herr(const hparse *h, const char *msg) {
  return dc__errs(DC_ERR_FORMAT, "%s: offset %zu: npy header: %s", h->what,
                  h->base + (size_t)(h->p - h->start), msg);
}

static void hskip(hparse *h) {
  while (h->p < h->end && isspace((unsigned char)*h->p)) h->p++;
}

static bool hchar(hparse *h, char c) {
  hskip(h);
  if (h->p < h->end && *h->p == c) {
    h->p++;
    return true;
  }
  return false;
}

/* A quoted string into out (at most n-1 chars). */
static bool hstring(hparse *h, char *out, size_t n) {
  hskip(h);
  if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return false;
  char q = *h->p++;
  size_t k = 0;
  while (h->p < h->end && *h->p != q) {
    if (k + 1 >= n) return false;
    out[k++] = *h->p++;
  }
  if (h->p >= h->end) return false;
  h->p++;
  out[k] = '\0';
  return true;
}

static bool hword(hparse *h, const char *w) {
  hskip(h);
  size_t n = strlen(w);
  if ((size_t)(h->end - h->p) >= n && strncmp(h->p, w, n) == 0) {
    h->p += n;
    return true;
  }
  return false;
}

bool dc__npy_type_parse(const char *d, dc__npy_type *o) {
  char order = d[0];
  if (order != '<' && order != '>' && order != '|' && order != '=') return false;
  char kind = d[1];
  int size = atoi(d + 2);
  o->kind = kind;
  o->fsize = size;
  o->swap = order == '>' && size > 1;
  bool ok = d[2] >= '1' && d[2] <= '9' &&
            (d[3] == '\0' || (d[4] == '\0' && isdigit((unsigned char)d[3])));
  if (ok && kind == 'f' && size == 4)
    o->dt = DC_F32;
  else if (ok && kind == 'f' && size == 8)
    o->dt = DC_F64;
  else if (ok && kind == 'f' && size == 2)
    o->dt = DC_F16;
  else if (ok && kind == 'i' && size == 8)
    o->dt = DC_I64;
  else if (ok && kind == 'i' && (size == 4 || size == 2 || size == 1))
    o->dt = DC_I32;
  else if (ok && kind == 'u' && size == 1)
    o->dt = DC_U8;
  else if (ok && kind == 'u' && size == 2)
    o->dt = DC_I32;
  else if (ok && kind == 'u' && (size == 4 || size == 8))
    o->dt = DC_I64;
  else if (ok && kind == 'b' && size == 1)
    o->dt = DC_BOOL;
  else
    return false;
  return true;
}

static int parse_descr(const hparse *h, const char *d, npy_header *o) {
  if (dc__npy_type_parse(d, &o->t)) return DC_OK;
  char m[160];
  snprintf(m, sizeof m,
           "dtype '%.16s' is not supported (numbers and bools only; object arrays "
           "would need pickle and are refused)",
           d);
  return herr(h, m);
}

static int parse_header(const char *text, size_t n, size_t base, const char *what, npy_header *o) {
  hparse h = {text, text + n, what, base, text};
  bool have_descr = false, have_fortran = false, have_shape = false;
  if (!hchar(&h, '{')) return herr(&h, "expected '{'");
  while (!hchar(&h, '}')) {
    char key[32], val[32];
    if (!hstring(&h, key, sizeof key) || !hchar(&h, ':')) return herr(&h, "expected 'key':");
    if (strcmp(key, "descr") == 0) {
      if (!hstring(&h, val, sizeof val))
        return herr(&h, "descr must be a simple dtype string (structured dtypes are not "
                        "supported)");
      int rc = parse_descr(&h, val, o);
      if (rc) return rc;
      have_descr = true;
    } else if (strcmp(key, "fortran_order") == 0) {
      if (hword(&h, "True"))
        o->fortran = true;
      else if (hword(&h, "False"))
        o->fortran = false;
      else
        return herr(&h, "fortran_order must be True or False");
      have_fortran = true;
    } else if (strcmp(key, "shape") == 0) {
      if (!hchar(&h, '(')) return herr(&h, "shape must be a tuple");
      o->shape.ndim = 0;
      while (!hchar(&h, ')')) {
        hskip(&h);
        if (h.p >= h.end || !isdigit((unsigned char)*h.p)) return herr(&h, "bad shape entry");
        if (o->shape.ndim >= DC_MAX_DIMS) return herr(&h, "more than 8 dimensions");
        int64_t v = 0;
        while (h.p < h.end && isdigit((unsigned char)*h.p)) {
          if (v > ((int64_t)1 << 50)) return herr(&h, "shape entry too large");
          v = v * 10 + (*h.p++ - '0');
        }
        if (h.p < h.end && *h.p == 'L') h.p++;
        o->shape.d[o->shape.ndim++] = v;
        if (!hchar(&h, ',')) {
          if (!hchar(&h, ')')) return herr(&h, "expected ',' or ')' in shape");
          break;
        }
      }
      have_shape = true;
    } else {
      return herr(&h, "unexpected key (expected descr, fortran_order, shape)");
    }
    if (!hchar(&h, ',')) {
      if (!hchar(&h, '}')) return herr(&h, "expected ',' or '}'");
      break;
    }
  }
  if (!have_descr || !have_fortran || !have_shape)
    return herr(&h, "missing descr, fortran_order or shape");
  return DC_OK;
}

/* Converts n file elements at raw into out (dtype widening, byte swap). */
static void npy_convert(const dc__npy_type *o, const uint8_t *raw, void *out, int64_t n) {
  int z = o->fsize;
  for (int64_t i = 0; i < n; i++) {
    uint8_t b[8];
    for (int k = 0; k < z; k++) b[k] = raw[i * z + (o->swap ? z - 1 - k : k)];
    switch (o->dt) {
    case DC_I32:
      if (o->kind == 'i' && z == 1)
        ((int32_t *)out)[i] = (int8_t)b[0];
      else if (o->kind == 'i' && z == 2)
        ((int32_t *)out)[i] = (int16_t)(b[0] | b[1] << 8);
      else if (o->kind == 'u' && z == 2)
        ((int32_t *)out)[i] = (uint16_t)(b[0] | b[1] << 8);
      else
        memcpy((char *)out + 4 * i, b, 4);
      break;
    case DC_I64:
      if (z == 4) {
        uint32_t v;
        memcpy(&v, b, 4);
        ((int64_t *)out)[i] = v;
      } else {
        memcpy((char *)out + 8 * i, b, 8);
      }
      break;
    case DC_BOOL:
      ((uint8_t *)out)[i] = b[0] != 0;
      break;
    default:
      memcpy((char *)out + (size_t)(i * z), b, (size_t)z);
      break;
    }
  }
}

dc_tensor *dc__npy_make(const dc__npy_type *o, dc_shape shape, bool fortran, const uint8_t *raw) {
  dc_tensor *t = dc__new(shape, o->dt, DC_CPU);
  if (!t) return NULL;
  int64_t numel = dc_numel(t);
  if (!fortran || shape.ndim < 2) {
    npy_convert(o, raw, dc_data(t), numel);
    return t;
  }
  /* Fortran order: element (i0..ik) at sum(i_d * fstride_d), fstride_0 = 1 */
  int64_t fstride[DC_MAX_DIMS], idx[DC_MAX_DIMS] = {0};
  fstride[0] = 1;
  for (int d = 1; d < shape.ndim; d++) fstride[d] = fstride[d - 1] * shape.d[d - 1];
  size_t esz = dc_dtype_size(o->dt);
  char *out = dc_data(t);
  for (int64_t i = 0; i < numel; i++) {
    int64_t off = 0;
    for (int d = 0; d < shape.ndim; d++) off += idx[d] * fstride[d];
    npy_convert(o, raw + off * o->fsize, out + (size_t)i * esz, 1);
    for (int d = shape.ndim - 1; d >= 0 && ++idx[d] == shape.d[d]; d--) idx[d] = 0;
  }
  return t;
}

/* Parses .npy bytes into a new tensor (caller's scope). */
dc_tensor *dc__npy_parse(const uint8_t *mem, size_t n, const char *what) {
  if (n < 10 || memcmp(mem, "\x93NUMPY", 6) != 0)
    return dc__err(DC_ERR_FORMAT, "%s: offset 0: not a .npy file (no \\x93NUMPY magic)", what);
  int major = mem[6];
  size_t hlen, hstart;
  if (major == 1) {
    hlen = (size_t)mem[8] | (size_t)mem[9] << 8;
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (n < 12) return dc__err(DC_ERR_FORMAT, "%s: truncated .npy header", what);
    hlen = (size_t)mem[8] | (size_t)mem[9] << 8 | (size_t)mem[10] << 16 | (size_t)mem[11] << 24;
    hstart = 12;
  } else {
    return dc__err(DC_ERR_FORMAT, "%s: offset 6: .npy version %d.%d is not supported (1, 2 or 3)",
                   what, major, mem[7]);
  }
  if (hlen > DC__NPY_MAX_HEADER || hlen > n - hstart)
    return dc__err(DC_ERR_FORMAT, "%s: offset 8: header length %zu exceeds %s (%zu bytes left)",
                   what, hlen, hlen > DC__NPY_MAX_HEADER ? "the 64 KiB limit" : "the file",
                   n - hstart);
  npy_header o = {0};
  if (parse_header((const char *)mem + hstart, hlen, hstart, what, &o)) return NULL;
  int64_t numel = 1, bytes;
  for (int d = 0; d < o.shape.ndim; d++)
    if (__builtin_mul_overflow(numel, o.shape.d[d], &numel)) numel = INT64_MAX;
  size_t data_at = hstart + hlen, have = n - data_at;
  char b[128];
  if (__builtin_mul_overflow(numel, (int64_t)o.t.fsize, &bytes) || (uint64_t)bytes != have)
    return dc__err(DC_ERR_FORMAT,
                   "%s: offset %zu: shape %s of %d-byte elements needs %s%lld "
                   "data bytes, the file has %zu (%s)",
                   what, data_at, dc_shape_str(o.shape, b, sizeof b), o.t.fsize,
                   numel == INT64_MAX ? "over " : "",
                   (long long)(numel == INT64_MAX ? INT64_MAX : bytes), have,
                   (uint64_t)bytes > have ? "truncated" : "extra data after the array");
  return dc__npy_make(&o.t, o.shape, o.fortran, mem + data_at);
}

dc_tensor *dc_npy_load(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "npy_load: path is NULL");
  uint8_t *mem;
  size_t n;
  if (dc__read_file(path, DC__NPY_MAX_FILE, &mem, &n)) return NULL;
  dc_tensor *t = dc__npy_parse(mem, n, path);
  dc__free(mem);
  return t;
}

int dc_npy_save(const char *path, const dc_tensor *t) {
  if (!path || !t) return dc__errs(DC_ERR_ARG, "npy_save: path or tensor is NULL");
  const char *descr = NULL;
  switch (t->dtype) {
  case DC_F32:
    descr = "<f4";
    break;
  case DC_F64:
    descr = "<f8";
    break;
  case DC_I64:
    descr = "<i8";
    break;
  case DC_I32:
    descr = "<i4";
    break;
  case DC_U8:
    descr = "|u1";
    break;
  case DC_BOOL:
    descr = "|b1";
    break;
  case DC_F16:
    descr = "<f2";
    break;
  case DC_BF16:
  case DC_DTYPE_COUNT:
    break;
  }
  if (!descr)
    return dc__errs(DC_ERR_UNSUPPORTED, "npy_save: NumPy has no %s dtype; convert to float32",
                    dc_dtype_name(t->dtype));
  char shape[256] = "(";
  size_t at = 1;
  for (int d = 0; d < t->ndim; d++)
    at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%lld", d ? ", " : "",
                           (long long)t->shape[d]);
  snprintf(shape + at, sizeof shape - at, "%s)", t->ndim == 1 ? "," : "");
  char hdr[512];
  int len = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
  int total = (10 + len + 1 + 63) / 64 * 64;
  while (10 + len + 1 < total) hdr[len++] = ' ';
  hdr[len++] = '\n';
  size_t bytes = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
  void *data = dc__malloc(bytes ? bytes : 1);
  if (!data) return DC_ERR_NOMEM;
  int rc = dc_copy_to_buffer(t, data, bytes);
  FILE *f = rc ? NULL : fopen(path, "wb");
  if (!rc && !f) rc = dc__errs(DC_ERR_IO, "npy_save: cannot create %s: %s", path, strerror(errno));
  if (f) {
    uint8_t pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(len & 0xFF), (uint8_t)(len >> 8)};
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(hdr, 1, (size_t)len, f) == (size_t)len &&
              fwrite(data, 1, bytes, f) == bytes;
    if (fclose(f) != 0 || !ok) rc = dc__errs(DC_ERR_IO, "npy_save: write to %s failed", path);
  }
  dc__free(data);
  return rc;
}

/* ---- npz ---- */

void dc_npz_free(dc_npz *z) {
  if (!z) return;
  for (int i = 0; i < z->n; i++) {
    dc__free(z->names[i]);
    dc__unref(z->arrays[i]);
  }
  dc__free(z->names);
  dc__free(z->arrays);
  dc__free(z);
}

dc_tensor *dc_npz_get(const dc_npz *z, const char *name) {
  if (!z || !name) return NULL;
  for (int i = 0; i < z->n; i++)
    if (strcmp(z->names[i], name) == 0) return z->arrays[i];
  return NULL;
}

/* Adds array t (the npz takes one unscoped reference) under the member's name less ".npy". */
static int npz_add(dc_npz *z, const char *member, size_t nl, dc_tensor *t) {
  char *name = dc__malloc(nl - 3);
  char **nn =
      name ? dc__realloc(z->names, sizeof *nn * (size_t)z->n, sizeof *nn * (size_t)(z->n + 1))
           : NULL;
  if (nn) z->names = nn;
  dc_tensor **na =
      nn ? dc__realloc(z->arrays, sizeof *na * (size_t)z->n, sizeof *na * (size_t)(z->n + 1))
         : NULL;
  if (!na) {
    dc__free(name);
    dc_free(t);
    return DC_ERR_NOMEM;
  }
  z->arrays = na;
  memcpy(name, member, nl - 4);
  name[nl - 4] = '\0';
  dc__ref(t);
  dc_free(t);
  z->names[z->n] = name;
  z->arrays[z->n++] = t;
  return DC_OK;
}

static int npz_member(dc__zipr *za, int64_t i, const char *what, dc_npz *z) {
  dc__zip_entry e;
  int rc = dc__zipr_entry(za, i, &e);
  if (rc != DC_OK) return rc;
  size_t nl = strlen(e.name);
  if (!dc__zip_name_safe(e.name))
    return dc__errs(DC_ERR_FORMAT,
                    "%s: zip entry %lld: member name '%s' points outside the archive (absolute, "
                    "'..' or an empty component)",
                    what, (long long)i, e.name);
  if (nl < 4 || strcmp(e.name + nl - 4, ".npy") != 0) return DC_OK; /* not an array */
  if (e.size > DC__NPY_MAX_FILE)
    return dc__errs(DC_ERR_FORMAT, "%s: member %s: size field %llu bytes is past the %zu limit",
                    what, e.name, (unsigned long long)e.size, DC__NPY_MAX_FILE);
  uint8_t *buf = dc__malloc((size_t)e.size ? (size_t)e.size : 1);
  if (!buf) return DC_ERR_NOMEM;
  rc = dc__zipr_read(za, i, buf, e.size);
  char label[1200];
  snprintf(label, sizeof label, "%.900s:%.250s", what, e.name);
  dc_tensor *t = rc ? NULL : dc__npy_parse(buf, (size_t)e.size, label);
  dc__free(buf);
  if (!t) return rc ? rc : (int)dc_last_status();
  return npz_add(z, e.name, nl, t);
}

dc_npz *dc__npz_parse(const uint8_t *mem, size_t n, const char *what) {
  dc__zipr *za = dc__zipr_open(mem, n, what, ".npz (zip)");
  if (!za) return NULL;
  dc_npz *z = dc__calloc(1, sizeof *z);
  int rc = z ? DC_OK : DC_ERR_NOMEM;
  int64_t count = dc__zipr_count(za);
  for (int64_t i = 0; rc == DC_OK && i < count; i++) {
    if (z->n >= 100000)
      rc = dc__errs(DC_ERR_FORMAT, "%s: more than 100000 arrays", what);
    else
      rc = npz_member(za, i, what, z);
  }
  dc__zipr_close(za);
  if (rc == DC_OK && z->n == 0)
    rc = dc__errs(DC_ERR_FORMAT, "%s: the archive holds no .npy members", what);
  if (rc) {
    dc_npz_free(z);
    return NULL;
  }
  return z;
}

dc_npz *dc_npz_load(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "npz_load: path is NULL");
  uint8_t *mem;
  size_t n;
  if (dc__read_file(path, DC__NPY_MAX_FILE, &mem, &n)) return NULL;
  dc_npz *z = dc__npz_parse(mem, n, path);
  dc__free(mem);
  return z;
}

/* The usual (features, targets) key pairs, in order of preference. */
static const char *const XY_KEYS[][2] = {{"x", "y"},
                                         {"X", "y"},
                                         {"X", "Y"},
                                         {"x_train", "y_train"},
                                         {"X_train", "y_train"},
                                         {"data", "labels"},
                                         {"data", "targets"},
                                         {"features", "targets"},
                                         {"features", "labels"},
                                         {"images", "labels"},
                                         {"inputs", "targets"},
                                         {"arr_0", "arr_1"}};

int dc__pick_xy(int n, char *const *names, const char *xk, const char *yk, int *xi, int *yi) {
  *xi = *yi = -1;
  for (size_t k = 0; !xk && k < sizeof XY_KEYS / sizeof *XY_KEYS && (*xi < 0 || *yi < 0); k++) {
    *xi = *yi = -1;
    for (int i = 0; i < n; i++) {
      if (strcmp(names[i], XY_KEYS[k][0]) == 0) *xi = i;
      if (strcmp(names[i], XY_KEYS[k][1]) == 0) *yi = i;
    }
  }
  if (!xk && (*xi < 0 || *yi < 0) && n == 2) {
    *xi = 0;
    *yi = 1;
  }
  if (!xk && *xi < 0 && n == 1) *xi = 0;
  if (xk)
    for (int i = 0; i < n; i++) {
      if (strcmp(names[i], xk) == 0) *xi = i;
      if (yk && strcmp(names[i], yk) == 0) *yi = i;
    }
  return *xi >= 0 && (!yk || *yi >= 0) ? DC_OK : DC_ERR_FORMAT;
}

/* Array i (none when i < 0) of a dataset: refused when its samples are empty. */
static int npz_refuse_empty(const dc_npz *z, int i, const char *path) {
  if (i < 0) return DC_OK;
  char field[300];
  snprintf(field, sizeof field, "array '%s' (the 'shape' in %s.npy's header)", z->names[i],
           z->names[i]);
  return dc__refuse_empty_samples(z->arrays[i], path, field);
}

dc_dataset *dc_npz_dataset(const char *path, const char *x_key, const char *y_key) {
  dc_npz *z = dc_npz_load(path);
  if (!z) return NULL;
  int xi, yi;
  if (dc__pick_xy(z->n, z->names, x_key, y_key, &xi, &yi)) {
    char keys[1024];
    size_t at = 0;
    for (int i = 0; i < z->n && at < sizeof keys; i++)
      at += (size_t)snprintf(keys + at, sizeof keys - at, "%s%s", i ? ", " : "", z->names[i]);
    dc__err(DC_ERR_FORMAT,
            "%s: cannot tell features from targets among arrays [%s]; name them "
            "(x_key, y_key)",
            path, keys);
    dc_npz_free(z);
    return NULL;
  }
  dc_dataset *ds = NULL;
  if (!npz_refuse_empty(z, xi, path) && !npz_refuse_empty(z, yi, path))
    ds = dc__xy_dataset(z->arrays[xi], yi >= 0 ? z->arrays[yi] : NULL, "NPZ", path);
  dc_npz_free(z);
  return ds;
}
