/* dc_fuzz_use (fuzz.h): what every fuzz target does with a file its reader accepted. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>
#include <deepc/io.h>
#include <stdio.h>
#include <stdlib.h>

#include "io/weights-impl.h"

static volatile uint32_t g_sink; /* keeps the checksums from being optimised away */

void dc_fuzz_use(dc_weights *w) {
  if (!w) return;
  uint32_t acc = 0;
  dc_scope_begin();
  for (int i = 0; i < dc_weights_count(w); i++) {
    acc ^= dc_weights_crc32(w, i);
    dc_shape s = dc_weights_shape(w, i);
    int64_t numel = 1;
    for (int d = 0; d < s.ndim; d++) numel *= s.d[d];
    if (numel <= 4096) dc_weights_tensor(w, i); /* NULL for complex / float8: fine */
  }
  dc_scope_end();
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  if (f) {
    dc__safetensors_write(w, f, "fuzz");
    fclose(f);
  }
  free(buf);
  dc_weights_free(w);
  g_sink = acc;
  dc_fuzz_check_live("weights");
}

void dc_fuzz_touch(const dc_tensor *t) {
  if (!t) return;
  int64_t n = dc_numel(t);
  double acc = 0;
  for (int64_t i = 0; i < n && i < (1 << 16); i++) acc += dc_item_at(t, i);
  if (n > 0) acc += dc_item_at(t, n - 1);
  g_sink ^= (uint32_t)(acc != acc);
}

void dc_fuzz_check_live(const char *target) {
  if (dc_live_tensors() != 0) {
    fprintf(stderr, "fuzz %s: %lld tensors leaked\n", target, (long long)dc_live_tensors());
    abort();
  }
}
