/* The checkpoint and weight-file cases of one device, included by a test that defines IO_DEV (the
 * device), IO_SUITE (the Criterion suite) and IO_REQUIRE() (what to do where the device is
 * absent): tests/unit/test_testdev_io.c (the test device, runs everywhere) and
 * tests/gpu/test_gpu_io.c (cuda, skips without a GPU).
 *
 * Checkpoints and weight files with tensors on the device (whose memory the host cannot
 * read): a model's state and an optimizer's state saved from device tensors give the same file,
 * byte for byte, as from the same cpu tensors (deepc checkpoints, safetensors, .pth, and a
 * non-contiguous entry); a file loads into a module and an optimizer on either device with the
 * values bit for bit. The cpu model is trained two Adam steps first, so that every buffer and
 * optimizer state holds values that are not their initial ones. */
#ifndef DC_TEST_DEVICE_IO_CASES_H
#define DC_TEST_DEVICE_IO_CASES_H
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <deepc/io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpdir.h"

static const char *path_of(const char *name) {
  static char p[4][320];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
  return p[k];
}

static void *slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  void *b = malloc((size_t)len + 1);
  cr_assert_eq(fread(b, 1, (size_t)len, f), (size_t)len);
  fclose(f);
  *n = (size_t)len;
  return b;
}

static void assert_same_file(const char *a, const char *b) {
  size_t na, nb;
  void *x = slurp(a, &na), *y = slurp(b, &nb);
  cr_assert_eq(na, nb, "%s has %zu bytes, %s %zu", a, na, b, nb);
  cr_assert(memcmp(x, y, na) == 0, "%s and %s differ", a, b);
  free(x);
  free(y);
}

/* a's and b's values (any devices) equal bit for bit */
static void assert_bits(const dc_tensor *a, const dc_tensor *b, const char *what) {
  cr_assert(a && b, "%s missing (%s)", what, dc_last_error());
  cr_assert_eq(a->dtype, b->dtype, "%s: dtype", what);
  cr_assert_eq(dc_numel(a), dc_numel(b), "%s: numel", what);
  size_t n = (size_t)dc_numel(a) * dc_dtype_size(a->dtype);
  void *pa = malloc(n + 1), *pb = malloc(n + 1);
  cr_assert_eq(dc_copy_to_buffer(a, pa, n), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_copy_to_buffer(b, pb, n), DC_OK, "%s", dc_last_error());
  cr_assert(memcmp(pa, pb, n) == 0, "%s differs", what);
  free(pa);
  free(pb);
}

/* Every state-dict entry of b is on dev and equals a's. */
static void assert_modules_equal(dc_module *a, dc_module *b, dc_device dev) {
  dc_state_dict *sa = dc_module_state_dict(a), *sb = dc_module_state_dict(b);
  cr_assert_eq(dc_state_dict_size(sa), dc_state_dict_size(sb));
  for (int i = 0; i < dc_state_dict_size(sa); i++) {
    const char *key = dc_state_dict_key_at(sa, i);
    cr_assert_str_eq(key, dc_state_dict_key_at(sb, i));
    cr_assert_eq(dc_state_dict_tensor_at(sb, i)->device, dev, "%s is on %s", key,
                 dc_device_name(dc_state_dict_tensor_at(sb, i)->device));
    assert_bits(dc_state_dict_tensor_at(sa, i), dc_state_dict_tensor_at(sb, i), key);
  }
  dc_state_dict_free(sa);
  dc_state_dict_free(sb);
}

static void assert_states_equal(const dc_optim_state *a, const dc_optim_state *b) {
  cr_assert_eq(a->n, b->n, "%d vs %d optimizer state entries", a->n, b->n);
  for (int i = 0; i < a->n; i++) {
    cr_assert_str_eq(a->names[i], b->names[i]);
    assert_bits(a->tensors[i], b->tensors[i], a->names[i]);
  }
}

static dc_module *make_model(void) {
  dc_manual_seed(5);
  return dc_nn_sequential(dc_nn_conv2d(1, 4, 3, .padding = 1), dc_nn_batchnorm2d(4), dc_nn_tanh(),
                          dc_nn_avgpool2d(2), dc_nn_flatten(1, -1), dc_nn_linear(36, 3));
}

static dc_optim *make_adam(dc_module *m) {
  int n = 0;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &n);
  dc_tensor *t[16];
  for (int i = 0; i < n; i++) t[i] = ps[i].tensor;
  dc_optim *o = dc_optim_adam(t, n, 0.01);
  dc_named_tensors_free(ps, n);
  cr_assert_not_null(o, "%s", dc_last_error());
  return o;
}

/* A model trained two Adam steps on the cpu, and its optimizer. */
static dc_module *trained(dc_optim **opt) {
  dc_module *m = make_model();
  *opt = make_adam(m);
  for (int s = 0; s < 2; s++) {
    dc_scope_begin();
    dc_manual_seed(50 + (uint64_t)s);
    dc_tensor *x = dc_randn(DC_SHAPE(4, 1, 6, 6), DC_F32);
    dc_tensor *y = dc_randint(0, 3, DC_SHAPE(4), DC_I64);
    cr_assert_eq(dc_backward(dc_cross_entropy(dc_module_forward(m, x), y)), DC_OK, "%s",
                 dc_last_error());
    cr_assert_eq(dc_optim_step(*opt), DC_OK, "%s", dc_last_error());
    dc_optim_zero_grad(*opt);
    dc_scope_end();
  }
  return m;
}

/* A fresh model (other values than the trained one) on dev. */
static dc_module *fresh_on(dc_device dev) {
  dc_manual_seed(99);
  dc_module *m =
      dc_nn_sequential(dc_nn_conv2d(1, 4, 3, .padding = 1), dc_nn_batchnorm2d(4), dc_nn_tanh(),
                       dc_nn_avgpool2d(2), dc_nn_flatten(1, -1), dc_nn_linear(36, 3));
  cr_assert_eq(dc_module_to(m, dev), DC_OK, "%s", dc_last_error());
  return m;
}

/* st's tensors copied onto dev. */
static void state_to(const dc_optim_state *st, dc_device dev, dc_optim_state *out) {
  memset(out, 0, sizeof *out);
  for (int i = 0; i < st->n; i++) {
    dc_tensor *t = dc_to_device(st->tensors[i], dev);
    cr_assert(t && t->device == dev, "%s", dc_last_error());
    cr_assert_eq(dc_optim_state_set(out, st->names[i], t), DC_OK);
    dc_free(t);
  }
}

static void save_ckpt(dc_module *m, const dc_optim_state *st, const char *path) {
  dc_ckpt *c = dc_ckpt_new();
  dc_state_dict *sd = dc_module_state_dict(m);
  cr_assert_eq(dc_ckpt_add_state_dict(c, "model.", sd), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_ckpt_add_optim_state(c, "optim.", st), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_ckpt_set_meta(c, "epoch", "2"), DC_OK);
  cr_assert_eq(dc_ckpt_save(c, path), DC_OK, "%s", dc_last_error());
  dc_state_dict_free(sd);
  dc_ckpt_free(c);
}

/* Loads path's "model." entries into m, "optim." entries into o (when not NULL). */
static void load_ckpt(const char *path, dc_module *m, dc_optim *o) {
  dc_ckpt *c = dc_ckpt_load(path);
  cr_assert_not_null(c, "%s", dc_last_error());
  dc_state_dict *sd = dc_ckpt_get_state_dict(c, "model.");
  cr_assert_eq(dc_module_load_state_dict(m, sd, true, NULL), DC_OK, "%s", dc_last_error());
  dc_state_dict_free(sd);
  if (o) {
    dc_optim_state st;
    cr_assert_eq(dc_ckpt_get_optim_state(c, "optim.", &st), DC_OK, "%s", dc_last_error());
    cr_assert_eq(dc_optim_load_state_dict(o, &st), DC_OK, "%s", dc_last_error());
    dc_optim_state_free(&st);
  }
  dc_ckpt_free(c);
}

TestSuite(IO_SUITE, .init = setup, .fini = teardown);

Test(IO_SUITE, checkpoint_files_equal_across_devices) {
  IO_REQUIRE();
  dc_optim *opt;
  dc_module *cpu = trained(&opt);
  dc_optim_state st;
  cr_assert_eq(dc_optim_state_dict(opt, &st), DC_OK, "%s", dc_last_error());
  /* the same values on testdev: the module copied over, the optimizer state moved */
  dc_module *dev = fresh_on(IO_DEV);
  dc_state_dict *sd = dc_module_state_dict(cpu);
  cr_assert_eq(dc_module_load_state_dict(dev, sd, true, NULL), DC_OK, "%s", dc_last_error());
  dc_state_dict_free(sd);
  assert_modules_equal(cpu, dev, IO_DEV);
  dc_optim_state dst;
  state_to(&st, IO_DEV, &dst);
  save_ckpt(cpu, &st, path_of("cpu.ckpt"));
  save_ckpt(dev, &dst, path_of("testdev.ckpt"));
  assert_same_file(path_of("cpu.ckpt"), path_of("testdev.ckpt"));
  dc_optim_state_free(&st);
  dc_optim_state_free(&dst);
  dc_optim_free(opt);
  dc_module_free(cpu);
  dc_module_free(dev);
}

Test(IO_SUITE, saved_on_testdev_loaded_on_cpu) {
  IO_REQUIRE();
  dc_optim *opt;
  dc_module *cpu = trained(&opt);
  dc_module *dev = fresh_on(IO_DEV);
  dc_state_dict *sd = dc_module_state_dict(cpu);
  cr_assert_eq(dc_module_load_state_dict(dev, sd, true, NULL), DC_OK, "%s", dc_last_error());
  dc_state_dict_free(sd);
  dc_optim_state st, dst;
  cr_assert_eq(dc_optim_state_dict(opt, &st), DC_OK);
  state_to(&st, IO_DEV, &dst);
  save_ckpt(dev, &dst, path_of("from_testdev.ckpt"));

  dc_module *back = fresh_on(DC_CPU);
  dc_optim *bopt = make_adam(back);
  load_ckpt(path_of("from_testdev.ckpt"), back, bopt);
  assert_modules_equal(cpu, back, DC_CPU);
  dc_optim_state bst;
  cr_assert_eq(dc_optim_state_dict(bopt, &bst), DC_OK, "%s", dc_last_error());
  assert_states_equal(&st, &bst);
  dc_optim_state_free(&bst);
  dc_optim_state_free(&st);
  dc_optim_state_free(&dst);
  dc_optim_free(bopt);
  dc_optim_free(opt);
  dc_module_free(back);
  dc_module_free(cpu);
  dc_module_free(dev);
}

Test(IO_SUITE, saved_on_cpu_loaded_on_testdev) {
  IO_REQUIRE();
  dc_optim *opt;
  dc_module *cpu = trained(&opt);
  dc_optim_state st;
  cr_assert_eq(dc_optim_state_dict(opt, &st), DC_OK);
  save_ckpt(cpu, &st, path_of("from_cpu.ckpt"));

  dc_module *dev = fresh_on(IO_DEV);
  load_ckpt(path_of("from_cpu.ckpt"), dev, NULL);
  assert_modules_equal(cpu, dev, IO_DEV);
  /* saved again from testdev: the same file */
  save_ckpt(dev, &st, path_of("again.ckpt"));
  assert_same_file(path_of("from_cpu.ckpt"), path_of("again.ckpt"));
  dc_optim_state_free(&st);
  dc_optim_free(opt);
  dc_module_free(cpu);
  dc_module_free(dev);
}

/* An optimizer over testdev parameters takes a checkpoint's state and gives it back. */
Test(IO_SUITE, optimizer_state_on_testdev) {
  IO_REQUIRE();
  dc_optim *opt;
  dc_module *cpu = trained(&opt);
  dc_optim_state st;
  cr_assert_eq(dc_optim_state_dict(opt, &st), DC_OK);
  save_ckpt(cpu, &st, path_of("opt.ckpt"));

  dc_module *dev = fresh_on(IO_DEV);
  dc_optim *dopt = make_adam(dev);
  load_ckpt(path_of("opt.ckpt"), dev, dopt);
  dc_optim_state dst;
  cr_assert_eq(dc_optim_state_dict(dopt, &dst), DC_OK, "%s", dc_last_error());
  assert_states_equal(&st, &dst);
  for (int i = 0; i < dst.n; i++)
    if (strncmp(dst.names[i], "state.", 6) == 0 && dc_numel(dst.tensors[i]) > 1)
      cr_assert_eq(dst.tensors[i]->device, IO_DEV, "%s is on %s", dst.names[i],
                   dc_device_name(dst.tensors[i]->device));
  save_ckpt(dev, &dst, path_of("opt_again.ckpt"));
  assert_same_file(path_of("opt.ckpt"), path_of("opt_again.ckpt"));
  dc_optim_state_free(&st);
  dc_optim_state_free(&dst);
  dc_optim_free(opt);
  dc_optim_free(dopt);
  dc_module_free(cpu);
  dc_module_free(dev);
}

/* safetensors and .pth written from testdev state dicts; a weight file loaded onto testdev. */
Test(IO_SUITE, weight_files_across_devices) {
  IO_REQUIRE();
  dc_optim *opt;
  dc_module *cpu = trained(&opt);
  dc_module *dev = fresh_on(IO_DEV);
  dc_state_dict *sd = dc_module_state_dict(cpu);
  cr_assert_eq(dc_module_load_state_dict(dev, sd, true, NULL), DC_OK, "%s", dc_last_error());
  dc_state_dict *dsd = dc_module_state_dict(dev);
  cr_assert_eq(dc_safetensors_save(sd, path_of("cpu.safetensors")), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_safetensors_save(dsd, path_of("dev.safetensors")), DC_OK, "%s", dc_last_error());
  assert_same_file(path_of("cpu.safetensors"), path_of("dev.safetensors"));
  /* the archive's folder is the file's stem: the same name in two folders */
  cr_assert_eq(mkdir(path_of("cpu"), 0755), 0);
  cr_assert_eq(mkdir(path_of("dev"), 0755), 0);
  cr_assert_eq(dc_pth_save(sd, path_of("cpu/w.pth")), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_pth_save(dsd, path_of("dev/w.pth")), DC_OK, "%s", dc_last_error());
  assert_same_file(path_of("cpu/w.pth"), path_of("dev/w.pth"));

  const char *files[] = {path_of("dev.safetensors"), path_of("dev/w.pth")};
  for (int f = 0; f < 2; f++) {
    dc_state_dict *ld = dc_pth_load(files[f]); /* any format */
    cr_assert_not_null(ld, "%s", dc_last_error());
    dc_module *m = fresh_on(IO_DEV);
    cr_assert_eq(dc_module_load_state_dict(m, ld, true, NULL), DC_OK, "%s", dc_last_error());
    assert_modules_equal(cpu, m, IO_DEV);
    dc_state_dict_free(ld);
    dc_module_free(m);
  }
  dc_state_dict_free(sd);
  dc_state_dict_free(dsd);
  dc_optim_free(opt);
  dc_module_free(cpu);
  dc_module_free(dev);
}

/* Entries that are views: a transposed testdev tensor is written in row-major order. */
Test(IO_SUITE, non_contiguous_entries) {
  IO_REQUIRE();
  dc_scope_begin();
  dc_manual_seed(3);
  dc_tensor *a = dc_randn(DC_SHAPE(5, 7), DC_F32);
  dc_tensor *ad = dc_to_device(a, IO_DEV);
  dc_tensor *i = dc_arange(0, 12, 1, DC_I64), *id = dc_to_device(i, IO_DEV);
  dc_ckpt *c = dc_ckpt_new(), *d = dc_ckpt_new();
  cr_assert_eq(dc_ckpt_set_tensor(c, "t", dc_transpose(a, 0, 1)), DC_OK);
  cr_assert_eq(dc_ckpt_set_tensor(d, "t", dc_transpose(ad, 0, 1)), DC_OK);
  cr_assert_eq(dc_ckpt_set_tensor(c, "i", dc_narrow(i, 0, 2, 5)), DC_OK);
  cr_assert_eq(dc_ckpt_set_tensor(d, "i", dc_narrow(id, 0, 2, 5)), DC_OK);
  cr_assert_eq(dc_ckpt_save(c, path_of("c.ckpt")), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_ckpt_save(d, path_of("d.ckpt")), DC_OK, "%s", dc_last_error());
  assert_same_file(path_of("c.ckpt"), path_of("d.ckpt"));
  dc_weights *w = dc_weights_new();
  cr_assert_eq(dc_weights_add(w, "t", dc_transpose(ad, 0, 1)), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_weights_save(w, path_of("w.safetensors"), DC_WEIGHTS_AUTO), DC_OK);
  dc_weights *r = dc_weights_load(path_of("w.safetensors"));
  cr_assert_not_null(r, "%s", dc_last_error());
  assert_bits(dc_contiguous(dc_transpose(a, 0, 1)), dc_weights_tensor(r, 0), "weights entry");
  dc_weights_free(w);
  dc_weights_free(r);
  dc_ckpt_free(c);
  dc_ckpt_free(d);
  dc_scope_end();
}

#endif
