/* Files of a training run: checkpoint round trip, atomic saving when the disk is full (the
 * previous checkpoint survives), corrupted checkpoints, CRC32C and TensorBoard records,
 * metrics.csv round trip, PNG/SVG curves. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <deepc/io.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#if __has_include(<cairo.h>)
#include <cairo.h>
#define DC_TEST_HAVE_CAIRO 1
#endif

#include "tmpdir.h"

static dc_ckpt *sample_ckpt(float scale) {
  dc_ckpt *c = dc_ckpt_new();
  float w[6] = {1, 2, 3, 4, 5, 6};
  for (int i = 0; i < 6; i++) w[i] *= scale;
  dc_tensor *a = dc_from_data(w, DC_SHAPE(2, 3), DC_F32);
  int64_t steps = 42;
  dc_tensor *b = dc_from_data(&steps, DC_SCALAR_SHAPE, DC_I64);
  double big[1000];
  for (int i = 0; i < 1000; i++) big[i] = i * 0.5;
  dc_tensor *d = dc_from_data(big, DC_SHAPE(10, 100), DC_F64);
  cr_assert_eq(dc_ckpt_set_tensor(c, "model.weight", a), DC_OK);
  cr_assert_eq(dc_ckpt_set_tensor(c, "trainer.step", b), DC_OK);
  cr_assert_eq(dc_ckpt_set_tensor(c, "big", d), DC_OK);
  cr_assert_eq(dc_ckpt_set_meta(c, "config", "[train]\nepochs = 3\n\"quoted\""), DC_OK);
  dc_free(a);
  dc_free(b);
  dc_free(d);
  return c;
}

Test(ckpt, round_trip, .init = setup, .fini = teardown) {
  char path[300];
  snprintf(path, sizeof path, "%s/a.ckpt", dir);
  dc_ckpt *c = sample_ckpt(1);
  cr_assert_eq(dc_ckpt_save(c, path), DC_OK, "%s", dc_last_error());
  dc_ckpt_free(c);
  dc_ckpt *r = dc_ckpt_load(path);
  cr_assert_not_null(r, "%s", dc_last_error());
  cr_assert_eq(dc_ckpt_num_tensors(r), 3);
  cr_assert_str_eq(dc_ckpt_name_at(r, 0), "model.weight");
  dc_tensor *w = dc_ckpt_tensor(r, "model.weight");
  cr_assert_eq(w->dtype, DC_F32);
  cr_assert_eq(w->ndim, 2);
  cr_assert_float_eq(dc_item_at(w, 5), 6.0, 0);
  dc_tensor *s = dc_ckpt_tensor(r, "trainer.step");
  cr_assert_eq(s->ndim, 0);
  cr_assert_eq(dc_item(s), 42);
  cr_assert_float_eq(dc_item_at(dc_ckpt_tensor(r, "big"), 999), 499.5, 0);
  cr_assert_str_eq(dc_ckpt_meta(r, "config"), "[train]\nepochs = 3\n\"quoted\"");
  dc_ckpt_free(r);
  /* the header length is a multiple of 8 and no temporary file is left */
  FILE *f = fopen(path, "rb");
  unsigned char len8[8];
  cr_assert_eq(fread(len8, 1, 8, f), 8);
  fclose(f);
  cr_assert_eq(len8[0] % 8, 0);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "ls %s | grep -c tmp", dir);
  FILE *p = popen(cmd, "r");
  int ntmp = -1;
  cr_assert_eq(fscanf(p, "%d", &ntmp), 1);
  pclose(p);
  cr_assert_eq(ntmp, 0);
}

/* A full disk (simulated by a file-size limit) leaves the previous checkpoint intact. */
Test(ckpt, disk_full_keeps_previous, .init = setup, .fini = teardown) {
  char path[300];
  snprintf(path, sizeof path, "%s/last.ckpt", dir);
  dc_ckpt *c = sample_ckpt(1);
  cr_assert_eq(dc_ckpt_save(c, path), DC_OK, "%s", dc_last_error());
  dc_ckpt_free(c);
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = 1000; /* the new checkpoint needs ~8.3 kB */
  cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
  dc_ckpt *c2 = sample_ckpt(10);
  int rc = dc_ckpt_save(c2, path);
  setrlimit(RLIMIT_FSIZE, &old);
  dc_ckpt_free(c2);
  cr_assert_eq(rc, DC_ERR_IO);
  cr_assert(strstr(dc_last_error(), "previous file"), "%s", dc_last_error());
  dc_ckpt *r = dc_ckpt_load(path);
  cr_assert_not_null(r, "%s", dc_last_error());
  cr_assert_float_eq(dc_item_at(dc_ckpt_tensor(r, "model.weight"), 5), 6.0, 0); /* old values */
  dc_ckpt_free(r);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "ls %s | wc -l", dir);
  FILE *p = popen(cmd, "r");
  int nfiles = -1;
  cr_assert_eq(fscanf(p, "%d", &nfiles), 1);
  pclose(p);
  cr_assert_eq(nfiles, 1, "the temporary file must be removed");
}

static void write_bytes(const char *path, const void *d, size_t n) {
  FILE *f = fopen(path, "wb");
  fwrite(d, 1, n, f);
  fclose(f);
}

static void expect_bad(const char *path, const char *hdr, size_t datalen, const char *frag) {
  size_t hl = strlen(hdr);
  unsigned char buf[1024] = {0};
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
  memcpy(buf + 8, hdr, hl);
  write_bytes(path, buf, 8 + hl + datalen);
  dc_ckpt *c = dc_ckpt_load(path);
  cr_assert_null(c, "loading should fail: %s", hdr);
  cr_assert(strstr(dc_last_error(), frag), "error '%s' lacks '%s'", dc_last_error(), frag);
}

Test(ckpt, corrupted, .init = setup, .fini = teardown) {
  char path[300];
  snprintf(path, sizeof path, "%s/bad.ckpt", dir);
  write_bytes(path, "abc", 3);
  cr_assert_null(dc_ckpt_load(path));
  cr_assert(strstr(dc_last_error(), "too short"), "%s", dc_last_error());
  unsigned char huge[16] = {0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  write_bytes(path, huge, 16);
  cr_assert_null(dc_ckpt_load(path));
  cr_assert(strstr(dc_last_error(), "header length"), "%s", dc_last_error());
  expect_bad(path, "[1,2]", 0, "offset 8: the header does not start with '{'");
  expect_bad(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4,
             "needs 8 bytes but data_offsets span 4");
  expect_bad(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
             "trailing bytes");
  expect_bad(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap");
  expect_bad(path,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             8, "overlap");
  expect_bad(path, "{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
             "not supported");
  expect_bad(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
             "not a size");
  expect_bad(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,400]}}", 4,
             "outside");
  expect_bad(path, "{\"__metadata__\":{\"k\":1}}", 0, "not a string");
  cr_assert_null(dc_ckpt_load("/nonexistent/x.ckpt"));
}

Test(ckpt, state_dicts, .init = setup, .fini = teardown) {
  dc_state_dict *sd = dc_state_dict_new();
  dc_tensor *w = dc_ones(DC_SHAPE(3), DC_F32);
  dc_state_dict_set(sd, "fc.weight", w);
  dc_ckpt *c = dc_ckpt_new();
  cr_assert_eq(dc_ckpt_add_state_dict(c, "model.", sd), DC_OK, "%s", dc_last_error());
  dc_fill_(w, 5); /* the checkpoint holds a copy */
  cr_assert_float_eq(dc_item_at(dc_ckpt_tensor(c, "model.fc.weight"), 0), 1.0, 0);
  dc_state_dict *back = dc_ckpt_get_state_dict(c, "model.");
  cr_assert_eq(dc_state_dict_size(back), 1);
  cr_assert_str_eq(dc_state_dict_key_at(back, 0), "fc.weight");
  dc_state_dict_free(back);
  dc_state_dict_free(sd);
  dc_free(w);
  dc_ckpt_free(c);
}

Test(tb, crc_and_records, .init = setup, .fini = teardown) {
  cr_assert_eq(dc_crc32c("123456789", 9), 0xE3069283u); /* the standard check value */
  cr_assert_eq(dc_crc32c("", 0), 0u);
  dc_tb_writer *w = dc_tb_open(dir);
  cr_assert_not_null(w, "%s", dc_last_error());
  cr_assert_eq(dc_tb_add_scalar(w, "loss/train", 1, 0.5), DC_OK);
  char path[4096];
  snprintf(path, sizeof path, "%s", dc_tb_path(w));
  cr_assert(strstr(path, "events.out.tfevents."));
  cr_assert_eq(dc_tb_close(w), DC_OK);
  FILE *f = fopen(path, "rb");
  unsigned char buf[512];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  size_t at = 0;
  int records = 0;
  while (at + 12 <= n) {
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len |= (uint64_t)buf[at + i] << (8 * i);
    uint32_t lc = 0, dcrc = 0;
    for (int i = 0; i < 4; i++) lc |= (uint32_t)buf[at + 8 + i] << (8 * i);
    cr_assert_eq(lc, dc_crc32c_mask(dc_crc32c(buf + at, 8)));
    cr_assert_leq(at + 12 + len + 4, n);
    for (int i = 0; i < 4; i++) dcrc |= (uint32_t)buf[at + 12 + len + i] << (8 * i);
    cr_assert_eq(dcrc, dc_crc32c_mask(dc_crc32c(buf + at + 12, len)));
    if (records == 0) cr_assert(memmem(buf + at + 12, len, "brain.Event:2", 13));
    if (records == 1) cr_assert(memmem(buf + at + 12, len, "loss/train", 10));
    at += 12 + len + 4;
    records++;
  }
  cr_assert_eq(at, n);
  cr_assert_eq(records, 2);
}

static dc_history make_history(int n, double shift) {
  dc_history h = {0};
  for (int e = 1; e <= n; e++) {
    dc_epoch_stats r = {e,
                        1.0 / e + shift,
                        0.6 + 0.3 * (1 - 1.0 / e),
                        1.2 / e + shift,
                        0.55 + 0.3 * (1 - 1.0 / e),
                        1e-3,
                        1.25};
    if (e == 2) r.val_loss = NAN;
    dc_history_append(&h, &r);
  }
  return h;
}

Test(history, csv_round_trip, .init = setup, .fini = teardown) {
  dc_history h = make_history(5, 0);
  char path[300];
  snprintf(path, sizeof path, "%s/metrics.csv", dir);
  cr_assert_eq(dc_history_write_csv(&h, path), DC_OK, "%s", dc_last_error());
  dc_history r;
  cr_assert_eq(dc_history_read_csv(path, &r), DC_OK, "%s", dc_last_error());
  cr_assert_eq(r.n, 5);
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(r.rows[i].epoch, i + 1);
    cr_assert_float_eq(r.rows[i].train_loss, h.rows[i].train_loss, 1e-8);
    cr_assert_float_eq(r.rows[i].lr, 1e-3, 1e-15);
  }
  cr_assert(isnan(r.rows[1].val_loss));
  dc_history_clear(&r);
  dc_history_clear(&h);
  write_bytes(path, "a,b\n1,2\n", 8);
  cr_assert_neq(dc_history_read_csv(path, &r), DC_OK);
  write_bytes(path, "epoch,train_loss\n1,abc\n", 23);
  cr_assert_neq(dc_history_read_csv(path, &r), DC_OK);
  cr_assert(strstr(dc_last_error(), ":2: column train_loss"), "%s", dc_last_error());
}

Test(plot, png_and_svg, .init = setup, .fini = teardown) {
  dc_history a = make_history(12, 0), b = make_history(12, 0.2);
  const dc_history *runs[] = {&a, &b};
  const char *labels[] = {"sgd", "adam"};
  char png[300], svg[300];
  snprintf(png, sizeof png, "%s/curves.png", dir);
  snprintf(svg, sizeof svg, "%s/curves.svg", dir);
  cr_assert_eq(dc_plot_curves(png, runs, NULL, 1, "one run"), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_plot_curves(svg, runs, labels, 2, "two runs"), DC_OK, "%s", dc_last_error());
  FILE *f = fopen(png, "rb");
  unsigned char sig[8];
  cr_assert_eq(fread(sig, 1, 8, f), 8);
  fclose(f);
  cr_assert_eq(memcmp(sig, "\x89PNG\r\n\x1a\n", 8), 0);
  struct stat st;
  cr_assert_eq(stat(svg, &st), 0);
  cr_assert_gt(st.st_size, 1000);
  cr_assert_neq(dc_plot_curves("/tmp/x.jpg", runs, NULL, 1, NULL), DC_OK);
  dc_history_clear(&a);
  dc_history_clear(&b);
#ifdef DC_TEST_HAVE_CAIRO
  cairo_debug_reset_static_data(); /* cairo's and fontconfig's font caches (LeakSanitizer) */
#endif
}
