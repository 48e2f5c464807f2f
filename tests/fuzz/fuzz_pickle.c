/* Fuzz target: the bytes are data.pkl; they are wrapped in a valid torch.save archive (with
 * float storages "0" of 16 elements and "1" of 4) so mutations reach the restricted pickle VM
 * and the state-dict rules instead of failing the archive's CRC check. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>
#include <deepc/io.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/weights-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const float S0[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  static const float S1[4] = {1, 2, 3, 4};
  char *zip = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&zip, &n);
  if (!f) return 0;
  dc__zipw z = {.f = f, .what = "fuzz"};
  int rc = dc__zipw_add(&z, "archive/data.pkl", data, size);
  if (rc == DC_OK) rc = dc__zipw_add(&z, "archive/data/0", S0, sizeof S0);
  if (rc == DC_OK) rc = dc__zipw_add(&z, "archive/data/1", S1, sizeof S1);
  if (rc == DC_OK)
    rc = dc__zipw_finish(&z);
  else
    dc__zipw_discard(&z);
  fclose(f);
  if (rc == DC_OK) dc_fuzz_use(dc__pth_parse((const uint8_t *)zip, n, "fuzz.pth"));
  free(zip);
  return 0;
}
