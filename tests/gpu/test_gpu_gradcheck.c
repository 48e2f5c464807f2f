/* float64 gradient checks on the GPU through the public API: inputs moved with dc_to_device,
 * every op of the graph (elementwise, reductions, softmax, matmul, gather) and its backward run
 * by the cuda kernels, checked against central differences. Skips without a GPU. */
#include "gpu.h"

TestSuite(gpu_gradcheck, .init = gpu_scope_in, .fini = gpu_scope_out);

static dc_tensor *leaf(dc_shape s, uint64_t seed) {
  dc_tensor *t = to_gpu(inputs(s, DC_F64, seed, false));
  return dc_requires_grad_(t, true);
}

static dc_tensor *f_pointwise(dc_tensor *const *in, int n, void *ud) {
  dc_tensor *a = in[0], *b = in[1];
  dc_tensor *y = dc_add(dc_mul(dc_tanh(a), dc_sigmoid(b)), dc_gelu(dc_mul_scalar(a, 0.5), false));
  return dc_add(y, dc_div(dc_exp(dc_mul_scalar(b, 0.1)), dc_add_scalar(dc_square(a), 1.0)));
}

static dc_tensor *f_matmul_softmax(dc_tensor *const *in, int n, void *ud) {
  dc_tensor *h = dc_relu(dc_matmul(in[0], in[1]));
  return dc_log_softmax(dc_add(h, dc_softmax(h, 0)), 1);
}

static dc_tensor *f_reduce(dc_tensor *const *in, int n, void *ud) {
  dc_tensor *x = in[0];
  dc_tensor *s = dc_sum(x, DC_DIMS(1), true);
  return dc_add(dc_mul(s, dc_logsumexp(x, DC_DIMS(0), true)), dc_mean(x, DC_DIMS(0, 1), false));
}

typedef struct two_index {
  dc_tensor *gather; /* int64 [3, 4] */
  dc_tensor *rows;   /* int64 [4] */
} two_index;

static dc_tensor *f_index(dc_tensor *const *in, int n, void *ud) {
  const two_index *ix = ud;
  return dc_mul(dc_gather(in[0], 1, ix->gather), dc_index_select(in[0], 1, ix->rows));
}

Test(gpu_gradcheck, ops_on_the_device) {
  GPU_OR_SKIP();
  dc_tensor *a = leaf(DC_SHAPE(3, 4), 111), *b = leaf(DC_SHAPE(3, 4), 112);
  dc_tensor *pw[2] = {a, b};
  cr_expect(dc_gradcheck(f_pointwise, pw, 2, NULL), "pointwise: %s", dc_last_error());
  dc_tensor *m[2] = {leaf(DC_SHAPE(4, 5), 113), leaf(DC_SHAPE(5, 3), 114)};
  cr_expect(dc_gradcheck(f_matmul_softmax, m, 2, NULL), "matmul/softmax: %s", dc_last_error());
  dc_tensor *r[1] = {leaf(DC_SHAPE(3, 5), 115)};
  cr_expect(dc_gradcheck(f_reduce, r, 1, NULL), "reductions: %s", dc_last_error());
  int64_t iv[12] = {0, 2, 1, 3, 3, 3, 0, 1, 2, 2, 0, 1};
  int64_t rv[4] = {3, 0, 0, 2};
  two_index ix = {dc_from_data_on(iv, DC_SHAPE(3, 4), DC_I64, DC_CUDA),
                  dc_from_data_on(rv, DC_SHAPE(4), DC_I64, DC_CUDA)};
  dc_tensor *x[1] = {leaf(DC_SHAPE(3, 4), 116)};
  cr_assert(ix.gather && ix.rows, "%s", dc_last_error());
  cr_expect(dc_gradcheck(f_index, x, 1, &ix), "gather/index_select: %s", dc_last_error());
  cr_expect_eq(x[0]->device, DC_CUDA);
}
