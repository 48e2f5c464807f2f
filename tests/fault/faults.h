/* Allocation-failure sweeps for the tests/unit/test_faults_*.c suites: an operation is run with
 * the Nth allocation failing (dc_alloc_fail_at) for N = 1, 2, ... past the number of allocations
 * a fault-free run makes. Each failure must be an error status with a message, leave nothing
 * allocated, and leave the state usable: every later success must give the fault-free result. */
#ifndef DC_TEST_FAULTS_H
#define DC_TEST_FAULTS_H

#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <stdlib.h>
#include <string.h>

static inline int64_t fault_stride(int64_t stride) {
  const char *full = getenv("DEEPC_FAULTS_FULL");
  if (full && *full && *full != '0') return 1;
  return stride > 1 ? stride : 1;
}

typedef struct fault_case {
  const char *what;
  void (*prepare)(void *ud); /* optional: builds the state the operation starts from (no faults) */
  int (*run)(void *ud);      /* the operation under faults: DC_OK or an error status */
  void (*check)(void *ud);   /* after a success: the results equal the fault-free ones */
  void (*after_fail)(void *ud); /* optional: after a failure (state unchanged?, drops what the
                                   operation may legitimately leave, e.g. partial gradients) */
  void (*cleanup)(void *ud);    /* optional: frees what prepare and run made */
  bool may_keep;  /* a failure may keep allocations until cleanup (lazily made state) */
  int64_t stride; /* test every stride-th N only (0 or 1: every N); DEEPC_FAULTS_FULL=1 in the
                     environment tests every N whatever the stride */
} fault_case;

typedef struct fault_report {
  int64_t allocs;   /* allocations of a fault-free run */
  int64_t failures; /* runs that reported the injected failure */
  int64_t absorbed; /* runs that succeeded although an allocation failed (a fallback path) */
} fault_report;

static inline void fault_expect_same_stats(const char *what, int64_t n, const char *when,
                                           dc_alloc_stats a, dc_alloc_stats b) {
  cr_assert(a.live_bytes == b.live_bytes && a.live_blocks == b.live_blocks,
            "%s, allocation %lld fails: %s: %lld bytes in %lld blocks before, %lld bytes in %lld "
            "blocks after (leak)",
            what, (long long)n, when, (long long)a.live_bytes, (long long)a.live_blocks,
            (long long)b.live_bytes, (long long)b.live_blocks);
}

/* Runs the sweep; returns what it saw (the caller may log or assert on it). */
static inline fault_report fault_sweep(const fault_case *c, void *ud) {
  fault_report rep = {0};
  /* a fault-free run first: warms caches (oneDNN primitives, scope stacks) and counts */
  if (c->prepare) c->prepare(ud);
  int64_t before = dc_alloc_get_stats().total_allocs;
  dc_clear_error();
  int rc = c->run(ud);
  rep.allocs = dc_alloc_get_stats().total_allocs - before;
  cr_assert_eq(rc, DC_OK, "%s: fails without faults: %s", c->what, dc_last_error());
  c->check(ud);
  if (c->cleanup) c->cleanup(ud);
  int64_t stride = fault_stride(c->stride);
  for (int64_t n = 1; n <= rep.allocs + 1; n += stride) {
    dc_alloc_stats s0 = dc_alloc_get_stats();
    if (c->prepare) c->prepare(ud);
    dc_alloc_stats s1 = dc_alloc_get_stats();
    dc_clear_error();
    dc_alloc_fail_at(n);
    rc = c->run(ud);
    dc_alloc_fail_at(0);
    if (rc != DC_OK) {
      rep.failures++;
      cr_assert_neq(dc_last_status(), DC_OK, "%s, allocation %lld fails: status %d but no error",
                    c->what, (long long)n, rc);
      cr_assert(strstr(dc_last_error(), "memory") != NULL,
                "%s, allocation %lld fails: the message does not say so: '%s'", c->what,
                (long long)n, dc_last_error());
      if (c->after_fail) c->after_fail(ud);
      if (!c->may_keep)
        fault_expect_same_stats(c->what, n, "after the failure", s1, dc_alloc_get_stats());
    } else {
      if (n <= rep.allocs) rep.absorbed++;
      c->check(ud);
    }
    if (c->cleanup) c->cleanup(ud);
    fault_expect_same_stats(c->what, n, "after cleanup", s0, dc_alloc_get_stats());
  }
  dc_clear_error();
  cr_log_info("%s: %lld allocations, %lld injected failures reported, %lld absorbed", c->what,
              (long long)rep.allocs, (long long)rep.failures, (long long)rep.absorbed);
  return rep;
}

/* Bitwise comparison of a tensor's values with a saved buffer. */
static inline void fault_expect_bytes(const char *what, dc_tensor *t, const void *ref,
                                      size_t nbytes) {
  cr_assert_not_null(t, "%s: NULL tensor", what);
  size_t nb = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
  cr_assert_eq(nb, nbytes, "%s: %zu bytes, expected %zu", what, nb, nbytes);
  cr_assert(dc_is_contiguous(t), "%s: not contiguous", what);
  cr_assert(memcmp(dc_data(t), ref, nb) == 0, "%s: values differ from the fault-free run", what);
}

#endif
