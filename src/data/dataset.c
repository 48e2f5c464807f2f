/* The dataset object (refcounted, a table of functions per format), the per-sample generator,
 * datasets over in-memory tensors, and torch.utils.data's Subset, random_split and
 * ConcatDataset. Readers of each file format live in their own files. */
#include "data-impl.h"
#include "deepc/autograd.h"

#include "../core/philox.h"

#include <math.h>
#include <string.h>

/* ---- generator ---- */

#define DC__STREAM_RNG 0x5EEDull

double dc__rng_uniform(dc__rng *r) {
  dc__u32x4 v = dc__philox(r->key, DC__STREAM_RNG, r->ctr++);
  return dc__u01d(v.v[0], v.v[1]);
}

int64_t dc__rng_randint(dc__rng *r, int64_t lo, int64_t hi) {
  if (hi <= lo) return lo;
  int64_t v = lo + (int64_t)floor(dc__rng_uniform(r) * (double)(hi - lo));
  return v >= hi ? hi - 1 : v;
}

uint64_t dc__mix_seed(uint64_t seed, uint64_t stream, uint64_t index) {
  dc__u32x4 v = dc__philox(seed, stream, index);
  return ((uint64_t)v.v[0] << 32 | v.v[1]) ^ ((uint64_t)v.v[2] << 32 | v.v[3]) >> 1;
}

void dc__permutation(int64_t *perm, int64_t n, uint64_t seed) {
  dc__rng r = {seed, 0};
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = dc__rng_randint(&r, 0, i + 1);
    int64_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

/* ---- dataset object ---- */

dc_dataset *dc__dataset_new(const dc__dataset_vt *vt, const char *format, const char *path,
                            int64_t n, void *impl) {
  dc_dataset *ds = dc__calloc(1, sizeof *ds);
  if (!ds) return NULL;
  ds->path = dc__strdup(path ? path : "");
  if (!ds->path) {
    dc__free(ds);
    return NULL;
  }
  ds->vt = vt;
  ds->refcount = 1;
  ds->n = n;
  snprintf(ds->format, sizeof ds->format, "%s", format);
  ds->impl = impl;
  return ds;
}

dc_dataset *dc__dataset_retain(dc_dataset *ds) {
  if (ds) __atomic_add_fetch(&ds->refcount, 1, __ATOMIC_RELAXED);
  return ds;
}

static void free_classes(dc_dataset *ds) {
  if (ds->classes)
    for (int64_t k = 0; k < ds->nclasses; k++) dc__free(ds->classes[k]);
  dc__free(ds->classes);
  ds->classes = NULL;
  ds->nclasses = 0;
}

void dc_dataset_free(dc_dataset *ds) {
  if (!ds || __atomic_sub_fetch(&ds->refcount, 1, __ATOMIC_ACQ_REL) > 0) return;
  if (ds->vt->destroy) ds->vt->destroy(ds);
  dc_transform_free(ds->tf);
  free_classes(ds);
  dc__free(ds->path);
  dc__free(ds);
}

int dc__dataset_set_classes(dc_dataset *ds, int64_t n, const char *const *names) {
  free_classes(ds);
  if (n <= 0) return DC_OK;
  ds->classes = dc__calloc((size_t)n, sizeof *ds->classes);
  if (!ds->classes) return DC_ERR_NOMEM;
  ds->nclasses = n;
  for (int64_t k = 0; k < n; k++) {
    char num[32];
    snprintf(num, sizeof num, "%lld", (long long)k);
    ds->classes[k] = dc__strdup(names && names[k] ? names[k] : num);
    if (!ds->classes[k]) {
      free_classes(ds);
      return DC_ERR_NOMEM;
    }
  }
  return DC_OK;
}

int dc__dataset_fetch(const dc_dataset *ds, int64_t i, dc__sample *s, uint64_t seed) {
  if (i < 0 || i >= ds->n)
    return dc__errs(DC_ERR_ARG, "dataset %s: index %lld out of range [0, %lld)", ds->format,
                    (long long)i, (long long)ds->n);
  s->has_y = false;
  s->hwc = false;
  int rc = ds->vt->get(ds, i, s, dc__mix_seed(seed, 1, 0));
  if (rc || !ds->tf) return rc;
  dc__rng r = {seed, 0};
  return dc__tf_apply(ds->tf, s, &r);
}

int64_t dc_dataset_len(const dc_dataset *ds) { return ds ? ds->n : 0; }
const char *dc_dataset_format(const dc_dataset *ds) { return ds ? ds->format : ""; }
const char *dc_dataset_path(const dc_dataset *ds) { return ds ? ds->path : ""; }
int64_t dc_dataset_num_classes(const dc_dataset *ds) { return ds ? ds->nclasses : 0; }
int64_t dc_dataset_skipped(const dc_dataset *ds) { return ds ? ds->skipped : 0; }

const char *dc_dataset_class_name(const dc_dataset *ds, int64_t k) {
  if (!ds || !ds->classes || k < 0 || k >= ds->nclasses) return NULL;
  return ds->classes[k];
}

int64_t dc_dataset_label(const dc_dataset *ds, int64_t i) {
  if (!ds) {
    dc__err(DC_ERR_ARG, "dataset_label: dataset is NULL");
    return -1;
  }
  if (i < 0 || i >= ds->n) {
    dc__err(DC_ERR_ARG, "dataset_label: index %lld out of range [0, %lld)", (long long)i,
            (long long)ds->n);
    return -1;
  }
  if (!ds->vt->label) {
    dc__err(DC_ERR_UNSUPPORTED, "dataset_label: %s samples have no class labels", ds->format);
    return -1;
  }
  return ds->vt->label(ds, i);
}

int dc_dataset_set_transform(dc_dataset *ds, dc_transform *tf) {
  if (!ds) {
    dc_transform_free(tf);
    return dc__errs(DC_ERR_ARG, "dataset_set_transform: dataset is NULL");
  }
  dc_transform_free(ds->tf);
  ds->tf = tf;
  return DC_OK;
}

static dc_tensor *arr_tensor(const dc__arr *a) {
  dc_shape s = {.ndim = a->ndim};
  memcpy(s.d, a->shape, sizeof(int64_t) * (size_t)a->ndim);
  return dc_from_data(a->data, s, a->dtype);
}

int dc_dataset_get(dc_dataset *ds, int64_t i, uint64_t seed, dc_tensor **x, dc_tensor **y) {
  if (x) *x = NULL;
  if (y) *y = NULL;
  if (!ds) return dc__errs(DC_ERR_ARG, "dataset_get: dataset is NULL");
  dc__sample s = {0};
  int rc = dc__dataset_fetch(ds, i, &s, seed);
  if (rc == DC_OK && x && !(*x = arr_tensor(&s.x))) rc = dc_last_status();
  if (rc == DC_OK && y && s.has_y && !(*y = arr_tensor(&s.y))) rc = dc_last_status();
  if (rc && x) {
    dc_free(*x);
    *x = NULL;
  }
  dc__sample_free(&s);
  return rc;
}

/* ---- datasets over tensors ---- */

typedef struct array_impl {
  dc_tensor *x;     /* [N, ...] contiguous */
  dc_tensor *y;     /* [N, ...] contiguous, or NULL */
  bool hwc;         /* x is uint8 images [N, H, W(, C)] */
  size_t row_bytes; /* bytes of one sample of x */
  size_t y_row;     /* bytes of one target */
} array_impl;

static int array_get(const dc_dataset *ds, int64_t i, dc__sample *s, uint64_t seed) {
  (void)seed;
  const array_impl *a = ds->impl;
  dc__arr *o = &s->x;
  if (!dc__arr_reserve(o, a->row_bytes)) return DC_ERR_NOMEM;
  o->dtype = a->x->dtype;
  o->ndim = a->x->ndim - 1;
  memcpy(o->shape, a->x->shape + 1, sizeof(int64_t) * (size_t)o->ndim);
  if (a->hwc && o->ndim == 2) o->shape[o->ndim++] = 1;
  s->hwc = a->hwc;
  memcpy(o->data, (const char *)dc_data(a->x) + (size_t)i * a->row_bytes, a->row_bytes);
  s->has_y = a->y != NULL;
  if (!a->y) return DC_OK;
  dc__arr *t = &s->y;
  if (!dc__arr_reserve(t, a->y_row)) return DC_ERR_NOMEM;
  t->dtype = a->y->dtype;
  t->ndim = a->y->ndim - 1;
  memcpy(t->shape, a->y->shape + 1, sizeof(int64_t) * (size_t)t->ndim);
  memcpy(t->data, (const char *)dc_data(a->y) + (size_t)i * a->y_row, a->y_row);
  return DC_OK;
}

static int64_t array_label(const dc_dataset *ds, int64_t i) {
  const array_impl *a = ds->impl;
  return ((const int64_t *)dc_data(a->y))[i];
}

static void array_destroy(dc_dataset *ds) {
  array_impl *a = ds->impl;
  dc__unref(a->x);
  dc__unref(a->y);
  dc__free(a);
}

static const dc__dataset_vt ARRAY_VT = {array_get, NULL, array_destroy};
static const dc__dataset_vt ARRAY_LABELS_VT = {array_get, array_label, array_destroy};

/* t itself when it is on the cpu, else an explicit copy to the host (which waits for the
 * device), without recording a graph; a new reference either way (dc_free it). */
static dc_tensor *on_host(dc_tensor *t) {
  if (t->device == DC_CPU) return dc_contiguous(t);
  bool prev = dc_set_grad_enabled(false);
  dc_tensor *h = dc_to_device(t, DC_CPU);
  dc_set_grad_enabled(prev);
  return h;
}

/* Takes an owned, unscoped reference to a contiguous host version of t. */
static dc_tensor *own_contiguous(dc_tensor *t) {
  dc_tensor *c = on_host(t);
  if (!c) return NULL;
  dc__ref(c);
  dc_free(c);
  return c;
}

int dc__empty_sample_dim(const dc_tensor *t) {
  for (int d = 1; t && d < t->ndim; d++)
    if (t->shape[d] == 0) return d;
  return 0;
}

int dc__refuse_empty_samples(const dc_tensor *t, const char *path, const char *field) {
  int d = dc__empty_sample_dim(t);
  if (!d) return DC_OK;
  char b[128];
  return dc__errs(DC_ERR_FORMAT,
                  "%s: %s has shape %s: sample dimension %d is 0, so every sample is empty (a "
                  "dataset's samples need at least one element)",
                  path, field, dc_shape_str(dc_shape_of(t), b, sizeof b), d);
}

dc_dataset *dc__array_dataset(dc_tensor *x, dc_tensor *y, bool hwc, const char *format,
                              const char *path) {
  char b1[128], b2[128];
  if (!x) return dc__err(DC_ERR_ARG, "dataset %s: features tensor is NULL", format);
  if (x->ndim < 1)
    return dc__err(DC_ERR_ARG, "dataset %s: features need a sample dimension, got shape %s", format,
                   dc_shape_str(dc_shape_of(x), b1, sizeof b1));
  const char *where = path && *path ? path : format; /* the readers name the field first */
  if (dc__refuse_empty_samples(x, where, "the features") ||
      dc__refuse_empty_samples(y, where, "the targets"))
    return NULL;
  if (y && (y->ndim < 1 || y->shape[0] != x->shape[0]))
    return dc__err(DC_ERR_ARG,
                   "%s%sdataset %s: features of shape %s and targets of shape %s disagree on the "
                   "number of samples",
                   path && *path ? path : "", path && *path ? ": " : "", format,
                   dc_shape_str(dc_shape_of(x), b1, sizeof b1),
                   dc_shape_str(dc_shape_of(y), b2, sizeof b2));
  if (hwc && (x->dtype != DC_U8 || x->ndim < 3 || x->ndim > 4))
    return dc__err(DC_ERR_ARG, "dataset %s: images must be uint8 [N, H, W] or [N, H, W, C]",
                   format);
  array_impl *a = dc__calloc(1, sizeof *a);
  if (!a) return NULL;
  a->hwc = hwc;
  a->x = own_contiguous(x);
  a->y = y ? own_contiguous(y) : NULL;
  if (!a->x || (y && !a->y)) {
    dc__unref(a->x);
    dc__unref(a->y);
    dc__free(a);
    return NULL;
  }
  int64_t n = x->shape[0];
  a->row_bytes = n ? (size_t)(dc_numel(a->x) / n) * dc_dtype_size(x->dtype) : 0;
  a->y_row = y && n ? (size_t)(dc_numel(a->y) / n) * dc_dtype_size(y->dtype) : 0;
  bool labels = y && y->dtype == DC_I64 && y->ndim == 1;
  dc_dataset *ds = dc__dataset_new(labels ? &ARRAY_LABELS_VT : &ARRAY_VT, format, path, n, a);
  if (!ds) {
    dc__unref(a->x);
    dc__unref(a->y);
    dc__free(a);
  }
  return ds;
}

/* Integer targets [N] become int64 class labels 0..K-1 (K = 1 + the largest). */
dc_dataset *dc__xy_dataset(dc_tensor *x, dc_tensor *y, const char *format, const char *path) {
  if (!x) return dc__err(DC_ERR_ARG, "dataset %s: features tensor is NULL", format);
  bool hwc = x->dtype == DC_U8 &&
             (x->ndim == 3 ||
              (x->ndim == 4 && (x->shape[3] == 1 || x->shape[3] == 3 || x->shape[3] == 4)));
  dc_tensor *labels = NULL;
  int64_t nclasses = 0;
  if (y && y->ndim == 1 && !dc_dtype_is_float(y->dtype) && y->dtype != DC_BOOL) {
    dc_tensor *yh = on_host(y); /* the labels are read here, so on the host */
    labels = yh ? dc_to_dtype(yh, DC_I64) : NULL;
    dc_free(yh);
    if (!labels) return NULL;
    const int64_t *p = dc_data(labels);
    for (int64_t i = 0; i < labels->shape[0]; i++) {
      if (p[i] < 0) {
        long long bad = (long long)p[i]; /* read before labels (and p) are freed */
        dc_free(labels);
        return dc__err(DC_ERR_FORMAT,
                       "%s: target %lld of sample %lld is negative; class "
                       "labels must be 0..K-1",
                       path && *path ? path : format, bad, (long long)i);
      }
      if (p[i] >= nclasses) nclasses = p[i] + 1;
    }
    /* every class gets a name: a label of 16 million in a 200-byte file would make 16 million
     * (found by fuzz_pydata); more than 65536 classes need 1/4 as many samples */
    if (nclasses > (int64_t)1 << 24 ||
        (nclasses > (int64_t)1 << 16 && nclasses > 4 * labels->shape[0])) {
      long long n = (long long)labels->shape[0];
      dc_free(labels);
      return dc__err(DC_ERR_FORMAT,
                     "%s: largest class label %lld is implausible for a "
                     "classification set of %lld samples",
                     path && *path ? path : format, (long long)(nclasses - 1), n);
    }
  }
  dc_dataset *ds = dc__array_dataset(x, labels ? labels : y, hwc, format, path);
  dc_free(labels);
  if (ds && nclasses && dc__dataset_set_classes(ds, nclasses, NULL) != DC_OK) {
    dc_dataset_free(ds);
    return NULL;
  }
  return ds;
}

dc_dataset *dc_tensor_dataset(dc_tensor *x, dc_tensor *y) {
  return dc__xy_dataset(x, y, "TensorDataset", "");
}

/* ---- Subset ---- */

typedef struct subset_impl {
  dc_dataset *parent;
  int64_t *idx; /* [n] indices into parent */
} subset_impl;

static int subset_get(const dc_dataset *ds, int64_t i, dc__sample *s, uint64_t seed) {
  const subset_impl *u = ds->impl;
  return dc__dataset_fetch(u->parent, u->idx[i], s, seed);
}

static int64_t subset_label(const dc_dataset *ds, int64_t i) {
  const subset_impl *u = ds->impl;
  return dc_dataset_label(u->parent, u->idx[i]);
}

static void subset_destroy(dc_dataset *ds) {
  subset_impl *u = ds->impl;
  dc_dataset_free(u->parent);
  dc__free(u->idx);
  dc__free(u);
}

static const dc__dataset_vt SUBSET_VT = {subset_get, subset_label, subset_destroy};
static const dc__dataset_vt SUBSET_NOLABEL_VT = {subset_get, NULL, subset_destroy};

static dc_dataset *subset_new(dc_dataset *ds, const int64_t *indices, int64_t n) {
  subset_impl *u = dc__calloc(1, sizeof *u);
  if (!u) return NULL;
  u->idx = dc__malloc((size_t)(n ? n : 1) * sizeof *u->idx);
  if (!u->idx) {
    dc__free(u);
    return NULL;
  }
  if (n) memcpy(u->idx, indices, (size_t)n * sizeof *u->idx);
  u->parent = dc__dataset_retain(ds);
  char fmt[32];
  snprintf(fmt, sizeof fmt, "Subset(%.20s)", ds->format);
  dc_dataset *r =
      dc__dataset_new(ds->vt->label ? &SUBSET_VT : &SUBSET_NOLABEL_VT, fmt, ds->path, n, u);
  if (!r || dc__dataset_set_classes(r, ds->nclasses, (const char *const *)ds->classes) != DC_OK) {
    if (r)
      dc_dataset_free(r);
    else {
      dc_dataset_free(u->parent);
      dc__free(u->idx);
      dc__free(u);
    }
    return NULL;
  }
  return r;
}

dc_dataset *dc_subset(dc_dataset *ds, const int64_t *indices, int64_t n) {
  if (!ds) return dc__err(DC_ERR_ARG, "subset: dataset is NULL");
  if (n < 0 || (n > 0 && !indices))
    return dc__err(DC_ERR_ARG, "subset: need n >= 0 indices, got n=%lld%s", (long long)n,
                   indices ? "" : " and no index array");
  for (int64_t k = 0; k < n; k++)
    if (indices[k] < 0 || indices[k] >= ds->n)
      return dc__err(DC_ERR_ARG,
                     "subset: index %lld (position %lld) is out of range for a "
                     "dataset of %lld samples",
                     (long long)indices[k], (long long)k, (long long)ds->n);
  return subset_new(ds, indices, n);
}

static int split_by_lengths(dc_dataset *ds, const int64_t *lengths, int n, uint64_t seed,
                            dc_dataset **out) {
  int64_t *perm = dc__malloc((size_t)(ds->n ? ds->n : 1) * sizeof *perm);
  if (!perm) return DC_ERR_NOMEM;
  dc__permutation(perm, ds->n, seed);
  int64_t at = 0;
  int k = 0;
  for (; k < n; k++) {
    out[k] = subset_new(ds, perm + at, lengths[k]);
    if (!out[k]) break;
    at += lengths[k];
  }
  dc__free(perm);
  if (k == n) return DC_OK;
  int rc = dc_last_status();
  for (int j = 0; j < k; j++) {
    dc_dataset_free(out[j]);
    out[j] = NULL;
  }
  return rc ? rc : DC_ERR_NOMEM;
}

int dc_random_split(dc_dataset *ds, const int64_t *lengths, int n, uint64_t seed,
                    dc_dataset **out) {
  if (!ds || !lengths || !out || n <= 0)
    return dc__errs(DC_ERR_ARG, "random_split: need a dataset, n > 0 lengths and an output array");
  int64_t sum = 0;
  for (int k = 0; k < n; k++) {
    if (lengths[k] < 0)
      return dc__errs(DC_ERR_ARG, "random_split: length %d is negative (%lld)", k,
                      (long long)lengths[k]);
    sum += lengths[k];
    if (sum > ds->n) break;
  }
  if (sum != ds->n)
    return dc__errs(DC_ERR_ARG,
                    "random_split: the lengths sum to %lld%s but the dataset has "
                    "%lld samples",
                    (long long)sum, sum > ds->n ? " or more" : "", (long long)ds->n);
  return split_by_lengths(ds, lengths, n, seed, out);
}

int dc_random_split_fractions(dc_dataset *ds, const double *fractions, int n, uint64_t seed,
                              dc_dataset **out) {
  if (!ds || !fractions || !out || n <= 0 || n > 1024)
    return dc__errs(DC_ERR_ARG, "random_split: need a dataset, 1..1024 fractions and an output "
                                "array");
  double sum = 0;
  for (int k = 0; k < n; k++) {
    if (!(fractions[k] >= 0 && fractions[k] <= 1))
      return dc__errs(DC_ERR_ARG, "random_split: fraction %d is %g, not in [0, 1]", k,
                      fractions[k]);
    sum += fractions[k];
  }
  if (fabs(sum - 1.0) > 1e-6)
    return dc__errs(DC_ERR_ARG, "random_split: fractions sum to %g, not 1", sum);
  int64_t lengths[1024], total = 0;
  for (int k = 0; k < n; k++) {
    lengths[k] = (int64_t)floor((double)ds->n * fractions[k]);
    total += lengths[k];
  }
  for (int64_t r = 0; r < ds->n - total; r++) lengths[r % n]++;
  return split_by_lengths(ds, lengths, n, seed, out);
}

/* ---- ConcatDataset ---- */

typedef struct concat_impl {
  int n;
  dc_dataset **parts;
  int64_t *ends; /* [n] cumulative sizes */
} concat_impl;

static int concat_find(const concat_impl *c, int64_t i, int64_t *local) {
  int lo = 0, hi = c->n - 1;
  while (lo < hi) {
    int mid = (lo + hi) / 2;
    if (i < c->ends[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  *local = i - (lo ? c->ends[lo - 1] : 0);
  return lo;
}

static int concat_get(const dc_dataset *ds, int64_t i, dc__sample *s, uint64_t seed) {
  const concat_impl *c = ds->impl;
  int64_t j;
  int p = concat_find(c, i, &j);
  return dc__dataset_fetch(c->parts[p], j, s, seed);
}

static int64_t concat_label(const dc_dataset *ds, int64_t i) {
  const concat_impl *c = ds->impl;
  int64_t j;
  int p = concat_find(c, i, &j);
  return dc_dataset_label(c->parts[p], j);
}

static void concat_destroy(dc_dataset *ds) {
  concat_impl *c = ds->impl;
  for (int k = 0; k < c->n; k++) dc_dataset_free(c->parts[k]);
  dc__free(c->parts);
  dc__free(c->ends);
  dc__free(c);
}

static const dc__dataset_vt CONCAT_VT = {concat_get, concat_label, concat_destroy};
static const dc__dataset_vt CONCAT_NOLABEL_VT = {concat_get, NULL, concat_destroy};

dc_dataset *dc_concat_dataset(dc_dataset *const *ds, int n) {
  if (!ds || n <= 0) return dc__err(DC_ERR_ARG, "concat_dataset: need at least one dataset");
  bool labels = true;
  for (int k = 0; k < n; k++) {
    if (!ds[k]) return dc__err(DC_ERR_ARG, "concat_dataset: dataset %d is NULL", k);
    labels = labels && ds[k]->vt->label;
  }
  concat_impl *c = dc__calloc(1, sizeof *c);
  if (!c) return NULL;
  c->parts = dc__calloc((size_t)n, sizeof *c->parts);
  c->ends = dc__calloc((size_t)n, sizeof *c->ends);
  if (!c->parts || !c->ends) {
    dc__free(c->parts);
    dc__free(c->ends);
    dc__free(c);
    return NULL;
  }
  c->n = n;
  int64_t total = 0;
  for (int k = 0; k < n; k++) {
    c->parts[k] = dc__dataset_retain(ds[k]);
    total += ds[k]->n;
    c->ends[k] = total;
  }
  dc_dataset *r = dc__dataset_new(labels ? &CONCAT_VT : &CONCAT_NOLABEL_VT, "ConcatDataset",
                                  ds[0]->path, total, c);
  if (!r) {
    concat_destroy(&(dc_dataset){.impl = c});
    return NULL;
  }
  if (dc__dataset_set_classes(r, ds[0]->nclasses, (const char *const *)ds[0]->classes)) {
    dc_dataset_free(r);
    return NULL;
  }
  return r;
}
