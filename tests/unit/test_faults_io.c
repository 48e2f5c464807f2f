/* Allocation failures injected at every allocation of loading (deepc checkpoints, .pth,
 * safetensors, datasets: IDX raw and gzip, CSV, a sample through the loader) and of saving
 * (checkpoints, weight files, a trainer's state): each failure is a clean error with nothing
 * leaked; a failed save leaves the previous file byte for byte and no temporary file behind. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "../fault/faults.h"

#include "tmpdir.h"
static void in_dir(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", dir, name); }

static unsigned char *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc((size_t)sz + 1);
  cr_assert_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
  fclose(f);
  *n = (size_t)sz;
  return b;
}

/* the names in dir, sorted, joined by spaces */
static void list_dir(char *out, size_t n) {
  struct dirent **ents;
  int k = scandir(dir, &ents, NULL, alphasort);
  cr_assert_geq(k, 0);
  out[0] = 0;
  for (int i = 0; i < k; i++) {
    if (ents[i]->d_name[0] != '.') {
      strncat(out, ents[i]->d_name, n - strlen(out) - 2);
      strncat(out, " ", n - strlen(out) - 1);
    }
    free(ents[i]);
  }
  free(ents);
}

static dc_module *small_cnn(void) {
  dc_manual_seed(4);
  dc_module *m = dc_zoo_create("cnn_fashion");
  cr_assert_not_null(m, "%s", dc_last_error());
  return m;
}

/* ======================= loading ======================= */
typedef struct load_case {
  char path[300];
  dc_weights_format fmt;
  dc_module *m;       /* reference values */
  dc_state_dict *ref; /* the module's state dict */
  dc_ckpt *ck;        /* result of a checkpoint load */
  dc_weights *w;      /* result of a weights load */
  dc_state_dict *sd;  /* result of a state-dict load */
  dc_dataset *ds;     /* result of a dataset open */
  int kind;           /* 0 ckpt, 1 weights, 2 pth state dict, 3 safetensors state dict */
  int64_t ds_len;
  double ds_first[4]; /* a few values of sample 3 */
  int64_t ds_label;
} load_case;

static void expect_sd(const dc_state_dict *sd, const dc_state_dict *ref, const char *what) {
  cr_assert_eq(dc_state_dict_size(sd), dc_state_dict_size(ref), "%s: entry count", what);
  for (int i = 0; i < dc_state_dict_size(ref); i++) {
    dc_tensor *a = dc_state_dict_get(sd, dc_state_dict_key_at(ref, i));
    dc_tensor *b = dc_state_dict_tensor_at(ref, i);
    cr_assert_not_null(a, "%s: %s missing", what, dc_state_dict_key_at(ref, i));
    fault_expect_bytes(dc_state_dict_key_at(ref, i), a, dc_data(b),
                       (size_t)dc_numel(b) * dc_dtype_size(b->dtype));
  }
}

static int load_run(void *ud) {
  load_case *c = ud;
  switch (c->kind) {
  case 0:
    return (c->ck = dc_ckpt_load(c->path)) ? DC_OK : dc_last_status();
  case 1:
    return (c->w = dc_weights_load(c->path)) ? DC_OK : dc_last_status();
  case 2:
    return (c->sd = dc_pth_load(c->path)) ? DC_OK : dc_last_status();
  default:
    return (c->sd = dc_safetensors_load(c->path)) ? DC_OK : dc_last_status();
  }
}
static void load_check(void *ud) {
  load_case *c = ud;
  if (c->ck) {
    dc_state_dict *sd = dc_ckpt_get_state_dict(c->ck, "model.");
    cr_assert_not_null(sd);
    expect_sd(sd, c->ref, "checkpoint");
    dc_state_dict_free(sd);
    cr_assert_str_eq(dc_ckpt_meta(c->ck, "epoch"), "3");
  }
  if (c->w) {
    dc_alloc_fail_at(0);
    dc_state_dict *sd = dc_weights_state_dict(c->w, c->fmt == DC_WEIGHTS_CKPT ? "model." : NULL);
    cr_assert_not_null(sd, "%s", dc_last_error());
    expect_sd(sd, c->ref, "weights");
    dc_state_dict_free(sd);
  }
  if (c->sd) expect_sd(c->sd, c->ref, "state dict");
}
static void load_cleanup(void *ud) {
  load_case *c = ud;
  dc_ckpt_free(c->ck);
  dc_weights_free(c->w);
  dc_state_dict_free(c->sd);
  c->ck = NULL, c->w = NULL, c->sd = NULL;
}

static void load_sweep(const char *name, dc_weights_format fmt, int kind) {
  load_case c = {.fmt = fmt, .kind = kind};
  c.m = small_cnn();
  c.ref = dc_module_state_dict(c.m);
  in_dir(c.path, sizeof c.path, name);
  if (fmt == DC_WEIGHTS_CKPT) {
    dc_ckpt *ck = dc_ckpt_new();
    cr_assert_eq(dc_ckpt_add_state_dict(ck, "model.", c.ref), DC_OK);
    cr_assert_eq(dc_ckpt_set_meta(ck, "epoch", "3"), DC_OK);
    cr_assert_eq(dc_ckpt_save(ck, c.path), DC_OK, "%s", dc_last_error());
    dc_ckpt_free(ck);
  } else {
    dc_weights *w = dc_weights_from_state_dict(c.ref, NULL);
    cr_assert_eq(dc_weights_save(w, c.path, fmt), DC_OK, "%s", dc_last_error());
    dc_weights_free(w);
  }
  char what[128];
  snprintf(what, sizeof what, "load %s (%s)", name,
           kind == 0   ? "dc_ckpt_load"
           : kind == 1 ? "dc_weights_load"
           : kind == 2 ? "dc_pth_load"
                       : "dc_safetensors_load");
  fault_case fc = {.what = what, .run = load_run, .check = load_check, .cleanup = load_cleanup};
  fault_report r = fault_sweep(&fc, &c);
  cr_assert_gt(r.failures, 0);
  dc_state_dict_free(c.ref);
  dc_module_free(c.m);
}

Test(faults_load, ckpt, .init = setup, .fini = teardown) {
  load_sweep("a.ckpt", DC_WEIGHTS_CKPT, 0);
}
Test(faults_load, ckpt_as_weights, .init = setup, .fini = teardown) {
  load_sweep("a.ckpt", DC_WEIGHTS_CKPT, 1);
}
Test(faults_load, pth, .init = setup, .fini = teardown) { load_sweep("a.pth", DC_WEIGHTS_PTH, 2); }
Test(faults_load, pth_weights, .init = setup, .fini = teardown) {
  load_sweep("a.pth", DC_WEIGHTS_PTH, 1);
}
Test(faults_load, safetensors, .init = setup, .fini = teardown) {
  load_sweep("a.safetensors", DC_WEIGHTS_SAFETENSORS, 3);
}

/* ---- datasets: open, then read sample 3 ---- */
static int ds_run(void *ud) {
  load_case *c = ud;
  c->ds = dc_dataset_open(c->path);
  if (!c->ds) return dc_last_status();
  int rc = dc_scope_begin();
  if (rc != DC_OK) return rc;
  dc_tensor *x = NULL, *y = NULL;
  rc = dc_dataset_get(c->ds, 3, 9, &x, &y);
  if (rc == DC_OK) {
    c->ds_len = dc_dataset_len(c->ds);
    dc_tensor *xf = dc_to_dtype(dc_flatten(x, 0, -1), DC_F64);
    if (!xf)
      rc = dc_last_status();
    else
      for (int i = 0; i < 4; i++) c->ds_first[i] = ((double *)dc_data(xf))[i * 5];
    c->ds_label = y ? (int64_t)dc_item(y) : -1;
  }
  dc_scope_end();
  if (rc != DC_OK) { /* a failed call leaves nothing: the dataset goes too */
    dc_dataset_free(c->ds);
    c->ds = NULL;
  }
  return rc;
}
static void ds_check(void *ud) {
  load_case *c = ud;
  static double first[4];
  static int64_t len = -1, label;
  if (len < 0) {
    memcpy(first, c->ds_first, sizeof first);
    len = c->ds_len, label = c->ds_label;
  }
  cr_assert_eq(c->ds_len, len);
  cr_assert_eq(c->ds_label, label);
  cr_assert(memcmp(first, c->ds_first, sizeof first) == 0, "sample 3 differs");
}
static void ds_cleanup(void *ud) {
  load_case *c = ud;
  dc_dataset_free(c->ds);
  c->ds = NULL;
}
static void ds_sweep(const char *path, const char *what) {
  load_case c = {0};
  snprintf(c.path, sizeof c.path, "%s", path);
  fault_case fc = {.what = what, .run = ds_run, .check = ds_check, .cleanup = ds_cleanup};
  fault_report r = fault_sweep(&fc, &c);
  cr_assert_gt(r.failures, 0);
}

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}
/* train-images-idx3-ubyte (+ labels) with n images of 28x28, raw or gzip */
static void write_idx(int n, bool gz) {
  size_t ni = 16 + (size_t)n * 784, nl = 8 + (size_t)n;
  unsigned char *img = malloc(ni), *lab = malloc(nl);
  put_be32(img, 0x803), put_be32(img + 4, (uint32_t)n), put_be32(img + 8, 28);
  put_be32(img + 12, 28);
  for (size_t i = 16; i < ni; i++) img[i] = (unsigned char)(i * 7 % 251);
  put_be32(lab, 0x801), put_be32(lab + 4, (uint32_t)n);
  for (int i = 0; i < n; i++) lab[8 + i] = (unsigned char)(i % 10);
  char p[300];
  const char *names[2] = {gz ? "train-images-idx3-ubyte.gz" : "train-images-idx3-ubyte",
                          gz ? "train-labels-idx1-ubyte.gz" : "train-labels-idx1-ubyte"};
  unsigned char *bufs[2] = {img, lab};
  size_t sizes[2] = {ni, nl};
  for (int k = 0; k < 2; k++) {
    in_dir(p, sizeof p, names[k]);
    if (gz) {
      gzFile f = gzopen(p, "wb");
      cr_assert_not_null(f);
      cr_assert_eq(gzwrite(f, bufs[k], (unsigned)sizes[k]), (int)sizes[k]);
      gzclose(f);
    } else {
      FILE *f = fopen(p, "wb");
      cr_assert_eq(fwrite(bufs[k], 1, sizes[k], f), sizes[k]);
      fclose(f);
    }
  }
  free(img);
  free(lab);
}

Test(faults_load, dataset_idx, .init = setup, .fini = teardown) {
  write_idx(20, false);
  char p[300];
  in_dir(p, sizeof p, "train-images-idx3-ubyte");
  ds_sweep(p, "dataset_open IDX");
}
Test(faults_load, dataset_idx_gz, .init = setup, .fini = teardown) {
  write_idx(20, true);
  char p[300];
  in_dir(p, sizeof p, "train-images-idx3-ubyte.gz");
  ds_sweep(p, "dataset_open IDX (gzip)");
}
Test(faults_load, dataset_folder, .init = setup, .fini = teardown) {
  write_idx(20, true);
  ds_sweep(dir, "dataset_open MNIST folder");
}
Test(faults_load, dataset_csv, .init = setup, .fini = teardown) {
  char p[300];
  in_dir(p, sizeof p, "d.csv");
  FILE *f = fopen(p, "w");
  fprintf(f, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,label\n");
  for (int i = 0; i < 30; i++) {
    for (int j = 0; j < 20; j++) fprintf(f, "%g,", i * 0.5 + j);
    fprintf(f, "%s\n", i % 3 == 0 ? "cat" : i % 3 == 1 ? "dog" : "bird");
  }
  fclose(f);
  ds_sweep(p, "dataset_open CSV");
}

/* ======================= saving ======================= */
typedef struct save_case {
  char path[300];
  int kind; /* 0 ckpt, 1 .pth, 2 .safetensors, 3 trainer state checkpoint */
  dc_ckpt *ck;
  dc_weights *w;
  dc_trainer *t;
  unsigned char *prev, *ref; /* previous file, fault-free new file */
  size_t nprev, nref;
  char listing[1024];
} save_case;

static int save_run(void *ud) {
  save_case *c = ud;
  switch (c->kind) {
  case 0:
    return dc_ckpt_save(c->ck, c->path);
  case 1:
  case 2:
    return dc_weights_save(c->w, c->path, DC_WEIGHTS_AUTO);
  default: {
    dc_ckpt *ck = dc_ckpt_new();
    int rc = ck ? dc_trainer_save_state(c->t, ck) : (int)dc_last_status();
    if (rc == DC_OK) rc = dc_ckpt_save(ck, c->path);
    dc_ckpt_free(ck);
    return rc;
  }
  }
}
/* the previous file is back before every run */
static void save_prepare(void *ud) {
  save_case *c = ud;
  FILE *f = fopen(c->path, "wb");
  cr_assert_eq(fwrite(c->prev, 1, c->nprev, f), c->nprev);
  fclose(f);
}
static void save_after_fail(void *ud) {
  save_case *c = ud;
  size_t n;
  unsigned char *now = slurp(c->path, &n);
  cr_assert(n == c->nprev && memcmp(now, c->prev, n) == 0,
            "%s: the previous file changed after a failed save", c->path);
  free(now);
  char l[1024];
  list_dir(l, sizeof l);
  cr_assert_str_eq(l, c->listing, "a failed save left files behind");
}
static void save_check(void *ud) {
  save_case *c = ud;
  size_t n;
  unsigned char *now = slurp(c->path, &n);
  if (!c->ref) {
    c->ref = now, c->nref = n;
    cr_assert(n != c->nprev || memcmp(now, c->prev, n) != 0, "the test saves the same bytes");
    return;
  }
  cr_assert(n == c->nref && memcmp(now, c->ref, n) == 0, "the saved file differs");
  free(now);
  char l[1024];
  list_dir(l, sizeof l);
  cr_assert_str_eq(l, c->listing, "a save left files behind");
}

static void save_sweep(save_case *c, const char *name, const char *what) {
  in_dir(c->path, sizeof c->path, name);
  /* the previous file: the same content with other values */
  FILE *f = fopen(c->path, "wb");
  fputs("previous checkpoint bytes", f);
  fclose(f);
  c->prev = slurp(c->path, &c->nprev);
  list_dir(c->listing, sizeof c->listing);
  fault_case fc = {.what = what,
                   .prepare = save_prepare,
                   .run = save_run,
                   .check = save_check,
                   .after_fail = save_after_fail};
  fault_report r = fault_sweep(&fc, c);
  cr_assert_gt(r.failures, 0);
  free(c->prev);
  free(c->ref);
}

Test(faults_save, ckpt, .init = setup, .fini = teardown) {
  dc_module *m = small_cnn();
  dc_state_dict *sd = dc_module_state_dict(m);
  save_case c = {.kind = 0, .ck = dc_ckpt_new()};
  cr_assert_eq(dc_ckpt_add_state_dict(c.ck, "model.", sd), DC_OK);
  cr_assert_eq(dc_ckpt_set_meta(c.ck, "epoch", "3"), DC_OK);
  /* a non-contiguous entry: its bytes go through a buffer (the only allocation of a save; the
   * JSON header is built by cJSON with the C library's malloc) */
  dc_tensor *w = dc_transpose(dc_state_dict_get(sd, "14.weight"), 0, 1);
  cr_assert_not_null(w, "%s", dc_last_error());
  cr_assert_eq(dc_ckpt_set_tensor(c.ck, "14.weight.T", w), DC_OK);
  dc_free(w);
  save_sweep(&c, "last.ckpt", "dc_ckpt_save");
  dc_ckpt_free(c.ck);
  dc_state_dict_free(sd);
  dc_module_free(m);
}

static void weights_save_sweep(int kind, const char *name) {
  dc_module *m = small_cnn();
  dc_state_dict *sd = dc_module_state_dict(m);
  save_case c = {.kind = kind, .w = dc_weights_from_state_dict(sd, NULL)};
  cr_assert_not_null(c.w);
  char what[64];
  snprintf(what, sizeof what, "dc_weights_save %s", name);
  save_sweep(&c, name, what);
  dc_weights_free(c.w);
  dc_state_dict_free(sd);
  dc_module_free(m);
}
Test(faults_save, pth, .init = setup, .fini = teardown) { weights_save_sweep(1, "w.pth"); }
Test(faults_save, safetensors, .init = setup, .fini = teardown) {
  weights_save_sweep(2, "w.safetensors");
}

/* a trainer after one epoch: model, Adam state, schedule, counters, history */
Test(faults_save, trainer_state, .init = setup, .fini = teardown) {
  dc_manual_seed(2);
  dc_tensor *x = dc_randn(DC_SHAPE(8, 16), DC_F32);
  int64_t yv[8] = {0, 1, 2, 0, 1, 2, 2, 1};
  dc_tensor *y = dc_from_data(yv, DC_SHAPE(8), DC_I64);
  dc_module *m = dc_zoo_create("mlp", .in_features = 16, .hidden = (int64_t[]){8}, .nhidden = 1,
                               .num_classes = 3);
  int np = 0;
  dc_named_tensor *ps = dc_module_parameters(m, &np);
  dc_tensor *params[8];
  for (int i = 0; i < np; i++) params[i] = ps[i].tensor;
  dc_named_tensors_free(ps, np);
  dc_optim *opt = dc_optim_adam(params, np, 0.01);
  dc_sched *sched = dc_sched_step_lr(opt, 1, 0.5);
  dc_dataset *ds = dc_tensor_dataset(x, y);
  dc_loader *l = dc_loader_new(ds, .batch_size = 4, .shuffle = true, .seed = 1);
  save_case c = {.kind = 3};
  c.t = dc_trainer_new(m, opt, l, (dc_trainer_opts){.epochs = 1, .sched = sched});
  cr_assert_not_null(c.t, "%s", dc_last_error());
  cr_assert_eq(dc_trainer_fit(c.t), DC_OK, "%s", dc_last_error());
  save_sweep(&c, "last.ckpt", "trainer state -> dc_ckpt_save");
  dc_trainer_free(c.t);
  dc_loader_free(l);
  dc_dataset_free(ds);
  dc_sched_free(sched);
  dc_optim_free(opt);
  dc_module_free(m);
  dc_free(x);
  dc_free(y);
}

/* ---- the JSON header under allocation failure ----
 * cJSON allocates with malloc, outside deepc's hook (its hooks are process-wide; docs/
 * reliability.md), so this test installs failing hooks in its own process: the Nth cJSON
 * allocation fails. Saving must then fail cleanly and leave the previous file as it was, never
 * write a header with a field missing. */
#include <cjson/cJSON.h>

static long g_json_allocs, g_json_fail_at;
static void *json_malloc(size_t n) {
  if (++g_json_allocs == g_json_fail_at) return NULL;
  return malloc(n);
}

static void json_sweep(bool ckpt) {
  char path[512];
  in_dir(path, sizeof path, ckpt ? "h.ckpt" : "h.safetensors");
  dc_tensor *a = dc_arange(0, 6, 1, DC_F32), *b = dc_ones(DC_SHAPE(2, 3), DC_F64);
  dc_ckpt *c = dc_ckpt_new();
  dc_weights *w = dc_weights_new();
  cr_assert(dc_ckpt_set_tensor(c, "a", a) == DC_OK && dc_ckpt_set_tensor(c, "b", b) == DC_OK);
  cr_assert(dc_ckpt_set_meta(c, "epoch", "3") == DC_OK);
  cr_assert(dc_weights_add(w, "a", a) == DC_OK && dc_weights_add(w, "b", b) == DC_OK);
  int rc = ckpt ? dc_ckpt_save(c, path) : dc_weights_save(w, path, DC_WEIGHTS_SAFETENSORS);
  cr_assert_eq(rc, DC_OK, "%s", dc_last_error());
  size_t n0;
  unsigned char *good = slurp(path, &n0);
  long failed = 0;
  for (g_json_fail_at = 1;; g_json_fail_at++) {
    g_json_allocs = 0;
    cJSON_InitHooks(&(cJSON_Hooks){json_malloc, free});
    rc = ckpt ? dc_ckpt_save(c, path) : dc_weights_save(w, path, DC_WEIGHTS_SAFETENSORS);
    cJSON_InitHooks(NULL);
    size_t n1;
    unsigned char *now = slurp(path, &n1);
    cr_assert(n1 == n0 && memcmp(now, good, n0) == 0,
              "allocation %ld failed: the file changed (%zu bytes, was %zu)", g_json_fail_at, n1,
              n0);
    free(now);
    if (rc == DC_OK) break; /* no allocation left to fail */
    cr_assert_eq(rc, DC_ERR_NOMEM, "allocation %ld: %s", g_json_fail_at, dc_last_error());
    cr_assert(strstr(dc_last_error(), "header"), "%s", dc_last_error());
    failed++;
  }
  cr_assert_gt(failed, 10, "only %ld cJSON allocations were tried", failed);
  char listing[1024];
  list_dir(listing, sizeof listing);
  cr_assert(!strstr(listing, ".tmp"), "temporary files left: %s", listing);
  free(good);
  dc_ckpt_free(c);
  dc_weights_free(w);
  dc_free(a), dc_free(b);
}

Test(faults_save, json_header_ckpt, .init = setup, .fini = teardown) { json_sweep(true); }
Test(faults_save, json_header_safetensors, .init = setup, .fini = teardown) { json_sweep(false); }
