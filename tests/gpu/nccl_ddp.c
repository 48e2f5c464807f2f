/* Data-parallel training on one device kind, run under mpirun by test_gpu_nccl.sh (cuda: the
 * collectives go through NCCL) and by tests/dist/run.sh (testdev: staged through MPI, so the
 * checks themselves run where there is no GPU). `nccl_ddp [cuda|testdev|cpu]`:
 *   - all-reduce (sum, average) of device tensors: exact small integers;
 *   - every rank trains its rows of each batch with dc_dist_ddp_sync and a reference model on the
 *     whole batch alone: after the first sync each all-reduced gradient equals the reference's,
 *     after STEPS steps every parameter and buffer does, within float32 tolerance (an MLP with
 *     SGD + momentum; a CNN with SyncBatchNorm and Adam);
 *   - with 1 process the DDP run equals plain training (no DDP) bit for bit.
 * Exit 77 (skipped) without the device or, on cuda, without NCCL in the build.
 * Shapes: tests/dist/ddp_cases.h. */
#include "../dist/ddp_cases.h"

#include <string.h>

enum { STEPS = 5 };

static dc_device g_dev;

typedef ddp_batch batch; /* on g_dev */

/* The same batches on every rank (seeded on the cpu, then moved). */
static batch make_batch(int step, bool image) {
  ddp_batch bt = ddp_make_batch(2000 + (uint64_t)step, image);
  return (batch){dc_to_device(bt.x, g_dev), dc_to_device(bt.y, g_dev)};
}

/* This rank's rows of the batch, contiguous. */
static dc_tensor *my_rows(dc_tensor *t) { return dc_contiguous(ddp_rows(t)); }

static dc_module *make_model(bool cnn) {
  dc_manual_seed(cnn ? 8 : 7);
  dc_module *m = cnn ? ddp_cnn() : ddp_mlp();
  CHECK_OK(dc_module_to(m, g_dev));
  return m;
}

/* worst relative error over the float state (parameters and buffers), or over the gradients */
static double model_err(dc_module *a, dc_module *b, bool grads) {
  double worst = 0;
  if (grads) {
    int na = 0, nb = 0;
    dc_named_tensor *pa = dc_module_trainable_parameters(a, &na);
    dc_named_tensor *pb = dc_module_trainable_parameters(b, &nb);
    for (int i = 0; i < na && i < nb; i++) {
      dc_tensor *ga = pa[i].tensor->grad, *gb = pb[i].tensor->grad;
      double e = ga && gb ? rel_err(ga, gb, 1e-6, 1e-4) : INFINITY;
      if (!(e <= worst)) worst = e;
    }
    dc_named_tensors_free(pa, na);
    dc_named_tensors_free(pb, nb);
    return worst;
  }
  dc_state_dict *sa = dc_module_state_dict(a), *sb = dc_module_state_dict(b);
  for (int i = 0; i < dc_state_dict_size(sa); i++) {
    dc_tensor *x = dc_state_dict_tensor_at(sa, i), *y = dc_state_dict_tensor_at(sb, i);
    if (!dc_dtype_is_float(x->dtype)) continue;
    double e = rel_err(x, y, 1e-6, 1e-4);
    if (getenv("DIST_DEBUG"))
      fprintf(stderr, "rank %d: %s: %g\n", dc_dist_rank(), dc_state_dict_key_at(sa, i), e);
    if (!(e <= worst)) worst = e;
  }
  dc_state_dict_free(sa);
  dc_state_dict_free(sb);
  return worst;
}

/* whether two models' state dicts hold the same bytes */
static bool same_bits(dc_module *a, dc_module *b) {
  dc_state_dict *sa = dc_module_state_dict(a), *sb = dc_module_state_dict(b);
  bool same = dc_state_dict_size(sa) == dc_state_dict_size(sb);
  for (int i = 0; same && i < dc_state_dict_size(sa); i++) {
    dc_tensor *x = dc_state_dict_tensor_at(sa, i), *y = dc_state_dict_tensor_at(sb, i);
    size_t n = (size_t)dc_numel(x) * dc_dtype_size(x->dtype);
    char *bx = malloc(n + 1), *by = malloc(n + 1);
    same = bx && by && dc_numel(x) == dc_numel(y) && dc_copy_to_buffer(x, bx, n) == DC_OK &&
           dc_copy_to_buffer(y, by, n) == DC_OK && memcmp(bx, by, n) == 0;
    if (!same)
      fprintf(stderr, "rank %d: '%s' differs\n", dc_dist_rank(), dc_state_dict_key_at(sa, i));
    free(bx);
    free(by);
  }
  dc_state_dict_free(sa);
  dc_state_dict_free(sb);
  return same;
}

static void test_all_reduce(void) {
  int R = dc_dist_size(), r = dc_dist_rank();
  for (int k = 0; k < 2; k++) {
    dc_dtype dt = k ? DC_F64 : DC_F32;
    dc_scope_begin();
    dc_tensor *s = dc_full_on(DC_SHAPE(1000), r + 1, dt, g_dev); /* [1000] */
    dc_tensor *a = dc_full_on(DC_SHAPE(1000), 2 * (r + 1), dt, g_dev);
    CHECK_OK(dc_dist_all_reduce_(s, DC_DIST_SUM));
    CHECK_OK(dc_dist_all_reduce_(a, DC_DIST_AVG));
    dc_tensor *es = dc_full(DC_SHAPE(1000), R * (R + 1) / 2.0, dt);
    dc_tensor *ea = dc_full(DC_SHAPE(1000), R + 1.0, dt);
    CHECK(rel_err(dc_to_device(s, DC_CPU), es, 1e-30, 0) <= 1, "sum of %s", dc_dtype_name(dt));
    CHECK(rel_err(dc_to_device(a, DC_CPU), ea, 1e-30, 0) <= 1, "average of %s", dc_dtype_name(dt));
    dc_scope_end();
  }
}

/* DDP on this rank's rows against the whole batch alone; the worst error of the gradients
 * after the first sync and of the state after STEPS steps. */
static void train_pair(bool cnn, double *grad_err, double *state_err) {
  dc_module *net = make_model(cnn), *ref = make_model(cnn);
  if (cnn) CHECK_OK(dc_dist_convert_sync_batchnorm(net));
  dc_dist_ddp *ddp = dc_dist_ddp_new(net);
  CHECK(ddp != NULL, "%s", "ddp_new");
  dc_optim *opt = ddp_make_opt(net, cnn), *ropt = ddp_make_opt(ref, cnn);
  *grad_err = INFINITY;
  for (int s = 0; ddp && s < STEPS; s++) {
    dc_scope_begin();
    batch bt = make_batch(s, cnn);
    CHECK_OK(dc_backward(dc_cross_entropy(dc_module_forward(net, my_rows(bt.x)), my_rows(bt.y))));
    CHECK_OK(dc_dist_ddp_sync(ddp));
    CHECK_OK(dc_backward(dc_cross_entropy(dc_module_forward(ref, bt.x), bt.y)));
    if (s == 0) *grad_err = model_err(net, ref, true);
    CHECK_OK(dc_optim_step(opt));
    CHECK_OK(dc_optim_step(ropt));
    dc_optim_zero_grad(opt);
    dc_optim_zero_grad(ropt);
    dc_scope_end();
  }
  *state_err = model_err(net, ref, false);
  dc_dist_ddp_free(ddp);
  dc_optim_free(opt);
  dc_optim_free(ropt);
  dc_module_free(net);
  dc_module_free(ref);
}

/* One process: DDP (its all-reduces are no-ops) against plain training, bit for bit. */
static void test_one_process_is_plain(bool cnn) {
  dc_module *net = make_model(cnn), *plain = make_model(cnn);
  if (cnn) {
    CHECK_OK(dc_dist_convert_sync_batchnorm(net));
  }
  dc_dist_ddp *ddp = dc_dist_ddp_new(net);
  dc_optim *opt = ddp_make_opt(net, cnn), *popt = ddp_make_opt(plain, cnn);
  for (int s = 0; ddp && s < STEPS; s++) {
    dc_scope_begin();
    batch bt = make_batch(s, cnn);
    CHECK_OK(dc_backward(dc_cross_entropy(dc_module_forward(net, bt.x), bt.y)));
    CHECK_OK(dc_dist_ddp_sync(ddp));
    CHECK_OK(dc_optim_step(opt));
    dc_optim_zero_grad(opt);
    CHECK_OK(dc_backward(dc_cross_entropy(dc_module_forward(plain, bt.x), bt.y)));
    CHECK_OK(dc_optim_step(popt));
    dc_optim_zero_grad(popt);
    dc_scope_end();
  }
  CHECK(same_bits(net, plain), "%s: 1-process DDP differs from plain training",
        cnn ? "CNN" : "MLP");
  dc_dist_ddp_free(ddp);
  dc_optim_free(opt);
  dc_optim_free(popt);
  dc_module_free(net);
  dc_module_free(plain);
}

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "cuda";
  if (dc_device_parse(name, &g_dev) != DC_OK) {
    printf("SKIP: no CUDA device (or no %s): %s\n", name, dc_last_error());
    return 77;
  }
  if (dc_dist_init(.timeout_s = 120) != DC_OK) {
    fprintf(stderr, "dist_init: %s\n", dc_last_error());
    return 1;
  }
  if (g_dev == DC_CUDA && !dc_dist_has_nccl()) {
    if (dc_dist_rank() == 0) printf("SKIP: this build has no NCCL (DC_HAVE_NCCL)\n");
    dc_dist_finalize();
    return 77;
  }
  if (dc_dist_rank() == 0)
    printf("nccl_ddp on %s, %d process(es), backend %s\n", name, dc_dist_size(),
           dc_dist_backend_name());
  int64_t live = dc_live_tensors();
  test_all_reduce();
  for (int cnn = 0; cnn <= 1; cnn++) {
    double ge, se;
    train_pair(cnn, &ge, &se);
    CHECK(ge <= 1, "%s: all-reduced gradients vs the whole batch's: error %g x tolerance",
          cnn ? "CNN with SyncBatchNorm" : "MLP", ge);
    CHECK(se <= 1, "%s: state after %d steps vs the whole batch's: error %g x tolerance",
          cnn ? "CNN with SyncBatchNorm and Adam" : "MLP with SGD", STEPS, se);
    if (dc_dist_size() == 1) test_one_process_is_plain(cnn);
  }
  CHECK(dc_live_tensors() == live, "%lld tensors leaked", (long long)(dc_live_tensors() - live));
  return dist_check_finish("nccl_ddp");
}
