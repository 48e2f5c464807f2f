/* Fuzz target: a CIFAR binary batch file (CIFAR-10 records of 1 + 3072 bytes, CIFAR-100 of
 * 2 + 3072) through dc__cifar_file, then a few samples read back through the dataset. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>

#include "data/data-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* the first byte picks the file name the reader sees (CIFAR-100 names force 2-byte labels) */
  static const char *const NAMES[] = {"data_batch_1.bin", "test_batch.bin", "train.bin", "x.bin"};
  const char *name = NAMES[size ? data[0] % 4 : 0];
  dc_dataset *ds = dc__cifar_file(dc_fuzz_file(data, size, name));
  for (int64_t i = 0; ds && i < dc_dataset_len(ds) && i < 4; i++) {
    dc_scope_begin();
    dc_tensor *x = NULL, *y = NULL;
    if (dc_dataset_get(ds, i, 1, &x, &y) == DC_OK) dc_fuzz_touch(x);
    dc_dataset_label(ds, i);
    dc_scope_end();
  }
  for (int64_t k = 0; ds && k < dc_dataset_num_classes(ds); k++) dc_dataset_class_name(ds, k);
  dc_dataset_free(ds);
  dc_clear_error();
  dc_fuzz_check_live("cifar");
  return 0;
}
