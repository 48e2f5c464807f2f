/* ImageFolder: root/<class>/.../<image>, classes and files ordered exactly as torchvision's
 * find_classes / make_dataset (byte-sorted names, sorted os.walk), images decoded when a sample
 * is read (image.c). Files of other types are skipped and counted; empty classes are errors. */
#include "data-impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DC__FOLDER_MAX_DEPTH 64
#define DC__IMAGE_FILE_MAX ((size_t)1 << 30) /* 1 GiB per image file */

typedef struct folder_impl {
  char **files;    /* [N] paths */
  int64_t *labels; /* [N] class indices */
  bool gray;
  int64_t max_pixels;
} folder_impl;

/* A growable list of strings. */
typedef struct strlist {
  char **s;
  int64_t n, cap;
} strlist;

static bool strlist_push(strlist *l, char *s) {
  if (!s) return false;
  if (l->n == l->cap) {
    int64_t cap = l->cap ? l->cap * 2 : 64;
    char **p = dc__realloc(l->s, sizeof *p * (size_t)l->cap, sizeof *p * (size_t)cap);
    if (!p) {
      dc__free(s);
      return false;
    }
    l->s = p;
    l->cap = cap;
  }
  l->s[l->n++] = s;
  return true;
}

static void strlist_free(strlist *l) {
  for (int64_t i = 0; i < l->n; i++) dc__free(l->s[i]);
  dc__free(l->s);
  *l = (strlist){0};
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A file found by the walk: its folder and name, sorted like sorted(os.walk) + sorted(files). */
typedef struct walk_file {
  char *dir, *name;
} walk_file;

typedef struct walk_list {
  walk_file *f;
  int64_t n, cap;
} walk_list;

static int cmp_walk(const void *a, const void *b) {
  const walk_file *x = a, *y = b;
  int c = strcmp(x->dir, y->dir);
  return c ? c : strcmp(x->name, y->name);
}

static bool walk_push(walk_list *l, const char *dir, const char *name) {
  if (l->n == l->cap) {
    int64_t cap = l->cap ? l->cap * 2 : 256;
    walk_file *p = dc__realloc(l->f, sizeof *p * (size_t)l->cap, sizeof *p * (size_t)cap);
    if (!p) return false;
    l->f = p;
    l->cap = cap;
  }
  char *d = dc__strdup(dir), *n = d ? dc__strdup(name) : NULL;
  if (!n) {
    dc__free(d);
    return false;
  }
  l->f[l->n++] = (walk_file){d, n};
  return true;
}

static void walk_free(walk_list *l) {
  for (int64_t i = 0; i < l->n; i++) {
    dc__free(l->f[i].dir);
    dc__free(l->f[i].name);
  }
  dc__free(l->f);
  *l = (walk_list){0};
}

/* Recursively lists files under dir (following links, like os.walk(followlinks=True)). */
static int walk(const char *dir, int depth, walk_list *out) {
  if (depth > DC__FOLDER_MAX_DEPTH)
    return dc__errs(DC_ERR_FORMAT,
                    "image_folder: %s: folders nested deeper than %d (a symlink "
                    "loop?)",
                    dir, DC__FOLDER_MAX_DEPTH);
  DIR *d = opendir(dir);
  if (!d) return dc__errs(DC_ERR_IO, "image_folder: cannot list %s: %s", dir, strerror(errno));
  int rc = DC_OK;
  strlist subdirs = {0};
  struct dirent *e;
  while (rc == DC_OK && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char *p = dc__path_join(dir, e->d_name);
    if (!p) {
      rc = DC_ERR_NOMEM;
      break;
    }
    struct stat st;
    if (stat(p, &st) != 0) { /* dangling link: os.walk lists it as a file */
      rc = walk_push(out, dir, e->d_name) ? DC_OK : DC_ERR_NOMEM;
      dc__free(p);
    } else if (S_ISDIR(st.st_mode)) {
      if (!strlist_push(&subdirs, p)) rc = DC_ERR_NOMEM;
    } else {
      rc = walk_push(out, dir, e->d_name) ? DC_OK : DC_ERR_NOMEM;
      dc__free(p);
    }
  }
  closedir(d);
  for (int64_t k = 0; rc == DC_OK && k < subdirs.n; k++) rc = walk(subdirs.s[k], depth + 1, out);
  strlist_free(&subdirs);
  return rc;
}

static bool decodable_name(const char *name) {
  static const char *const ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".pgm"};
  for (size_t k = 0; k < sizeof ext / sizeof *ext; k++)
    if (dc__ends_with_ci(name, ext[k])) return true;
  return false;
}

static int folder_get(const dc_dataset *ds, int64_t i, dc__sample *s, uint64_t seed) {
  (void)seed;
  const folder_impl *f = ds->impl;
  size_t n;
  int rc = dc__read_file_arr(f->files[i], DC__IMAGE_FILE_MAX, &s->aux, &n);
  if (rc) return rc;
  rc = dc__image_decode(s->aux.data, n, f->gray, f->max_pixels, &s->x, f->files[i]);
  if (rc) return rc;
  s->hwc = true;
  s->has_y = true;
  if (!dc__arr_reserve(&s->y, sizeof(int64_t))) return DC_ERR_NOMEM;
  s->y.dtype = DC_I64;
  s->y.ndim = 0;
  *(int64_t *)s->y.data = f->labels[i];
  return DC_OK;
}

static int64_t folder_label(const dc_dataset *ds, int64_t i) {
  return ((const folder_impl *)ds->impl)->labels[i];
}

static void folder_destroy(dc_dataset *ds) {
  folder_impl *f = ds->impl;
  for (int64_t i = 0; i < ds->n; i++) dc__free(f->files[i]);
  dc__free(f->files);
  dc__free(f->labels);
  dc__free(f);
}

static const dc__dataset_vt FOLDER_VT = {folder_get, folder_label, folder_destroy};

const char *dc__image_folder_file(const dc_dataset *ds, int64_t i) {
  if (!ds || ds->vt != &FOLDER_VT || i < 0 || i >= ds->n) return NULL;
  return ((const folder_impl *)ds->impl)->files[i];
}

/* Lists class folders of root, sorted. */
static int list_classes(const char *root, strlist *classes) {
  DIR *d = opendir(root);
  if (!d) return dc__errs(DC_ERR_IO, "image_folder: cannot open %s: %s", root, strerror(errno));
  struct dirent *e;
  int rc = DC_OK;
  while (rc == DC_OK && (e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char *p = dc__path_join(root, e->d_name);
    bool dir = p && dc__is_dir(p);
    dc__free(p);
    if (!p)
      rc = DC_ERR_NOMEM;
    else if (dir && !strlist_push(classes, dc__strdup(e->d_name)))
      rc = DC_ERR_NOMEM;
  }
  closedir(d);
  if (rc == DC_OK && classes->n) qsort(classes->s, (size_t)classes->n, sizeof *classes->s, cmp_str);
  return rc;
}

/* The image files found so far, each with its class index. */
typedef struct folder_scan {
  strlist files;
  int64_t *labels, n, cap; /* labels[n] */
  int64_t skipped;         /* files whose names no decoder takes */
} folder_scan;

static void scan_free(folder_scan *sc) {
  strlist_free(&sc->files);
  dc__free(sc->labels);
}

/* Adds the decodable files under class folder k (cdir), in name order; *found counts them. */
static int scan_class(folder_scan *sc, const char *cdir, int64_t k, int64_t *found) {
  walk_list wl = {0};
  int rc = walk(cdir, 0, &wl);
  if (rc == DC_OK && wl.n) qsort(wl.f, (size_t)wl.n, sizeof *wl.f, cmp_walk);
  for (int64_t i = 0; rc == DC_OK && i < wl.n; i++) {
    if (!decodable_name(wl.f[i].name)) {
      sc->skipped++;
      continue;
    }
    if (sc->n == sc->cap) {
      int64_t ncap = sc->cap ? sc->cap * 2 : 256;
      int64_t *nl =
          dc__realloc(sc->labels, sizeof *nl * (size_t)sc->cap, sizeof *nl * (size_t)ncap);
      if (!nl) {
        rc = dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
        break;
      }
      sc->labels = nl;
      sc->cap = ncap;
    }
    if (!strlist_push(&sc->files, dc__path_join(wl.f[i].dir, wl.f[i].name))) {
      rc = dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
      break;
    }
    sc->labels[sc->n++] = k;
    (*found)++;
  }
  walk_free(&wl);
  return rc;
}

/* Every class folder's images; a class folder without any is an error that names them all. */
static int scan_classes(const char *root, const strlist *classes, folder_scan *sc) {
  char empty[1024] = "";
  size_t empty_len = 0;
  for (int64_t k = 0; k < classes->n; k++) {
    char *cdir = dc__path_join(root, classes->s[k]);
    int64_t found = 0;
    int rc = cdir ? scan_class(sc, cdir, k, &found) : DC_ERR_NOMEM;
    dc__free(cdir);
    if (rc != DC_OK) return rc;
    if (!found && empty_len < sizeof empty - 1)
      empty_len += (size_t)snprintf(empty + empty_len, sizeof empty - empty_len, "%s'%s'",
                                    empty_len ? ", " : "", classes->s[k]);
  }
  if (empty_len)
    return dc__errs(DC_ERR_FORMAT,
                    "image_folder: %s: class folder(s) %s hold no JPEG, PNG, PPM or PGM "
                    "file; remove them or add images",
                    root, empty);
  return DC_OK;
}

/* The dataset over the scanned files; takes sc's lists (emptied) when it succeeds. */
static dc_dataset *folder_dataset(const char *root, dc_image_folder_opts o, folder_scan *sc,
                                  const strlist *classes) {
  folder_impl *f = dc__calloc(1, sizeof *f);
  if (!f) return NULL;
  f->files = sc->files.s;
  f->labels = sc->labels;
  f->gray = o.grayscale;
  f->max_pixels = o.max_pixels > 0 ? o.max_pixels : DC_MAX_IMAGE_PIXELS;
  dc_dataset *ds = dc__dataset_new(&FOLDER_VT, "ImageFolder", root, sc->files.n, f);
  if (!ds) {
    dc__free(f);
    return NULL;
  }
  *sc = (folder_scan){.skipped = sc->skipped};
  ds->skipped = sc->skipped;
  if (dc__dataset_set_classes(ds, classes->n, (const char *const *)classes->s) != DC_OK) {
    dc_dataset_free(ds);
    return NULL;
  }
  return ds;
}

dc_dataset *dc_image_folder_opt(const char *root, dc_image_folder_opts o) {
  if (!root) return dc__err(DC_ERR_ARG, "image_folder: root is NULL");
  if (!dc__is_dir(root)) return dc__err(DC_ERR_IO, "image_folder: %s is not a folder", root);
  strlist classes = {0};
  folder_scan sc = {0};
  dc_dataset *ds = NULL;
  if (list_classes(root, &classes) == DC_OK) {
    if (classes.n == 0)
      dc__err(DC_ERR_FORMAT, "image_folder: no class folders in %s (expected %s/<class>/<image>)",
              root, root);
    else if (scan_classes(root, &classes, &sc) == DC_OK)
      ds = folder_dataset(root, o, &sc, &classes);
  }
  scan_free(&sc);
  strlist_free(&classes);
  return ds;
}
