/* Training pieces on the host-opaque test device against the cpu: the loader with
 * device = testdev hands out batches on the device equal to the cpu's (skipped without the test
 * device). Still to add: the trainer's CNN trained a few steps on both, bit for bit. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <string.h>

enum { N = 40, F = 6 };

Test(testdev_train, loader_batches_on_the_device) {
  if (!dc_device_available(DC_TESTDEV)) cr_skip("this build has no test device");
  dc_manual_seed(1);
  dc_tensor *x = dc_randn(DC_SHAPE(N, F), DC_F32);
  int64_t y[N];
  for (int i = 0; i < N; i++) y[i] = i % 3;
  dc_tensor *yt = dc_from_data(y, DC_SHAPE(N), DC_I64);
  dc_dataset *ds = dc_tensor_dataset(x, yt);
  cr_assert_not_null(ds, "%s", dc_last_error());
  dc_loader *a = dc_loader_new(ds, .batch_size = 16, .shuffle = true, .seed = 9, .num_workers = 1);
  dc_loader *b = dc_loader_new(ds, .batch_size = 16, .shuffle = true, .seed = 9, .num_workers = 1,
                               .device = DC_TESTDEV);
  cr_assert(a && b, "%s", dc_last_error());
  for (int k = 0;; k++) {
    dc_scope_begin();
    dc_tensor *xa, *ya, *xb, *yb;
    int ra = dc_loader_next(a, &xa, &ya), rb = dc_loader_next(b, &xb, &yb);
    cr_assert_eq(ra, rb, "batch %d: %d vs %d (%s)", k, ra, rb, dc_last_error());
    if (ra != 1) {
      dc_scope_end();
      break;
    }
    cr_assert_eq(xb->device, DC_TESTDEV);
    cr_assert_eq(yb->device, DC_TESTDEV);
    size_t nx = (size_t)dc_numel(xa) * sizeof(float), ny = (size_t)dc_numel(ya) * sizeof(int64_t);
    float hx[16 * F];
    int64_t hy[16];
    cr_assert_eq(dc_copy_to_buffer(xb, hx, nx), DC_OK, "%s", dc_last_error());
    cr_assert_eq(dc_copy_to_buffer(yb, hy, ny), DC_OK, "%s", dc_last_error());
    cr_assert_eq(memcmp(hx, dc_data(xa), nx), 0, "batch %d: features differ", k);
    cr_assert_eq(memcmp(hy, dc_data(ya), ny), 0, "batch %d: targets differ", k);
    dc_scope_end();
  }
  dc_loader_free(a);
  dc_loader_free(b);
  dc_dataset_free(ds);
  dc_free(x);
  dc_free(yt);
}

Test(testdev_train, loader_refuses_an_absent_device) {
  if (dc_device_available(DC_CUDA)) cr_skip("this build has cuda");
  dc_tensor *x = dc_zeros(DC_SHAPE(4, 2), DC_F32);
  dc_dataset *ds = dc_tensor_dataset(x, NULL);
  dc_loader *l = dc_loader_new(ds, .device = DC_CUDA);
  cr_assert_null(l);
  cr_assert(strstr(dc_last_error(), "which has: cpu"), "%s", dc_last_error());
  dc_dataset_free(ds);
  dc_free(x);
}
