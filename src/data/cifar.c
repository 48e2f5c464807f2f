/* CIFAR-10 / CIFAR-100 binary batches: whole records checked against the file length, labels
 * range-checked, pixels turned from planar [3, 32, 32] into PIL's [32, 32, 3], class names read
 * from the label-name files shipped with the data (built-in names otherwise). */
#include "data-impl.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define CIFAR_PIXELS 3072 /* 3 x 32 x 32 */

static const char *const CIFAR10_NAMES[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                              "dog",      "frog",       "horse", "ship", "truck"};
static const char *const CIFAR100_COARSE[20] = {"aquatic_mammals",
                                                "fish",
                                                "flowers",
                                                "food_containers",
                                                "fruit_and_vegetables",
                                                "household_electrical_devices",
                                                "household_furniture",
                                                "insects",
                                                "large_carnivores",
                                                "large_man-made_outdoor_things",
                                                "large_natural_outdoor_scenes",
                                                "large_omnivores_and_herbivores",
                                                "medium_mammals",
                                                "non-insect_invertebrates",
                                                "people",
                                                "reptiles",
                                                "small_mammals",
                                                "trees",
                                                "vehicles_1",
                                                "vehicles_2"};
static const char *const CIFAR100_FINE[100] = {
    "apple",       "aquarium_fish", "baby",      "bear",       "beaver",       "bed",
    "bee",         "beetle",        "bicycle",   "bottle",     "bowl",         "boy",
    "bridge",      "bus",           "butterfly", "camel",      "can",          "castle",
    "caterpillar", "cattle",        "chair",     "chimpanzee", "clock",        "cloud",
    "cockroach",   "couch",         "crab",      "crocodile",  "cup",          "dinosaur",
    "dolphin",     "elephant",      "flatfish",  "forest",     "fox",          "girl",
    "hamster",     "house",         "kangaroo",  "keyboard",   "lamp",         "lawn_mower",
    "leopard",     "lion",          "lizard",    "lobster",    "man",          "maple_tree",
    "motorcycle",  "mountain",      "mouse",     "mushroom",   "oak_tree",     "orange",
    "orchid",      "otter",         "palm_tree", "pear",       "pickup_truck", "pine_tree",
    "plain",       "plate",         "poppy",     "porcupine",  "possum",       "rabbit",
    "raccoon",     "ray",           "road",      "rocket",     "rose",         "sea",
    "seal",        "shark",         "shrew",     "skunk",      "skyscraper",   "snail",
    "snake",       "spider",        "squirrel",  "streetcar",  "sunflower",    "sweet_pepper",
    "table",       "tank",          "telephone", "television", "tiger",        "tractor",
    "train",       "trout",         "tulip",     "turtle",     "wardrobe",     "whale",
    "willow_tree", "wolf",          "woman",     "worm"};

/* Reads one non-empty name per line; returns how many (up to max) or -1 if unreadable. */
static int read_names(const char *path, char **names, int max) {
  uint8_t *buf;
  size_t n;
  if (!dc__is_file(path) || dc__read_file(path, 1 << 20, &buf, &n) != DC_OK) {
    dc_clear_error();
    return -1;
  }
  int count = 0;
  size_t i = 0;
  while (i < n && count < max) {
    size_t s = i;
    while (i < n && buf[i] != '\n') i++;
    size_t e = i++;
    while (s < e && isspace(buf[s])) s++;
    while (e > s && isspace(buf[e - 1])) e--;
    if (e == s) continue;
    if (e - s > 256) e = s + 256;
    names[count] = dc__malloc(e - s + 1);
    if (!names[count]) break;
    memcpy(names[count], buf + s, e - s);
    names[count][e - s] = '\0';
    count++;
  }
  dc__free(buf);
  return count;
}

/* Class names from path when it lists at least k of them, else the built-in ones. */
static int set_names(dc_dataset *ds, const char *dir, const char *file, int k,
                     const char *const *builtin) {
  char *names[128] = {0};
  char *path = dc__path_join(dir, file);
  int got = path ? read_names(path, names, k) : -1;
  dc__free(path);
  int rc = dc__dataset_set_classes(ds, k, got == k ? (const char *const *)names : builtin);
  for (int j = 0; j < got; j++) dc__free(names[j]);
  return rc;
}

/* Appends the records of one batch file to x [N, 32, 32, 3] / y [N] at record offset at. */
static int read_batch(const char *path, int lbl_bytes, bool coarse, int nclasses, uint8_t **x,
                      int64_t **y, int64_t *count, const char *format) {
  uint8_t *mem;
  size_t n;
  int rc = dc__read_file(path, (size_t)1 << 32, &mem, &n);
  if (rc) return rc;
  size_t rec = (size_t)lbl_bytes + CIFAR_PIXELS;
  if (n % rec != 0 || n == 0) {
    rc = dc__errs(DC_ERR_FORMAT,
                  "%s: %zu bytes is not a whole number of %zu-byte %s records "
                  "(%zu records and %zu bytes left over): truncated, or not a %s "
                  "batch",
                  path, n, rec, format, n / rec, n % rec, format);
    dc__free(mem);
    return rc;
  }
  int64_t m = (int64_t)(n / rec), at = *count;
  uint8_t *nx = dc__realloc(*x, (size_t)at * CIFAR_PIXELS, (size_t)(at + m) * CIFAR_PIXELS);
  if (!nx) {
    dc__free(mem);
    return DC_ERR_NOMEM;
  }
  *x = nx;
  int64_t *ny = dc__realloc(*y, (size_t)at * sizeof **y, (size_t)(at + m) * sizeof **y);
  if (!ny) {
    dc__free(mem);
    return DC_ERR_NOMEM;
  }
  *y = ny;
  for (int64_t r = 0; r < m; r++) {
    const uint8_t *p = mem + (size_t)r * rec;
    int label = p[lbl_bytes == 2 && !coarse ? 1 : 0];
    if (label >= nclasses) {
      rc = dc__errs(DC_ERR_FORMAT,
                    "%s: record %lld (offset %zu): %slabel %d is out of range "
                    "for %d classes",
                    path, (long long)r, (size_t)r * rec,
                    lbl_bytes == 2 ? (coarse ? "coarse " : "fine ") : "", label, nclasses);
      dc__free(mem);
      return rc;
    }
    ny[at + r] = label;
    const uint8_t *px = p + lbl_bytes;
    uint8_t *o = nx + (size_t)(at + r) * CIFAR_PIXELS;
    for (int i = 0; i < 1024; i++) { /* [3, 1024] planes -> [1024, 3] pixels */
      o[3 * i] = px[i];
      o[3 * i + 1] = px[1024 + i];
      o[3 * i + 2] = px[2048 + i];
    }
  }
  *count = at + m;
  dc__free(mem);
  return DC_OK;
}

static dc_dataset *cifar_from_files(const char *dir, char **files, int nfiles, bool c100,
                                    bool coarse, const char *shown_path) {
  const char *format = c100 ? "CIFAR-100" : "CIFAR-10";
  int nclasses = c100 ? (coarse ? 20 : 100) : 10;
  uint8_t *x = NULL;
  int64_t *y = NULL, n = 0;
  int rc = DC_OK;
  for (int k = 0; k < nfiles && rc == DC_OK; k++)
    rc = read_batch(files[k], c100 ? 2 : 1, coarse, nclasses, &x, &y, &n, format);
  dc_dataset *ds = NULL;
  if (rc == DC_OK) {
    dc_tensor *tx = dc_from_data(x, DC_SHAPE(n, 32, 32, 3), DC_U8);
    dc_tensor *ty = tx ? dc_from_data(y, DC_SHAPE(n), DC_I64) : NULL;
    if (ty) ds = dc__array_dataset(tx, ty, true, format, shown_path);
    dc_free(tx);
    dc_free(ty);
  }
  dc__free(x);
  dc__free(y);
  if (!ds) return NULL;
  int nrc = !c100    ? set_names(ds, dir, "batches.meta.txt", 10, CIFAR10_NAMES)
            : coarse ? set_names(ds, dir, "coarse_label_names.txt", 20, CIFAR100_COARSE)
                     : set_names(ds, dir, "fine_label_names.txt", 100, CIFAR100_FINE);
  if (nrc) {
    dc_dataset_free(ds);
    return NULL;
  }
  return ds;
}

/* The batch files of a split in dir, or 0 when dir does not hold them. */
static int cifar_files(const char *dir, bool train, bool c100, char **files) {
  int n = 0;
  if (c100) {
    files[n] = dc__path_join(dir, train ? "train.bin" : "test.bin");
    if (files[n] && dc__is_file(files[n]))
      n++;
    else
      dc__free(files[n]);
    return n;
  }
  for (int k = 1; k <= (train ? 5 : 1); k++) {
    char name[32];
    if (train)
      snprintf(name, sizeof name, "data_batch_%d.bin", k);
    else
      snprintf(name, sizeof name, "test_batch.bin");
    char *p = dc__path_join(dir, name);
    if (!p || !dc__is_file(p)) {
      dc__free(p);
      for (int j = 0; j < n; j++) dc__free(files[j]);
      return 0;
    }
    files[n++] = p;
  }
  return n;
}

static dc_dataset *cifar(const char *dir, bool train, bool c100, bool coarse) {
  const char *name = c100 ? "cifar100" : "cifar10";
  const char *sub = c100 ? "cifar-100-binary" : "cifar-10-batches-bin";
  char dirs[16][1024];
  int n = 0;
  if (dir) {
    snprintf(dirs[n++], 1024, "%s", dir);
    snprintf(dirs[n++], 1024, "%s/%s", dir, sub);
    snprintf(dirs[n++], 1024, "%s/%s/%s", dir, name, sub);
  } else {
    char cand[8][1024];
    int m = dc__data_search_dirs(name, NULL, cand, 8);
    const char *env = getenv("DEEPC_DATA");
    if (env && *env) snprintf(dirs[n++], 1024, "%s/%s", env, sub);
    for (int k = 0; k < m; k++) {
      snprintf(dirs[n++], 1024, "%.990s/%s", cand[k], sub);
      snprintf(dirs[n++], 1024, "%.1000s", cand[k]);
    }
  }
  for (int k = 0; k < n; k++) {
    char *files[5];
    int nf = cifar_files(dirs[k], train, c100, files);
    if (!nf) continue;
    dc_dataset *ds = cifar_from_files(dirs[k], files, nf, c100, coarse, dirs[k]);
    for (int j = 0; j < nf; j++) dc__free(files[j]);
    return ds;
  }
  char where[4096];
  size_t at = 0;
  for (int k = 0; k < n && at < sizeof where; k++)
    at += (size_t)snprintf(where + at, sizeof where - at, "%s%s", k ? ", " : "", dirs[k]);
  return dc__err(DC_ERR_IO,
                 "%s: no %s batch files (%s) in %s; run `deepc data fetch %s` "
                 "(online) or pass the folder",
                 name, c100 ? "CIFAR-100" : "CIFAR-10",
                 c100 ? (train ? "train.bin" : "test.bin")
                      : (train ? "data_batch_1..5.bin" : "test_batch.bin"),
                 where, name);
}

dc_dataset *dc_cifar10(const char *dir, bool train) { return cifar(dir, train, false, false); }

dc_dataset *dc_cifar100(const char *dir, bool train, bool coarse_labels) {
  return cifar(dir, train, true, coarse_labels);
}

dc_dataset *dc__cifar_file(const char *path) {
  int64_t size = dc__file_size(path);
  if (size < 0) return dc__err(DC_ERR_IO, "%s: no such file", path);
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  bool c100 = strcmp(base, "train.bin") == 0 || strcmp(base, "test.bin") == 0 ||
              (size % (CIFAR_PIXELS + 2) == 0 && size % (CIFAR_PIXELS + 1) != 0);
  char dir[1024];
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
  char *files[1] = {(char *)(uintptr_t)path};
  return cifar_from_files(dir, files, 1, c100, false, path);
}
