/* Unit tests of the dataset readers, mostly on bad input: truncated files, wrong magic numbers,
 * sizes that overflow or exceed the file, labels out of range, corrupt and enormous images,
 * malicious pickles. Each must fail with a message naming the file and the offset or record,
 * allocate nothing from unchecked sizes, and never crash (this suite also runs under ASan). */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include "data/data-impl.h"

#include <jpeglib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "tmpdir.h"

static void data_readers_setup(void) {
  setup();
  dc_clear_error();
}

/* dir/name in one of a few rotating buffers */
static void put(const char *name, const void *data, size_t n) {
  FILE *f = fopen(at(name), "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

static void put_gz(const char *name, const void *data, size_t n) {
  gzFile f = gzopen(at(name), "wb");
  cr_assert_not_null(f);
  cr_assert_eq(gzwrite(f, data, (unsigned)n), (int)n);
  gzclose(f);
}

#define EXPECT_ERROR(call, ...)                                                                    \
  do {                                                                                             \
    dc_clear_error();                                                                              \
    cr_assert_null((call), "expected failure");                                                    \
    const char *subs_[] = {__VA_ARGS__};                                                           \
    for (size_t k_ = 0; k_ < sizeof subs_ / sizeof *subs_; k_++)                                   \
      cr_assert(strstr(dc_last_error(), subs_[k_]), "message lacks '%s': %s", subs_[k_],           \
                dc_last_error());                                                                  \
  } while (0)

/* Bytes allocated at the peak since the mark, for "nothing allocated from unchecked sizes". */
static int64_t g_mark;
static void mark(void) {
  dc_alloc_reset_peak();
  g_mark = dc_alloc_get_stats().live_bytes;
}
static int64_t grown(void) { return dc_alloc_get_stats().peak_bytes - g_mark; }

static size_t idx_header(uint8_t *b, uint8_t type, int ndim, const uint32_t *dims) {
  b[0] = b[1] = 0;
  b[2] = type;
  b[3] = (uint8_t)ndim;
  for (int d = 0; d < ndim; d++) {
    b[4 + 4 * d] = (uint8_t)(dims[d] >> 24);
    b[5 + 4 * d] = (uint8_t)(dims[d] >> 16);
    b[6 + 4 * d] = (uint8_t)(dims[d] >> 8);
    b[7 + 4 * d] = (uint8_t)dims[d];
  }
  return 4 + 4 * (size_t)ndim;
}

/* ---- IDX ---- */
TestSuite(idx, .init = data_readers_setup, .fini = teardown);

Test(idx, real_fashion_mnist) {
  if (!dc__is_dir("/usr/share/datasets/fashion-mnist")) cr_skip_test("no Debian fashion-mnist");
  dc_dataset *ds = dc_fashion_mnist(NULL, true);
  cr_assert_not_null(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_len(ds), 60000);
  cr_assert_str_eq(dc_dataset_class_name(ds, 9), "Ankle boot");
  int64_t first[5] = {9, 0, 0, 3, 0};
  for (int i = 0; i < 5; i++) cr_assert_eq(dc_dataset_label(ds, i), first[i]);
  dc_tensor *x, *y;
  cr_assert_eq(dc_dataset_get(ds, 0, 1, &x, &y), DC_OK);
  cr_assert_eq(x->dtype, DC_U8);
  cr_assert(x->ndim == 3 && x->shape[0] == 28 && x->shape[1] == 28 && x->shape[2] == 1);
  cr_assert_eq(y->ndim, 0);
  cr_assert_eq((int64_t)dc_item(y), 9);
  dc_free(x);
  dc_free(y);
  dc_dataset_free(ds);
}

Test(idx, explicit_dir_and_gz_and_plain_agree) {
  uint8_t img[16 + 2 * 4 * 3], lbl[8 + 2];
  uint32_t d3[3] = {2, 4, 3}, d1[1] = {2};
  size_t h = idx_header(img, 0x08, 3, d3);
  for (int i = 0; i < 24; i++) img[h + (size_t)i] = (uint8_t)(i * 7);
  h = idx_header(lbl, 0x08, 1, d1);
  lbl[h] = 3;
  lbl[h + 1] = 7;
  put_gz("train-images-idx3-ubyte.gz", img, sizeof img);
  put("train-labels-idx1-ubyte", lbl, sizeof lbl);
  dc_dataset *ds = dc_mnist(dir, true);
  cr_assert_not_null(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_len(ds), 2);
  cr_assert_eq(dc_dataset_label(ds, 1), 7);
  dc_tensor *x;
  cr_assert_eq(dc_dataset_get(ds, 1, 1, &x, NULL), DC_OK);
  cr_assert_eq(((uint8_t *)dc_data(x))[5], (uint8_t)(17 * 7));
  dc_free(x);
  dc_dataset_free(ds);
  EXPECT_ERROR(dc_mnist(dir, false), "t10k-images-idx3-ubyte", dir);
}

Test(idx, wrong_magic) {
  put("bad", "\x00\x01\x08\x03hello", 9);
  EXPECT_ERROR(dc_idx_load(at("bad")), "bad", "offset 0", "magic");
  put("short", "\x00\x00", 2);
  EXPECT_ERROR(dc_idx_load(at("short")), "too short");
  put("dims", "\x00\x00\x08\x09", 4);
  EXPECT_ERROR(dc_idx_load(at("dims")), "9 dimensions");
}

Test(idx, truncated_and_extra_data) {
  uint8_t b[16 + 100];
  uint32_t dims[3] = {10, 28, 28};
  size_t h = idx_header(b, 0x08, 3, dims);
  memset(b + h, 1, 100);
  put("trunc", b, h + 100);
  mark();
  EXPECT_ERROR(dc_idx_load(at("trunc")), "trunc", "7840", "more than the file can hold");
  cr_assert_lt(grown(), 1 << 16, "allocated %lld bytes from a lying header", (long long)grown());
  put_gz("trunc.gz", b, h + 100);
  /* gzip: 7840 bytes fit the 1032:1 bound, so the reader allocates and finds the data short */
  EXPECT_ERROR(dc_idx_load(at("trunc.gz")), "truncated", "7840", "offset 116");
  uint32_t d1[1] = {4};
  h = idx_header(b, 0x08, 1, d1);
  memset(b + h, 2, 8);
  put("extra", b, h + 8);
  EXPECT_ERROR(dc_idx_load(at("extra")), "offset 12", "continues past");
}

Test(idx, absurd_sizes_allocate_nothing) {
  uint8_t b[64];
  uint32_t dims[4] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
  size_t h = idx_header(b, 0x0E, 4, dims);
  put("overflow", b, h);
  mark();
  EXPECT_ERROR(dc_idx_load(at("overflow")), "overflow", "offset 4", "declare over");
  uint32_t big[3] = {60000, 28000, 28000};
  h = idx_header(b, 0x08, 3, big);
  put_gz("bomb.gz", b, h);
  EXPECT_ERROR(dc_idx_load(at("bomb.gz")), "more than the file can hold", "gzip");
  cr_assert_lt(grown(), 1 << 20, "allocated %lld bytes", (long long)grown());
}

Test(idx, corrupt_gzip) {
  uint8_t b[16 + 400];
  uint32_t dims[3] = {4, 10, 10};
  size_t h = idx_header(b, 0x08, 3, dims);
  for (int i = 0; i < 400; i++) b[h + (size_t)i] = (uint8_t)(i * 31 + i / 7);
  put_gz("ok.gz", b, sizeof b);
  uint8_t *z;
  size_t n;
  cr_assert_eq(dc__read_file(at("ok.gz"), 1 << 20, &z, &n), DC_OK);
  put("cut.gz", z, n / 2);
  EXPECT_ERROR(dc_idx_load(at("cut.gz")), "cut.gz", "truncated");
  for (size_t i = 12; i < n - 8; i++) z[i] ^= 0x5A;
  put("garbled.gz", z, n);
  EXPECT_ERROR(dc_idx_load(at("garbled.gz")), "garbled.gz");
  dc__free(z);
}

Test(idx, labels_out_of_range_and_count_mismatch) {
  uint8_t img[16 + 3 * 4], lbl[8 + 3];
  uint32_t d3[3] = {3, 2, 2}, d1[1] = {3};
  size_t h = idx_header(img, 0x08, 3, d3);
  memset(img + h, 0, 12);
  put("train-images-idx3-ubyte", img, sizeof img);
  h = idx_header(lbl, 0x08, 1, d1);
  lbl[h] = 1;
  lbl[h + 1] = 11;
  lbl[h + 2] = 2;
  put("train-labels-idx1-ubyte", lbl, sizeof lbl);
  EXPECT_ERROR(dc_mnist(dir, true), "train-labels-idx1-ubyte", "record 1", "offset 9", "label 11");
  d1[0] = 2;
  h = idx_header(lbl, 0x08, 1, d1);
  put("train-labels-idx1-ubyte", lbl, h + 2);
  EXPECT_ERROR(dc_idx_dataset(at("train-images-idx3-ubyte"), at("train-labels-idx1-ubyte"), 0),
               "labels must be uint8 [3]");
}

Test(idx, other_element_types) {
  uint8_t b[8 + 8];
  uint32_t d1[1] = {2};
  size_t h = idx_header(b, 0x0B, 1, d1); /* int16 big-endian */
  b[h] = 0xFF;
  b[h + 1] = 0xFE; /* -2 */
  b[h + 2] = 0x01;
  b[h + 3] = 0x00; /* 256 */
  put("i16", b, h + 4);
  dc_tensor *t = dc_idx_load(at("i16"));
  cr_assert_not_null(t, "%s", dc_last_error());
  cr_assert_eq(t->dtype, DC_I32);
  cr_assert_eq(((int32_t *)dc_data(t))[0], -2);
  cr_assert_eq(((int32_t *)dc_data(t))[1], 256);
  dc_free(t);
}

/* ---- CIFAR ---- */
TestSuite(cifar, .init = data_readers_setup, .fini = teardown);

static void cifar_file(const char *name, int records, int label_bytes, int label) {
  size_t rec = (size_t)label_bytes + 3072;
  uint8_t *b = calloc((size_t)records, rec);
  for (int r = 0; r < records; r++) {
    uint8_t *p = b + (size_t)r * rec;
    for (int k = 0; k < label_bytes; k++) p[k] = (uint8_t)(label + k);
    for (int i = 0; i < 3072; i++)
      p[label_bytes + i] = (uint8_t)(i / 1024 * 100 + r); /* R,G,B planes */
  }
  put(name, b, (size_t)records * rec);
  free(b);
}

Test(cifar, layout_names_and_search) {
  char sub[600];
  snprintf(sub, sizeof sub, "%s/cifar-10-batches-bin", dir);
  cr_assert_eq(mkdir(sub, 0755), 0);
  for (int k = 1; k <= 5; k++) {
    char name[64];
    snprintf(name, sizeof name, "cifar-10-batches-bin/data_batch_%d.bin", k);
    cifar_file(name, 2, 1, k);
  }
  put("cifar-10-batches-bin/batches.meta.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n", 20);
  dc_dataset *ds = dc_cifar10(dir, true);
  cr_assert_not_null(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_len(ds), 10);
  cr_assert_str_eq(dc_dataset_class_name(ds, 3), "d");
  cr_assert_eq(dc_dataset_label(ds, 9), 5);
  dc_tensor *x;
  cr_assert_eq(dc_dataset_get(ds, 3, 1, &x, NULL), DC_OK);
  const uint8_t *p = dc_data(x); /* [32, 32, 3]: pixel 0 = (R, G, B) = (r, 100 + r, 200 + r) */
  cr_assert(p[0] == 1 && p[1] == 101 && p[2] == 201, "%d %d %d", p[0], p[1], p[2]);
  dc_free(x);
  dc_dataset_free(ds);
  EXPECT_ERROR(dc_cifar10(dir, false), "test_batch.bin", "deepc data fetch cifar10");
}

Test(cifar, bad_length_and_labels) {
  cifar_file("test_batch.bin", 3, 1, 2);
  FILE *f = fopen(at("test_batch.bin"), "ab");
  fputs("junk", f);
  fclose(f);
  EXPECT_ERROR(dc_cifar10(dir, false), "test_batch.bin", "3 records and 4 bytes left over");
  cifar_file("test_batch.bin", 3, 1, 10);
  EXPECT_ERROR(dc_cifar10(dir, false), "record 0", "offset 0", "label 10");
  cifar_file("test.bin", 2, 2, 19); /* coarse 19, fine 20 */
  dc_dataset *ds = dc_cifar100(dir, false, true);
  cr_assert_not_null(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_label(ds, 0), 19);
  cr_assert_str_eq(dc_dataset_class_name(ds, 19), "vehicles_2");
  dc_dataset_free(ds);
  ds = dc_cifar100(dir, false, false);
  cr_assert_eq(dc_dataset_label(ds, 1), 20);
  cr_assert_str_eq(dc_dataset_class_name(ds, 99), "worm");
  dc_dataset_free(ds);
  cifar_file("test.bin", 2, 2, 99); /* fine 100 */
  EXPECT_ERROR(dc_cifar100(dir, false, false), "fine label 100");
}

/* ---- NumPy ---- */
TestSuite(npy, .init = data_readers_setup, .fini = teardown);

static void put_npy(const char *name, const char *header, const void *data, size_t n) {
  uint8_t b[4096];
  size_t hl = strlen(header);
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (uint8_t)hl;
  b[9] = (uint8_t)(hl >> 8);
  memcpy(b + 10, header, hl);
  memcpy(b + 10 + hl, data, n);
  put(name, b, 10 + hl + n);
}

Test(npy, valid_fortran_and_big_endian) {
  float v[6] = {1, 2, 3, 4, 5, 6};
  put_npy("f.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", v, sizeof v);
  dc_tensor *t = dc_npy_load(at("f.npy"));
  cr_assert_not_null(t, "%s", dc_last_error());
  float want[6] = {1, 3, 5, 2, 4, 6};
  for (int i = 0; i < 6; i++) cr_assert_eq(((float *)dc_data(t))[i], want[i]);
  dc_free(t);
  uint8_t be[4] = {0, 0, 1, 2};
  put_npy("b.npy", "{'descr': '>i4', 'fortran_order': False, 'shape': (1,), }\n", be, 4);
  t = dc_npy_load(at("b.npy"));
  cr_assert_not_null(t, "%s", dc_last_error());
  cr_assert_eq(((int32_t *)dc_data(t))[0], 258);
  dc_free(t);
}

Test(npy, malformed_headers) {
  float v[4] = {0};
  put("nomagic.npy", "NUMPY...........", 16);
  EXPECT_ERROR(dc_npy_load(at("nomagic.npy")), "offset 0", "not a .npy");
  put_npy("obj.npy", "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }\n", v, 8);
  EXPECT_ERROR(dc_npy_load(at("obj.npy")), "'|O'", "refused");
  put_npy("struct.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }\n", v,
          4);
  EXPECT_ERROR(dc_npy_load(at("struct.npy")), "structured");
  put_npy("keys.npy", "{'descr': '<f4', 'shape': (1,), }\n", v, 4);
  EXPECT_ERROR(dc_npy_load(at("keys.npy")), "missing");
  put_npy("evil.npy", "{'descr': '<f4', 'fortran_order': __import__('os'), 'shape': (1,)}\n", v, 4);
  EXPECT_ERROR(dc_npy_load(at("evil.npy")), "fortran_order must be True or False");
  put_npy("short.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", v, 12);
  EXPECT_ERROR(dc_npy_load(at("short.npy")), "needs 16", "has 12", "truncated");
  mark();
  put_npy("huge.npy",
          "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000, 1000000), }\n", v,
          4);
  EXPECT_ERROR(dc_npy_load(at("huge.npy")), "huge.npy", "needs 8000000000000000000", "truncated");
  cr_assert_lt(grown(), 1 << 16);
  uint8_t b[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xFF, 0xFF, '{', '}'};
  put("hlen.npy", b, sizeof b);
  EXPECT_ERROR(dc_npy_load(at("hlen.npy")), "offset 8", "header length 65535");
}

Test(npy, corrupt_npz) {
  static const char junk[] = "PK\x03\x04 this is not really a zip archive at all";
  put("bad.npz", junk, sizeof junk - 1);
  EXPECT_ERROR(dc_npz_load(at("bad.npz")), "bad.npz", "not a readable .npz");
  EXPECT_ERROR(dc_npz_dataset(at("missing.npz"), NULL, NULL), "missing.npz", "cannot open");
}

/* ---- CSV ---- */
TestSuite(csv, .init = data_readers_setup, .fini = teardown);

Test(csv, labels_by_name_number_and_guess) {
  const char *text = "\xEF\xBB\xBFx1;x2;label\n1.5;2;cat\n\n3;-4e1;dog\n5;6;cat\n";
  put("a.csv", text, strlen(text));
  dc_dataset *ds = dc_csv_dataset(at("a.csv"), .delimiter = 0);
  cr_assert_not_null(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_len(ds), 3);
  cr_assert_eq(dc_dataset_num_classes(ds), 2);
  cr_assert_str_eq(dc_dataset_class_name(ds, 1), "dog");
  cr_assert_eq(dc_dataset_label(ds, 1), 1);
  dc_tensor *x, *y;
  cr_assert_eq(dc_dataset_get(ds, 1, 1, &x, &y), DC_OK);
  cr_assert_eq(((float *)dc_data(x))[1], -40.0f);
  dc_free(x);
  dc_free(y);
  dc_dataset_free(ds);
  const char *nums = "label,a,b\n2,1,1\n0,2,2\n";
  put("b.csv", nums, strlen(nums));
  ds = dc_csv_dataset(at("b.csv"), .label_first = true);
  cr_assert_not_null(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_num_classes(ds), 3);
  cr_assert_eq(dc_dataset_label(ds, 0), 2);
  dc_dataset_free(ds);
}

Test(csv, bad_cells_and_rows) {
  const char *t1 = "a,b,label\n1,2,0\n3,oops,1\n";
  put("c.csv", t1, strlen(t1));
  EXPECT_ERROR(dc_csv_dataset(at("c.csv"), .delimiter = ','), "c.csv", "line 3", "column 2",
               "'oops' is not a number");
  const char *t2 = "a,b,label\n1,2,0\n3,1\n";
  put("d.csv", t2, strlen(t2));
  EXPECT_ERROR(dc_csv_dataset(at("d.csv"), .delimiter = ','), "line 3 has 2 columns");
  const char *t3 = "a,b,label\n1,,0\n";
  put("e.csv", t3, strlen(t3));
  EXPECT_ERROR(dc_csv_dataset(at("e.csv"), .delimiter = ','), "missing value");
  put("f.csv", "", 0);
  EXPECT_ERROR(dc_csv_dataset(at("f.csv"), .delimiter = ','), "empty");
  const char *t4 = "a,b\n1,2\n";
  put("g.csv", t4, strlen(t4));
  EXPECT_ERROR(dc_csv_dataset(at("g.csv"), .label_column = "y"), "no column named 'y'");
}

/* ---- images ---- */
TestSuite(images, .init = data_readers_setup, .fini = teardown);

static uint32_t be32(uint32_t v) {
  return (v >> 24) | ((v >> 8) & 0xFF00) | ((v << 8) & 0xFF0000) | (v << 24);
}

/* A PNG with only IHDR (w x h RGB) and IEND: enough to claim a size. */
static size_t fake_png(uint8_t *b, uint32_t w, uint32_t h) {
  memcpy(b, "\x89PNG\r\n\x1a\n", 8);
  uint8_t chunk[4 + 13] = {'I', 'H', 'D', 'R'};
  uint32_t bw = be32(w), bh = be32(h);
  memcpy(chunk + 4, &bw, 4);
  memcpy(chunk + 8, &bh, 4);
  chunk[12] = 8;
  chunk[13] = 2;
  uint32_t len = be32(13), crc = be32((uint32_t)crc32(0, chunk, sizeof chunk));
  memcpy(b + 8, &len, 4);
  memcpy(b + 12, chunk, sizeof chunk);
  memcpy(b + 29, &crc, 4);
  memcpy(b + 33, "\0\0\0\0IEND\xae\x42\x60\x82", 12);
  return 45;
}

static size_t encode_jpeg(uint8_t **out, int w, int h) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr e;
  c.err = jpeg_std_error(&e);
  jpeg_create_compress(&c);
  unsigned long n = 0;
  *out = NULL;
  jpeg_mem_dest(&c, out, &n);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  uint8_t *row = malloc((size_t)w * 3);
  for (int y = 0; y < h; y++) {
    for (int x = 0; x < w * 3; x++) row[x] = (uint8_t)(x * 5 + y * 3);
    jpeg_write_scanlines(&c, &row, 1);
  }
  free(row);
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  return n;
}

Test(images, png_claiming_100000_squared_pixels) {
  uint8_t b[64];
  size_t n = fake_png(b, 100000, 100000);
  dc__arr out = {0};
  mark();
  dc_clear_error();
  cr_assert_neq(dc__image_decode(b, n, false, 0, &out, "big.png"), DC_OK);
  cr_assert(strstr(dc_last_error(), "100000x100000") && strstr(dc_last_error(), "big.png"), "%s",
            dc_last_error());
  cr_assert_lt(grown(), 1 << 20);
  dc__arr_free(&out);
}

Test(images, ppm_pgm_and_bad_headers) {
  const char *ok = "P5\n# comment\n3 2\n255\n\x01\x02\x03\x04\x05\x06";
  dc__arr out = {0};
  cr_assert_eq(dc__image_decode((const uint8_t *)ok, strlen(ok), false, 0, &out, "ok.pgm"), DC_OK,
               "%s", dc_last_error());
  cr_assert(out.shape[0] == 2 && out.shape[1] == 3 && out.shape[2] == 3);
  cr_assert_eq(((uint8_t *)out.data)[5], 2); /* gray replicated to RGB */
  const char *huge = "P6 100000 100000 255\n";
  cr_assert_neq(dc__image_decode((const uint8_t *)huge, strlen(huge), false, 0, &out, "h.ppm"),
                DC_OK);
  cr_assert(strstr(dc_last_error(), "over the limit"), "%s", dc_last_error());
  const char *cut = "P6 4 4 255\nabc";
  cr_assert_neq(dc__image_decode((const uint8_t *)cut, strlen(cut), false, 0, &out, "c.ppm"),
                DC_OK);
  cr_assert(strstr(dc_last_error(), "truncated"), "%s", dc_last_error());
  cr_assert_neq(dc__image_decode((const uint8_t *)"GIF89a", 6, false, 0, &out, "x.gif"), DC_OK);
  cr_assert(strstr(dc_last_error(), "not a JPEG, PNG"), "%s", dc_last_error());
  dc__arr_free(&out);
}

Test(images, jpeg_truncated_corrupt_and_oversized) {
  uint8_t *j;
  size_t n = encode_jpeg(&j, 40, 30);
  dc__arr out = {0};
  cr_assert_eq(dc__image_decode(j, n, false, 0, &out, "ok.jpg"), DC_OK, "%s", dc_last_error());
  cr_assert(out.shape[0] == 30 && out.shape[1] == 40 && out.shape[2] == 3);
  cr_assert_eq(dc__image_decode(j, n, true, 0, &out, "ok.jpg"), DC_OK);
  cr_assert_eq(out.shape[2], 1);
  cr_assert_neq(dc__image_decode(j, n / 2, false, 0, &out, "cut.jpg"), DC_OK);
  cr_assert(strstr(dc_last_error(), "cut.jpg") && strstr(dc_last_error(), "JPEG"), "%s",
            dc_last_error());
  cr_assert_neq(dc__image_decode(j, 20, false, 0, &out, "tiny.jpg"), DC_OK);
  cr_assert_neq(dc__image_decode(j, n, false, 1000, &out, "limit.jpg"), DC_OK);
  cr_assert(strstr(dc_last_error(), "40x30 pixels, over the limit of 1000"), "%s", dc_last_error());
  for (size_t i = 0; i + 8 < n; i++) /* claim 65000 x 65000 in the frame header */
    if (j[i] == 0xFF && j[i + 1] == 0xC0) {
      j[i + 5] = j[i + 7] = 0xFD;
      j[i + 6] = j[i + 8] = 0xE8;
      break;
    }
  mark();
  cr_assert_neq(dc__image_decode(j, n, false, 0, &out, "bomb.jpg"), DC_OK);
  cr_assert(strstr(dc_last_error(), "65000x65000"), "%s", dc_last_error());
  cr_assert_lt(grown(), 1 << 20);
  free(j);
  dc__arr_free(&out);
}

/* ---- ImageFolder ---- */
TestSuite(folder, .init = data_readers_setup, .fini = teardown);

static void mk(const char *rel) { cr_assert_eq(mkdir(at(rel), 0755), 0, "mkdir %s", rel); }

Test(folder, order_skips_and_empty_classes) {
  mk("root");
  mk("root/b");
  mk("root/B");
  mk("root/a");
  mk("root/a/deep");
  const char *pgm = "P5 2 2 255\n\x01\x02\x03\x04";
  put("root/b/2.pgm", pgm, 15);
  put("root/b/1.PGM", pgm, 15);
  put("root/B/x.pgm", pgm, 15);
  put("root/a/deep/z.pgm", pgm, 15);
  put("root/a/y.pgm", pgm, 15);
  put("root/a/readme.txt", "hi", 2);
  put("root/a/pic.bmp", "BM", 2);
  put("root/stray.jpg", "x", 1); /* files at the root are not classes */
  dc_dataset *ds = dc_image_folder(at("root"), .grayscale = true);
  cr_assert_not_null(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_num_classes(ds), 3);
  cr_assert_str_eq(dc_dataset_class_name(ds, 0), "B"); /* byte order: 'B' < 'a' < 'b' */
  cr_assert_str_eq(dc_dataset_class_name(ds, 1), "a");
  cr_assert_eq(dc_dataset_len(ds), 5);
  cr_assert_eq(dc_dataset_skipped(ds), 2);
  /* a's files: sorted(os.walk): root/a (y.pgm) before root/a/deep (z.pgm) */
  cr_assert(strstr(dc__image_folder_file(ds, 1), "a/y.pgm"));
  cr_assert(strstr(dc__image_folder_file(ds, 2), "a/deep/z.pgm"));
  cr_assert(strstr(dc__image_folder_file(ds, 3), "b/1.PGM"));
  dc_tensor *x, *y;
  cr_assert_eq(dc_dataset_get(ds, 4, 1, &x, &y), DC_OK);
  cr_assert_eq(x->shape[2], 1);
  cr_assert_eq((int64_t)dc_item(y), 2);
  dc_free(x);
  dc_free(y);
  dc_dataset_free(ds);
  mk("root/empty");
  mk("root/txt_only");
  put("root/txt_only/a.txt", "x", 1);
  EXPECT_ERROR(dc_image_folder(at("root"), .grayscale = false), "'empty'", "'txt_only'");
  EXPECT_ERROR(dc_image_folder(at("nope"), .grayscale = false), "not a folder");
}

Test(folder, corrupt_image_reported_when_read) {
  mk("r");
  mk("r/c");
  put("r/c/bad.png", "\x89PNG\r\n\x1a\n garbage", 16);
  dc_dataset *ds = dc_image_folder(at("r"), .grayscale = false);
  cr_assert_not_null(ds, "%s", dc_last_error());
  dc_tensor *x = NULL;
  cr_assert_neq(dc_dataset_get(ds, 0, 1, &x, NULL), DC_OK);
  cr_assert_null(x);
  cr_assert(strstr(dc_last_error(), "bad.png") && strstr(dc_last_error(), "PNG"), "%s",
            dc_last_error());
  dc_dataset_free(ds);
}

/* ---- pickle ---- */
TestSuite(pickle, .init = data_readers_setup, .fini = teardown);

#define LOADS(lit) dc_pickle_loads((lit), sizeof(lit) - 1)

Test(pickle, plain_values) {
  /* protocol 2: {'a': 1, 'b': [1.5, None, True]} */
  static const char p[] = "\x80\x02}q\x00(X\x01\x00\x00\x00"
                          "aq\x01K\x01X\x01\x00\x00\x00"
                          "bq\x02]q\x03(G?\xf8\x00\x00\x00\x00\x00\x00N\x88"
                          "eu.";
  dc_pickle *pk = LOADS(p);
  cr_assert_not_null(pk, "%s", dc_last_error());
  const dc_pyobj *r = dc_pickle_root(pk);
  cr_assert_eq(r->kind, DC_PY_DICT);
  cr_assert_eq(dc_pyobj_get(r, "a")->i, 1);
  const dc_pyobj *l = dc_pyobj_get(r, "b");
  cr_assert(l->kind == DC_PY_LIST && l->n == 3 && l->items[0]->f == 1.5 &&
            l->items[1]->kind == DC_PY_NONE && l->items[2]->i == 1);
  dc_pickle_free(pk);
}

Test(pickle, code_is_refused) {
  EXPECT_ERROR(LOADS("\x80\x02"
                     "cos\nsystem\nq\x00X\x02\x00\x00\x00lsq\x01\x85q\x02Rq\x03."),
               "offset 2", "refusing global 'os.system'");
  EXPECT_ERROR(LOADS("\x80\x02"
                     "cposix\nsystem\n."),
               "'posix.system'");
  EXPECT_ERROR(LOADS("\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x08"
                     "builtins\x8c\x04"
                     "eval\x93."),
               "offset 27", "'builtins.eval'");
  EXPECT_ERROR(LOADS("\x80\x02"
                     "csubprocess\nPopen\n."),
               "'subprocess.Popen'");
  EXPECT_ERROR(LOADS("(i__builtin__\nlist\n."), "offset 1", "0x69 'i' (INST)");
  EXPECT_ERROR(LOADS("\x80\x02X\x01\x00\x00\x00"
                     "a)R."),
               "REDUCE calls a str");
  EXPECT_ERROR(LOADS("\x80\x02}}b."), "BUILD on a dict");
  EXPECT_ERROR(LOADS("\x80\x02"
                     "cnumpy\nndarray\n)R."),
               "ndarray directly");
  EXPECT_ERROR(LOADS("\x80\x02"
                     "c_codecs\nencode\nX\x01\x00\x00\x00"
                     "a\x85R."),
               "latin1");
  EXPECT_ERROR(LOADS("\x80\x02Q."), "BINPERSID");
  EXPECT_ERROR(LOADS("\x80\x01N."), "protocol 1");
}

Test(pickle, corrupt_streams) {
  EXPECT_ERROR(LOADS("\x80\x02."), "stack underflow");
  EXPECT_ERROR(LOADS("\x80\x02h\x05."), "memo index 5 out of range");
  EXPECT_ERROR(LOADS("\x80\x02X\xff\xff\xff\x7f"), "truncated");
  EXPECT_ERROR(LOADS("\x80\x02\x8e\xff\xff\xff\xff\xff\xff\xff\x7f"), "truncated");
  EXPECT_ERROR(LOADS("\x80\x02K\x01"), "truncated");
  EXPECT_ERROR(LOADS("\x80\x02t."), "no MARK");
  EXPECT_ERROR(LOADS("\x80\x02K\x01K\x02"
                     "a."),
               "APPEND to a int");
  EXPECT_ERROR(LOADS("\x80\x02(K\x01u."), "SETITEMS");
  EXPECT_ERROR(LOADS("\x80\x02Nr\xff\xff\xff\xff."), "memo index");
  EXPECT_ERROR(LOADS("\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09."), "64 bits");
  EXPECT_ERROR(LOADS(""), "truncated");
}

Test(pickle, deep_nesting_and_shared_structure) {
  /* 300 nested lists: ] ] a ] a ... refused by depth, not by a crash */
  char deep[1024];
  size_t n = 0;
  deep[n++] = (char)0x80;
  deep[n++] = 2;
  deep[n++] = ']';
  for (int i = 0; i < 300; i++) deep[n++] = ']';
  for (int i = 0; i < 300; i++) deep[n++] = 'a';
  deep[n++] = '.';
  dc_clear_error();
  cr_assert_null(dc_pickle_loads(deep, n));
  cr_assert(strstr(dc_last_error(), "nested deeper"), "%s", dc_last_error());
  /* L0 = []; L(k+1) = [Lk, Lk] via the memo, 60 levels: 2^60 paths, one object each */
  char dag[2048];
  n = 0;
  dag[n++] = (char)0x80;
  dag[n++] = 2;
  dag[n++] = ']';
  for (int k = 0; k < 60; k++) {
    dag[n++] = 'q';
    dag[n++] = (char)k;
    dag[n++] = ']';
    dag[n++] = '(';
    dag[n++] = 'h';
    dag[n++] = (char)k;
    dag[n++] = 'h';
    dag[n++] = (char)k;
    dag[n++] = 'e';
    dag[n++] = 'q';
    dag[n++] = (char)(k + 100);
    dag[n++] = '0'; /* drop the lower list, keep the new one: POP then GET */
    dag[n++] = '0';
    dag[n++] = 'h';
    dag[n++] = (char)(k + 100);
  }
  dag[n++] = '.';
  dc_pickle *pk = dc_pickle_loads(dag, n);
  cr_assert_not_null(pk, "%s", dc_last_error());
  cr_assert_eq(dc_pickle_root(pk)->n, 2);
  dc_pickle_free(pk);
}

Test(pickle, array_shape_must_match_data) {
  /* _frombuffer(b'\x00'*4, dtype('f4') as '<', (2,), 'C'): 4 bytes for 2 floats */
  static const char p[] =
      "\x80\x05\x8c\x12numpy.core.numeric\x8c\x0b_frombuffer\x93(C\x04\x00\x00\x00\x00"
      "\x8c\x05numpy\x8c\x05"
      "dtype\x93\x8c\x02"
      "f4\x89\x88\x87R(K\x03\x8c\x01<NNNJ\xff\xff\xff\xff"
      "J\xff\xff\xff\xffK\x00tbK\x02\x85\x8c\x01"
      "CtR.";
  EXPECT_ERROR(LOADS(p), "shape [2] disagrees with its 4 data bytes");
}
