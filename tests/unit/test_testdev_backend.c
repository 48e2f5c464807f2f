/* The test device itself (src/backend/testdev): its memory faults on a host access, its
 * transfers round-trip, its kernels give the CPU's bits, a kernel handed a tensor of another
 * device is refused, running statistics written by a kernel bump the storage version, and an
 * allocation failure is an error. The suites that run the library on it are test_testdev_*.c. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <signal.h>
#include <string.h>

#include "backend/backend.h"
#include "tensor_bytes.h"

static void assert_same_bits(const dc_tensor *a, const dc_tensor *b, const char *what) {
  size_t na, nb;
  void *pa = bytes_of(a, &na), *pb = bytes_of(b, &nb);
  cr_assert_eq(na, nb, "%s: %zu vs %zu bytes", what, na, nb);
  cr_assert(memcmp(pa, pb, na) == 0, "%s: values differ", what);
  free(pa);
  free(pb);
}

static void scope_in(void) { dc_scope_begin(); }
static void scope_out(void) { dc_scope_end(); }
TestSuite(testdev, .init = scope_in, .fini = scope_out);

Test(testdev, is_built_in_with_the_cpu_capabilities) {
  cr_assert(dc_device_available(DC_TESTDEV));
  const dc_backend *be = dc__backend(DC_TESTDEV);
  cr_assert(be, "%s", dc_last_error());
  cr_assert_str_eq(be->name, "testdev");
  cr_assert_eq(be->caps, dc__cpu_backend.caps);
  char buf[64];
  cr_assert(strstr(dc_devices_available(buf, sizeof buf), "testdev"), "%s", buf);
}

/* The point of the device: what the host reads through a device pointer crashes. Under ASan the
 * fault is reported by ASan's handler, which exits with status 1 instead. */
#if defined(__SANITIZE_ADDRESS__)
#define HOST_FAULT .exit_code = 1
#else
#define HOST_FAULT .signal = SIGSEGV
#endif
Test(testdev, host_read_of_device_memory_faults, HOST_FAULT) {
  dc_tensor *t = dc_ones_on(DC_SHAPE(8), DC_F32, DC_TESTDEV);
  cr_assert(t, "%s", dc_last_error());
  cr_assert_null(dc_data(t)); /* the public accessor refuses */
  volatile const float *p = t->storage->data;
  float v = p[0]; /* what a careless layer above the backend would do */
  cr_log_error("read %g through a device pointer without a fault", (double)v);
}

Test(testdev, host_write_of_device_memory_faults, HOST_FAULT) {
  dc_tensor *t = dc_zeros_on(DC_SHAPE(8), DC_F32, DC_TESTDEV);
  cr_assert(t, "%s", dc_last_error());
  volatile float *p = t->storage->data;
  p[1] = 1.0f;
  cr_log_error("wrote through a device pointer without a fault");
}

Test(testdev, transfers_round_trip) {
  dc_manual_seed(3);
  dc_tensor *x = dc_randn(DC_SHAPE(3, 5, 7), DC_F64);
  dc_tensor *d = dc_to_device(x, DC_TESTDEV);
  cr_assert(d, "%s", dc_last_error());
  cr_assert_eq(d->device, DC_TESTDEV);
  dc_tensor *d2 = dc_to_device(d, DC_TESTDEV); /* device to device */
  dc_tensor *back = dc_to_device(d2, DC_CPU);
  cr_assert(back, "%s", dc_last_error());
  assert_same_bits(x, back, "cpu -> testdev -> testdev -> cpu");
  /* a strided view moves as its values */
  dc_tensor *tv = dc_transpose(d, 0, 2);
  assert_same_bits(dc_contiguous(dc_transpose(x, 0, 2)), dc_to_device(tv, DC_CPU), "transposed");
  cr_assert_eq(dc_item_at(d, 17), dc_item_at(x, 17));
}

Test(testdev, kernels_give_the_cpu_bits) {
  dc_manual_seed(5);
  dc_tensor *a = dc_randn(DC_SHAPE(16, 32), DC_F32), *b = dc_randn(DC_SHAPE(32, 8), DC_F32);
  dc_tensor *da = dc_to_device(a, DC_TESTDEV), *db = dc_to_device(b, DC_TESTDEV);
  dc_tensor *want = dc_log_softmax(dc_matmul(dc_tanh(a), b), 1);
  dc_tensor *got = dc_log_softmax(dc_matmul(dc_tanh(da), db), 1);
  cr_assert(got, "%s", dc_last_error());
  cr_assert_eq(got->device, DC_TESTDEV);
  assert_same_bits(want, got, "log_softmax(tanh(a) @ b)");
  /* random draws: the same stream on both devices */
  dc_manual_seed(9);
  dc_tensor *rc = dc_rand(DC_SHAPE(100), DC_F32);
  dc_manual_seed(9);
  dc_tensor *rd = dc_rand_on(DC_SHAPE(100), DC_F32, DC_TESTDEV);
  assert_same_bits(rc, rd, "rand");
}

Test(testdev, a_kernel_handed_a_cpu_tensor_is_refused) {
  const dc_backend *be = dc__backend(DC_TESTDEV);
  dc_tensor *out = dc_zeros_on(DC_SHAPE(4), DC_F32, DC_TESTDEV);
  dc_tensor *x = dc_ones(DC_SHAPE(4), DC_F32); /* on the cpu */
  int rc = be->ew->copy(out, x);
  cr_assert_eq(rc, DC_ERR_STATE);
  cr_assert(strstr(dc_last_error(), "not on testdev"), "%s", dc_last_error());
}

Test(testdev, running_statistics_bump_the_storage_version) {
  dc_manual_seed(1);
  dc_tensor *x = dc_to_device(dc_randn(DC_SHAPE(4, 3, 5), DC_F32), DC_TESTDEV);
  dc_tensor *rm = dc_zeros_on(DC_SHAPE(3), DC_F32, DC_TESTDEV);
  dc_tensor *rv = dc_ones_on(DC_SHAPE(3), DC_F32, DC_TESTDEV);
  uint32_t v0 = rm->storage->version;
  dc_tensor *y = dc_batch_norm(x, rm, rv, NULL, NULL, true, 0.1, 1e-5);
  cr_assert(y, "%s", dc_last_error());
  cr_assert_neq(rm->storage->version, v0, "the running mean's version did not move");
}

Test(testdev, allocation_failure_is_an_error) {
  dc_alloc_fail_at(1);
  dc_tensor *t = dc_empty_on(DC_SHAPE(1024), DC_F32, DC_TESTDEV);
  dc_alloc_fail_at(0);
  cr_assert_null(t);
  cr_assert_str_neq(dc_last_error(), "");
}
