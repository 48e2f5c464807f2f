/* The pinned-memory path on the test device, which emulates CUDA's asynchronous copies
 * (src/backend/testdev/memory.c): the memory entries' contract, with its early-reuse detector
 * shown to fire; the loader with pin_memory on testdev handing out the same batches bit for bit
 * as the unpinned cpu loader (0 and 2 workers, shuffle, drop_last, augmentation, set_epoch),
 * with every batch of an epoch kept alive to the end (a buffer reused before its copy finished
 * would fail the detector); and the public memory statistics and TF32 switch.
 * Shapes: N samples, images [H, W] uint8, labels int64. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include "backend/testdev/testdev-impl.h"
#include "core/core-impl.h"
#include "data/data-impl.h"
#include "flaky_dataset.h"
#include "loader_cases.h"

#include <string.h>

enum { N = 53, H = IMG_H, W = IMG_W };

Test(pinned, async_copy_contract_and_early_reuse_detector) {
  const dc_device_mem *m = dc__device_mem(DC_TESTDEV);
  cr_assert_not_null(m, "%s", dc_last_error());
  cr_assert(dc__device_async_copies(DC_TESTDEV));
  cr_assert(!dc__device_async_copies(DC_CPU));
  int64_t pinned0 = dc__testdev_pinned_live();
  uint8_t *host = dc__host_alloc_pinned(DC_TESTDEV, 256);
  cr_assert_not_null(host);
  cr_assert_eq(dc__testdev_pinned_live(), pinned0 + 1);
  for (int i = 0; i < 256; i++) host[i] = (uint8_t)i;
  dc_tensor *d = dc_zeros_on(DC_SHAPE(256), DC_U8, DC_TESTDEV); /* [256] */
  cr_assert_not_null(d, "%s", dc_last_error());

  /* used as the contract says: not done at the first query, done at the second */
  dc__copy_ticket *t = NULL;
  cr_assert_eq(dc__storage_write_async(d->storage, 0, host, 256, &t), DC_OK, "%s", dc_last_error());
  cr_assert_not_null(t);
  cr_assert_eq(dc__copy_ticket_done(DC_TESTDEV, t, false), 0);
  cr_assert_eq(dc__copy_ticket_done(DC_TESTDEV, t, false), 1);
  dc__copy_ticket_free(DC_TESTDEV, t);
  cr_assert_eq((int)dc_item_at(d, 200), 200);

  /* the host buffer written before the copy is done: the detector fires */
  cr_assert_eq(dc__storage_write_async(d->storage, 0, host, 256, &t), DC_OK);
  host[3] = 99;
  int rc = dc__copy_ticket_done(DC_TESTDEV, t, true);
  cr_assert_eq(rc, DC_ERR_STATE, "reuse before completion not caught (%d)", rc);
  cr_assert(strstr(dc_last_error(), "was written before copy_done"), "%s", dc_last_error());
  dc__copy_ticket_free(DC_TESTDEV, t);
  cr_assert_eq(dc__copy_ticket_done(DC_TESTDEV, NULL, false), 1, "a NULL ticket is done");

  /* the cpu has no asynchronous copy: bytes at once, no ticket */
  dc_tensor *c = dc_zeros(DC_SHAPE(4), DC_U8); /* [4] */
  cr_assert_eq(dc__storage_write_async(c->storage, 0, host, 4, &t), DC_OK);
  cr_assert_null(t);
  cr_assert_eq((int)dc_item_at(c, 2), 2);
  dc_free(c);
  dc_free(d);
  dc__host_free_pinned(DC_TESTDEV, host);
  cr_assert_eq(dc__testdev_pinned_live(), pinned0);
}

/* The loader tests' images (mul 3), augmented or not. */
static dc_dataset *images(bool augment) {
  dc_dataset *ds = index_images(N, 3);
  if (augment) augment_images(ds);
  return ds;
}

/* Every batch of 3 epochs (epoch 1 replayed with set_epoch before epoch 2), read back only at
 * the end of each epoch: all of an epoch's batches stay alive until then. */
static run_bytes run(dc_dataset *ds, dc_loader_opts o) {
  run_bytes r = {0};
  dc_loader *l = dc_loader_opt(ds, o);
  cr_assert_not_null(l, "%s", dc_last_error());
  static const int64_t EPOCHS[] = {0, 1, 1};
  for (int e = 0; e < 3; e++) {
    if (e == 2) cr_assert_eq(dc_loader_set_epoch(l, EPOCHS[e]), DC_OK);
    dc_tensor *xs[64], *ys[64];
    int nb = 0, rc;
    dc_scope_begin();
    while (nb < 64 && (rc = dc_loader_next(l, &xs[nb], &ys[nb])) == 1) nb++;
    cr_assert_eq(rc, 0, "epoch %d batch %d: %s", e, nb, dc_last_error());
    for (int b = 0; b < nb; b++) {
      append(&r, xs[b], o.device);
      append(&r, ys[b], o.device);
    }
    r.batches += nb;
    dc_scope_end();
  }
  /* stop mid-epoch with a batch staged */
  dc_tensor *x, *y;
  cr_assert_eq(dc_loader_next(l, &x, &y), 1, "%s", dc_last_error());
  dc_free(x);
  dc_free(y);
  dc_loader_free(l);
  return r;
}

static void check_same(bool augment, bool shuffle, bool drop_last, int workers, int prefetch) {
  int64_t live = dc_live_tensors(), pinned0 = dc__testdev_pinned_live();
  dc_dataset *ds = images(augment);
  dc_loader_opts o = {.batch_size = 5,
                      .shuffle = shuffle,
                      .drop_last = drop_last,
                      .seed = 11,
                      .num_workers = workers,
                      .prefetch = prefetch};
  run_bytes ref = run(ds, o);
  o.pin_memory = true;
  o.device = DC_TESTDEV;
  int64_t copies0 = dc__testdev_async_copies();
  run_bytes pin = run(ds, o);
  int64_t copies = dc__testdev_async_copies() - copies0;
  cr_assert_eq(pin.batches, ref.batches);
  cr_assert(ref.n == pin.n && memcmp(ref.b, pin.b, ref.n) == 0,
            "pinned testdev batches differ from the cpu's (augment %d, shuffle %d, drop_last %d, "
            "%d workers, prefetch %d)",
            augment, shuffle, drop_last, workers, prefetch);
  /* x and y of each batch handed out (and of those staged when an epoch was replayed) */
  cr_assert_geq(copies, 2 * pin.batches, "%lld asynchronous copies for %lld batches",
                (long long)copies, (long long)pin.batches);
  cr_assert_eq(dc__testdev_pinned_live(), pinned0, "%lld pinned buffers left after the loader",
               (long long)(dc__testdev_pinned_live() - pinned0));
  free(ref.b);
  free(pin.b);
  dc_dataset_free(ds);
  cr_assert_eq(dc_live_tensors(), live);
}

Test(pinned, loader_same_batches_inline) {
  check_same(false, false, false, 0, 0);
  check_same(true, true, false, 0, 0);
  check_same(true, true, true, 0, 0);
}

Test(pinned, loader_same_batches_with_workers) {
  check_same(true, true, false, 2, 1);
  check_same(true, true, true, 2, 2);
  check_same(false, false, true, 2, 8);
}

/* Pinned buffers are reused once their copies finished: a long run makes no more of them than
 * the pool holds. */
Test(pinned, loader_reuses_pinned_buffers) {
  dc_alloc_stats a0 = dc_alloc_get_stats();
  dc_dataset *ds = images(false);
  dc_loader *l = dc_loader_new(ds, .batch_size = 5, .pin_memory = true, .device = DC_TESTDEV);
  dc_tensor *x, *y;
  int64_t peak = 0, pinned0 = dc__testdev_pinned_live();
  for (int e = 0; e < 5; e++) {
    while (dc_loader_next(l, &x, &y) == 1) {
      dc_free(x);
      dc_free(y);
      int64_t p = dc__testdev_pinned_live() - pinned0;
      if (p > peak) peak = p;
    }
  }
  cr_assert_leq(peak, 8, "%lld pinned buffers for batches handed out one at a time",
                (long long)peak);
  dc_loader_free(l);
  dc_dataset_free(ds);
  dc_alloc_stats a1 = dc_alloc_get_stats();
  cr_assert_eq(a1.live_bytes, a0.live_bytes, "%lld bytes leaked",
               (long long)(a1.live_bytes - a0.live_bytes));
}

Test(memory_stats, counters_peaks_and_empty_cache) {
  dc_memory_stats s0, s1, s2;
  cr_assert_eq(dc_device_memory_stats(DC_TESTDEV, &s0), DC_OK, "%s", dc_last_error());
  cr_assert_eq(s0.reserved_bytes, s0.allocated_bytes, "testdev has no cache");
  dc_tensor *t = dc_zeros_on(DC_SHAPE(1000), DC_F32, DC_TESTDEV); /* [1000] */
  cr_assert_not_null(t, "%s", dc_last_error());
  cr_assert_eq(dc_device_memory_stats(DC_TESTDEV, &s1), DC_OK);
  cr_assert_eq(s1.allocated_bytes, s0.allocated_bytes + 4000);
  cr_assert_eq(s1.reserved_bytes, s1.allocated_bytes);
  cr_assert_eq(s1.device_mallocs, s0.device_mallocs + 1);
  cr_assert_geq(s1.peak_allocated_bytes, s1.allocated_bytes);
  cr_assert_geq(s1.peak_reserved_bytes, s1.reserved_bytes);
  dc_free(t);
  dc_device_memory_reset_peak(DC_TESTDEV);
  cr_assert_eq(dc_device_memory_stats(DC_TESTDEV, &s2), DC_OK);
  cr_assert_eq(s2.allocated_bytes, s0.allocated_bytes);
  cr_assert_eq(s2.peak_allocated_bytes, s2.allocated_bytes, "reset: the peak is the current");
  cr_assert_eq(s2.peak_reserved_bytes, s2.reserved_bytes);
  int64_t live, peak;
  cr_assert_eq(dc_device_memory(DC_TESTDEV, &live, &peak), DC_OK, "the older call still works");
  cr_assert(live == s2.allocated_bytes && peak == s2.peak_allocated_bytes);
  cr_assert_eq(dc_device_empty_cache(DC_TESTDEV), DC_OK);
  cr_assert_eq(dc_device_empty_cache(DC_CPU), DC_OK);
  cr_assert_eq(dc_device_memory_stats(DC_CPU, &s2), DC_OK);
  cr_assert_eq(dc_device_memory_stats((dc_device)99, &s2), DC_ERR_ARG);
  cr_assert(strstr(dc_last_error(), "invalid device 99"), "%s", dc_last_error());
  cr_assert_eq(dc_device_memory_stats(DC_CPU, NULL), DC_ERR_ARG);
}

Test(tf32, switch_default_off_and_calls_win) {
  const char *env = getenv("DEEPC_ALLOW_TF32");
  cr_assert_eq(dc_allow_tf32(), env && strcmp(env, "1") == 0, "the default follows the variable");
  dc_set_allow_tf32(true);
  cr_assert(dc_allow_tf32());
  dc_set_allow_tf32(false);
  cr_assert(!dc_allow_tf32());
}

/* A batch's error reaches the caller in its turn (the staged batch keeps it), and the loader
 * goes on, as without pinning. */
Test(pinned, loader_errors_in_their_turn) {
  for (int w = 0; w <= 2; w += 2) {
    dc_dataset *ds = dc__dataset_new(&FLAKY, "Flaky", "flaky.bin", 60, NULL);
    dc_loader *l = dc_loader_new(ds, .batch_size = 10, .num_workers = w, .pin_memory = true,
                                 .device = DC_TESTDEV);
    cr_assert_not_null(l, "%s", dc_last_error());
    dc_tensor *x, *y;
    int got[6];
    char msg[6][512];
    for (int b = 0; b < 6; b++) {
      got[b] = dc_loader_next(l, &x, &y);
      snprintf(msg[b], sizeof msg[b], "%s", dc_last_error());
      if (got[b] == 1) {
        cr_assert_eq(x->device, DC_TESTDEV);
        cr_assert_eq((int64_t)dc_item_at(y, 0), b * 10);
        cr_assert_eq(dc_item_at(x, 39), b * 10 + 9);
        dc_free(x);
        dc_free(y);
      } else {
        cr_assert_null(x);
      }
    }
    cr_assert(got[0] == 1 && got[1] == 1 && got[2] == 1 && got[4] == 1, "workers %d", w);
    cr_assert_eq(got[3], -1);
    cr_assert(strstr(msg[3], "batch 3") && strstr(msg[3], "record 37 is corrupt"), "%s", msg[3]);
    cr_assert_eq(got[5], -1);
    cr_assert(strstr(msg[5], "batch 5") && strstr(msg[5], "Resize"), "%s", msg[5]);
    cr_assert_eq(dc_loader_next(l, &x, &y), 0);
    dc_loader_free(l);
    dc_dataset_free(ds);
  }
}

/* Every allocation of a pinned run made to fail in turn: each call returns 1, 0 or -1 with a
 * message, nothing crashes, and nothing leaks once the loader is freed. */
Test(pinned, loader_allocation_failures) {
  dc_dataset *ds = images(false);
  int64_t live = dc_live_tensors(), pinned0 = dc__testdev_pinned_live();
  for (int64_t nth = 1; nth < 400; nth += 3) {
    dc_alloc_stats a0 = dc_alloc_get_stats();
    dc_loader *l =
        dc_loader_new(ds, .batch_size = 10, .pin_memory = true, .device = DC_TESTDEV, .seed = 3);
    cr_assert_not_null(l, "%s", dc_last_error());
    dc_alloc_fail_at(nth);
    for (int k = 0; k < 8; k++) {
      dc_tensor *x, *y;
      int rc = dc_loader_next(l, &x, &y);
      cr_assert(rc == 1 || rc == 0 || rc == -1);
      if (rc == -1) cr_assert(dc_last_error()[0], "failure %lld: no message", (long long)nth);
      if (rc == 1) {
        dc_free(x);
        dc_free(y);
      }
    }
    dc_alloc_fail_at(0);
    dc_loader_free(l);
    dc_alloc_stats a1 = dc_alloc_get_stats();
    cr_assert_eq(a1.live_bytes, a0.live_bytes, "failure %lld: %lld bytes leaked", (long long)nth,
                 (long long)(a1.live_bytes - a0.live_bytes));
  }
  cr_assert_eq(dc_live_tensors(), live);
  cr_assert_eq(dc__testdev_pinned_live(), pinned0);
  dc_dataset_free(ds);
}
