/* The job and its collectives under mpirun: rank/size/local rank, barrier, all-reduce (sum,
 * average, max, min over float32/float64/int64/bool), broadcast of tensors, buffers and whole
 * modules, the differentiable all-reduce, the distributed sampler's shards (PyTorch's
 * padding, no sample twice, the loader's permutation) and argument errors. */
#include "dist_check.h"

#include <string.h>

static void test_job(void) {
  int R = dc_dist_size(), r = dc_dist_rank();
  CHECK(dc_dist_is_initialized(), "%s", "initialised");
  CHECK(r >= 0 && r < R, "rank %d of %d", r, R);
  CHECK(dc_dist_local_rank() >= 0 && dc_dist_local_rank() < dc_dist_local_size(),
        "local rank %d of %d", dc_dist_local_rank(), dc_dist_local_size());
  CHECK(dc_dist_local_size() == R, "one host: local size %d, size %d", dc_dist_local_size(), R);
  CHECK(dc_dist_is_main() == (r == 0), "%s", "is_main");
  CHECK(strcmp(dc_dist_backend_name(), "none") != 0 || R == 1, "backend %s",
        dc_dist_backend_name());
  CHECK_OK(dc_dist_barrier());
}

static void test_all_reduce(void) {
  int R = dc_dist_size(), r = dc_dist_rank();
  dc_scope_begin();
  /* x_r[i] = (r + 1) * (i + 1) */
  dc_tensor *x = dc_mul_scalar(dc_arange(1, 6, 1, DC_F32), r + 1);
  dc_tensor *y = dc_clone(x), *z = dc_clone(x), *w = dc_clone(x);
  CHECK_OK(dc_dist_all_reduce_(x, DC_DIST_SUM));
  CHECK_OK(dc_dist_all_reduce_(y, DC_DIST_AVG));
  CHECK_OK(dc_dist_all_reduce_(z, DC_DIST_MAX));
  CHECK_OK(dc_dist_all_reduce_(w, DC_DIST_MIN));
  double tri = R * (R + 1) / 2.0;
  for (int i = 0; i < 5; i++) {
    CHECK(dc_item_at(x, i) == tri * (i + 1), "sum[%d] = %g", i, dc_item_at(x, i));
    CHECK(fabs(dc_item_at(y, i) - tri * (i + 1) / R) < 1e-6, "avg[%d] = %g", i, dc_item_at(y, i));
    CHECK(dc_item_at(z, i) == R * (i + 1.0), "max[%d] = %g", i, dc_item_at(z, i));
    CHECK(dc_item_at(w, i) == i + 1.0, "min[%d] = %g", i, dc_item_at(w, i));
  }
  /* float64 and int64 buffers, and a large one (several of MPI's segments) */
  double d[3] = {0.5 * r, 1e300, -1};
  CHECK_OK(dc_dist_all_reduce_buffer(d, 3, DC_F64, DC_DIST_SUM));
  CHECK(d[0] == 0.5 * tri - 0.5 * R && d[2] == -R, "f64 sum %g %g", d[0], d[2]);
  int64_t big = ((int64_t)1 << 40) + r;
  CHECK_OK(dc_dist_all_reduce_buffer(&big, 1, DC_I64, DC_DIST_SUM));
  CHECK(big == R * ((int64_t)1 << 40) + (int64_t)(tri - R), "i64 sum %lld", (long long)big);
  dc_tensor *large = dc_full(DC_SHAPE(3000000), r + 1.0, DC_F32);
  CHECK_OK(dc_dist_all_reduce_(large, DC_DIST_SUM));
  CHECK(dc_item_at(large, 0) == tri && dc_item_at(large, 2999999) == tri, "large sum %g",
        dc_item_at(large, 2999999));
  /* bool: max = any, min = all */
  dc_tensor *b = dc_gt_scalar(dc_full(DC_SHAPE(2), r, DC_F32), 0.5);
  dc_tensor *b2 = dc_clone(b);
  CHECK_OK(dc_dist_all_reduce_(b, DC_DIST_MAX));
  CHECK_OK(dc_dist_all_reduce_(b2, DC_DIST_MIN));
  CHECK(dc_item_at(b, 0) == (R > 1) && dc_item_at(b2, 0) == 0, "any %g all %g", dc_item_at(b, 0),
        dc_item_at(b2, 0));
  /* errors: average of integers, non-contiguous tensors, bool sums */
  dc_tensor *ints = dc_arange(0, 4, 1, DC_I64);
  CHECK(dc_dist_all_reduce_(ints, DC_DIST_AVG) == DC_ERR_ARG, "%s", "avg of int64");
  CHECK(strstr(dc_last_error(), "DC_DIST_SUM") != NULL, "message: %s", dc_last_error());
  dc_tensor *m = dc_transpose(dc_zeros(DC_SHAPE(2, 3), DC_F32), 0, 1);
  CHECK(dc_dist_all_reduce_(m, DC_DIST_SUM) == DC_ERR_ARG, "%s", "non-contiguous");
  CHECK(strstr(dc_last_error(), "contiguous") != NULL, "message: %s", dc_last_error());
  if (R > 1) CHECK(dc_dist_all_reduce_(b, DC_DIST_SUM) == DC_ERR_UNSUPPORTED, "%s", "sum of bool");
  dc_clear_error();
  dc_scope_end();
}

static void test_broadcast(void) {
  int R = dc_dist_size(), r = dc_dist_rank();
  dc_scope_begin();
  dc_tensor *t = dc_full(DC_SHAPE(4, 3), r * 10.0 + 1, DC_F64);
  int root = R - 1;
  CHECK_OK(dc_dist_broadcast_(t, root));
  CHECK(dc_item_at(t, 11) == root * 10.0 + 1, "broadcast got %g", dc_item_at(t, 11));
  char msg[32];
  snprintf(msg, sizeof msg, "from rank %d", r);
  CHECK_OK(dc_dist_broadcast_buffer(msg, sizeof msg, DC_U8, 0));
  CHECK(strcmp(msg, "from rank 0") == 0, "buffer '%s'", msg);
  CHECK(dc_dist_broadcast_(t, R) == DC_ERR_ARG, "%s", "root out of range");
  dc_clear_error();
  dc_scope_end();

  /* a module with different weights on each rank takes rank 0's, buffers included */
  dc_manual_seed(100 + (uint64_t)r);
  dc_module *net = dc_nn_sequential(dc_nn_linear(4, 3), dc_nn_batchnorm1d(3), dc_nn_relu());
  dc_manual_seed(100);
  dc_module *ref = dc_nn_sequential(dc_nn_linear(4, 3), dc_nn_batchnorm1d(3), dc_nn_relu());
  dc_fill_(dc_module_get_buffer(net, "1.running_mean"), r);
  CHECK_OK(dc_dist_broadcast_module(net, 0));
  dc_tensor *w = dc_module_get_parameter(net, "0.weight");
  dc_tensor *w0 = dc_module_get_parameter(ref, "0.weight");
  CHECK(rel_err(w, w0, 0, 1e-12) == 0, "%s", "weights are rank 0's");
  CHECK(dc_item_at(dc_module_get_buffer(net, "1.running_mean"), 2) == 0, "running_mean %g",
        dc_item_at(dc_module_get_buffer(net, "1.running_mean"), 2));
  dc_module_free(net);
  dc_module_free(ref);
}

/* y = all_reduce_sum(x * c_r): dy/dx on rank r = c_r * sum over ranks of the upstream grads. */
static void test_differentiable(void) {
  int R = dc_dist_size(), r = dc_dist_rank();
  dc_scope_begin();
  dc_tensor *x = dc_requires_grad_(dc_full(DC_SHAPE(3), 1.0, DC_F64), true);
  dc_tensor *y = dc_dist_all_reduce_sum(dc_mul_scalar(x, r + 1));
  CHECK(y && dc_item_at(y, 1) == R * (R + 1) / 2.0, "forward %g", y ? dc_item_at(y, 1) : NAN);
  dc_tensor *l = dc_sum_all(dc_mul_scalar(y, r + 1)); /* upstream grad on rank k: k + 1 */
  CHECK_OK(dc_backward(l));
  double expect = (r + 1) * (R * (R + 1) / 2.0);
  CHECK(x->grad && dc_item_at(x->grad, 0) == expect, "grad %g, expected %g",
        x->grad ? dc_item_at(x->grad, 0) : NAN, expect);
  dc_zero_grad(x);
  dc_free(x);
  dc_scope_end();
}

static void test_sampler(void) {
  int R = dc_dist_size(), r = dc_dist_rank();
  /* PyTorch's DistributedSampler(shuffle=False) on 10 samples with 3 replicas:
   * indices 0..9 + [0, 1] padding; rank 0 [0, 3, 6, 9], 1 [1, 4, 7, 0], 2 [2, 5, 8, 1] */
  static const int64_t expect[3][4] = {{0, 3, 6, 9}, {1, 4, 7, 0}, {2, 5, 8, 1}};
  for (int k = 0; k < 3; k++) {
    int64_t out[4];
    CHECK(dc_dist_shard_len(10, 3, k, false) == 4, "%s", "padded length");
    CHECK_OK(dc_dist_shard(NULL, 10, 3, k, false, out));
    CHECK(memcmp(out, expect[k], sizeof out) == 0, "rank %d shard %lld %lld %lld %lld", k,
          (long long)out[0], (long long)out[1], (long long)out[2], (long long)out[3]);
  }
  CHECK(dc_dist_shard_len(10, 3, 0, true) == 4 && dc_dist_shard_len(10, 3, 2, true) == 3, "%s",
        "uneven lengths");
  CHECK(dc_dist_shard_len(2, 5, 4, false) == 1 && dc_dist_shard_len(2, 5, 4, true) == 0, "%s",
        "more ranks than samples");
  int64_t one;
  CHECK_OK(dc_dist_shard(NULL, 2, 5, 4, false, &one));
  CHECK(one == 0, "padding wraps: %lld", (long long)one); /* torch repeats the list */
  CHECK(dc_dist_shard_len(10, 3, 3, false) == -1, "%s", "rank out of range");
  dc_clear_error();

  /* shuffled shards of this job: every sample exactly once over the ranks (n % R == 0) */
  const int64_t n = 1000;
  int64_t len = dc_dist_shard_len(n, R, r, false);
  int64_t *mine = calloc((size_t)len, sizeof *mine);
  int64_t *count = calloc((size_t)n, sizeof *count);
  for (int epoch = 0; epoch < 2; epoch++) {
    CHECK_OK(dc_dist_sampler_indices(n, R, r, true, 42, epoch, false, mine));
    memset(count, 0, sizeof *count * (size_t)n);
    for (int64_t k = 0; k < len; k++) count[mine[k]]++;
    CHECK_OK(dc_dist_all_reduce_buffer(count, n, DC_I64, DC_DIST_SUM));
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) bad += count[i] != 1;
    CHECK(bad == 0, "epoch %d: %lld samples not seen exactly once", epoch, (long long)bad);
  }
  int64_t e0 = mine[0];
  CHECK_OK(dc_dist_sampler_indices(n, R, r, true, 42, 0, false, mine));
  CHECK(mine[0] != e0 || len < 2, "%s", "a new order each epoch");

  /* the loader with .num_replicas/.rank yields the same shard, in batches (shuffle seed 42) */
  dc_tensor *xs = dc_arange(0, (double)n, 1, DC_F32), *xv = dc_view(xs, DC_SHAPE(n, 1));
  dc_dataset *ds = dc_tensor_dataset(xv, NULL);
  dc_loader *l =
      dc_loader_new(ds, .batch_size = 7, .shuffle = true, .seed = 42, .num_replicas = R, .rank = r);
  CHECK(l && dc_loader_len(l) == (len + 6) / 7, "loader batches %lld", (long long)dc_loader_len(l));
  CHECK_OK(dc_dist_sampler_indices(n, R, r, true, 42, 0, false, mine));
  int64_t at = 0, wrong = 0;
  dc_tensor *bx, *by;
  while (l && dc_loader_next(l, &bx, &by) == 1) {
    for (int64_t k = 0; k < dc_numel(bx); k++, at++)
      wrong += at >= len || dc_item_at(bx, k) != mine[at];
    dc_free(bx);
  }
  CHECK(at == len && wrong == 0, "loader gave %lld samples, %lld differ", (long long)at,
        (long long)wrong);
  dc_loader_free(l);
  dc_dataset_free(ds);
  dc_free(xv);
  dc_free(xs);
  free(mine);
  free(count);
}

int main(void) {
  if (dc_dist_init(.timeout_s = 60) != DC_OK) {
    fprintf(stderr, "dist_init: %s\n", dc_last_error());
    return 1;
  }
  int64_t live = dc_live_tensors();
  test_job();
  test_all_reduce();
  test_broadcast();
  test_differentiable();
  test_sampler();
  CHECK(dc_live_tensors() == live, "%lld tensors leaked", (long long)(dc_live_tensors() - live));
  return dist_check_finish("dist collectives");
}
