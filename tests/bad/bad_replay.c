/* Replays the hostile-input corpus written by make_bad.py (OUTDIR/manifest.tsv) through every
 * reader's public API and checks each refusal: an error status (no success, no crash), a message
 * that names the file and the place (offset, entry, line:column; plus what the manifest row
 * expects), no leak (allocator live bytes and live tensors back to where they were) and no
 * allocation from an unchecked size (peak growth bounded by the file size; a capped allocator).
 * Truncation rows replay every strict prefix of a small valid file (of larger ones: the first and
 * last 512 offsets and every 61st). Usage: bad_replay CORPUS_DIR [READER]. Exit 1 on a failure. */
#define _GNU_SOURCE
#include <deepc/deepc.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- a capped allocator: a request above CAP is refused and remembered */
#define CAP ((size_t)256 << 20)
static size_t g_biggest_refused;
static void *cap_alloc(size_t size, size_t align, void *ud) {
  (void)ud;
  if (size > CAP) {
    if (size > g_biggest_refused) g_biggest_refused = size;
    return NULL;
  }
  void *p = NULL;
  return posix_memalign(&p, align, size) == 0 ? p : NULL;
}
static void cap_free(void *p, void *ud) {
  (void)ud;
  free(p);
}

static int g_failures, g_checked;
static char g_spec_msg[8192]; /* the message `deepc train` prints for a config's bad layer spec */

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "FAIL ");                                                                      \
    fprintf(stderr, __VA_ARGS__);                                                                  \
    fputc('\n', stderr);                                                                           \
    g_failures++;                                                                                  \
  } while (0)

static char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)len + 1);
  if (b && fread(b, 1, (size_t)len, f) != (size_t)len) {
    free(b);
    b = NULL;
  }
  fclose(f);
  if (b) b[len] = '\0';
  *n = (size_t)len;
  return b;
}

static void spit(const char *path, const char *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f || (n && fwrite(b, 1, n, f) != n)) {
    fprintf(stderr, "bad_replay: cannot write %s: %s\n", path, strerror(errno));
    exit(2);
  }
  fclose(f);
}

/* ---- readers: DC_OK when the file was accepted */
static int read_dataset(dc_dataset *ds) {
  if (!ds) return dc_last_status() ? (int)dc_last_status() : DC_ERR_FORMAT;
  int rc = DC_OK;
  for (int64_t i = 0; rc == DC_OK && i < dc_dataset_len(ds) && i < 8; i++) {
    dc_scope_begin();
    dc_tensor *x = NULL, *y = NULL;
    rc = dc_dataset_get(ds, i, 1, &x, &y);
    dc_scope_end();
  }
  dc_dataset_free(ds);
  return rc;
}

static int parent_dir(const char *path, int up, char *out, size_t n) {
  snprintf(out, n, "%s", path);
  for (int k = 0; k < up; k++) {
    char *s = strrchr(out, '/');
    if (!s) return -1;
    *s = '\0';
  }
  return 0;
}

static int run_reader(const char *reader, const char *path) {
  if (!strcmp(reader, "idx")) {
    dc_tensor *t = dc_idx_load(path);
    dc_free(t);
    return t ? DC_OK : DC_ERR_FORMAT;
  }
  if (!strcmp(reader, "idxds")) {
    char labels[4096];
    parent_dir(path, 1, labels, sizeof labels);
    strcat(labels, "/labels.idx");
    return read_dataset(dc_idx_dataset(path, labels, 10));
  }
  if (!strcmp(reader, "dataset")) return read_dataset(dc_dataset_open(path));
  if (!strcmp(reader, "pickleds")) return read_dataset(dc_pickle_dataset(path));
  if (!strcmp(reader, "pickle")) {
    dc_pickle *p = dc_pickle_load(path);
    dc_pickle_free(p);
    return p ? DC_OK : DC_ERR_FORMAT;
  }
  if (!strcmp(reader, "npy")) {
    dc_tensor *t = dc_npy_load(path);
    dc_free(t);
    return t ? DC_OK : DC_ERR_FORMAT;
  }
  if (!strcmp(reader, "npz")) {
    dc_npz *z = dc_npz_load(path);
    dc_npz_free(z);
    return z ? DC_OK : DC_ERR_FORMAT;
  }
  if (!strcmp(reader, "weights")) {
    dc_weights *w = dc_weights_load(path);
    int rc = w ? DC_OK : DC_ERR_FORMAT;
    for (int i = 0; w && i < dc_weights_count(w); i++) {
      dc_scope_begin();
      dc_weights_tensor(w, i);
      dc_scope_end();
    }
    dc_weights_free(w);
    return rc;
  }
  if (!strcmp(reader, "ckpt")) {
    dc_ckpt *c = dc_ckpt_load(path);
    dc_ckpt_free(c);
    return c ? DC_OK : DC_ERR_FORMAT;
  }
  if (!strcmp(reader, "config")) {
    dc_config *c = dc_config_load(path);
    if (!c) return DC_ERR_FORMAT;
    /* a layer spec is checked when the model is built (as `deepc train` does): build it */
    const char *layers = dc_config_get(c, "model.layers");
    dc_module *m = layers && *layers ? dc_nn_from_spec(layers, .classes = 10) : NULL;
    int rc = layers && *layers && !m ? DC_ERR_ARG : DC_OK;
    if (rc) snprintf(g_spec_msg, sizeof g_spec_msg, "%s: model.layers: %s", path, dc_last_error());
    dc_module_free(m);
    dc_config_free(c);
    return rc;
  }
  if (!strcmp(reader, "spec")) {
    size_t n;
    char *text = slurp(path, &n);
    dc_module *m = text ? dc_nn_from_spec(text, .classes = 10) : NULL;
    free(text);
    dc_module_free(m);
    return m ? DC_OK : DC_ERR_ARG;
  }
  if (!strcmp(reader, "image")) {
    char root[4096];
    parent_dir(path, 2, root, sizeof root);
    return read_dataset(dc_image_folder(root));
  }
  if (!strcmp(reader, "csv")) return read_dataset(dc_csv_dataset(path));
  if (!strcmp(reader, "onnx")) { /* load, then a forward of one zero sample */
    dc_module *m = dc_onnx_load(path);
    dc_shape one = dc_onnx_input_shape(m);
    int rc = m ? DC_OK : (int)dc_last_status();
    if (m && one.ndim) {
      dc_shape s = {.ndim = one.ndim + 1, .d = {1}};
      for (int i = 0; i < one.ndim; i++) s.d[i + 1] = one.d[i];
      dc_scope_begin();
      if (!dc_module_forward(m, dc_zeros(s, DC_F32))) rc = (int)dc_last_status();
      dc_scope_end();
    }
    dc_module_free(m);
    return rc ? rc : DC_OK;
  }
  if (!strcmp(reader, "history")) {
    dc_history h = {0};
    int rc = dc_history_read_csv(path, &h);
    dc_history_clear(&h);
    return rc;
  }
  fprintf(stderr, "bad_replay: unknown reader '%s'\n", reader);
  exit(2);
}

/* ---- checks */
static bool has_any(const char *msg, const char *alts) {
  if (!*alts) return true;
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", alts);
  for (char *save = NULL, *a = strtok_r(buf, "|", &save); a; a = strtok_r(NULL, "|", &save))
    if (strstr(msg, a)) return true;
  return false;
}

/* Words that place an error inside a file. */
static const char *PLACES = "offset|line|column|entry|member|byte|header|dimension|field|key|"
                            "label|record|chunk|IHDR|IDAT|JPEG|PNG|P5|P6|shape|storage|'|"
                            "directory|data.pkl|__metadata__|empty|protobuf|node|graph|opset|"
                            "tensor";

/* "file:12:" (a line number right after the file name) */
static bool names_line(const char *msg, const char *base) {
  for (const char *p = msg; (p = strstr(p, base)); p++) {
    const char *q = p + strlen(base);
    if (q[0] == ':' && q[1] >= '0' && q[1] <= '9') return true;
  }
  return false;
}

typedef struct budget {
  int64_t live, tensors;
} budget;

static budget snap(void) {
  dc_alloc_stats s = dc_alloc_get_stats();
  return (budget){s.live_bytes, dc_live_tensors()};
}

/* Runs one file; mode 'b' must fail, 'o' must load, 'a' either. size bounds the peak. */
static void check_one(const char *reader, const char *path, const char *label, char mode,
                      const char *expect, size_t size) {
  if (mode == 'o') { /* once first: one-time buffers (per-thread scratch) are no leak */
    run_reader(reader, path);
    dc_clear_error();
  }
  budget before = snap();
  dc_alloc_reset_peak();
  g_biggest_refused = 0;
  g_spec_msg[0] = '\0';
  dc_clear_error();
  int rc = run_reader(reader, path);
  dc_alloc_stats after = dc_alloc_get_stats();
  const char *msg = g_spec_msg[0] ? g_spec_msg : dc_last_error();
  g_checked++;
  if (mode == 'o' && rc != DC_OK) FAIL("%s %s: a valid file was refused: %s", reader, label, msg);
  if (mode == 'b' && rc == DC_OK) FAIL("%s %s: accepted (expected an error)", reader, label);
  if (rc != DC_OK && mode != 'o') {
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (!*msg) FAIL("%s %s: refused without a message", reader, label);
    /* a layer spec has no file of its own: its errors name the column */
    bool spec = !strcmp(reader, "spec");
    /* an IDX pair may be refused for its labels file, beside the images */
    bool named = strstr(msg, base) || (!strcmp(reader, "idxds") && strstr(msg, "labels.idx"));
    if (!spec && !named) FAIL("%s %s: the message does not name the file: %s", reader, label, msg);
    if (!has_any(msg, PLACES) && !names_line(msg, base))
      FAIL("%s %s: the message names no place (offset, entry, line, ...): %s", reader, label, msg);
    if (mode == 'b' && !has_any(msg, expect))
      FAIL("%s %s: the message holds none of '%s': %s", reader, label, expect, msg);
  }
  budget now = snap();
  if (now.live != before.live || now.tensors != before.tensors)
    FAIL("%s %s: leak: %lld bytes and %lld tensors left alive", reader, label,
         (long long)(now.live - before.live), (long long)(now.tensors - before.tensors));
  /* a refused file gets a few times its size plus fixed buffers; images may also hold the pixels
   * their (limited) header declares, gzip data its 1032:1 bound */
  int64_t grew = after.peak_bytes - before.live;
  int64_t bound = (int64_t)(8 * size) + (4 << 20);
  if (strstr(path, ".gz")) bound += (int64_t)(1032 * size);
  /* the pickle VMs make one object per opcode (about 200 bytes each, at most 2^21 of them) */
  if (!strcmp(reader, "pickle") || !strcmp(reader, "pickleds") || !strcmp(reader, "weights"))
    bound += (int64_t)(200 * size);
  if (rc != DC_OK && grew > bound)
    FAIL("%s %s: %lld bytes allocated for a %zu-byte file it refused (bound %lld)", reader, label,
         (long long)grew, size, (long long)bound);
  if (g_biggest_refused)
    FAIL("%s %s: asked the allocator for %zu bytes (an unchecked size)", reader, label,
         g_biggest_refused);
  dc_clear_error();
}

/* "trunc", "trunc:3073,6146", "trunc:tail12": may prefix k load? */
static bool prefix_may_load(const char *mode, size_t k, size_t n) {
  const char *c = strchr(mode, ':');
  if (!c) return false;
  if (!strncmp(c + 1, "tail", 4)) return k + (size_t)atoll(c + 5) >= n;
  for (const char *p = c + 1; *p;) {
    char *e;
    unsigned long long v = strtoull(p, &e, 10);
    if (e == p) break;
    if (v == k) return true;
    p = *e == ',' ? e + 1 : e;
  }
  return false;
}

static int g_per_reader_n[64];
static char g_reader_names[64][32];
static void count(const char *reader, int n) {
  int i = 0;
  while (i < 64 && g_reader_names[i][0] && strcmp(g_reader_names[i], reader)) i++;
  if (i == 64) return;
  snprintf(g_reader_names[i], sizeof g_reader_names[i], "%.31s", reader);
  g_per_reader_n[i] += n;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR [READER]\n(CORPUS_DIR: written by make_bad.py)\n",
            argv[0]);
    return 2;
  }
  dc_set_allocator(&(dc_allocator){cap_alloc, cap_free, NULL});
  const char *root = argv[1], *only = argc > 2 ? argv[2] : NULL;
  char mpath[4096];
  snprintf(mpath, sizeof mpath, "%s/manifest.tsv", root);
  FILE *mf = fopen(mpath, "r");
  if (!mf) {
    fprintf(stderr, "bad_replay: cannot open %s (run make_bad.py first)\n", mpath);
    return 2;
  }
  char tmpdir[4096];
  snprintf(tmpdir, sizeof tmpdir, "%s/tmp", root);
  mkdir(tmpdir, 0755);
  char line[8192];
  int rows = 0;
  while (fgets(line, sizeof line, mf)) {
    line[strcspn(line, "\n")] = '\0';
    char *f[4] = {line, "", "", ""};
    for (int k = 1; k < 4; k++) {
      char *t = f[k - 1] ? strchr(f[k - 1], '\t') : NULL;
      if (!t) break;
      *t = '\0';
      f[k] = t + 1;
    }
    const char *reader = f[0], *rel = f[1], *mode = f[2], *expect = f[3];
    if (only && strcmp(only, reader)) continue;
    char path[4096];
    snprintf(path, sizeof path, "%.2000s/%.2000s", root, rel ? rel : "");
    size_t n;
    char *data = slurp(path, &n);
    if (!data) {
      fprintf(stderr, "bad_replay: cannot read %s\n", path);
      return 2;
    }
    rows++;
    if (!strncmp(mode, "trunc", 5)) {
      /* every strict prefix, written where the reader expects the file (same name; images in a
       * class folder of their own root) */
      char tpath[4096], tdir[4096];
      const char *base = strrchr(rel, '/') + 1;
      snprintf(tdir, sizeof tdir, "%.2000s/%.64s", tmpdir, reader);
      mkdir(tdir, 0755);
      if (!strcmp(reader, "image")) {
        snprintf(tdir + strlen(tdir), sizeof tdir - strlen(tdir), "/r");
        mkdir(tdir, 0755);
        snprintf(tdir + strlen(tdir), sizeof tdir - strlen(tdir), "/c");
        mkdir(tdir, 0755);
      }
      snprintf(tpath, sizeof tpath, "%s/%s", tdir, base);
      bool any = !strcmp(mode, "trunc-any");
      /* the valid file itself loads (else every prefix would fail for the wrong reason) */
      spit(tpath, data, n);
      check_one(reader, tpath, rel, 'o', "", n);
      /* files over 2 KiB (CIFAR records): every offset in the first and last 512 bytes, and
       * every 61st in between, to stay within seconds */
      int tested = 0;
      for (size_t k = 0; k < n; k++) {
        if (n > 2048 && k >= 512 && k + 512 < n && k % 61) continue;
        tested++;
        char label[4200];
        snprintf(label, sizeof label, "%s[:%zu]", rel, k);
        spit(tpath, data, k);
        check_one(reader, tpath, label, any || prefix_may_load(mode, k, n) ? 'a' : 'b', "", k);
      }
      remove(tpath);
      count(reader, tested);
    } else {
      check_one(reader, path, rel, mode[0] == 'o' ? 'o' : 'b', expect, n);
      count(reader, 1);
    }
    free(data);
  }
  fclose(mf);
  printf("bad_replay: %d inputs (%d manifest rows):", g_checked, rows);
  for (int i = 0; i < 64 && g_reader_names[i][0]; i++)
    printf(" %s %d", g_reader_names[i], g_per_reader_n[i]);
  printf("; %d failures\n", g_failures);
  return g_failures ? 1 : 0;
}
