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

/* The bytes of an external tensor into out: the path stays inside dir. */
static int read_external(const tctx *c, const Onnx__TensorProto *t, const char *dir, void *out,
                         size_t bytes) {
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
  if (strncmp(real, rdir, dl) != 0 || real[dl] != '/')
    return dc__errs(DC_ERR_FORMAT,
                    "%s: tensor '%s': external data %s resolves outside the model's folder; "
                    "refused",
                    c->file, c->name, path);
  FILE *f = fopen(real, "rb");
  if (!f) return dc__errs(DC_ERR_IO, "%s: cannot open %s: %s", c->file, real, strerror(errno));
  bool ok = fseeko(f, (off_t)off, SEEK_SET) == 0 && fread(out, 1, bytes, f) == bytes;
  fclose(f);
  return ok ? DC_OK
            : dc__errs(DC_ERR_FORMAT,
                       "%s: tensor '%s': external data %s is shorter than offset "
                       "%lld + length %zu",
                       c->file, c->name, real, (long long)off, bytes);
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

/* Copies n values of the typed repeated field (or raw data) into out as dt. */
static int fill(const tctx *c, const Onnx__TensorProto *t, int64_t n, void *out, bool f32,
                const char *dir) {
  size_t esz = t->data_type == 1 || t->data_type == 6 ? 4 : 8, bytes = esz * (size_t)n;
  bool ext = t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  void *src = NULL, *tmp = NULL;
  if (ext || t->has_raw_data) {
    if (!ext && t->raw_data.len != bytes)
      return terr(c, DC_ERR_FORMAT, "raw_data", "length does not match the dims");
    if (ext) {
      if (!(src = tmp = dc__malloc(bytes ? bytes : 1))) return DC_ERR_NOMEM;
      int rc = read_external(c, t, dir, tmp, bytes);
      if (rc != DC_OK) return dc__free(tmp), rc;
    } else {
      src = t->raw_data.data;
    }
  } else {
    size_t have = t->data_type == 1    ? t->n_float_data
                  : t->data_type == 11 ? t->n_double_data
                  : t->data_type == 7  ? t->n_int64_data
                                       : t->n_int32_data;
    src = t->data_type == 1    ? (void *)t->float_data
          : t->data_type == 11 ? (void *)t->double_data
          : t->data_type == 7  ? (void *)t->int64_data
                               : (void *)t->int32_data;
    if (have != (size_t)n) return terr(c, DC_ERR_FORMAT, "data", "count does not match the dims");
  }
  for (int64_t i = 0; i < n; i++) {
    const uint8_t *p = (const uint8_t *)src + (size_t)i * esz;
    double v;
    if (t->data_type == 1) {
      float x;
      memcpy(&x, p, 4);
      v = x;
    } else if (t->data_type == 11)
      memcpy(&v, p, 8);
    else if (t->data_type == 6) {
      int32_t x;
      memcpy(&x, p, 4);
      v = (double)x;
    } else {
      int64_t x;
      memcpy(&x, p, 8);
      ((int64_t *)out)[i] = x;
      continue;
    }
    if (f32)
      ((float *)out)[i] = (float)v;
    else
      ((int64_t *)out)[i] = (int64_t)v;
  }
  dc__free(tmp);
  return DC_OK;
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
  void *buf = dc__malloc((f32 ? 4 : 8) * (size_t)(n ? n : 1));
  int rc = buf ? fill(&c, t, n, buf, f32, dir) : DC_ERR_NOMEM;
  dc_tensor *r = rc == DC_OK ? dc_from_data(buf, s, f32 ? DC_F32 : DC_I64) : NULL;
  dc__free(buf);
  return r;
}
