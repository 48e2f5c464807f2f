/* Unit tests of the threaded DataLoader: the same seed gives the same batches (content and order,
 * augmentation included) for 0, 1 and several workers and any ring depth; epochs reshuffle and
 * set_epoch replays one; drop_last; errors of a sample reach the caller with batch, sample
 * and cause, and the loader goes on; shutdown mid-epoch; batches outliving the loader; nothing
 * leaks. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include "data/data-impl.h"
#include "flaky_dataset.h"
#include "loader_cases.h"

#include <string.h>
#include <unistd.h>

enum { N = 103, C = 1, H = IMG_H, W = IMG_W };

static run_bytes run(dc_dataset *ds, dc_loader_opts o, int epochs) {
  run_bytes r = {0};
  dc_loader *l = dc_loader_opt(ds, o);
  cr_assert_not_null(l, "%s", dc_last_error());
  for (int e = 0; e < epochs; e++) {
    dc_tensor *x, *y;
    int rc;
    dc_scope_begin();
    while ((rc = dc_loader_next(l, &x, &y)) == 1) {
      append(&r, x, DC_CPU);
      append(&r, y, DC_CPU);
      r.batches++;
    }
    dc_scope_end();
    cr_assert_eq(rc, 0, "%s", dc_last_error());
    cr_assert_eq(dc_loader_epoch(l), e + 1);
  }
  dc_loader_free(l);
  return r;
}

static bool same(run_bytes a, run_bytes b) {
  return a.n == b.n && a.batches == b.batches && memcmp(a.b, b.b, a.n) == 0;
}

Test(loader, same_batches_for_any_worker_count) {
  int64_t live = dc_live_tensors();
  dc_dataset *ds = index_images(N, 2);
  augment_images(ds);
  dc_loader_opts o = {.batch_size = 10, .shuffle = true, .seed = 7};
  run_bytes r0 = run(ds, o, 3);
  cr_assert_eq(r0.batches, 33);
  /* rings shallower and deeper than an epoch's 11 batches: workers woken at every batch, once
   * half the ring is free, or once for the epoch's tail */
  static const int WP[][2] = {{1, 3}, {4, 1}, {1, 4}, {2, 8}, {1, 16}};
  for (int k = 0; k < 5; k++) {
    o.num_workers = WP[k][0];
    o.prefetch = WP[k][1];
    run_bytes rw = run(ds, o, 3);
    cr_assert(same(r0, rw), "%d workers, prefetch %d gave different batches", WP[k][0], WP[k][1]);
    free(rw.b);
  }
  o.seed = 8;
  run_bytes other = run(ds, o, 3);
  cr_assert(!same(r0, other), "another seed gave the same batches");
  free(other.b);
  free(r0.b);
  dc_dataset_free(ds);
  cr_assert_eq(dc_live_tensors(), live);
}

Test(loader, order_epochs_and_set_epoch) {
  dc_dataset *ds = index_images(N, 2);
  dc_loader *l = dc_loader_new(ds, .batch_size = N, .shuffle = false, .seed = 1);
  dc_tensor *x, *y;
  cr_assert_eq(dc_loader_next(l, &x, &y), 1);
  for (int i = 0; i < N; i++) cr_assert_eq(((int64_t *)dc_data(y))[i], i % 7);
  cr_assert(x->ndim == 4 && x->shape[0] == N && x->shape[1] == H && x->shape[3] == 1);
  dc_free(x);
  dc_free(y);
  dc_loader_free(l);
  /* shuffled: a permutation, different per epoch; set_epoch replays an epoch */
  l = dc_loader_new(ds, .batch_size = N, .shuffle = true, .seed = 3, .num_workers = 2);
  int64_t first[N], second[N], again[N];
  int64_t *bufs[3] = {first, second, again};
  for (int e = 0; e < 3; e++) {
    if (e == 2) cr_assert_eq(dc_loader_set_epoch(l, 1), DC_OK);
    cr_assert_eq(dc_loader_next(l, &x, &y), 1, "%s", dc_last_error());
    const uint8_t *px = dc_data(x);
    for (int i = 0; i < N; i++) bufs[e][i] = px[(int64_t)i * H * W] / 2; /* pixel 0 = 2 * index */
    dc_free(x);
    dc_free(y);
    cr_assert_eq(dc_loader_next(l, &x, &y), 0);
  }
  int seen[N] = {0};
  for (int i = 0; i < N; i++) seen[first[i]]++;
  for (int i = 0; i < N; i++) cr_assert_eq(seen[i], 1, "index %d seen %d times", i, seen[i]);
  cr_assert(memcmp(first, second, sizeof first) != 0, "epochs 0 and 1 have the same order");
  cr_assert(memcmp(second, again, sizeof first) == 0, "set_epoch(1) did not replay epoch 1");
  dc_loader_free(l);
  dc_dataset_free(ds);
}

Test(loader, drop_last_and_sizes) {
  dc_dataset *ds = index_images(N, 2);
  dc_loader *l = dc_loader_new(ds, .batch_size = 10, .drop_last = true);
  cr_assert_eq(dc_loader_len(l), 10);
  dc_loader_free(l);
  l = dc_loader_new(ds, .batch_size = 10);
  cr_assert_eq(dc_loader_len(l), 11);
  dc_tensor *x, *y;
  int64_t last = 0;
  while (dc_loader_next(l, &x, &y) == 1) {
    last = x->shape[0];
    dc_free(x);
    dc_free(y);
  }
  cr_assert_eq(last, 3);
  dc_loader_free(l);
  cr_assert_null(dc_loader_new(ds, .batch_size = -1));
  cr_assert(strstr(dc_last_error(), "batch_size"));
  dc_dataset_free(ds);
}

Test(loader, seed_zero_follows_manual_seed) {
  dc_dataset *ds = index_images(N, 2);
  augment_images(ds);
  dc_manual_seed(42);
  run_bytes a = run(ds, (dc_loader_opts){.batch_size = 16, .shuffle = true, .num_workers = 2}, 1);
  dc_manual_seed(42);
  run_bytes b = run(ds, (dc_loader_opts){.batch_size = 16, .shuffle = true}, 1);
  run_bytes c = run(ds, (dc_loader_opts){.batch_size = 16, .shuffle = true}, 1);
  cr_assert(same(a, b), "dc_manual_seed(42) did not reproduce the loader");
  cr_assert(!same(b, c), "two loaders after one seed drew the same stream");
  free(a.b);
  free(b.b);
  free(c.b);
  dc_dataset_free(ds);
}

Test(loader, errors_reach_the_caller_and_the_loader_goes_on) {
  for (int w = 0; w <= 3; w += 3) {
    dc_dataset *ds = dc__dataset_new(&FLAKY, "Flaky", "flaky.bin", 60, NULL);
    dc_loader *l = dc_loader_new(ds, .batch_size = 10, .num_workers = w);
    dc_tensor *x, *y;
    int got[6];
    char msg[6][512];
    for (int b = 0; b < 6; b++) {
      got[b] = dc_loader_next(l, &x, &y);
      snprintf(msg[b], sizeof msg[b], "%s", dc_last_error());
      if (got[b] == 1) {
        cr_assert_eq((int64_t)dc_item_at(y, 0), b * 10);
        dc_free(x);
        dc_free(y);
      } else {
        cr_assert_null(x);
      }
    }
    cr_assert(got[0] == 1 && got[1] == 1 && got[2] == 1 && got[4] == 1, "workers %d", w);
    cr_assert_eq(got[3], -1);
    cr_assert(strstr(msg[3], "batch 3") && strstr(msg[3], "dataset index 37") &&
                  strstr(msg[3], "record 37 is corrupt"),
              "%s", msg[3]);
    cr_assert_eq(got[5], -1);
    cr_assert(strstr(msg[5], "batch 5") && strstr(msg[5], "[3]") && strstr(msg[5], "[4]") &&
                  strstr(msg[5], "Resize"),
              "%s", msg[5]);
    cr_assert_eq(dc_loader_next(l, &x, &y), 0);
    dc_loader_free(l);
    dc_dataset_free(ds);
  }
}

/* A slow dataset, to stop while workers are mid-batch. */
static int slow_get(const dc_dataset *ds, int64_t i, dc__sample *s, uint64_t seed) {
  usleep(2000);
  return flaky_get(ds, i == 37 || i == 50 ? 0 : i, s, seed);
}
static const dc__dataset_vt SLOW = {slow_get, NULL, flaky_destroy};

Test(loader, shutdown_mid_epoch_and_batches_outlive_the_loader) {
  dc_alloc_stats before = dc_alloc_get_stats();
  int64_t live = dc_live_tensors();
  dc_dataset *ds = dc__dataset_new(&SLOW, "Slow", "", 400, NULL);
  dc_loader *l = dc_loader_new(ds, .batch_size = 4, .num_workers = 4, .prefetch = 4);
  dc_tensor *x, *y;
  cr_assert_eq(dc_loader_next(l, &x, &y), 1);
  dc_loader_free(l); /* workers are busy: must stop without hanging */
  dc_dataset_free(ds);
  cr_assert_eq(((float *)dc_data(x))[4], 1.0f); /* sample 1, still readable */
  dc_free(x);
  dc_free(y);
  cr_assert_eq(dc_live_tensors(), live);
  dc_alloc_stats after = dc_alloc_get_stats();
  cr_assert_eq(after.live_blocks, before.live_blocks, "%lld blocks leaked",
               (long long)(after.live_blocks - before.live_blocks));
}

Test(loader, buffers_are_recycled) {
  dc_dataset *ds = index_images(N, 2);
  augment_images(ds);
  dc_loader *l = dc_loader_new(ds, .batch_size = 8, .num_workers = 2);
  dc_tensor *x, *y;
  /* warm up one epoch, then count allocations of the next */
  while (dc_loader_next(l, &x, &y) == 1) {
    dc_free(x);
    dc_free(y);
  }
  cr_assert_eq(dc_loader_next(l, &x, &y), 1); /* starts epoch 2 */
  dc_free(x);
  dc_free(y);
  int64_t allocs = dc_alloc_get_stats().total_allocs;
  int64_t batches = 0;
  while (dc_loader_next(l, &x, &y) == 1) {
    dc_free(x);
    dc_free(y);
    batches++;
  }
  int64_t per_batch = (dc_alloc_get_stats().total_allocs - allocs) / batches;
  cr_assert_leq(per_batch, 6, "%lld allocations per batch", (long long)per_batch);
  dc_loader_free(l);
  dc_dataset_free(ds);
}
