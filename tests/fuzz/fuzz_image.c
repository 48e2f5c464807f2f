/* Fuzz target: PNG, JPEG and binary PPM/PGM bytes through dc__image_decode (RGB for inputs of
 * even length, gray for odd), with a 4-megapixel limit. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>

#include "data/data-impl.h"

static volatile uint8_t g_px;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dc__arr out = {0};
  if (dc__image_decode(data, size, size & 1, (int64_t)1 << 22, &out, "fuzz.img") == DC_OK) {
    size_t nb = dc__arr_nbytes(&out);
    uint8_t acc = 0;
    for (size_t i = 0; i < nb; i++) acc ^= ((const uint8_t *)out.data)[i];
    g_px = acc;
  }
  dc__arr_free(&out);
  dc_clear_error();
  return 0;
}
