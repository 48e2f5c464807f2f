/* Fuzz target: a whole .pth file (zip archive + pickle + storages) through the reader. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>
#include <deepc/io.h>
#include "io/weights-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dc_fuzz_use(dc__pth_parse(data, size, "fuzz.pth"));
  return 0;
}
