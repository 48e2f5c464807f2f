/* PyTorch .pth files: round trips of every dtype (0-d and empty tensors included), views with
 * offsets and strides rebuilt from a hand-written pickle, _metadata and nested checkpoint dicts,
 * ZIP64 archives, and bad input: truncated and corrupt archives, CRC mismatches, entries
 * outside the archive folder, storages smaller than a view, malicious pickles (os.system,
 * builtins.eval, posix.system, STACK_GLOBAL, INST, unknown opcodes, memo out of range, deep
 * nesting), legacy and TorchScript files, failing allocations. Every case must be refused with
 * a message, never crash. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <deepc/io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/weights-impl.h"

/* ---- building archives and pickles by hand ---- */
typedef struct bytes {
  uint8_t *b;
  size_t n;
} bytes;

static void add(bytes *p, const void *d, size_t n) {
  p->b = realloc(p->b, p->n + n + 1);
  memcpy(p->b + p->n, d, n);
  p->n += n;
}
static void op(bytes *p, uint8_t c) { add(p, &c, 1); }
static void ops(bytes *p, const char *s) { add(p, s, strlen(s)); }
static void u32(bytes *p, uint32_t v) {
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  add(p, b, 4);
}
static void str(bytes *p, const char *s) {
  op(p, 'X');
  u32(p, (uint32_t)strlen(s));
  ops(p, s);
}
static void global(bytes *p, const char *mod, const char *name) {
  op(p, 'c');
  ops(p, mod);
  op(p, '\n');
  ops(p, name);
  op(p, '\n');
}
static void binint(bytes *p, int v) {
  op(p, 'J');
  u32(p, (uint32_t)v);
}

typedef struct member {
  const char *name;
  const void *data;
  size_t n;
} member;

/* A zip of stored members, in memory. */
static bytes zip_of(const member *m, int n, bool force64) {
  bytes out = {0};
  FILE *f = open_memstream((char **)&out.b, &out.n);
  dc__zipw z = {.f = f, .what = "test", .force_zip64 = force64};
  for (int i = 0; i < n; i++) cr_assert_eq(dc__zipw_add(&z, m[i].name, m[i].data, m[i].n), DC_OK);
  cr_assert_eq(dc__zipw_finish(&z), DC_OK);
  fclose(f);
  return out;
}

/* ('storage', torch.FloatStorage, key, 'cpu', numel) then BINPERSID */
static void storage(bytes *p, const char *key, int numel) {
  op(p, '(');
  str(p, "storage");
  global(p, "torch", "FloatStorage");
  str(p, key);
  str(p, "cpu");
  binint(p, numel);
  op(p, 't');
  op(p, 'Q');
}

/* _rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict()) */
static void tensor(bytes *p, const char *key, int numel, int offset, int ndim, const int *size,
                   const int *stride) {
  global(p, "torch._utils", "_rebuild_tensor_v2");
  op(p, '(');
  storage(p, key, numel);
  binint(p, offset);
  op(p, '(');
  for (int d = 0; d < ndim; d++) binint(p, size[d]);
  op(p, 't');
  op(p, '(');
  for (int d = 0; d < ndim; d++) binint(p, stride[d]);
  op(p, 't');
  op(p, 0x89);
  global(p, "collections", "OrderedDict");
  op(p, ')');
  op(p, 'R');
  op(p, 't');
  op(p, 'R');
}

static void dict_begin(bytes *p) {
  op(p, 0x80);
  op(p, 2);
  global(p, "collections", "OrderedDict");
  op(p, ')');
  op(p, 'R');
  op(p, '(');
}
static void dict_end(bytes *p) {
  op(p, 'u');
  op(p, '.');
}

static float STORE[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};

/* An archive with data.pkl = pkl and one float storage "0" of 12 elements. */
static bytes archive(const bytes *pkl) {
  member m[] = {{"archive/data.pkl", pkl->b, pkl->n},
                {"archive/data/0", STORE, sizeof STORE},
                {"archive/version", "3\n", 2}};
  return zip_of(m, 3, false);
}

/* Parses an archive holding pkl; expects failure with a message containing want. */
static void expect_refused(const bytes *pkl, const char *want) {
  bytes z = archive(pkl);
  dc_clear_error();
  dc_weights *w = dc_weights_parse(z.b, z.n, "evil.pth");
  cr_assert_null(w, "accepted a pickle that should be refused (%s)", want);
  cr_assert(strstr(dc_last_error(), want), "message '%s' lacks '%s'", dc_last_error(), want);
  free(z.b);
}

/* ---- round trips ---- */
#include "tmpdir.h"

Test(pth, round_trip_all_dtypes, .init = setup, .fini = teardown) {
  dc_state_dict *sd = dc_state_dict_new();
  dc_dtype dts[] = {DC_F32, DC_F64, DC_I64, DC_I32, DC_U8, DC_BOOL, DC_BF16, DC_F16};
  char name[64];
  for (int k = 0; k < 8; k++) {
    dc_scope_begin();
    dc_tensor *r = dc_reshape(dc_to_dtype(dc_arange(0, 24, 1, DC_F64), dts[k]), DC_SHAPE(2, 3, 4));
    snprintf(name, sizeof name, "layer%d.%s", k, dc_dtype_name(dts[k]));
    cr_assert_eq(dc_state_dict_set(sd, name, r), DC_OK);
    dc_scope_end();
  }
  dc_tensor *s0 = dc_scalar(7, DC_I64), *e = dc_zeros(DC_SHAPE(0, 5), DC_F32);
  dc_state_dict_set(sd, "bn.num_batches_tracked", s0);
  dc_state_dict_set(sd, "empty", e);
  dc_free(s0);
  dc_free(e);
  char path[300];
  snprintf(path, sizeof path, "%s/all.pth", dir);
  cr_assert_eq(dc_pth_save(sd, path), DC_OK, "%s", dc_last_error());
  dc_weights *w = dc_weights_load(path);
  cr_assert_not_null(w, "%s", dc_last_error());
  cr_assert_eq(dc_weights_get_format(w), DC_WEIGHTS_PTH);
  cr_assert_eq(dc_weights_count(w), dc_state_dict_size(sd));
  for (int i = 0; i < dc_state_dict_size(sd); i++) {
    cr_assert_str_eq(dc_weights_name(w, i), dc_state_dict_key_at(sd, i));
    dc_tensor *a = dc_state_dict_tensor_at(sd, i), *b = dc_weights_tensor(w, i);
    cr_assert_not_null(b, "%s", dc_last_error());
    cr_assert_eq(a->dtype, b->dtype, "%s", dc_state_dict_key_at(sd, i));
    cr_assert(dc_shape_equal(dc_shape_of(a), dc_shape_of(b)));
    for (int64_t j = 0; j < dc_numel(a); j++) cr_assert_eq(dc_item_at(a, j), dc_item_at(b, j));
    dc_free(b);
  }
  cr_assert_str_eq(dc_weights_dtype_name(w, 6), "bfloat16");
  cr_assert_eq(dc_weights_shape(w, 8).ndim, 0);
  dc_weights_free(w);
  dc_state_dict_free(sd);
  cr_assert_eq(dc_live_tensors(), 0);
}

Test(pth, views_offsets_strides) {
  bytes p = {0};
  dict_begin(&p);
  str(&p, "t");
  tensor(&p, "0", 12, 1, 2, (int[]){2, 3}, (int[]){1, 2}); /* a transposed view from element 1 */
  str(&p, "row");
  tensor(&p, "0", 12, 8, 1, (int[]){4}, (int[]){1}); /* same storage, offset 8 */
  str(&p, "scalar");
  tensor(&p, "0", 12, 11, 0, NULL, NULL);
  str(&p, "bcast");
  tensor(&p, "0", 12, 2, 2, (int[]){3, 2}, (int[]){0, 1}); /* an expanded (stride 0) view */
  dict_end(&p);
  bytes z = archive(&p);
  dc_weights *w = dc_weights_parse(z.b, z.n, "views.pth");
  cr_assert_not_null(w, "%s", dc_last_error());
  const float *t = dc_weights_data(w, 0, NULL);
  float want_t[6] = {1, 3, 5, 2, 4, 6};
  for (int i = 0; i < 6; i++) cr_assert_eq(t[i], want_t[i]);
  const float *r = dc_weights_data(w, 1, NULL);
  for (int i = 0; i < 4; i++) cr_assert_eq(r[i], 8 + i);
  cr_assert_eq(*(const float *)dc_weights_data(w, 2, NULL), 11);
  const float *b = dc_weights_data(w, 3, NULL);
  float want_b[6] = {2, 3, 2, 3, 2, 3};
  for (int i = 0; i < 6; i++) cr_assert_eq(b[i], want_b[i]);
  dc_weights_free(w);
  free(p.b);
  free(z.b);
}

Test(pth, nested_checkpoint_dict_and_metadata) {
  bytes p = {0};
  op(&p, 0x80);
  op(&p, 2);
  op(&p, '}');
  op(&p, '(');
  str(&p, "epoch");
  binint(&p, 3);
  str(&p, "model");
  global(&p, "collections", "OrderedDict");
  op(&p, ')');
  op(&p, 'R');
  op(&p, '(');
  str(&p, "fc.weight");
  tensor(&p, "0", 12, 0, 2, (int[]){3, 4}, (int[]){4, 1});
  op(&p, 'u');
  /* BUILD {'_metadata': {'fc': {'version': 1}}} */
  op(&p, '}');
  str(&p, "_metadata");
  op(&p, '}');
  str(&p, "fc");
  op(&p, '}');
  str(&p, "version");
  binint(&p, 1);
  op(&p, 's');
  op(&p, 's');
  op(&p, 's');
  op(&p, 'b');
  str(&p, "lrs");
  op(&p, ']');
  op(&p, '(');
  op(&p, 'G');
  uint8_t tenth[8] = {0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a};
  add(&p, tenth, 8);
  op(&p, 'N');
  op(&p, 'e');
  op(&p, 'u');
  op(&p, '.');
  bytes z = archive(&p);
  dc_weights *w = dc_weights_parse(z.b, z.n, "ckpt.pth");
  cr_assert_not_null(w, "%s", dc_last_error());
  cr_assert_eq(dc_weights_count(w), 1);
  cr_assert_str_eq(dc_weights_name(w, 0), "model.fc.weight");
  cr_assert_str_eq(dc_weights_meta(w, "epoch"), "3");
  cr_assert_str_eq(dc_weights_meta(w, "lrs"), "[0.1, None]");
  cr_assert_str_eq(dc_weights_meta(w, "model._metadata"), "{\"fc\":{\"version\":1}}");
  dc_state_dict *sd = dc_weights_state_dict(w, "model.");
  cr_assert_not_null(dc_state_dict_get(sd, "fc.weight"));
  dc_state_dict_free(sd);
  dc_weights_free(w);
  free(p.b);
  free(z.b);
}

Test(pth, metadata_written_back, .init = setup, .fini = teardown) {
  dc_weights *w = dc_weights_new();
  dc_tensor *t = dc_ones(DC_SHAPE(2), DC_F32);
  dc_weights_add(w, "bn.weight", t);
  dc_free(t);
  dc_weights_set_meta(w, "_metadata", "{\"\":{\"version\":1},\"bn\":{\"version\":2}}");
  char path[300];
  snprintf(path, sizeof path, "%s/m.pth", dir);
  cr_assert_eq(dc_weights_save(w, path, DC_WEIGHTS_AUTO), DC_OK, "%s", dc_last_error());
  dc_weights_free(w);
  w = dc_weights_load(path);
  cr_assert_not_null(w, "%s", dc_last_error());
  cr_assert_str_eq(dc_weights_meta(w, "_metadata"),
                   "{\"\":{\"version\":1},\"bn\":{\"version\":2}}");
  dc_weights_free(w);
}

Test(pth, zip64_records) {
  bytes p = {0};
  dict_begin(&p);
  str(&p, "w");
  tensor(&p, "0", 12, 0, 1, (int[]){12}, (int[]){1});
  dict_end(&p);
  member m[] = {{"a/data.pkl", p.b, p.n}, {"a/data/0", STORE, sizeof STORE}};
  bytes z = zip_of(m, 2, true);
  dc_weights *w = dc_weights_parse(z.b, z.n, "zip64.pth");
  cr_assert_not_null(w, "%s", dc_last_error());
  cr_assert_eq(((const float *)dc_weights_data(w, 0, NULL))[11], 11);
  dc_weights_free(w);
  free(p.b);
  free(z.b);
}

/* ---- bad archives ---- */
static bytes valid_archive(void) {
  bytes p = {0};
  dict_begin(&p);
  str(&p, "w");
  tensor(&p, "0", 12, 0, 1, (int[]){12}, (int[]){1});
  dict_end(&p);
  bytes z = archive(&p);
  free(p.b);
  return z;
}

Test(pth_bad, truncated_archives) {
  bytes z = valid_archive();
  size_t cuts[] = {0, 3, 22, z.n / 3, z.n / 2, z.n - 23, z.n - 1};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    dc_clear_error();
    dc_weights *w = dc_weights_parse(z.b, cuts[i], "cut.pth");
    cr_assert_null(w, "a file cut to %zu of %zu bytes was accepted", cuts[i], z.n);
    cr_assert_neq(dc_last_status(), DC_OK);
    cr_assert(strlen(dc_last_error()) > 10);
  }
  free(z.b);
}

Test(pth_bad, crc_mismatch) {
  bytes z = valid_archive();
  /* change one float of storage 0 (its bytes are the 12 floats 0..11) */
  float eleven = 11;
  uint8_t *at = memmem(z.b, z.n, &eleven, 4);
  cr_assert_not_null(at);
  at[0] ^= 1;
  dc_weights *w = dc_weights_parse(z.b, z.n, "crc.pth");
  cr_assert_null(w);
  cr_assert(strstr(dc_last_error(), "CRC") || strstr(dc_last_error(), "crc"), "%s",
            dc_last_error());
  free(z.b);
}

Test(pth_bad, corrupt_central_directory) {
  bytes z = valid_archive();
  uint8_t *cd = memmem(z.b, z.n, "PK\x01\x02", 4);
  cr_assert_not_null(cd);
  cd[28] = 0xff; /* name length of the first central entry */
  cr_assert_null(dc_weights_parse(z.b, z.n, "cd.pth"));
  free(z.b);
}

Test(pth_bad, entries_outside_the_folder) {
  bytes p = {0};
  dict_begin(&p);
  dict_end(&p);
  const char *bad[] = {"other/x", "archive/../evil", "/archive/abs", "archive//x", "archive\\x"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    member m[] = {{"archive/data.pkl", p.b, p.n}, {bad[i], "x", 1}};
    bytes z = zip_of(m, 2, false);
    dc_clear_error();
    cr_assert_null(dc_weights_parse(z.b, z.n, "escape.pth"), "accepted entry %s", bad[i]);
    cr_assert(strstr(dc_last_error(), "outside the archive folder"), "%s", dc_last_error());
    free(z.b);
  }
  /* no data.pkl at all */
  member m[] = {{"x.txt", "x", 1}};
  bytes z = zip_of(m, 1, false);
  cr_assert_null(dc_weights_parse(z.b, z.n, "plain.zip"));
  cr_assert(strstr(dc_last_error(), "data.pkl"), "%s", dc_last_error());
  free(z.b);
  free(p.b);
}

Test(pth_bad, duplicate_entries) {
  bytes p = {0};
  dict_begin(&p);
  dict_end(&p);
  member m[] = {
      {"archive/data.pkl", p.b, p.n}, {"archive/data/0", "a", 1}, {"archive/data/0", "b", 1}};
  bytes z = zip_of(m, 3, false);
  cr_assert_null(dc_weights_parse(z.b, z.n, "dup.pth"));
  free(z.b);
  free(p.b);
}

Test(pth_bad, storage_smaller_than_view) {
  bytes p = {0};
  dict_begin(&p);
  str(&p, "w");
  tensor(&p, "0", 12, 4, 2, (int[]){3, 3}, (int[]){3, 1}); /* needs elements 4..12 */
  dict_end(&p);
  expect_refused(&p, "which holds only 12 elements");
  free(p.b);
  /* the pickle declares more elements than the entry holds */
  bytes q = {0};
  dict_begin(&q);
  str(&q, "w");
  tensor(&q, "0", 13, 0, 1, (int[]){13}, (int[]){1});
  dict_end(&q);
  expect_refused(&q, "storage smaller or larger than declared");
  free(q.b);
  /* a missing storage entry */
  bytes r = {0};
  dict_begin(&r);
  str(&r, "w");
  tensor(&r, "7", 12, 0, 1, (int[]){12}, (int[]){1});
  dict_end(&r);
  expect_refused(&r, "has no entry archive/data/7");
  free(r.b);
}

Test(pth_bad, malicious_globals) {
  const char *mods[][2] = {{"os", "system"},        {"builtins", "eval"},    {"posix", "system"},
                           {"subprocess", "Popen"}, {"__builtin__", "exec"}, {"torch", "load"}};
  for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++) {
    bytes p = {0};
    op(&p, 0x80);
    op(&p, 2);
    global(&p, mods[i][0], mods[i][1]);
    str(&p, "touch /tmp/dc_pwned");
    op(&p, 0x85);
    op(&p, 'R');
    op(&p, '.');
    char want[128];
    snprintf(want, sizeof want, "refusing global '%s.%s'", mods[i][0], mods[i][1]);
    expect_refused(&p, want);
    expect_refused(&p, "offset 2");
    free(p.b);
  }
  /* the same through STACK_GLOBAL (protocol 4) */
  bytes p = {0};
  op(&p, 0x80);
  op(&p, 4);
  str(&p, "os");
  str(&p, "system");
  op(&p, 0x93);
  op(&p, '.');
  expect_refused(&p, "refusing global 'os.system'");
  free(p.b);
  cr_assert_neq(access("/tmp/dc_pwned", F_OK), 0);
}

Test(pth_bad, forbidden_and_unknown_opcodes) {
  struct {
    uint8_t code;
    const char *name;
  } bad[] = {{'i', "INST"},           {'o', "OBJ"},   {0x81, "NEWOBJ"}, {0x92, "NEWOBJ_EX"},
             {'P', "PERSID"},         {0x82, "EXT1"}, {'S', "STRING"},  {0xff, "unknown opcode"},
             {0x00, "unknown opcode"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    bytes p = {0};
    op(&p, 0x80);
    op(&p, 2);
    op(&p, bad[i].code);
    op(&p, '.');
    expect_refused(&p, bad[i].name);
    expect_refused(&p, "offset 2");
    free(p.b);
  }
}

Test(pth_bad, memo_out_of_range) {
  bytes p = {0};
  op(&p, 0x80);
  op(&p, 2);
  op(&p, 'h');
  op(&p, 5); /* BINGET 5: never stored */
  op(&p, '.');
  expect_refused(&p, "memo index 5 out of range");
  free(p.b);
  bytes q = {0};
  op(&q, 0x80);
  op(&q, 2);
  op(&q, 'N');
  op(&q, 'r');
  u32(&q, 4000000000u); /* LONG_BINPUT far beyond */
  op(&q, '.');
  expect_refused(&q, "memo index 4000000000 out of range");
  free(q.b);
}

Test(pth_bad, deep_nesting) {
  bytes p = {0};
  op(&p, 0x80);
  op(&p, 2);
  for (int i = 0; i < 100000; i++) op(&p, '(');
  op(&p, '.');
  expect_refused(&p, "nested deeper");
  free(p.b);
  bytes q = {0}; /* tuples of tuples */
  op(&q, 0x80);
  op(&q, 2);
  op(&q, ')');
  for (int i = 0; i < 1000; i++) op(&q, 0x85);
  op(&q, '.');
  expect_refused(&q, "nested deeper");
  free(q.b);
  bytes r = {0}; /* a list appended into itself through the memo: a cycle */
  op(&r, 0x80);
  op(&r, 2);
  op(&r, '}');
  str(&r, "x");
  op(&r, ']');
  op(&r, 'q');
  op(&r, 0);
  op(&r, 'h');
  op(&r, 0);
  op(&r, 'a');
  op(&r, 's');
  op(&r, '.');
  expect_refused(&r, "");
  free(r.b);
}

Test(pth_bad, not_a_state_dict) {
  bytes p = {0};
  op(&p, 0x80);
  op(&p, 2);
  binint(&p, 42);
  op(&p, '.');
  expect_refused(&p, "not a state dict");
  free(p.b);
  /* a whole module saved with torch.save(model) names its class */
  bytes q = {0};
  op(&q, 0x80);
  op(&q, 2);
  global(&q, "torchvision.models.resnet", "ResNet");
  op(&q, '.');
  expect_refused(&q, "save model.state_dict() instead");
  free(q.b);
  /* truncated pickle */
  bytes r = {0};
  dict_begin(&r);
  str(&r, "w");
  expect_refused(&r, "truncated");
  free(r.b);
}

Test(pth_bad, legacy_and_torchscript) {
  uint8_t legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                      0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, '.'};
  cr_assert_null(dc_weights_parse(legacy, sizeof legacy, "old.pth"));
  cr_assert(strstr(dc_last_error(), "legacy"), "%s", dc_last_error());
  bytes p = {0};
  dict_begin(&p);
  dict_end(&p);
  member m[] = {{"model/data.pkl", p.b, p.n},
                {"model/constants.pkl", p.b, p.n},
                {"model/code/__torch__.py", "x", 1}};
  bytes z = zip_of(m, 3, false);
  cr_assert_null(dc_weights_parse(z.b, z.n, "script.pt"));
  cr_assert(strstr(dc_last_error(), "TorchScript"), "%s", dc_last_error());
  cr_assert_eq(dc_last_status(), DC_ERR_UNSUPPORTED);
  free(z.b);
  free(p.b);
  uint8_t junk[40] = "not a weight file at all, just text....";
  cr_assert_null(dc_weights_parse(junk, sizeof junk, "junk"));
}

Test(pth_bad, failing_allocations) {
  bytes z = valid_archive();
  for (int n = 1; n < 400; n++) {
    dc_alloc_fail_at(n);
    dc_weights *w = dc_weights_parse(z.b, z.n, "oom.pth");
    dc_alloc_fail_at(0);
    if (w) {
      dc_weights_free(w);
      break;
    }
    cr_assert_neq(dc_last_status(), DC_OK, "failed allocation %d left no error", n);
  }
  free(z.b);
}
