/* The CUDA backend's registration and memory on a GPU: the table is installed with no
 * capabilities, transfers round-trip, and a steady loop of allocations is served by the caching
 * allocator without new cudaMallocs. Skips without a GPU (test_gpu_absent.c covers that case). */
#include "gpu.h"

#include "backend/cuda/cuda-impl.h"

TestSuite(gpu_register, .init = gpu_scope_in, .fini = gpu_scope_out);

Test(gpu_register, table_and_round_trip) {
  GPU_OR_SKIP();
  const dc_backend *be = gpu_be();
  cr_expect_str_eq(be->name, "cuda");
  cr_expect_eq(be->caps, 0u);
  cr_expect_null(be->optim);
  double v[5] = {1, -2, 3.5, 1e300, -0.0};
  dc_tensor *t = dc_from_data_on(v, DC_SHAPE(5), DC_F64, DC_CUDA);
  cr_assert(t, "%s", dc_last_error());
  double r[5];
  cr_assert_eq(dc_copy_to_buffer(t, r, sizeof r), DC_OK, "%s", dc_last_error());
  cr_expect(memcmp(v, r, sizeof v) == 0, "round trip changed the bytes");
  cr_expect_eq(dc_synchronize(DC_CUDA), DC_OK, "%s", dc_last_error());
}

Test(gpu_register, steady_loop_does_not_cudamalloc) {
  GPU_OR_SKIP();
  dc__cuda_mem_stats s0, s1;
  for (int step = 0; step < 12; step++) {
    if (step == 3) dc__cuda_mem_stats_get(&s0); /* after warm-up steps of all three sizes */
    dc_scope_begin();
    for (int k = 1; k <= 20; k++) {
      dc_tensor *t = dc_zeros_on(DC_SHAPE(k * 1000 + step % 3), DC_F32, DC_CUDA);
      cr_assert(t, "%s", dc_last_error());
    }
    dc_scope_end();
  }
  dc__cuda_mem_stats_get(&s1);
  cr_expect_eq(s1.device_mallocs, s0.device_mallocs,
               "cudaMalloc calls grew from %lld to %lld in steady steps",
               (long long)s0.device_mallocs, (long long)s1.device_mallocs);
  cr_expect_eq(dc__cuda_empty_cache(), DC_OK, "%s", dc_last_error());
  dc__cuda_mem_stats_get(&s1);
  cr_expect_eq(s1.cached_bytes, 0, "cache after empty_cache: %lld", (long long)s1.cached_bytes);
}
