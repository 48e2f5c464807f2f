/* From a checked configuration to the parts of a run: datasets with their split and
 * transforms, the model (cnn / mlp / layer spec) checked by a dry forward pass, the optimizer,
 * the learning-rate schedule and the loss. The training loop itself is trainer.c's. */
#include "train-impl.h"

#include <deepc/onnx.h>

#include <ctype.h>
#include <math.h>
#include <string.h>

/* ======================= data ======================= */
typedef struct known_stats {
  const char *name;
  int channels;
  double mean[3], std[3];
} known_stats;

/* The usual published statistics (torchvision examples) */
static const known_stats STATS[] = {
    {"mnist", 1, {0.1307}, {0.3081}},
    {"fashion-mnist", 1, {0.2860}, {0.3530}},
    {"cifar10", 3, {0.4914, 0.4822, 0.4465}, {0.2470, 0.2435, 0.2616}},
    {"cifar100", 3, {0.5071, 0.4865, 0.4409}, {0.2673, 0.2564, 0.2762}},
};

void dc__data_free(dc__data *d) {
  if (!d) return;
  dc_dataset_free(d->train);
  dc_dataset_free(d->val);
  dc_dataset_free(d->test);
  for (int64_t k = 0; d->class_names && k < d->num_classes; k++) dc__free(d->class_names[k]);
  dc__free(d->class_names);
  memset(d, 0, sizeof *d);
}

static bool same_name(const char *a, const char *b) {
  for (; *a && *b; a++, b++) {
    char x = (char)tolower((unsigned char)*a), y = (char)tolower((unsigned char)*b);
    if (x == '_') x = '-';
    if (y == '_') y = '-';
    if (x != y) return false;
  }
  return *a == *b;
}

/* Opens a named dataset or a path; *test may stay NULL for a path without a test part. */
static int open_sets(const char *name, const char *dir, dc_dataset **train, dc_dataset **test) {
  const char *d = dir && *dir ? dir : NULL;
  if (same_name(name, "mnist")) {
    *train = dc_mnist(d, true);
    *test = *train ? dc_mnist(d, false) : NULL;
  } else if (same_name(name, "fashion-mnist") || same_name(name, "fashionmnist")) {
    *train = dc_fashion_mnist(d, true);
    *test = *train ? dc_fashion_mnist(d, false) : NULL;
  } else if (same_name(name, "cifar10") || same_name(name, "cifar-10")) {
    *train = dc_cifar10(d, true);
    *test = *train ? dc_cifar10(d, false) : NULL;
  } else if (same_name(name, "cifar100") || same_name(name, "cifar-100")) {
    *train = dc_cifar100(d, true, false);
    *test = *train ? dc_cifar100(d, false, false) : NULL;
  } else {
    *train = dc_dataset_open(name);
    *test = NULL;
    if (!*train)
      return dc__rewrap(dc_last_status(),
                        "data.dataset: '%s' is neither mnist, fashion-mnist, cifar10, cifar100 "
                        "nor a dataset file or folder: %s",
                        name, dc_last_error());
    return DC_OK;
  }
  if (!*train || !*test) {
    dc_dataset_free(*train);
    *train = NULL;
    return dc_last_status() ? dc_last_status() : DC_ERR_IO;
  }
  return DC_OK;
}

/* Splits ds into (first, second) with len(first) = n, shuffled with seed. Consumes ds. */
static int split_two(dc_dataset *ds, int64_t n, uint64_t seed, dc_dataset **a, dc_dataset **b) {
  int64_t len = dc_dataset_len(ds), lengths[2] = {n, len - n};
  dc_dataset *out[2] = {NULL, NULL};
  int rc = dc_random_split(ds, lengths, 2, seed, out);
  dc_dataset_free(ds);
  if (rc != DC_OK) return rc;
  *a = out[0];
  if (b)
    *b = out[1];
  else
    dc_dataset_free(out[1]);
  return DC_OK;
}

static dc_dataset *first_n(dc_dataset *ds, int64_t n) {
  int64_t *idx = dc__malloc(sizeof *idx * (size_t)n);
  if (!idx) return NULL;
  for (int64_t i = 0; i < n; i++) idx[i] = i;
  dc_dataset *s = dc_subset(ds, idx, n);
  dc__free(idx);
  return s;
}

/* Whether samples are uint8 images [H, W, C] (then ToTensor applies). */
static int sample_kind(dc_dataset *ds, bool *image) {
  dc_scope_begin();
  dc_tensor *x = NULL, *y = NULL;
  int rc = dc_dataset_get(ds, 0, 1, &x, &y);
  if (rc == DC_OK) *image = x->dtype == DC_U8 && (x->ndim == 3 || x->ndim == 2);
  dc_scope_end();
  return rc;
}

/* Per-channel mean and std of up to 2000 samples after ToTensor. */
static int measure_stats(dc_dataset *ds, int *channels, double *mean, double *std) {
  int64_t n = dc_dataset_len(ds) < 2000 ? dc_dataset_len(ds) : 2000;
  double s[3] = {0}, s2[3] = {0}, cnt = 0;
  int C = 0;
  dc_transform *tt = dc_tf_to_tensor();
  if (!tt) return dc_last_status();
  int rc = DC_OK;
  for (int64_t i = 0; i < n && rc == DC_OK; i++) {
    dc_scope_begin();
    dc_tensor *x = NULL, *y = NULL;
    rc = dc_dataset_get(ds, i, 1, &x, &y);
    dc_tensor *t = rc == DC_OK ? dc_transform_apply(tt, x, 1) : NULL;
    if (rc == DC_OK && !t) rc = dc_last_status();
    if (t) {
      C = (int)t->shape[0];
      if (C > 3) C = 3;
      int64_t hw = dc_numel(t) / t->shape[0];
      /* an explicit host copy: the sample may come from a dataset of device tensors */
      dc_tensor *ht = t->device == DC_CPU ? t : dc_to_device(t, DC_CPU);
      const float *p = ht ? dc_data(ht) : NULL;
      if (!p) {
        rc = dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
        dc_scope_end();
        break;
      }
      for (int c = 0; c < C; c++)
        for (int64_t j = 0; j < hw; j++) {
          double v = p[c * hw + j];
          s[c] += v, s2[c] += v * v;
        }
      cnt += (double)hw;
    }
    dc_scope_end();
  }
  dc_transform_free(tt);
  if (rc != DC_OK) return rc;
  *channels = C;
  for (int c = 0; c < C; c++) {
    mean[c] = s[c] / cnt;
    double var = s2[c] / cnt - mean[c] * mean[c];
    std[c] = var > 1e-12 ? sqrt(var) : 1.0;
  }
  return DC_OK;
}

/* [augmentation...] ToTensor Normalize, or NULL (+ *none) when nothing applies. */
static dc_transform *make_transform(const dc__run_spec *s, bool image, bool augment, int channels,
                                    const double *mean, const double *std, bool normalize,
                                    int64_t h, int64_t w) {
  dc_transform *tfs[10];
  int n = 0;
  if (!image) return NULL;
  int64_t resize = s->data.resize, crop = s->data.crop, pad = s->data.random_crop;
  bool rrc = s->data.random_resized_crop;
  if (augment && rrc) {
    int64_t sz = crop ? crop : resize ? resize : h;
    tfs[n++] = dc_tf_random_resized_crop(sz, sz);
  } else {
    if (resize) tfs[n++] = dc_tf_resize(resize, 0);
    if (crop && augment)
      tfs[n++] = dc_tf_random_crop(crop, crop, .padding = (int)pad, .pad_if_needed = true);
    else if (crop)
      tfs[n++] = dc_tf_center_crop(crop, crop);
    else if (augment && pad > 0)
      tfs[n++] = dc_tf_random_crop(h, w, .padding = (int)pad);
  }
  if (augment) {
    double rot = s->data.rotation;
    if (s->data.hflip) tfs[n++] = dc_tf_random_hflip(0.5);
    if (rot > 0) tfs[n++] = dc_tf_random_rotation(-rot, rot, 0);
  }
  tfs[n++] = dc_tf_to_tensor();
  if (normalize) tfs[n++] = dc_tf_normalize(mean, std, channels);
  return dc_tf_compose(tfs, n);
}

static int class_names(dc__data *d, dc_dataset *ds) {
  int64_t K = dc_dataset_num_classes(ds);
  if (K < 1)
    return dc__errs(DC_ERR_ARG,
                    "data.dataset: %s has no classes (deepc train does classification: the "
                    "targets must be class indices)",
                    dc_dataset_path(ds));
  d->num_classes = K;
  d->class_names = dc__calloc((size_t)K, sizeof *d->class_names);
  if (!d->class_names) return DC_ERR_NOMEM;
  for (int64_t k = 0; k < K; k++) {
    const char *nm = dc_dataset_class_name(ds, k);
    char buf[32];
    if (!nm) snprintf(buf, sizeof buf, "%lld", (long long)k), nm = buf;
    if (!(d->class_names[k] = dc__strdup(nm))) return DC_ERR_NOMEM;
  }
  return DC_OK;
}

static uint64_t mix(uint64_t seed, uint64_t stream) {
  uint64_t z =
      seed * 0x9E3779B97F4A7C15ull + stream * 0xBF58476D1CE4E5B9ull + 0x94D049BB133111EBull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return z ? z : 1;
}

uint64_t dc__seed_stream(uint64_t seed, uint64_t stream) { return mix(seed, stream); }

int dc__run_device(const dc__run_spec *s, const char *override, dc_device *dev) {
  const char *name =
      override ? override : dc__spec_choice(DC__K_train_device, (int)s->train.device);
  int rc = dc_device_parse(name, dev);
  if (rc != DC_OK)
    return dc__rewrap((dc_status)rc, "%s %s: %s", override ? "--device" : "train.device =", name,
                      dc_last_error());
  return DC_OK;
}

/* data.test: the test set of a dataset given as a path. */
static int open_test_path(const dc__run_spec *s, const dc__data *d, dc_dataset **test) {
  const char *path = s->data.test;
  if (!(*test = dc_dataset_open(path)))
    return dc__rewrap(dc_last_status(), "data.test: %s", dc_last_error());
  if (dc_dataset_num_classes(*test) != d->num_classes)
    return dc__errs(DC_ERR_ARG, "data.test: %s has %lld classes, the training set %lld", path,
                    (long long)dc_dataset_num_classes(*test), (long long)d->num_classes);
  return DC_OK;
}

/* A single file or folder: 20% of it becomes the test set (with the seed). */
static int hold_out_test(const char *name, uint64_t seed, dc_dataset **full, dc_dataset **test) {
  int64_t len = dc_dataset_len(*full), nt = (int64_t)llround(0.2 * (double)len);
  if (nt < 1 || nt >= len)
    return dc__errs(DC_ERR_ARG, "data.dataset: %s has %lld samples, too few to hold out a test set",
                    name, (long long)len);
  dc_dataset *rest = NULL;
  int rc = split_two(*full, nt, mix(seed, 11), test, &rest);
  *full = rest;
  return rc;
}

/* The training pool (*full) and the test set, and the class names into d. */
static int open_pool(const dc__run_spec *s, const char *name, bool override, dc__data *d,
                     dc_dataset **full, dc_dataset **test) {
  int rc = open_sets(name, s->data.dir, full, test);
  if (rc != DC_OK) return rc;
  if ((rc = class_names(d, *full)) != DC_OK) return rc;
  if (!*test && *s->data.test && !override) rc = open_test_path(s, d, test);
  if (rc == DC_OK && !*test) rc = hold_out_test(name, (uint64_t)s->train.seed, full, test);
  return rc;
}

/* data.train_limit (a random subset) and data.test_limit (the first n). */
static int apply_limits(const dc__run_spec *s, dc_dataset **full, dc_dataset **test) {
  int64_t limit = s->data.train_limit, tlimit = s->data.test_limit;
  if (limit > 0 && limit < dc_dataset_len(*full)) {
    int rc = split_two(*full, limit, mix((uint64_t)s->train.seed, 12), full, NULL);
    if (rc != DC_OK) {
      *full = NULL; /* consumed */
      return rc;
    }
  }
  if (tlimit > 0 && tlimit < dc_dataset_len(*test)) {
    dc_dataset *t = first_n(*test, tlimit);
    dc_dataset_free(*test);
    *test = t;
    if (!t) return dc__status_or_nomem();
  }
  return DC_OK;
}

/* data.val_split: the pool into d->train and d->val (none: validation on the test set). */
static int split_val(const dc__run_spec *s, dc_dataset **full, dc__data *d) {
  double vs = s->data.val_split; /* in [0, 1) (spec.h) */
  int64_t len = dc_dataset_len(*full), nval = (int64_t)llround(vs * (double)len);
  if (vs > 0 && nval < 1) nval = 1;
  if (nval >= len)
    return dc__errs(DC_ERR_ARG, "data.val_split: %g leaves no training samples of %lld", vs,
                    (long long)len);
  if (nval == 0) {
    d->train = *full, *full = NULL;
    d->val = NULL;
    d->val_is_test = true;
    return DC_OK;
  }
  int64_t lengths[2] = {len - nval, nval};
  dc_dataset *out[2];
  int rc = dc_random_split(*full, lengths, 2, mix((uint64_t)s->train.seed, 13), out);
  if (rc != DC_OK) return rc;
  dc_dataset_free(*full);
  *full = NULL;
  d->train = out[0], d->val = out[1];
  return DC_OK;
}

/* Normalisation statistics: data.mean / data.std, the published ones of a named dataset, or
 * measured on the training set; *C channels. */
static int norm_stats(const dc__run_spec *s, const char *name, dc_dataset *train, int *C,
                      double *mean, double *std) {
  int nm = s->data.mean.n, ns = s->data.std.n;
  if (nm > 0 || ns > 0) {
    if (nm != ns) return dc__errs(DC_ERR_ARG, "data.mean has %d values but data.std %d", nm, ns);
    *C = nm;
    memcpy(mean, s->data.mean.v, sizeof *mean * (size_t)nm);
    memcpy(std, s->data.std.v, sizeof *std * (size_t)ns);
    return DC_OK;
  }
  for (size_t i = 0; i < sizeof STATS / sizeof STATS[0]; i++)
    if (same_name(name, STATS[i].name)) {
      *C = STATS[i].channels;
      memcpy(mean, STATS[i].mean, sizeof STATS[i].mean);
      memcpy(std, STATS[i].std, sizeof STATS[i].std);
    }
  return *C ? DC_OK : measure_stats(train, C, mean, std);
}

/* Image datasets: augmentation (training only), ToTensor and normalisation on each split. */
static int set_transforms(const dc__run_spec *s, dc__data *d, const char *name) {
  bool image = false;
  int rc = sample_kind(d->train, &image);
  if (rc != DC_OK || !image) return rc;
  int C = 0;
  double mean[8] = {0}, std[8] = {0};
  bool normalize = s->data.normalize;
  if (normalize && (rc = norm_stats(s, name, d->train, &C, mean, std)) != DC_OK) return rc;
  int64_t hw[2] = {0, 0};
  dc_scope_begin();
  dc_tensor *x = NULL, *y = NULL;
  rc = dc_dataset_get(d->train, 0, 1, &x, &y);
  if (rc == DC_OK) hw[0] = x->shape[0], hw[1] = x->ndim > 1 ? x->shape[1] : 1;
  dc_scope_end();
  if (rc != DC_OK) return rc;
  dc_dataset *sets[3] = {d->train, d->val, d->test};
  for (int k = 0; k < 3; k++) {
    if (!sets[k]) continue;
    dc_transform *tf = make_transform(s, image, k == 0, C, mean, std, normalize, hw[0], hw[1]);
    if (!tf || dc_dataset_set_transform(sets[k], tf) != DC_OK)
      return dc_last_status() ? dc_last_status() : DC_ERR_ARG;
  }
  return DC_OK;
}

/* The shape of one input as the model sees it (floating point). */
static int input_shape(dc__data *d) {
  dc_scope_begin();
  dc_tensor *x = NULL, *y = NULL;
  int rc = dc_dataset_get(d->test, 0, 1, &x, &y);
  if (rc == DC_OK) d->sample_shape = dc_shape_of(x);
  if (rc == DC_OK && x->dtype != DC_F32 && x->dtype != DC_F64)
    rc = dc__errs(DC_ERR_ARG, "data.dataset: samples are %s, expected floating-point inputs",
                  dc_dtype_name(x->dtype));
  dc_scope_end();
  return rc;
}

int dc__build_data(const dc__run_spec *s, dc__data *d, const char *override) {
  memset(d, 0, sizeof *d);
  bool over = override && *override;
  const char *name = over ? override : s->data.dataset;
  dc_dataset *full = NULL, *test = NULL;
  int rc = open_pool(s, name, over, d, &full, &test);
  if (rc == DC_OK) rc = apply_limits(s, &full, &test);
  if (rc == DC_OK) rc = split_val(s, &full, d);
  if (rc == DC_OK) d->test = test, test = NULL;
  if (rc == DC_OK) rc = set_transforms(s, d, name);
  if (rc == DC_OK) rc = input_shape(d);
  if (rc == DC_OK) return DC_OK;
  dc_dataset_free(full);
  dc_dataset_free(test);
  dc__data_free(d);
  return rc;
}

/* ======================= model ======================= */
static dc_module *activation(dc__activation a) {
  switch (a) {
  case DC__ACT_RELU:
    return dc_nn_relu();
  case DC__ACT_LEAKY_RELU:
    return dc_nn_leaky_relu(0.01);
  case DC__ACT_ELU:
    return dc_nn_elu(1.0);
  case DC__ACT_GELU:
    return dc_nn_gelu(false);
  case DC__ACT_TANH:
    return dc_nn_tanh();
  case DC__ACT_SIGMOID:
    return dc_nn_sigmoid();
  }
  return dc_nn_sigmoid();
}

static int64_t feature_count(dc_shape s) {
  int64_t n = 1;
  for (int i = 0; i < s.ndim; i++) n *= s.d[i];
  return n;
}

/* Hidden widths: the configured list, or the architecture's default. */
static int hidden_widths(const dc__run_spec *s, bool cnn, int64_t *h) {
  int n = s->model.hidden.n;
  memcpy(h, s->model.hidden.v, sizeof *h * (size_t)n);
  if (n > 0) return n;
  if (cnn) {
    h[0] = 64;
    return 1;
  }
  h[0] = 256, h[1] = 128, h[2] = 64;
  return 3;
}

static dc_module *build_mlp(const dc__run_spec *s, const dc__data *d) {
  int64_t hid[DC__SPEC_LIST_MAX];
  int nh = hidden_widths(s, false, hid);
  dc__activation act = s->model.activation;
  bool bn = s->model.batchnorm;
  double p = s->model.dropout;
  dc_module *seq = dc_nn_sequential(dc_nn_flatten(1, -1));
  int64_t in = feature_count(d->sample_shape);
  for (int i = 0; seq && i < nh; i++) {
    int64_t w = hid[i];
    seq = dc_nn_sequential_append(seq, dc_nn_linear(in, w));
    if (seq && bn) seq = dc_nn_sequential_append(seq, dc_nn_batchnorm1d(w));
    if (seq) seq = dc_nn_sequential_append(seq, activation(act));
    if (seq && p > 0) seq = dc_nn_sequential_append(seq, dc_nn_dropout(p));
    in = w;
  }
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_linear(in, d->num_classes));
  return seq;
}

static dc_module *build_cnn(const dc__run_spec *s, const dc__data *d) {
  if (d->sample_shape.ndim != 3)
    return dc__err(DC_ERR_ARG,
                   "model.arch = cnn needs image inputs [C, H, W]; this dataset gives %d-d "
                   "samples (use arch = mlp)",
                   d->sample_shape.ndim);
  int64_t hid[DC__SPEC_LIST_MAX];
  const int64_t *ch = s->model.channels.v;
  int nc = s->model.channels.n, nh = hidden_widths(s, true, hid);
  int k = (int)s->model.kernel;
  /* model.pool: MaxPool2d(kernel, stride = kernel, padding = 0) */
  const int64_t *pl = s->model.pool.v;
  int npl = s->model.pool.n;
  int pool = npl > 0 ? (int)pl[0] : 0, pstride = npl > 1 ? (int)pl[1] : pool;
  int ppad = npl > 2 ? (int)pl[2] : 0;
  if (pool > 1 && (pstride < 1 || ppad < 0 || 2 * ppad > pool))
    return dc__err(DC_ERR_ARG,
                   "model.pool: expected a size k or k,stride,padding with stride >= 1 and "
                   "padding <= k/2 (MaxPool2d's rules), e.g. 2 or 4,3,1");
  bool bn = s->model.batchnorm;
  double p = s->model.dropout;
  dc__activation act = s->model.activation;
  int64_t cin = d->sample_shape.d[0], h = d->sample_shape.d[1], w = d->sample_shape.d[2];
  dc_module *seq = dc_nn_sequential_of(NULL, 0);
  for (int i = 0; seq && i < nc; i++) {
    int64_t cout = ch[i];
    seq = dc_nn_sequential_append(seq, dc_nn_conv2d(cin, cout, k, .padding = k / 2));
    if (seq && bn) seq = dc_nn_sequential_append(seq, dc_nn_batchnorm2d(cout));
    if (seq) seq = dc_nn_sequential_append(seq, activation(act));
    h = h + 2 * (k / 2) - k + 1, w = w + 2 * (k / 2) - k + 1;
    if (seq && pool > 1) {
      seq = dc_nn_sequential_append(seq, dc_nn_maxpool2d(pool, .stride = pstride, .padding = ppad));
      h = h + 2 * ppad < pool ? 0 : (h + 2 * ppad - pool) / pstride + 1;
      w = w + 2 * ppad < pool ? 0 : (w + 2 * ppad - pool) / pstride + 1;
    }
    if (h < 1 || w < 1) {
      dc_module_free(seq);
      return dc__err(
          DC_ERR_ARG,
          "model: conv block %d leaves no pixels (%lld x %lld input, kernel %d, pool %d); "
          "use fewer blocks (model.channels) or a smaller pool",
          i + 1, (long long)d->sample_shape.d[1], (long long)d->sample_shape.d[2], k, pool);
    }
    cin = cout;
  }
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_flatten(1, -1));
  if (seq && p > 0) seq = dc_nn_sequential_append(seq, dc_nn_dropout(p));
  int64_t in = cin * h * w;
  for (int i = 0; seq && i < nh; i++) {
    int64_t wd = hid[i];
    seq = dc_nn_sequential_append(seq, dc_nn_linear(in, wd));
    if (seq && bn) seq = dc_nn_sequential_append(seq, dc_nn_batchnorm1d(wd));
    if (seq) seq = dc_nn_sequential_append(seq, activation(act));
    in = wd;
  }
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_linear(in, d->num_classes));
  return seq;
}

/* A model of the zoo with the dataset's classes and input channels. */
static dc_module *build_zoo(const dc__run_spec *s, const dc__data *d, const char *arch) {
  int nh = s->model.hidden.n;
  dc_zoo_opts zo = {.num_classes = d->num_classes,
                    .in_channels = d->sample_shape.ndim == 3 ? d->sample_shape.d[0] : 0,
                    .in_features = feature_count(d->sample_shape),
                    .hidden = nh ? s->model.hidden.v : NULL,
                    .nhidden = nh,
                    .width = s->model.width,
                    .small_input = s->model.small_input};
  if (s->set[DC__K_model_dropout]) {
    double p = s->model.dropout;
    zo.dropout = p > 0 ? p : -1;
  }
  dc_module *m = dc_zoo_create_opt(arch, zo);
  if (!m) dc__rewrap(dc_last_status(), "model.arch = %s: %s", arch, dc_last_error());
  return m;
}

/* model.pretrained and model.freeze. */
static int transfer(const dc__run_spec *s, dc_module *m) {
  const char *pre = s->model.pretrained, *fr = s->model.freeze;
  if (*pre && dc_zoo_load_pretrained(m, pre) != DC_OK)
    return dc__rewrap(dc_last_status(), "model.pretrained: %s", dc_last_error());
  if (*fr && dc_zoo_freeze(m, fr) != DC_OK)
    return dc__rewrap(dc_last_status(), "model.freeze: %s", dc_last_error());
  return DC_OK;
}

dc_module *dc__build_model(const dc__run_spec *s, const dc__data *d) {
  const char *arch = s->model.arch;
  const char *spec = s->model.layers;
  if (!*arch) arch = *spec ? "layers" : "cnn";
  dc_module *m;
  if (strncmp(arch, "onnx:", 5) == 0) { /* an imported graph, trained as it is (onnx.h) */
    m = dc_onnx_load(arch + 5);
    if (!m)
      return (dc__rewrap(dc_last_status(), "model.arch = %s: %s", arch, dc_last_error()),
              (void *)NULL);
  } else if (strcmp(arch, "cnn") != 0 && strcmp(arch, "mlp") != 0 && strcmp(arch, "layers") != 0) {
    m = build_zoo(s, d, arch);
  } else if (strcmp(arch, "layers") == 0) {
    if (!*spec)
      return dc__err(DC_ERR_ARG, "model.arch = layers needs model.layers (a layer list such as "
                                 "flatten, linear(784, 10))");
    m = dc_nn_from_spec(spec, .classes = d->num_classes);
    if (!m)
      return (dc__rewrap(dc_last_status(), "model.layers: %s", dc_last_error()), (void *)NULL);
  } else if (strcmp(arch, "mlp") == 0) {
    m = build_mlp(s, d);
  } else {
    m = build_cnn(s, d);
  }
  if (!m) return NULL;
  /* a dry run on one zero sample: an impossible shape names its layer */
  dc_model_summary *sum = dc_summary(m, d->sample_shape);
  if (!sum) {
    char shp[64];
    dc_shape_str(d->sample_shape, shp, sizeof shp);
    dc__rewrap(DC_ERR_ARG, "model: the layers do not fit inputs of shape %s: %s", shp,
               dc_last_error());
    dc_module_free(m);
    return NULL;
  }
  dc_shape out = sum->output_shape;
  dc_summary_free(sum);
  /* an imported graph with another number of classes gets a fresh head */
  if (strncmp(arch, "onnx:", 5) == 0 && out.ndim == 2 && out.d[1] != d->num_classes &&
      dc_onnx_replace_head(m, d->num_classes) == DC_OK)
    out.d[1] = d->num_classes;
  if (transfer(s, m) != DC_OK) {
    dc_module_free(m);
    return NULL;
  }
  if (out.ndim != 2 || out.d[1] != d->num_classes) {
    char shp[64];
    dc_shape_str(out, shp, sizeof shp);
    dc__err(DC_ERR_ARG,
            "model: the output for one sample has shape %s but the dataset has %lld classes "
            "(end the layers with linear(..., classes))",
            shp, (long long)d->num_classes);
    dc_module_free(m);
    return NULL;
  }
  return m;
}

/* ======================= optimizer and schedule ======================= */
static dc_optim_kind optim_kind(dc__optim o) {
  switch (o) {
  case DC__OPT_SGD:
    return DC_OPTIM_SGD;
  case DC__OPT_ADAM:
    return DC_OPTIM_ADAM;
  case DC__OPT_ADAMW:
    return DC_OPTIM_ADAMW;
  case DC__OPT_RMSPROP:
    return DC_OPTIM_RMSPROP;
  case DC__OPT_ADAGRAD:
    return DC_OPTIM_ADAGRAD;
  }
  return DC_OPTIM_ADAM;
}

dc_optim *dc__build_optim(const dc__run_spec *s, dc_module *m) {
  const char *name = dc__spec_choice(DC__K_optim_name, (int)s->optim.name);
  dc_optim_kind kind = optim_kind(s->optim.name);
  dc_optim_hparams hp = dc_optim_defaults(kind);
  double lr = s->optim.lr;
  if (!isnan(lr))
    hp.lr = lr;
  else if (isnan(hp.lr))
    return dc__err(DC_ERR_ARG, "optim.lr is required for %s (e.g. lr = 0.01)", name);
  hp.momentum = s->optim.momentum;
  if (kind == DC_OPTIM_ADAGRAD) hp.momentum = 0;
  hp.nesterov = s->optim.nesterov;
  hp.dampening = s->optim.dampening;
  if (!isnan(s->optim.weight_decay)) hp.weight_decay = s->optim.weight_decay;
  hp.betas[0] = s->optim.betas.v[0], hp.betas[1] = s->optim.betas.v[1]; /* exactly 2 (spec.h) */
  if (!isnan(s->optim.eps)) hp.eps = s->optim.eps;
  hp.amsgrad = s->optim.amsgrad;
  if (kind == DC_OPTIM_RMSPROP) hp.alpha = s->optim.alpha;
  double blr = s->optim.backbone_lr;
  if (!isnan(blr)) { /* group 0: the head at lr; group 1: the rest at backbone_lr */
    dc_param_group g[2];
    int ng = 0;
    if (dc_zoo_param_groups(m, hp, blr, g, &ng) != DC_OK)
      return (dc__rewrap(dc_last_status(), "optim.backbone_lr: %s", dc_last_error()), (void *)NULL);
    dc_optim *o = dc_optim_new(kind, g, ng);
    dc_zoo_param_groups_free(g, ng);
    if (!o) return (dc__rewrap(dc_last_status(), "optim: %s", dc_last_error()), (void *)NULL);
    return o;
  }
  int n = 0;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &n);
  if (!ps) return NULL;
  dc_tensor **arr = dc__malloc(sizeof *arr * (size_t)(n ? n : 1));
  if (!arr) {
    dc_named_tensors_free(ps, n);
    return NULL;
  }
  for (int i = 0; i < n; i++) arr[i] = ps[i].tensor;
  dc_optim *o = dc_optim_create(kind, arr, n, hp);
  dc__free(arr);
  dc_named_tensors_free(ps, n);
  if (!o) return (dc__rewrap(dc_last_status(), "optim: %s", dc_last_error()), (void *)NULL);
  return o;
}

/* onecycle (stepped after every batch) or plateau (on the validation loss): no warm-up. */
static int own_pace_sched(const dc__run_spec *s, dc_optim *o, int64_t steps_per_epoch,
                          dc_sched **out, dc_sched_when *when) {
  dc__sched kind = s->schedule.name;
  if (s->schedule.warmup_epochs > 0)
    return dc__errs(DC_ERR_ARG,
                    "schedule.warmup_epochs: %s has its own warm-up or none; set "
                    "warmup_epochs = 0",
                    dc__spec_choice(DC__K_schedule_name, (int)kind));
  if (kind == DC__SCHED_ONECYCLE) {
    double max_lr = s->schedule.max_lr;
    if (!(max_lr > 0)) max_lr = 10 * dc_optim_get_lr(o, 0);
    dc_onecycle_opts oc = dc_onecycle_defaults(max_lr, s->train.epochs * steps_per_epoch);
    oc.pct_start = s->schedule.pct_start;
    *out = dc_sched_onecycle_lr(o, oc);
    *when = DC_SCHED_PER_STEP;
  } else {
    dc_plateau_opts po = dc_plateau_defaults();
    po.factor = s->schedule.factor;
    po.patience = (int)s->schedule.patience;
    *out = dc_sched_reduce_on_plateau(o, po);
    *when = DC_SCHED_ON_VAL_LOSS;
  }
  return *out ? DC_OK : dc__rewrap(dc_last_status(), "schedule: %s", dc_last_error());
}

/* The per-epoch schedule after the warm-up (*main NULL for none). */
static int epoch_sched(const dc__run_spec *s, dc_optim *o, dc_sched **main) {
  int epochs = (int)s->train.epochs, warm = (int)s->schedule.warmup_epochs;
  double gamma = s->schedule.gamma;
  *main = NULL;
  switch (s->schedule.name) {
  case DC__SCHED_STEP:
    *main = dc_sched_step_lr(o, (int)s->schedule.step_size, gamma);
    break;
  case DC__SCHED_MULTISTEP: {
    int n = s->schedule.milestones.n;
    if (n == 0)
      return dc__errs(DC_ERR_ARG, "schedule.milestones: multistep needs epochs, e.g. 5,8");
    int mi[DC__SPEC_LIST_MAX];
    for (int i = 0; i < n; i++) mi[i] = (int)s->schedule.milestones.v[i] - warm;
    *main = dc_sched_multistep_lr(o, mi, n, gamma);
    break;
  }
  case DC__SCHED_EXPONENTIAL:
    *main = dc_sched_exponential_lr(o, gamma);
    break;
  case DC__SCHED_COSINE: {
    int tmax = (int)s->schedule.t_max;
    if (tmax == 0) tmax = epochs - warm > 0 ? epochs - warm : 1;
    *main = dc_sched_cosine_annealing_lr(o, tmax, s->schedule.eta_min);
    break;
  }
  case DC__SCHED_NONE:
  case DC__SCHED_ONECYCLE:
  case DC__SCHED_PLATEAU:
    return DC_OK;
  }
  return *main ? DC_OK : dc__rewrap(dc_last_status(), "schedule: %s", dc_last_error());
}

int dc__build_sched(const dc__run_spec *s, dc_optim *o, int64_t steps_per_epoch, dc_sched **out,
                    dc_sched_when *when) {
  *out = NULL;
  *when = DC_SCHED_PER_EPOCH;
  dc__sched kind = s->schedule.name;
  if (kind == DC__SCHED_ONECYCLE || kind == DC__SCHED_PLATEAU)
    return own_pace_sched(s, o, steps_per_epoch, out, when);
  dc_sched *main = NULL;
  int rc = epoch_sched(s, o, &main);
  int warm = (int)s->schedule.warmup_epochs;
  if (rc != DC_OK || warm == 0) return *out = main, rc;
  dc_sched *w = dc_sched_linear_lr(o, 0.1, 1.0, warm); /* from lr/10 over warm epochs */
  if (!w) {
    dc_sched_free(main);
    return dc__rewrap(dc_last_status(), "schedule.warmup_epochs: %s", dc_last_error());
  }
  if (!main) return *out = w, DC_OK;
  dc_sched *both[2] = {w, main};
  int ms[1] = {warm};
  *out = dc_sched_sequential_lr(o, both, 2, ms);
  return *out ? DC_OK : dc__rewrap(dc_last_status(), "schedule: %s", dc_last_error());
}

/* ======================= loss ======================= */
void dc__build_loss(const dc__run_spec *s, dc__loss_cfg *l) {
  l->kind = s->train.loss == DC__LOSS_MULTI_MARGIN;
  l->label_smoothing = s->train.label_smoothing;
}

dc_tensor *dc__loss_call(dc_tensor *out, dc_tensor *target, void *ud) {
  const dc__loss_cfg *l = ud;
  if (l && l->kind == 1) return dc_multi_margin_loss(out, target);
  return dc_cross_entropy(out, target, .label_smoothing = l ? l->label_smoothing : 0);
}
