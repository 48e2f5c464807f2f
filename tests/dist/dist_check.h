/* Checks for the data-parallel test programs: each failed check prints the rank, the place and
 * both values; dist_check_finish() makes every rank's exit status reflect every rank's checks. */
#ifndef DIST_CHECK_H
#define DIST_CHECK_H

#include <deepc/deepc.h>
#include <deepc/dist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int g_failures;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "rank %d: FAIL %s:%d: %s: ", dc_dist_rank(), __FILE__, __LINE__, #cond);     \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fprintf(stderr, " (last error: %s)\n", dc_last_error());                                     \
      g_failures++;                                                                                \
    }                                                                                              \
  } while (0)

#define CHECK_OK(expr) CHECK((expr) == DC_OK, "%s", "expected DC_OK")

/* Largest |a - b| / (atol + rtol |b|) over two tensors of the same size (> 1 fails). */
static inline double rel_err(const dc_tensor *a, const dc_tensor *b, double atol, double rtol) {
  double worst = 0;
  for (int64_t i = 0; i < dc_numel(a); i++) {
    double x = dc_item_at(a, i), y = dc_item_at(b, i);
    double e = fabs(x - y) / (atol + rtol * fabs(y));
    if (!(e <= worst)) worst = e; /* NaN counts as worst */
  }
  return worst;
}

/* Sums the failures over the ranks, prints one line on rank 0 and returns the exit status. */
static int dist_check_finish(const char *name) {
  int64_t f = g_failures;
  if (dc_dist_all_reduce_buffer(&f, 1, DC_I64, DC_DIST_SUM) != DC_OK) {
    fprintf(stderr, "rank %d: final all-reduce failed: %s\n", dc_dist_rank(), dc_last_error());
    f = 1;
  }
  if (dc_dist_rank() == 0)
    printf("%s: %s with %d rank(s) (%lld failed checks)\n", name, f ? "FAILED" : "passed",
           dc_dist_size(), (long long)f);
  dc_dist_finalize();
  return f ? 1 : 0;
}

#endif
