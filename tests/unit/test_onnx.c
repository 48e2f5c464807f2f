/* ONNX export and import in C (include/deepc/onnx.h): a round trip gives the module's outputs,
 * bad buffers are refused with messages, and allocation failures injected at every allocation
 * of a load and of an export are clean errors that leak nothing (the PyTorch / ONNX Runtime
 * comparisons are tests/parity/test_onnx.py). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <deepc/deepc.h>
#include <deepc/onnx.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../fault/faults.h"

#include "tmpdir.h"

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

/* y [4, K] = m(x) for a fixed x [4, 1, 28, 28], in eval mode */
static dc_tensor *run(dc_module *m) {
  dc_manual_seed(7);
  dc_tensor *x = dc_randn(DC_SHAPE(4, 1, 28, 28), DC_F32);
  dc_module_eval(m);
  dc_tensor *y = dc_module_forward(m, x);
  cr_assert_not_null(y, "%s", dc_last_error());
  dc_free(x);
  return y;
}

static double max_abs_diff(dc_tensor *a, dc_tensor *b) {
  dc_tensor *d = dc_amax(dc_abs(dc_sub(a, b)), NULL, 0, false);
  double v = dc_item(d);
  return v;
}

Test(onnx, round_trip_cnn, .init = setup, .fini = teardown) {
  dc_scope_begin();
  dc_manual_seed(3);
  dc_module *m = dc_zoo_create("cnn_fashion");
  char path[300];
  snprintf(path, sizeof path, "%s/cnn.onnx", dir);
  dc_onnx_export_opts o = {.input = DC_SHAPE(1, 28, 28)};
  cr_assert_eq(dc_onnx_export(m, path, &o), DC_OK, "%s", dc_last_error());
  dc_module *g = dc_onnx_load(path);
  cr_assert_not_null(g, "%s", dc_last_error());
  cr_assert_str_eq(dc_module_type_name(g), "OnnxGraph");
  dc_shape one = dc_onnx_input_shape(g);
  cr_assert(one.ndim == 3 && one.d[0] == 1 && one.d[1] == 28 && one.d[2] == 28);
  dc_tensor *a = run(m), *b = run(g);
  double d = max_abs_diff(a, b);
  cr_assert(d <= 1e-5, "round trip differs by %g", d);
  /* the initializers are the graph's parameters, names with '_' for '.' */
  cr_assert_not_null(dc_module_get_parameter(g, "0_weight"), "%s", dc_last_error());
  cr_assert_not_null(dc_module_get_buffer(g, "1_running_mean"), "%s", dc_last_error());
  dc_module_free(g);
  dc_module_free(m);
  dc_scope_end();
}

Test(onnx, bad_buffers) {
  cr_assert_null(dc_onnx_load_buffer("\xff\xff\xff", 3, "junk.onnx"));
  cr_assert(strstr(dc_last_error(), "junk.onnx") && strstr(dc_last_error(), "protobuf"), "%s",
            dc_last_error());
  cr_assert_null(dc_onnx_load_buffer(NULL, 0, "empty.onnx"));
  cr_assert(strstr(dc_last_error(), "no graph"), "%s", dc_last_error());
  cr_assert_null(dc_onnx_load_buffer(NULL, 5, "x"));
  cr_assert_neq(dc_onnx_export(NULL, "x.onnx", NULL), DC_OK);
  cr_assert(dc_onnx_input_shape(NULL).ndim == 0);
}

/* ---- allocation failures ---- */
typedef struct load_ud {
  unsigned char *data;
  size_t n;
  dc_module *m;
  int64_t params; /* of the exported module */
} load_ud;

static int load_run(void *ud) {
  load_ud *u = ud;
  return (u->m = dc_onnx_load_buffer(u->data, u->n, "cnn.onnx")) ? DC_OK : dc_last_status();
}
static void load_check(void *ud) {
  load_ud *u = ud;
  cr_assert_eq(dc_module_num_parameters(u->m, false), u->params, "parameter count");
}
static void load_cleanup(void *ud) {
  load_ud *u = ud;
  dc_module_free(u->m);
  u->m = NULL;
}

Test(onnx, load_alloc_failures, .init = setup, .fini = teardown) {
  dc_manual_seed(3);
  dc_module *m = dc_zoo_create("cnn_fashion");
  char path[300];
  snprintf(path, sizeof path, "%s/cnn.onnx", dir);
  dc_onnx_export_opts o = {.input = DC_SHAPE(1, 28, 28)};
  cr_assert_eq(dc_onnx_export(m, path, &o), DC_OK, "%s", dc_last_error());
  load_ud u = {.params = dc_module_num_parameters(m, false)};
  dc_module_free(m);
  u.data = slurp(path, &u.n);
  fault_case c = {
      .what = "onnx load", .run = load_run, .check = load_check, .cleanup = load_cleanup};
  fault_report r = fault_sweep(&c, &u);
  cr_assert_gt(r.failures, 10);
  free(u.data);
}

typedef struct export_ud {
  dc_module *m;
  char path[300];
} export_ud;

static int export_run(void *ud) {
  export_ud *u = ud;
  dc_onnx_export_opts o = {.input = DC_SHAPE(1, 28, 28), .model_name = "lenet5"};
  return dc_onnx_export(u->m, u->path, &o);
}
static void export_check(void *ud) {
  export_ud *u = ud;
  cr_assert_eq(access(u->path, F_OK), 0, "no file after a successful export");
}
static void export_after_fail(void *ud) {
  export_ud *u = ud;
  cr_assert_neq(access(u->path, F_OK), 0, "a failed export left %s", u->path);
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  for (struct dirent *e; (e = readdir(d));)
    cr_assert_neq(strncmp(e->d_name, "lenet.onnx", 10), 0, "a failed export left %s", e->d_name);
  closedir(d);
}
static void export_cleanup(void *ud) { unlink(((export_ud *)ud)->path); }

Test(onnx, export_alloc_failures, .init = setup, .fini = teardown) {
  export_ud u;
  dc_manual_seed(3);
  u.m = dc_zoo_create("lenet5");
  snprintf(u.path, sizeof u.path, "%s/lenet.onnx", dir);
  fault_case c = {.what = "onnx export",
                  .run = export_run,
                  .check = export_check,
                  .after_fail = export_after_fail,
                  .cleanup = export_cleanup,
                  .stride = 3};
  fault_report r = fault_sweep(&c, &u);
  cr_assert_gt(r.failures, 10);
  dc_module_free(u.m);
}
