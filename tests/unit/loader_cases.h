/* The image dataset and batch recorder of the loader tests (test_data_loader.c,
 * test_testdev_pinned.c): uint8 images [n, IMG_H, IMG_W] with label i % 7 and pixels tied to
 * the index, the augmentation they train with, and all batches of a run as bytes. */
#ifndef LOADER_CASES_H
#define LOADER_CASES_H

#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <stdlib.h>
#include <string.h>

enum { IMG_MAX = 128, IMG_H = 6, IMG_W = 5 };

/* n (<= IMG_MAX) images: pixel k of image i is (uint8)(i * mul + k), label i % 7. */
static dc_dataset *index_images(int n, int mul) {
  static uint8_t px[IMG_MAX * IMG_H * IMG_W];
  int64_t lab[IMG_MAX];
  cr_assert(n > 0 && n <= IMG_MAX);
  for (int i = 0; i < n; i++) {
    lab[i] = i % 7;
    for (int k = 0; k < IMG_H * IMG_W; k++) px[i * IMG_H * IMG_W + k] = (uint8_t)(i * mul + k);
  }
  dc_tensor *x = dc_from_data(px, DC_SHAPE(n, IMG_H, IMG_W), DC_U8);
  dc_tensor *y = dc_from_data(lab, DC_SHAPE(n), DC_I64);
  dc_dataset *ds = dc_tensor_dataset(x, y);
  dc_free(x);
  dc_free(y);
  cr_assert_not_null(ds, "%s", dc_last_error());
  return ds;
}

/* RandomCrop(padding 2), RandomHorizontalFlip, ToTensor. */
static void augment_images(dc_dataset *ds) {
  dc_transform *tf = DC_TF_COMPOSE(dc_tf_random_crop(IMG_H, IMG_W, .padding = 2),
                                   dc_tf_random_hflip(0.5), dc_tf_to_tensor());
  cr_assert_not_null(tf, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_set_transform(ds, tf), DC_OK);
}

/* All batches of a run, concatenated as bytes (x then y per batch). */
typedef struct run_bytes {
  uint8_t *b;
  size_t n;
  int64_t batches;
} run_bytes;

/* Appends t's bytes; t must be on dev. */
static void append(run_bytes *r, const dc_tensor *t, dc_device dev) {
  cr_assert_eq(t->device, dev, "batch on %s, not %s", dc_device_name(t->device),
               dc_device_name(dev));
  size_t n = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
  r->b = realloc(r->b, r->n + n);
  cr_assert_eq(dc_copy_to_buffer(t, r->b + r->n, n), DC_OK, "%s", dc_last_error());
  r->n += n;
}

#endif
