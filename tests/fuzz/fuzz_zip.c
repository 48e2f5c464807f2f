/* Fuzz target: zip archives through the one zip reader of .npz and .pth files (dc__zipr, libzip):
 * every entry's checked record, and its data (sizes and CRC-32 checked) when at most 16 MiB. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>

#include "io/zip-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dc__zipr *z = dc__zipr_open(data, size, "fuzz.zip", "zip");
  for (int64_t i = 0; z && i < dc__zipr_count(z) && i < 64; i++) {
    dc__zip_name_safe(dc__zipr_name(z, i));
    dc__zip_entry e;
    if (dc__zipr_entry(z, i, &e) != DC_OK) continue;
    uint64_t n = e.size;
    if (n > ((uint64_t)1 << 24)) continue;
    uint8_t *buf = dc__malloc(n ? (size_t)n : 1);
    if (buf) dc__zipr_read(z, i, buf, n);
    dc__free(buf);
  }
  dc__zipr_close(z);
  dc_clear_error();
  return 0;
}
