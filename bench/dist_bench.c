/* Data-parallel training throughput on the cnn_fashion network (the course CNN of
 * /work/shared/bench/torch_workloads.py: 3 x (conv5 BN ReLU maxpool2), dropout, FC64 BN ReLU,
 * FC10; Adam 1e-3): a fixed random batch of B samples split over the ranks, steps of forward,
 * cross-entropy, backward, gradient all-reduce (dc_dist_ddp_sync) and Adam. Run it alone or under
 * mpirun; rank 0 prints one line: ranks, threads per rank, global batch, samples/s over all ranks,
 * ms per step and the part of it spent in the gradient all-reduce (the median over the ranks).
 * usage: [mpirun -np R] dist_bench [--steps N] [--warmup W] [--batch B] [--bucket-mb X] */
#include <deepc/deepc.h>
#include <deepc/dist.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

static int fail(const char *what) {
  dc_dist_abort(1, "dist_bench: %s: %s", what, dc_last_error());
  return 1;
}

int main(int argc, char **argv) {
  int steps = 30, warmup = 5;
  int64_t batch = 64;
  double bucket_mb = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--steps") == 0)
      steps = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--warmup") == 0)
      warmup = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--batch") == 0)
      batch = atoll(argv[i + 1]);
    else if (strcmp(argv[i], "--bucket-mb") == 0)
      bucket_mb = atof(argv[i + 1]);
  }
  if (dc_dist_init() != DC_OK) return fail("init");
  int R = dc_dist_size(), r = dc_dist_rank();
  if (batch % R) {
    dc_dist_abort(1, "dist_bench: --batch %lld is not a multiple of %d ranks", (long long)batch, R);
    return 1;
  }
  int64_t b = batch / R;
  dc_manual_seed(0);
  dc_module *model = dc_zoo_cnn_fashion((dc_zoo_opts){0});
  if (!model) return fail("model");
  dc_dist_ddp *ddp = dc_dist_ddp_new(model, .bucket_mb = bucket_mb);
  if (!ddp) return fail("ddp");
  int np = 0;
  dc_named_tensor *ps = dc_module_trainable_parameters(model, &np);
  dc_tensor **params = malloc(sizeof *params * (size_t)np);
  for (int i = 0; i < np; i++) params[i] = ps[i].tensor;
  dc_optim *opt = dc_optim_adam(params, np, 1e-3);
  dc_named_tensors_free(ps, np);
  free(params);
  if (!opt) return fail("optimizer");
  dc_manual_seed(100 + (uint64_t)r); /* each rank its own samples */
  dc_tensor *x = dc_randn(DC_SHAPE(b, 1, 28, 28), DC_F32);
  dc_tensor *y = dc_randint(0, 10, DC_SHAPE(b), DC_I64);
  double t0 = 0, sync_s = 0, loss = 0;
  for (int s = 0; s < warmup + steps; s++) {
    if (s == warmup) {
      if (dc_dist_barrier() != DC_OK) return fail("barrier");
      t0 = bench_now();
      sync_s = 0;
    }
    dc_scope_begin();
    dc_tensor *l = dc_cross_entropy(dc_module_forward(model, x), y);
    if (!l || dc_backward(l) != DC_OK) return fail("step");
    double ts = bench_now();
    if (dc_dist_ddp_sync(ddp) != DC_OK) return fail("gradient all-reduce");
    sync_s += bench_now() - ts;
    if (dc_optim_step(opt) != DC_OK) return fail("optimizer step");
    dc_optim_zero_grad(opt);
    loss = dc_item(l);
    dc_scope_end();
  }
  double el = bench_now() - t0;
  double times[2] = {el, sync_s}; /* the slowest rank sets the pace */
  dc_dist_all_reduce_buffer(times, 2, DC_F64, DC_DIST_MAX);
  if (r == 0)
    printf("dist_bench cnn_fashion: ranks %d x threads %d, batch %lld (%lld per rank), %d steps: "
           "%.1f samples/s, %.2f ms/step, all-reduce %.2f ms/step (%d bucket(s)), loss %.4f\n",
           R, omp_get_max_threads(), (long long)batch, (long long)b, steps,
           (double)batch * steps / times[0], 1e3 * times[0] / steps, 1e3 * times[1] / steps,
           dc_dist_ddp_num_buckets(ddp), loss);
  dc_free(x);
  dc_free(y);
  dc_optim_free(opt);
  dc_dist_ddp_free(ddp);
  dc_module_free(model);
  return dc_dist_finalize() == DC_OK ? 0 : 1;
}
