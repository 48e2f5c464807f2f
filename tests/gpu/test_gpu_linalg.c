/* CUDA gemm_batched (cuBLAS) against the CPU's: transposes, broadcast batches, strided views that
 * need a copy, alpha/beta, K = 0, float32 without TF32 (tight tolerance) and float64. Skips
 * without a GPU. */
#include "gpu.h"

TestSuite(gpu_linalg, .init = gpu_scope_in, .fini = gpu_scope_out);

static void gemm_case(dc_dtype dt, int64_t B, int64_t M, int64_t N, int64_t K, bool ta, bool tb,
                      bool bcast_a, float alpha, float beta, double rtol, double atol) {
  dc_tensor *a = ta ? inputs(DC_SHAPE(bcast_a ? 1 : B, K, M), dt, 71, false)
                    : inputs(DC_SHAPE(bcast_a ? 1 : B, M, K), dt, 71, false);
  dc_tensor *b =
      tb ? inputs(DC_SHAPE(B, N, K), dt, 72, false) : inputs(DC_SHAPE(B, K, N), dt, 72, false);
  dc_tensor *o = inputs(DC_SHAPE(B, M, N), dt, 73, false), *og = to_gpu(o);
  dc_tensor *ag = to_gpu(a), *bg = to_gpu(b);
  cr_assert_eq(cpu_be()->linalg->gemm_batched(o, a, b, ta, tb, alpha, beta), DC_OK, "%s",
               dc_last_error());
  cr_assert_eq(gpu_be()->linalg->gemm_batched(og, ag, bg, ta, tb, alpha, beta), DC_OK, "%s",
               dc_last_error());
  char what[96];
  snprintf(what, sizeof what, "gemm B%lld M%lld N%lld K%lld ta%d tb%d bcast%d", (long long)B,
           (long long)M, (long long)N, (long long)K, ta, tb, bcast_a);
  expect_close(o, og, rtol, atol, what);
}

Test(gpu_linalg, gemm_batched_matches_cpu) {
  GPU_OR_SKIP();
  for (int t = 0; t < 4; t++) {
    /* float32: cuBLAS and oneDNN sum in other orders; TF32 would be 1e-3 off */
    gemm_case(DC_F32, 3, 17, 33, 65, t & 1, t & 2, false, 1.0f, 0.0f, 1e-4, 2e-4);
    gemm_case(DC_F64, 3, 17, 33, 65, t & 1, t & 2, true, 0.5f, 2.0f, 1e-12, 1e-12);
  }
  gemm_case(DC_F32, 2, 64, 128, 256, false, false, true, 1.0f, 1.0f, 1e-4, 1e-3);
  gemm_case(DC_F32, 1, 5, 7, 0, false, false, false, 1.0f, 0.5f, EXACT);     /* K = 0 */
  gemm_case(DC_F32, 1, 1, 9, 4, false, true, false, 1.0f, 0.0f, 1e-6, 1e-6); /* M = 1 */
}

/* an operand with no unit stride (every other column) is copied first */
Test(gpu_linalg, strided_operand) {
  GPU_OR_SKIP();
  dc_tensor *a = inputs(DC_SHAPE(6, 10), DC_F64, 81, false), *ag = to_gpu(a);
  dc_tensor *b = inputs(DC_SHAPE(5, 4), DC_F64, 82, false), *bg = to_gpu(b);
  int64_t sh[2] = {6, 5}, st[2] = {10, 2};
  dc_tensor *av = dc__alias(a, 2, sh, st, 0), *agv = dc__alias(ag, 2, sh, st, 0);
  dc_tensor *o = dc__new(DC_SHAPE(6, 4), DC_F64, DC_CPU),
            *og = dc__new(DC_SHAPE(6, 4), DC_F64, DC_CUDA);
  cr_assert_eq(cpu_be()->linalg->gemm_batched(o, av, b, false, false, 1.0f, 0.0f), DC_OK);
  cr_assert_eq(gpu_be()->linalg->gemm_batched(og, agv, bg, false, false, 1.0f, 0.0f), DC_OK, "%s",
               dc_last_error());
  expect_close(o, og, 1e-12, 1e-12, "gemm of a strided view");
}
