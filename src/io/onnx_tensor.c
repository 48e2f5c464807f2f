/* ONNX tensors (initializers, Constant values) read into deepc tensors, every size checked
 * before anything is allocated: rank, dims, element count, data length against the dims, and
 * external data confined to the model's folder (no absolute paths, no "..", no symlink out:
 * the CVE-2022-25882 class). float32/float64 become float32, int64/int32 int64. */
#include "onnx-impl.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct tctx {
  const char *file, *name;
} tctx;

static int terr(const tctx *c, dc_status s, const char *field, const char *what) {
  return dc__errs(s, "%s: tensor '%s': %s %s", c->file, c->name, field, what);
}

static const char *ext_value(const Onnx__TensorProto *t, const char *key) {
  for (size_t i = 0; i < t->n_external_data; i++)
    if (t->external_data[i]->key && !strcmp(t->external_data[i]->key, key))
      return t->external_data[i]->value;
  return NULL;
}

/* A non-negative decimal (external offset / length); false when malformed. */
static bool parse_u64(const char *s, int64_t *v) {
  if (!s || !*s) return false;
  char *end;
  errno = 0;
  long long x = strtoll(s, &end, 10);
  if (*end || errno || x < 0) return false;
  *v = x;
  return true;
}

/* Opens the external data of t for bytes bytes: the path stays inside dir, the file holds
 * offset + bytes. *f is positioned at the offset. */
static int open_external(const tctx *c, const Onnx__TensorProto *t, const char *dir, size_t bytes,
                         FILE **f) {
  const char *loc = ext_value(t, "location");
  if (!loc || !*loc) return terr(c, DC_ERR_FORMAT, "external_data", "has no 'location'");
  if (loc[0] == '/' || strstr(loc, "..") || strchr(loc, '\\') || strchr(loc, ':'))
    return dc__errs(DC_ERR_FORMAT,
                    "%s: tensor '%s': external_data location '%.200s' leaves the model's folder "
                    "(absolute path or '..'); refused",
                    c->file, c->name, loc);
  int64_t off = 0, len = (int64_t)bytes;
  if ((ext_value(t, "offset") && !parse_u64(ext_value(t, "offset"), &off)) ||
      (ext_value(t, "length") && !parse_u64(ext_value(t, "length"), &len)) || len != (int64_t)bytes)
    return terr(c, DC_ERR_FORMAT, "external_data offset/length",
                "is malformed or does not match the dims");
  char path[PATH_MAX], real[PATH_MAX], rdir[PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, loc) >= (int)sizeof path)
    return terr(c, DC_ERR_FORMAT, "external_data location", "is too long");
  if (!realpath(dir, rdir) || !realpath(path, real))
    return dc__errs(DC_ERR_IO, "%s: tensor '%s': external data file %s: %s", c->file, c->name, path,
                    strerror(errno));
  size_t dl = strlen(rdir);
  if (strncmp(real, rdir, dl) != 0 || (real[dl] != '/' && strcmp(rdir, "/") != 0))
    return dc__errs(DC_ERR_FORMAT,
                    "%s: tensor '%s': external data %s resolves outside the model's folder "
                    "(a symbolic link?); refused",
                    c->file, c->name, path);
  struct stat st;
  if (stat(real, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < off ||
      (uint64_t)(st.st_size - off) < bytes)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: tensor '%s': external data %s is not a file of offset %lld + length %zu "
                    "bytes",
                    c->file, c->name, real, (long long)off, bytes);
  if (!(*f = fopen(real, "rb")) || fseeko(*f, (off_t)off, SEEK_SET) != 0) {
    if (*f) fclose(*f);
    return dc__errs(DC_ERR_IO, "%s: cannot read %s: %s", c->file, real, strerror(errno));
  }
  return DC_OK;
}

/* Checked dims into *s and the element count into *n. */
static int dims_of(const tctx *c, const Onnx__TensorProto *t, dc_shape *s, int64_t *n) {
  if (t->n_dims >= DC_MAX_DIMS) return terr(c, DC_ERR_FORMAT, "dims", "has too many dimensions");
  *s = (dc_shape){.ndim = (int)t->n_dims};
  *n = 1;
  for (size_t i = 0; i < t->n_dims; i++) {
    if (t->dims[i] < 0) return terr(c, DC_ERR_FORMAT, "dims", "holds a negative size");
    if (dc__mul_overflow(*n, t->dims[i], n) || *n > DC__ONNX_MAX_ELEMS)
      return terr(c, DC_ERR_FORMAT, "dims", "give more than 2^31 elements");
    s->d[i] = t->dims[i];
  }
  return DC_OK;
}

static size_t elem_size(int32_t dt) { return dt == 1 || dt == 6 ? 4 : 8; }

/* The n values of t (typed field, raw data or external file) as bytes of its data_type:
 * *src, owned by the message or in *tmp (to free). Lengths are checked before allocating. */
static int source(const tctx *c, const Onnx__TensorProto *t, int64_t n, const char *dir,
                  const void **src, void **tmp) {
  size_t bytes = elem_size(t->data_type) * (size_t)n;
  if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
    FILE *f = NULL;
    int rc = open_external(c, t, dir, bytes, &f);
    if (rc != DC_OK) return rc;
    bool ok = (*tmp = dc__malloc(bytes ? bytes : 1)) && fread(*tmp, 1, bytes, f) == bytes;
    fclose(f);
    *src = *tmp;
    return ok ? DC_OK
              : dc__errs(DC_ERR_IO, "%s: tensor '%s': external data read failed", c->file, c->name);
  }
  if (t->has_raw_data) {
    if (t->raw_data.len != bytes)
      return terr(c, DC_ERR_FORMAT, "raw_data", "length does not match the dims");
    *src = t->raw_data.data;
    return DC_OK;
  }
  int32_t dt = t->data_type;
  size_t have = dt == 1    ? t->n_float_data
                : dt == 11 ? t->n_double_data
                : dt == 7  ? t->n_int64_data
                           : t->n_int32_data;
  if (have != (size_t)n) return terr(c, DC_ERR_FORMAT, "data", "count does not match the dims");
  *src = dt == 1    ? (const void *)t->float_data
         : dt == 11 ? (const void *)t->double_data
         : dt == 7  ? (const void *)t->int64_data
                    : (const void *)t->int32_data;
  return DC_OK;
}

/* n values of data_type dt at src into out: float32 (f32) or int64. */
static void convert(int32_t dt, const void *src, int64_t n, void *out, bool f32) {
  for (int64_t i = 0; i < n; i++) {
    const uint8_t *p = (const uint8_t *)src + (size_t)i * elem_size(dt);
    double v;
    if (dt == 1) {
      float x;
      memcpy(&x, p, 4);
      v = x;
    } else if (dt == 11) {
      memcpy(&v, p, 8);
    } else if (dt == 6) {
      int32_t x;
      memcpy(&x, p, 4);
      v = (double)x;
    } else {
      memcpy((int64_t *)out + i, p, 8);
      continue;
    }
    if (f32)
      ((float *)out)[i] = (float)v;
    else
      ((int64_t *)out)[i] = (int64_t)v;
  }
}

dc_tensor *dc__onnx_tensor(const Onnx__TensorProto *t, const char *file, const char *dir) {
  tctx c = {file, t->name ? t->name : "(unnamed)"};
  int32_t dt = t->has_data_type ? t->data_type : 0;
  if (dt != 1 && dt != 11 && dt != 7 && dt != 6)
    return terr(&c, DC_ERR_UNSUPPORTED, "data_type", "is not float, double, int32 or int64"), NULL;
  if (t->segment) return terr(&c, DC_ERR_UNSUPPORTED, "segment", "is not supported"), NULL;
  dc_shape s;
  int64_t n;
  if (dims_of(&c, t, &s, &n) != DC_OK) return NULL;
  bool f32 = dt == 1 || dt == 11;
  const void *src = NULL;
  void *tmp = NULL, *buf = NULL;
  int rc = source(&c, t, n, dir, &src, &tmp);
  if (rc == DC_OK && !(buf = dc__malloc((f32 ? 4 : 8) * (size_t)(n ? n : 1)))) rc = DC_ERR_NOMEM;
  if (rc == DC_OK) convert(dt, src, n, buf, f32);
  dc_tensor *r = rc == DC_OK ? dc_from_data(buf, s, f32 ? DC_F32 : DC_I64) : NULL;
  dc__free(buf);
  dc__free(tmp);
  return r;
}
