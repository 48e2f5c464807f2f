/* dc_dataset_open: recognises a dataset from its path and first bytes (IDX, CIFAR batches,
 * ImageFolder, .npy, .npz, .csv, pickle) and opens it with the right reader. Used by
 * `deepc data info` and by commands that take a dataset path. */
#include "data-impl.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool path_says_fashion(const char *path) {
  for (const char *p = path; *p; p++)
    if (strncasecmp(p, "fashion", 7) == 0) return true;
  return false;
}

/* First bytes of a file, gunzipped when it is gzip: returns how many (up to n), SIZE_MAX when
 * memory ran out (the error is set). */
static size_t peek(const char *path, uint8_t *out, size_t n, bool *gz) {
  uint8_t head[64 * 1024];
  *gz = false;
  FILE *f = fopen(path, "rb");
  if (!f) return 0;
  size_t got = fread(head, 1, sizeof head, f);
  fclose(f);
  if (got >= 2 && head[0] == 0x1f && head[1] == 0x8b) {
    *gz = true;
    dc__src s;
    size_t k = 0;
    int rc = dc__src_open(&s, head, got, path);
    if (rc == DC_OK) {
      if ((rc = dc__src_read(&s, out, n, &k)) != DC_OK) k = 0;
      dc__src_close(&s);
    }
    if (rc == DC_ERR_NOMEM) return SIZE_MAX;
    dc_clear_error();
    return k;
  }
  size_t k = got < n ? got : n;
  memcpy(out, head, k);
  return k;
}

/* The labels file beside an IDX images file (images-idx3 -> labels-idx1), or NULL; *nomem when
 * memory ran out. */
static char *labels_beside(const char *images, bool *nomem) {
  const char *at = strstr(images, "images");
  *nomem = false;
  if (!at) return NULL;
  char *l = dc__malloc(strlen(images) + 1);
  if (!l) return (*nomem = true), NULL;
  strcpy(l, images);
  memcpy(l + (at - images), "labels", 6);
  char *idx = strstr(l + (at - images), "idx3");
  if (idx) idx[3] = '1';
  if (dc__is_file(l)) return l;
  size_t n = strlen(l);
  if (n > 3 && strcmp(l + n - 3, ".gz") == 0) { /* labels may be plain while images are not */
    l[n - 3] = '\0';
    if (dc__is_file(l)) return l;
  }
  dc__free(l);
  return NULL;
}

static dc_dataset *open_idx(const char *path, const uint8_t *m) {
  if (m[3] >= 3) { /* images */
    bool nomem;
    char *labels = labels_beside(path, &nomem);
    if (nomem) return NULL;
    if (labels) {
      dc_dataset *ds = dc_idx_dataset(path, labels, 0);
      dc__free(labels);
      if (ds && ds->nclasses == 10) {
        bool fashion = path_says_fashion(path);
        snprintf(ds->format, sizeof ds->format, "%s", fashion ? "Fashion-MNIST" : "MNIST");
        if (dc__dataset_set_classes(ds, 10, fashion ? dc__fashion_classes : dc__mnist_classes)) {
          dc_dataset_free(ds);
          return NULL;
        }
      }
      return ds;
    }
  }
  dc_tensor *t = dc_idx_load(path);
  if (!t) return NULL;
  dc_dataset *ds = NULL;
  if (t->ndim == 1 && t->dtype == DC_U8) { /* a labels file: its values are the classes */
    ds = dc__xy_dataset(t, t, "IDX labels", path);
  } else if (dc__idx_refuse_empty_samples(t, path) == DC_OK) {
    ds = dc__xy_dataset(t, NULL, "IDX", path);
  }
  dc_free(t);
  return ds;
}

static dc_dataset *open_dir(const char *path) {
  char *img, *lbl;
  for (int train = 1; train >= 0; train--) {
    int found = dc__idx_find_pair(path, train, &img, &lbl);
    if (found < 0) return NULL; /* out of memory */
    if (found) {
      dc__free(img);
      dc__free(lbl);
      return path_says_fashion(path) ? dc_fashion_mnist(path, train) : dc_mnist(path, train);
    }
  }
  static const char *const c10[] = {"data_batch_1.bin", "test_batch.bin",
                                    "cifar-10-batches-bin/data_batch_1.bin",
                                    "cifar-10-batches-bin/test_batch.bin"};
  for (int k = 0; k < 4; k++) {
    char *p = dc__path_join(path, c10[k]);
    if (!p) return NULL;
    bool hit = dc__is_file(p);
    dc__free(p);
    if (hit) return dc_cifar10(path, k % 2 == 0);
  }
  static const char *const c100[] = {"train.bin", "test.bin", "cifar-100-binary/train.bin",
                                     "cifar-100-binary/test.bin"};
  for (int k = 0; k < 4; k++) {
    char *p = dc__path_join(path, c100[k]);
    if (!p) return NULL;
    bool hit = dc__is_file(p);
    dc__free(p);
    if (hit) return dc_cifar100(path, k % 2 == 0, false);
  }
  return dc_image_folder(path, .grayscale = false);
}

dc_dataset *dc_dataset_open(const char *path) {
  if (!path) return dc__err(DC_ERR_ARG, "dataset_open: path is NULL");
  if (dc__is_dir(path)) return open_dir(path);
  int64_t size = dc__file_size(path);
  if (size < 0) return dc__err(DC_ERR_IO, "%s: no such file or folder", path);
  uint8_t m[16] = {0};
  bool gz;
  size_t n = peek(path, m, sizeof m, &gz);
  if (n == SIZE_MAX) return NULL;
  if (n >= 4 && m[0] == 0 && m[1] == 0 &&
      (m[2] == 0x08 || m[2] == 0x09 || m[2] == 0x0B || m[2] == 0x0C || m[2] == 0x0D ||
       m[2] == 0x0E))
    return open_idx(path, m);
  if (n >= 6 && memcmp(m, "\x93NUMPY", 6) == 0) {
    dc_tensor *t = dc_npy_load(path);
    bool ok = t && dc__refuse_empty_samples(t, path, "the array ('shape' in its header)") == 0;
    dc_dataset *ds = ok ? dc__xy_dataset(t, NULL, "NPY", path) : NULL;
    dc_free(t);
    return ds;
  }
  if (!gz && n >= 4 && memcmp(m, "PK\x03\x04", 4) == 0) return dc_npz_dataset(path, NULL, NULL);
  if (!gz && n >= 2 && m[0] == 0x80 && m[1] >= 2 && m[1] <= 5) return dc_pickle_dataset(path);
  if (dc__ends_with_ci(path, ".pkl") || dc__ends_with_ci(path, ".pickle"))
    return dc_pickle_dataset(path);
  if (dc__ends_with_ci(path, ".csv") || dc__ends_with_ci(path, ".tsv"))
    return dc_csv_dataset(path, .delimiter = 0);
  if (!gz && (size % 3073 == 0 || size % 3074 == 0) && size > 0) return dc__cifar_file(path);
  if (dc__image_kind(m, n))
    return dc__err(DC_ERR_FORMAT,
                   "%s: a single %s image; give its folder (ImageFolder layout "
                   "root/<class>/<image>)",
                   path, dc__image_kind(m, n));
  return dc__err(DC_ERR_FORMAT,
                 "%s: cannot tell the format (first bytes %02x %02x %02x %02x): "
                 "expected IDX, CIFAR .bin, .npy, .npz, .csv, a pickle or a folder",
                 path, m[0], m[1], m[2], m[3]);
}
