/* Fuzz target: IDX bytes (plain or gzip, MNIST's format) through dc__idx_parse. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>

#include "data/data-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dc_scope_begin();
  dc_tensor *t = dc__idx_parse(data, size, "fuzz.idx");
  dc_fuzz_touch(t);
  dc_scope_end();
  dc_clear_error();
  dc_fuzz_check_live("idx");
  return 0;
}
