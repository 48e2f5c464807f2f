/* Every allocation deepc makes goes through one hook, so a program can supply its own allocator
 * and tests can make the Nth allocation fail (fault injection). */
#ifndef DEEPC_ALLOC_H
#define DEEPC_ALLOC_H

#include <stddef.h>
#include <stdint.h>
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dc_allocator {
  void *(*alloc)(size_t size, size_t align, void *ud); /* NULL on failure */
  void (*free)(void *p, void *ud);
  void *ud;
} dc_allocator;

/* Replace the allocator (NULL restores the default, 64-byte aligned). Call before any tensor
 * exists. */
DC_API void dc_set_allocator(const dc_allocator *a);

typedef struct dc_alloc_stats {
  int64_t live_bytes;   /* bytes currently allocated through the hook */
  int64_t peak_bytes;   /* high-water mark of live_bytes */
  int64_t live_blocks;  /* blocks currently allocated */
  int64_t total_allocs; /* allocations since start */
  int64_t cached_bytes; /* freed large blocks kept for reuse (not counted in live_bytes) */
} dc_alloc_stats;

DC_API dc_alloc_stats dc_alloc_get_stats(void);
DC_API void dc_alloc_reset_peak(void);

/* Freed blocks of 32 KiB and more are kept (up to DEEPC_ALLOC_CACHE_MB, default 1024) and reused
 * by later allocations of the same size class; this hands them all back to the allocator. */
DC_API void dc_alloc_release_cache(void);

/* Fault injection: the nth allocation from now (1 = the next one) fails; 0 disables. */
DC_API void dc_alloc_fail_at(int64_t nth);

#ifdef __cplusplus
}
#endif
#endif
