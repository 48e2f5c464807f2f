/* The pinned-memory path and the public memory statistics on a GPU: asynchronous copies from
 * page-locked memory land before the kernels queued after them and wait for the kernels queued
 * before them (a block freed by the compute stream and refilled by the copy stream); the
 * loader with pin_memory on cuda hands out the cpu loader's batches bit for bit; a steady
 * training step makes no cudaMalloc (dc_device_memory_stats); empty_cache and the peaks; the
 * TF32 switch. Skips without a GPU. Shapes: N elements, B batch, F features, K classes. */
#include "gpu.h"

#include "backend/cuda/cuda-impl.h"
#include "core/core-impl.h"

TestSuite(gpu_pinned, .init = gpu_scope_in, .fini = gpu_scope_out);

enum { N = 1 << 22 }; /* 16 MB of float32: a copy long enough to race with a kernel */

Test(gpu_pinned, async_copy_lands_in_order) {
  GPU_OR_SKIP();
  cr_assert(dc__device_async_copies(DC_CUDA));
  float *host = dc__host_alloc_pinned(DC_CUDA, sizeof(float) * N);
  cr_assert(host, "cudaHostAlloc failed");
  for (int i = 0; i < N; i++) host[i] = (float)(i % 1000);
  dc__cuda_mem_stats s0, s1;
  dc__cuda_mem_stats_get(&s0);

  /* x [N] = 1; y = 3 x queued, then x freed: its block goes back to the cache and the next
   * tensor of that size gets it while the multiply may still read it */
  dc_tensor *x = dc_full_on(DC_SHAPE(N), 1.0, DC_F32, DC_CUDA);
  dc_tensor *y = dc_mul_scalar(x, 3.0);
  cr_assert(x && y, "%s", dc_last_error());
  void *xblock = x->storage->data;
  dc_free(x);
  dc_tensor *d = dc_empty_on(DC_SHAPE(N), DC_F32, DC_CUDA); /* [N] */
  cr_assert(d, "%s", dc_last_error());
  if (d->storage->data != xblock) fprintf(stderr, "note: the cache gave another block\n");
  dc__copy_ticket *t = NULL;
  cr_assert_eq(dc__storage_write_async(d->storage, 0, host, sizeof(float) * N, &t), DC_OK, "%s",
               dc_last_error());
  cr_assert(t);
  dc_tensor *z = dc_add_scalar(d, 1.0); /* queued after the copy: must see its bytes */
  cr_assert(z, "%s", dc_last_error());
  cr_assert_eq(dc__copy_ticket_done(DC_CUDA, t, true), 1, "%s", dc_last_error());
  dc__copy_ticket_free(DC_CUDA, t);
  double *yv = host_values(y), *zv = host_values(z);
  int64_t bad_y = 0, bad_z = 0;
  for (int i = 0; i < N; i++) {
    bad_y += yv[i] != 3.0;
    bad_z += zv[i] != (double)(i % 1000) + 1.0;
  }
  cr_expect_eq(bad_y, 0, "%lld values of 3x changed: the copy overwrote x before the multiply",
               (long long)bad_y);
  cr_expect_eq(bad_z, 0, "%lld values of d + 1 missed the copy", (long long)bad_z);
  free(yv);
  free(zv);
  dc__cuda_mem_stats_get(&s1);
  cr_expect_eq(s1.async_copies, s0.async_copies + 1);
  dc__host_free_pinned(DC_CUDA, host);
}

/* uint8 images [NS, 6, 5] labelled i % 7 */
enum { NS = 57 };
static dc_dataset *images(void) {
  static uint8_t px[NS * 30];
  int64_t lab[NS];
  for (int i = 0; i < NS; i++) {
    lab[i] = i % 7;
    for (int k = 0; k < 30; k++) px[i * 30 + k] = (uint8_t)(i * 5 + k);
  }
  dc_tensor *x = dc_from_data(px, DC_SHAPE(NS, 6, 5), DC_U8);
  dc_tensor *y = dc_from_data(lab, DC_SHAPE(NS), DC_I64);
  dc_dataset *ds = dc_tensor_dataset(x, y);
  dc_free(x);
  dc_free(y);
  cr_assert(ds, "%s", dc_last_error());
  cr_assert_eq(dc_dataset_set_transform(
                   ds, DC_TF_COMPOSE(dc_tf_random_crop(6, 5, .padding = 1), dc_tf_to_tensor())),
               DC_OK);
  return ds;
}

/* every batch of two epochs as host bytes, read after each epoch (batches kept alive) */
static size_t loader_bytes(dc_dataset *ds, dc_loader_opts o, uint8_t *out, size_t cap) {
  dc_loader *l = dc_loader_opt(ds, o);
  cr_assert(l, "%s", dc_last_error());
  size_t n = 0;
  for (int e = 0; e < 2; e++) {
    dc_scope_begin();
    dc_tensor *xs[32], *ys[32];
    int nb = 0, rc;
    while (nb < 32 && (rc = dc_loader_next(l, &xs[nb], &ys[nb])) == 1) nb++;
    cr_assert_eq(rc, 0, "%s", dc_last_error());
    for (int b = 0; b < nb; b++)
      for (int k = 0; k < 2; k++) {
        dc_tensor *t = k ? ys[b] : xs[b];
        cr_assert_eq(t->device, o.device);
        size_t m = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
        cr_assert_leq(n + m, cap);
        cr_assert_eq(dc_copy_to_buffer(t, out + n, m), DC_OK, "%s", dc_last_error());
        n += m;
      }
    dc_scope_end();
  }
  dc_loader_free(l);
  return n;
}

Test(gpu_pinned, loader_same_batches_as_the_cpu) {
  GPU_OR_SKIP();
  static uint8_t ref[1 << 16], got[1 << 16];
  dc_dataset *ds = images();
  for (int w = 0; w <= 2; w += 2) {
    dc_loader_opts o = {
        .batch_size = 4, .shuffle = true, .drop_last = w == 2, .seed = 5, .num_workers = w};
    size_t nr = loader_bytes(ds, o, ref, sizeof ref);
    o.pin_memory = true;
    o.device = DC_CUDA;
    dc__cuda_mem_stats s0, s1;
    dc__cuda_mem_stats_get(&s0);
    size_t ng = loader_bytes(ds, o, got, sizeof got);
    dc__cuda_mem_stats_get(&s1);
    cr_expect(nr == ng && memcmp(ref, got, nr) == 0,
              "%d workers: pinned cuda batches differ from the cpu's", w);
    cr_expect_gt(s1.async_copies, s0.async_copies, "the loader queued no asynchronous copy");
  }
  dc_dataset_free(ds);
}

/* An MLP trained on the GPU: after warm-up steps, steps make no cudaMalloc (public stats). */
Test(gpu_pinned, public_stats_steady_step_and_empty_cache) {
  GPU_OR_SKIP();
  enum { B = 64, F = 256, K = 10 };
  dc_manual_seed(3);
  dc_module *m = dc_nn_sequential(dc_nn_linear(F, 512), dc_nn_relu(), dc_nn_linear(512, K));
  cr_assert_eq(dc_module_to(m, DC_CUDA), DC_OK, "%s", dc_last_error());
  int np = 0;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &np);
  dc_tensor *pt[8];
  for (int i = 0; i < np; i++) pt[i] = ps[i].tensor;
  dc_optim *o = dc_optim_sgd(pt, np, 0.01, 0.9);
  dc_named_tensors_free(ps, np);
  dc_tensor *x = dc_randn_on(DC_SHAPE(B, F), DC_F32, DC_CUDA);      /* [B, F] */
  dc_tensor *y = dc_randint_on(0, K, DC_SHAPE(B), DC_I64, DC_CUDA); /* [B] */
  cr_assert(o && x && y, "%s", dc_last_error());
  dc_memory_stats s0, s1;
  for (int s = 0; s < 8; s++) {
    if (s == 3) {
      dc_device_memory_reset_peak(DC_CUDA);
      cr_assert_eq(dc_device_memory_stats(DC_CUDA, &s0), DC_OK, "%s", dc_last_error());
    }
    dc_scope_begin();
    cr_assert_eq(dc_backward(dc_cross_entropy(dc_module_forward(m, x), y)), DC_OK, "%s",
                 dc_last_error());
    cr_assert_eq(dc_optim_step(o), DC_OK, "%s", dc_last_error());
    dc_optim_zero_grad(o);
    dc_scope_end();
  }
  cr_assert_eq(dc_device_memory_stats(DC_CUDA, &s1), DC_OK);
  cr_expect_eq(s1.device_mallocs, s0.device_mallocs, "%lld cudaMalloc calls in 5 steady steps",
               (long long)(s1.device_mallocs - s0.device_mallocs));
  cr_expect_geq(s1.reserved_bytes, s1.allocated_bytes);
  cr_expect_geq(s1.peak_allocated_bytes, s1.allocated_bytes);
  cr_expect_geq(s1.peak_reserved_bytes, s1.reserved_bytes);
  cr_expect_gt(s1.reserved_bytes, s1.allocated_bytes, "a step's temporaries stay cached");
  cr_expect_eq(dc_device_empty_cache(DC_CUDA), DC_OK, "%s", dc_last_error());
  dc_memory_stats s2;
  cr_assert_eq(dc_device_memory_stats(DC_CUDA, &s2), DC_OK);
  cr_expect_lt(s2.reserved_bytes, s1.reserved_bytes, "empty_cache gave nothing back");
  cr_expect_geq(s2.reserved_bytes, s2.allocated_bytes);
  dc_device_memory_reset_peak(DC_CUDA);
  cr_assert_eq(dc_device_memory_stats(DC_CUDA, &s2), DC_OK);
  cr_expect_eq(s2.peak_reserved_bytes, s2.reserved_bytes);
  cr_expect_eq(s2.peak_allocated_bytes, s2.allocated_bytes);
  dc_optim_free(o);
  dc_module_free(m);
}

/* float32 [M, M] products: within FP32 rounding of the CPU's with TF32 off (the default),
 * within TF32's 10-bit rounding with it on. */
Test(gpu_pinned, tf32_switch) {
  GPU_OR_SKIP();
  enum { M = 512 };
  dc_manual_seed(4);
  dc_tensor *a = dc_randn(DC_SHAPE(M, M), DC_F32), *b = dc_randn(DC_SHAPE(M, M), DC_F32);
  dc_tensor *ref = dc_matmul(a, b);
  dc_tensor *ga = dc_to_device(a, DC_CUDA), *gb = dc_to_device(b, DC_CUDA);
  cr_assert(ref && ga && gb, "%s", dc_last_error());
  bool was = dc_allow_tf32();
  dc_set_allow_tf32(false);
  expect_close(ref, dc_matmul(ga, gb), 1e-4, 1e-4, "matmul, TF32 off");
  dc_set_allow_tf32(true);
  expect_close(ref, dc_matmul(ga, gb), 2e-2, 5e-2, "matmul, TF32 on");
  dc_set_allow_tf32(was);
}
