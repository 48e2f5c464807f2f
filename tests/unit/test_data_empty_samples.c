/* Datasets whose samples have a zero-sized dimension are refused by every reader (IDX, NPY, NPZ,
 * pickle, CSV, in-memory tensors) with a message naming the file and the field: an IDX file of
 * 10 images with 0 rows each used to load as 10 empty images. Non-empty files still load. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "tmpdir.h"

TestSuite(empty, .init = setup, .fini = teardown);

static void put(const char *name, const void *data, size_t n) {
  FILE *f = fopen(at(name), "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

#define EXPECT_REFUSED(call, ...)                                                                  \
  do {                                                                                             \
    dc_clear_error();                                                                              \
    dc_dataset *ds_ = (call);                                                                      \
    cr_assert_null(ds_, "a dataset of empty samples was accepted (%lld samples)",                  \
                   (long long)dc_dataset_len(ds_));                                                \
    const char *subs_[] = {__VA_ARGS__};                                                           \
    for (size_t k_ = 0; k_ < sizeof subs_ / sizeof *subs_; k_++)                                   \
      cr_assert(strstr(dc_last_error(), subs_[k_]), "message lacks '%s': %s", subs_[k_],           \
                dc_last_error());                                                                  \
  } while (0)

static void expect_loads(dc_dataset *ds, int64_t n) {
  cr_assert_not_null(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_len(ds), n);
  dc_dataset_free(ds);
}

/* An IDX uint8 file of the given dims, all zero bytes. */
static void put_idx(const char *name, int ndim, const uint32_t *dims) {
  uint8_t b[4096] = {0, 0, 0x08, (uint8_t)ndim};
  size_t n = 4, numel = 1;
  for (int d = 0; d < ndim; d++, n += 4) {
    for (int k = 0; k < 4; k++) b[n + (size_t)k] = (uint8_t)(dims[d] >> (24 - 8 * k));
    numel *= dims[d];
  }
  cr_assert_leq(n + numel, sizeof b);
  put(name, b, n + numel);
}

Test(empty, idx_images_with_0_rows_or_columns) {
  put_idx("labels.idx", 1, (uint32_t[]){10});
  put_idx("rows0.idx", 3, (uint32_t[]){10, 0, 28});
  EXPECT_REFUSED(dc_idx_dataset(at("rows0.idx"), at("labels.idx"), 10), "rows0.idx", "offset 8",
                 "rows per sample) is 0");
  put_idx("cols0.idx", 3, (uint32_t[]){10, 28, 0});
  EXPECT_REFUSED(dc_idx_dataset(at("cols0.idx"), at("labels.idx"), 10), "cols0.idx", "offset 12",
                 "columns");
  put_idx("chan0.idx", 4, (uint32_t[]){10, 2, 2, 0});
  EXPECT_REFUSED(dc_idx_dataset(at("chan0.idx"), at("labels.idx"), 0), "chan0.idx", "offset 16");
  put_idx("ok.idx", 3, (uint32_t[]){10, 2, 3});
  expect_loads(dc_idx_dataset(at("ok.idx"), at("labels.idx"), 10), 10);
}

Test(empty, idx_files_opened_by_content) {
  /* images with labels beside them, and a lone feature file */
  put_idx("train-images-idx3-ubyte", 3, (uint32_t[]){4, 0, 5});
  put_idx("train-labels-idx1-ubyte", 1, (uint32_t[]){4});
  EXPECT_REFUSED(dc_dataset_open(at("train-images-idx3-ubyte")), "train-images-idx3-ubyte",
                 "offset 8");
  put_idx("features.idx", 2, (uint32_t[]){6, 0});
  EXPECT_REFUSED(dc_dataset_open(at("features.idx")), "features.idx", "offset 8",
                 "values per sample");
  put_idx("features_ok.idx", 2, (uint32_t[]){6, 1});
  expect_loads(dc_dataset_open(at("features_ok.idx")), 6);
}

static size_t npy_bytes(uint8_t *b, const char *descr, const char *shape, size_t data) {
  char h[128];
  int hl =
      snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
  int padded = (10 + hl + 1 + 63) / 64 * 64 - 10;
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (uint8_t)padded, b[9] = 0;
  memset(b + 10, ' ', (size_t)padded);
  memcpy(b + 10, h, (size_t)hl);
  b[10 + padded - 1] = '\n';
  memset(b + 10 + padded, 0, data);
  return 10 + (size_t)padded + data;
}

Test(empty, npy_array_with_a_0_in_the_sample_shape) {
  uint8_t b[512];
  put("x0.npy", b, npy_bytes(b, "<f4", "(4, 0)", 0));
  EXPECT_REFUSED(dc_dataset_open(at("x0.npy")), "x0.npy", "'shape'", "sample dimension 1 is 0");
  put("x.npy", b, npy_bytes(b, "<f4", "(4, 2)", 32));
  expect_loads(dc_dataset_open(at("x.npy")), 4);
}

/* A stored (uncompressed) zip of n members. */
static void put_zip(const char *name, int n, const char *const *names, uint8_t *const *data,
                    const size_t *len) {
  static uint8_t z[8192];
  uint8_t cd[1024];
  size_t at_z = 0, at_cd = 0;
  for (int i = 0; i < n; i++) {
    uint32_t crc = (uint32_t)crc32(0, data[i], (uInt)len[i]);
    uint16_t nl = (uint16_t)strlen(names[i]);
    uint8_t lh[30] = {'P', 'K', 3, 4, 20};
    uint8_t ch[46] = {'P', 'K', 1, 2, 20, 0, 20};
    uint32_t v32[] = {crc, (uint32_t)len[i], (uint32_t)len[i]};
    memcpy(lh + 14, v32, 12), memcpy(lh + 26, &nl, 2);
    memcpy(ch + 16, v32, 12), memcpy(ch + 28, &nl, 2);
    uint32_t off = (uint32_t)at_z;
    memcpy(ch + 42, &off, 4);
    memcpy(z + at_z, lh, 30), memcpy(z + at_z + 30, names[i], nl);
    memcpy(z + at_z + 30 + nl, data[i], len[i]);
    at_z += 30 + nl + len[i];
    memcpy(cd + at_cd, ch, 46), memcpy(cd + at_cd + 46, names[i], nl);
    at_cd += 46 + nl;
  }
  uint8_t end[22] = {'P', 'K', 5, 6};
  uint16_t cnt = (uint16_t)n;
  uint32_t cds = (uint32_t)at_cd, cdo = (uint32_t)at_z;
  memcpy(end + 8, &cnt, 2), memcpy(end + 10, &cnt, 2);
  memcpy(end + 12, &cds, 4), memcpy(end + 16, &cdo, 4);
  memcpy(z + at_z, cd, at_cd), memcpy(z + at_z + at_cd, end, 22);
  put(name, z, at_z + at_cd + 22);
}

Test(empty, npz_features_or_targets_with_a_0_in_the_sample_shape) {
  uint8_t x[256], y[256], x0[256], y0[256];
  size_t lx = npy_bytes(x, "|u1", "(3, 2)", 6), ly = npy_bytes(y, "<i8", "(3,)", 24);
  size_t lx0 = npy_bytes(x0, "|u1", "(3, 2, 0)", 0), ly0 = npy_bytes(y0, "<f4", "(3, 0)", 0);
  const char *names[] = {"x.npy", "y.npy"};
  put_zip("x0.npz", 2, names, (uint8_t *[]){x0, y}, (size_t[]){lx0, ly});
  EXPECT_REFUSED(dc_npz_dataset(at("x0.npz"), NULL, NULL), "x0.npz", "array 'x'",
                 "sample dimension 2 is 0");
  put_zip("y0.npz", 2, names, (uint8_t *[]){x, y0}, (size_t[]){lx, ly0});
  EXPECT_REFUSED(dc_dataset_open(at("y0.npz")), "y0.npz", "array 'y'", "sample dimension 1");
  put_zip("ok.npz", 2, names, (uint8_t *[]){x, y}, (size_t[]){lx, ly});
  expect_loads(dc_npz_dataset(at("ok.npz"), NULL, NULL), 3);
}

/* pickle.dumps({'data': np.zeros((2, 0), np.uint8), 'labels': [0, 1]}, protocol=2), NumPy 1.24 */
static const char PICKLE_DATA_2x0[] =
    "\x80\x02\x7d\x71\x00\x28\x58\x04\x00\x00\x00\x64\x61\x74\x61\x71\x01\x63\x6e\x75\x6d\x70"
    "\x79\x2e\x63\x6f\x72\x65\x2e\x6d\x75\x6c\x74\x69\x61\x72\x72\x61\x79\x0a\x5f\x72\x65\x63"
    "\x6f\x6e\x73\x74\x72\x75\x63\x74\x0a\x71\x02\x63\x6e\x75\x6d\x70\x79\x0a\x6e\x64\x61\x72"
    "\x72\x61\x79\x0a\x71\x03\x4b\x00\x85\x71\x04\x63\x5f\x63\x6f\x64\x65\x63\x73\x0a\x65\x6e"
    "\x63\x6f\x64\x65\x0a\x71\x05\x58\x01\x00\x00\x00\x62\x71\x06\x58\x06\x00\x00\x00\x6c\x61"
    "\x74\x69\x6e\x31\x71\x07\x86\x71\x08\x52\x71\x09\x87\x71\x0a\x52\x71\x0b\x28\x4b\x01\x4b"
    "\x02\x4b\x00\x86\x71\x0c\x63\x6e\x75\x6d\x70\x79\x0a\x64\x74\x79\x70\x65\x0a\x71\x0d\x58"
    "\x02\x00\x00\x00\x75\x31\x71\x0e\x89\x88\x87\x71\x0f\x52\x71\x10\x28\x4b\x03\x58\x01\x00"
    "\x00\x00\x7c\x71\x11\x4e\x4e\x4e\x4a\xff\xff\xff\xff\x4a\xff\xff\xff\xff\x4b\x00\x74\x71"
    "\x12\x62\x89\x63\x5f\x5f\x62\x75\x69\x6c\x74\x69\x6e\x5f\x5f\x0a\x62\x79\x74\x65\x73\x0a"
    "\x71\x13\x29\x52\x71\x14\x74\x71\x15\x62\x58\x06\x00\x00\x00\x6c\x61\x62\x65\x6c\x73\x71"
    "\x16\x5d\x71\x17\x28\x4b\x00\x4b\x01\x65\x75\x2e";

Test(empty, pickle_batch_with_a_0_in_the_sample_shape) {
  put("batch.pkl", PICKLE_DATA_2x0, sizeof PICKLE_DATA_2x0 - 1);
  EXPECT_REFUSED(dc_pickle_dataset(at("batch.pkl")), "batch.pkl", "key 'data'", "[2, 0]",
                 "sample dimension 1 is 0");
  EXPECT_REFUSED(dc_dataset_open(at("batch.pkl")), "batch.pkl", "key 'data'");
}

Test(empty, csv_without_feature_columns) {
  put("label.csv", "label\n1\n0\n", 10);
  EXPECT_REFUSED(dc_csv_dataset_opt(at("label.csv"), (dc_csv_opts){0}), "label.csv",
                 "no feature columns", "'label'");
}

Test(empty, tensors_with_a_0_in_the_sample_shape) {
  dc_tensor *x = dc_zeros(DC_SHAPE(3, 0), DC_F32), *y = dc_zeros(DC_SHAPE(3, 0, 2), DC_F32);
  dc_tensor *ok = dc_zeros(DC_SHAPE(3, 2), DC_F32);
  EXPECT_REFUSED(dc_tensor_dataset(x, NULL), "TensorDataset", "the features", "[3, 0]");
  EXPECT_REFUSED(dc_tensor_dataset(ok, y), "TensorDataset", "the targets", "[3, 0, 2]");
  expect_loads(dc_tensor_dataset(ok, NULL), 3);
  dc_free(x);
  dc_free(y);
  dc_free(ok);
}
