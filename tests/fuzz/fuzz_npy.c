/* Fuzz target: .npy bytes through dc__npy_parse, and the same bytes as a .npz (zip of .npy
 * members, stored or deflated) through dc__npz_parse. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>

#include "data/data-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dc_scope_begin();
  dc_fuzz_touch(dc__npy_parse(data, size, "fuzz.npy"));
  dc_scope_end();
  dc_npz *z = dc__npz_parse(data, size, "fuzz.npz");
  for (int i = 0; z && i < z->n; i++) dc_fuzz_touch(z->arrays[i]);
  dc_npz_free(z);
  dc_clear_error();
  dc_fuzz_check_live("npy");
  return 0;
}
