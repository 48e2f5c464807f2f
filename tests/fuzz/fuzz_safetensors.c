/* Fuzz target: a safetensors file (header length, JSON header, data) through the reader. */
#include "fuzz.h"

#include <deepc/deepc.h>
#include <deepc/io.h>

#include "io/weights-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dc_fuzz_use(dc__safetensors_parse(data, size, "fuzz.safetensors"));
  return 0;
}
