/* A 60-sample test dataset (dc__dataset_new(&FLAKY, "Flaky", "flaky.bin", 60, NULL)) whose
 * sample 37 cannot be read and whose sample 50 has another shape, for the loader's error paths
 * (test_data_loader.c, test_testdev_pinned.c). Sample i: x [4] (sample 50: [3]) float32 all i,
 * y int64 scalar i. */
#ifndef FLAKY_DATASET_H
#define FLAKY_DATASET_H

#include "data/data-impl.h"

static int flaky_get(const dc_dataset *ds, int64_t i, dc__sample *s, uint64_t seed) {
  (void)ds;
  (void)seed;
  if (i == 37) return dc__errs(DC_ERR_FORMAT, "flaky.bin: record 37 is corrupt");
  int64_t n = i == 50 ? 3 : 4;
  if (!dc__arr_reserve(&s->x, sizeof(float) * 4) || !dc__arr_reserve(&s->y, 8)) return DC_ERR_NOMEM;
  s->x.dtype = DC_F32;
  s->x.ndim = 1;
  s->x.shape[0] = n;
  for (int k = 0; k < n; k++) ((float *)s->x.data)[k] = (float)i;
  s->has_y = true;
  s->y.dtype = DC_I64;
  s->y.ndim = 0;
  *(int64_t *)s->y.data = i;
  return DC_OK;
}

static void flaky_destroy(dc_dataset *ds) { (void)ds; }
static const dc__dataset_vt FLAKY = {flaky_get, NULL, flaky_destroy};

#endif
