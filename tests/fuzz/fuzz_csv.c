/* Fuzz target: a CSV file through dc_csv_dataset (header, label guessing, class names) and
 * through dc_history_read_csv (metrics.csv of a run). */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *path = dc_fuzz_file(data, size, "fuzz.csv");
  dc_dataset *ds = dc_csv_dataset(path);
  for (int64_t i = 0; ds && i < dc_dataset_len(ds) && i < 4; i++) {
    dc_scope_begin();
    dc_tensor *x = NULL, *y = NULL;
    if (dc_dataset_get(ds, i, 1, &x, &y) == DC_OK) {
      dc_fuzz_touch(x);
      dc_fuzz_touch(y);
    }
    dc_scope_end();
  }
  dc_dataset_free(ds);
  dc_history h = {0};
  dc_history_read_csv(path, &h);
  dc_history_clear(&h);
  dc_clear_error();
  dc_fuzz_check_live("csv");
  return 0;
}
