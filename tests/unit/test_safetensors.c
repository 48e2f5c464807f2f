/* safetensors files: round trips of every dtype (raw ones like int16 and complex64 included),
 * metadata, deepc checkpoints read as weights and converted to .pth and back, and every rule of
 * the format enforced on bad headers (length, JSON, '{', duplicate names, unknown dtypes,
 * offsets with gaps, overlaps, trailing or missing bytes, shapes that disagree with offsets). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <deepc/io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/weights-impl.h"

#include "tmpdir.h"

/* A file: 8-byte length, header (padded with spaces to pad), data. */
static uint8_t *file_of(const char *header, size_t pad, const void *data, size_t dn, size_t *n) {
  size_t hl = strlen(header), hp = hl > pad ? hl : pad;
  *n = 8 + hp + dn;
  uint8_t *b = calloc(1, *n + 1);
  for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hp >> (8 * i));
  memcpy(b + 8, header, hl);
  memset(b + 8 + hl, ' ', hp - hl);
  if (dn) memcpy(b + 8 + hp, data, dn);
  return b;
}

static void refused(const char *header, size_t dn, const char *want) {
  uint8_t data[64] = {0};
  size_t n;
  uint8_t *b = file_of(header, 0, data, dn, &n);
  dc_clear_error();
  dc_weights *w = dc_weights_parse(b, n, "bad.safetensors");
  cr_assert_null(w, "accepted %s", header);
  cr_assert(strstr(dc_last_error(), want), "message '%s' lacks '%s'", dc_last_error(), want);
  free(b);
}

Test(safetensors, round_trip_all_dtypes, .init = setup, .fini = teardown) {
  dc_weights *w = dc_weights_new();
  for (int k = 0; k < DC__W_COUNT; k++) {
    int es = dc__wdt_table[k].size;
    uint8_t *d = malloc((size_t)(6 * es));
    for (int i = 0; i < 6 * es; i++) d[i] = (uint8_t)(k * 31 + i);
    char name[64];
    snprintf(name, sizeof name, "t.%s", dc__wdt_table[k].torch);
    cr_assert_eq(dc__weights_push(w, name, (dc__wdt)k, 2, (int64_t[]){2, 3}, NULL, 0), DC_OK);
    w->e[w->n - 1].data = dc__malloc((size_t)(6 * es));
    memcpy(w->e[w->n - 1].data, d, (size_t)(6 * es));
    w->e[w->n - 1].nbytes = (uint64_t)(6 * es);
    free(d);
  }
  dc_tensor *empty = dc_zeros(DC_SHAPE(3, 0), DC_F32), *s = dc_scalar(2.5, DC_F64);
  dc_weights_add(w, "empty", empty);
  dc_weights_add(w, "scalar", s);
  dc_free(empty);
  dc_free(s);
  dc_weights_set_meta(w, "format", "pt");
  dc_weights_set_meta(w, "note", "quotes \" and \\ and\nnewlines");
  char path[300];
  snprintf(path, sizeof path, "%s/all.safetensors", dir);
  cr_assert_eq(dc_weights_save(w, path, DC_WEIGHTS_AUTO), DC_OK, "%s", dc_last_error());
  dc_weights *r = dc_weights_load(path);
  cr_assert_not_null(r, "%s", dc_last_error());
  cr_assert_eq(dc_weights_get_format(r), DC_WEIGHTS_SAFETENSORS);
  cr_assert_eq(dc_weights_count(r), dc_weights_count(w));
  for (int i = 0; i < dc_weights_count(w); i++) {
    size_t na, nb;
    const void *a = dc_weights_data(w, i, &na), *b = dc_weights_data(r, i, &nb);
    cr_assert_str_eq(dc_weights_name(r, i), dc_weights_name(w, i));
    cr_assert_str_eq(dc_weights_dtype_name(r, i), dc_weights_dtype_name(w, i));
    cr_assert(dc_shape_equal(dc_weights_shape(r, i), dc_weights_shape(w, i)));
    cr_assert_eq(na, nb);
    cr_assert(na == 0 || memcmp(a, b, na) == 0);
    cr_assert_eq(dc_weights_crc32(r, i), dc_weights_crc32(w, i));
  }
  cr_assert_str_eq(dc_weights_meta(r, "note"), "quotes \" and \\ and\nnewlines");
  /* int16 widens to int32, complex cannot become a tensor */
  dc_tensor *i16 = dc_weights_tensor(r, dc_weights_find(r, "t.int16"));
  cr_assert_eq(i16->dtype, DC_I32);
  dc_free(i16);
  cr_assert_null(dc_weights_tensor(r, dc_weights_find(r, "t.complex64")));
  cr_assert(strstr(dc_last_error(), "complex64"));
  dc_weights_free(r);
  dc_weights_free(w);
  cr_assert_eq(dc_live_tensors(), 0);
}

Test(safetensors, checkpoint_conversions, .init = setup, .fini = teardown) {
  dc_ckpt *c = dc_ckpt_new();
  dc_tensor *a = dc_arange(0, 6, 1, DC_F32), *step = dc_scalar(5, DC_I64);
  dc_ckpt_set_tensor(c, "model.fc.weight", a);
  dc_ckpt_set_tensor(c, "optim.state.0.step", step);
  dc_ckpt_set_meta(c, "format", "deepc-checkpoint");
  char ck[300], pth[300], back[300];
  snprintf(ck, sizeof ck, "%s/run.ckpt", dir);
  snprintf(pth, sizeof pth, "%s/model.pth", dir);
  snprintf(back, sizeof back, "%s/back.ckpt", dir);
  cr_assert_eq(dc_ckpt_save(c, ck), DC_OK, "%s", dc_last_error());
  dc_ckpt_free(c);
  dc_weights *w = dc_weights_load(ck);
  cr_assert_not_null(w, "%s", dc_last_error());
  cr_assert_eq(dc_weights_get_format(w), DC_WEIGHTS_CKPT);
  dc_weights *model = dc_weights_select(w, "model.", NULL);
  cr_assert_eq(dc_weights_count(model), 1);
  cr_assert_str_eq(dc_weights_name(model, 0), "fc.weight");
  cr_assert_eq(dc_weights_save(model, pth, DC_WEIGHTS_AUTO), DC_OK, "%s", dc_last_error());
  dc_weights *p = dc_weights_load(pth), *again = dc_weights_select(p, NULL, "model.");
  cr_assert_eq(dc_weights_save(again, back, DC_WEIGHTS_CKPT), DC_OK, "%s", dc_last_error());
  dc_ckpt *r = dc_ckpt_load(back);
  cr_assert_not_null(r, "%s", dc_last_error());
  dc_tensor *t = dc_ckpt_tensor(r, "model.fc.weight");
  cr_assert_not_null(t);
  for (int i = 0; i < 6; i++) cr_assert_eq(dc_item_at(t, i), i);
  cr_assert_str_eq(dc_ckpt_meta(r, "format"), "deepc-checkpoint");
  /* a plain safetensors copy drops the checkpoint marker */
  char st[300];
  snprintf(st, sizeof st, "%s/m.safetensors", dir);
  cr_assert_eq(dc_weights_save(w, st, DC_WEIGHTS_AUTO), DC_OK);
  dc_weights *plain = dc_weights_load(st);
  cr_assert_eq(dc_weights_get_format(plain), DC_WEIGHTS_SAFETENSORS);
  dc_weights_free(plain);
  dc_ckpt_free(r);
  dc_weights_free(again);
  dc_weights_free(p);
  dc_weights_free(model);
  dc_weights_free(w);
  dc_free(a);
  dc_free(step);
}

Test(safetensors, padding_and_reference_layout) {
  float d[3] = {1, 2, 3};
  size_t n;
  uint8_t *b =
      file_of("{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[3],"
              "\"data_offsets\":[0,12]}}",
              96, d, sizeof d, &n);
  dc_weights *w = dc_weights_parse(b, n, "ok.safetensors");
  cr_assert_not_null(w, "%s", dc_last_error());
  cr_assert_eq(((const float *)dc_weights_data(w, 0, NULL))[2], 3);
  cr_assert_str_eq(dc_weights_meta(w, "format"), "pt");
  dc_weights_free(w);
  free(b);
  /* zero-size tensors may share an offset */
  b = file_of("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},\"b\":{\"dtype\":"
              "\"F32\",\"shape\":[0,2],\"data_offsets\":[0,0]}}",
              0, NULL, 0, &n);
  w = dc_weights_parse(b, n, "empty.safetensors");
  cr_assert_not_null(w, "%s", dc_last_error());
  dc_weights_free(w);
  free(b);
}

Test(safetensors_bad, header_rules) {
  const char *T = "\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]";
  char h[512];
  refused("[1,2]", 0, "does not start with '{'");
  refused("{\"a\":", 0, "not one JSON object");
  refused("{} trailing", 0, "not one JSON object");
  snprintf(h, sizeof h, "{\"a\":{%s},\"a\":{%s}}", T, T);
  refused(h, 8, "appears twice");
  refused("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
          "unknown dtype 'Q7'");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "needs 12 bytes");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8,
          "shape[0] is not a size");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0.5,8]}}", 8,
          "data_offsets must be");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "outside");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12, "trailing bytes");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "gap");
  refused(
      "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\","
      "\"shape\":[2],\"data_offsets\":[4,12]}}",
      12, "overlap");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, "outside");
  refused("{\"__metadata__\":{\"k\":1}}", 0, "is not a string");
  refused("{\"a\":[1]}", 0, "is not an object");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
          "dimensions");
  refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
          "\"data_offsets\":[0,8]}}",
          8, "too many");
}

Test(safetensors_bad, header_length) {
  uint8_t b[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
  cr_assert_null(dc_weights_parse(b, sizeof b, "len.safetensors"));
  cr_assert(strstr(dc_last_error(), "header length"), "%s", dc_last_error());
  uint8_t c[16] = {0x00, 0xe2, 0xf5, 0x05, 0, 0, 0, 0, '{', '}'}; /* 100,000,256 */
  cr_assert_null(dc_weights_parse(c, sizeof c, "big.safetensors"));
  cr_assert(strstr(dc_last_error(), "100,000,000"), "%s", dc_last_error());
  cr_assert_null(dc_weights_parse(b, 5, "short"));
}

Test(safetensors_bad, truncated_files) {
  float d[4] = {1, 2, 3, 4};
  size_t n;
  uint8_t *b = file_of("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 0, d,
                       sizeof d, &n);
  for (size_t cut = 0; cut < n; cut++) {
    dc_weights *w = dc_weights_parse(b, cut, "cut.safetensors");
    cr_assert_null(w, "a file cut to %zu of %zu bytes was accepted", cut, n);
  }
  free(b);
}
