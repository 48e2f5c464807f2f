/* Data-parallel training against one process: every rank trains its slice of each batch with
 * dc_dist_ddp_sync between backward and the optimizer step, and also trains a copy of the model
 * on the whole batch by itself; after K steps both agree within float32 rounding. Covered: an
 * MLP with SGD + momentum (one bucket, many small buckets, buckets started during backward by
 * gradient-ready reports, a report that comes late), a CNN with SyncBatchNorm and Adam, per-rank
 * batch norm with rank 0's buffers, parameters some ranks do not use, and summing.
 * Shapes: B global batch, b = B / R per rank, F features, K classes. */
#include "ddp_cases.h"

#include <string.h>

enum { B = DDP_B, F = DDP_F, STEPS = 6 };

typedef ddp_batch batch;

static batch make_batch(int step, bool image) {
  return ddp_make_batch(1000 + (uint64_t)step, image);
}

static dc_tensor *my_rows(dc_tensor *t) { return ddp_rows(t); }

static dc_module *make_mlp(void) {
  dc_manual_seed(7);
  return ddp_mlp();
}

static dc_module *make_cnn(void) {
  dc_manual_seed(8);
  return ddp_cnn();
}

typedef enum mode { PLAIN, REPORTS, LATE_REPORT } mode;

/* max relative error between every parameter and buffer of two models (float buffers only) */
static double model_err(dc_module *a, dc_module *b) {
  dc_state_dict *sa = dc_module_state_dict(a), *sb = dc_module_state_dict(b);
  double worst = 0;
  for (int i = 0; i < dc_state_dict_size(sa); i++) {
    dc_tensor *x = dc_state_dict_tensor_at(sa, i), *y = dc_state_dict_tensor_at(sb, i);
    if (!dc_dtype_is_float(x->dtype)) continue;
    double e = rel_err(x, y, 1e-6, 1e-4);
    if (getenv("DIST_DEBUG")) /* the error of each entry, in units of the tolerance */
      fprintf(stderr, "rank %d: %s: %g\n", dc_dist_rank(), dc_state_dict_key_at(sa, i), e);
    if (!(e <= worst)) worst = e;
  }
  dc_state_dict_free(sa);
  dc_state_dict_free(sb);
  return worst;
}

/* Trains a DDP copy and a whole-batch reference for STEPS steps; returns the worst error. */
static double train_pair(bool cnn, bool sync_bn, dc_dist_ddp_opts o, mode md, int *buckets,
                         int *overlapped) {
  dc_module *net = cnn ? make_cnn() : make_mlp(), *ref = cnn ? make_cnn() : make_mlp();
  if (sync_bn) CHECK_OK(dc_dist_convert_sync_batchnorm(net));
  dc_dist_ddp *ddp = dc_dist_ddp_new_opt(net, o);
  CHECK(ddp != NULL, "%s", "ddp_new");
  dc_optim *opt = ddp_make_opt(net, cnn), *ropt = ddp_make_opt(ref, cnn);
  *overlapped = 0;
  for (int s = 0; ddp && s < STEPS; s++) {
    dc_scope_begin();
    batch bt = make_batch(s, cnn);
    dc_tensor *loss = dc_cross_entropy(dc_module_forward(net, my_rows(bt.x)), my_rows(bt.y));
    CHECK_OK(dc_backward(loss));
    if (md != PLAIN) ddp_report_grads(net, md == LATE_REPORT && s == 3);
    CHECK_OK(dc_dist_ddp_sync(ddp));
    *overlapped += dc_dist_ddp_overlapped(ddp);
    CHECK_OK(dc_optim_step(opt));
    dc_optim_zero_grad(opt);
    dc_tensor *rl = dc_cross_entropy(dc_module_forward(ref, bt.x), bt.y);
    CHECK_OK(dc_backward(rl));
    CHECK_OK(dc_optim_step(ropt));
    dc_optim_zero_grad(ropt);
    dc_scope_end();
  }
  *buckets = dc_dist_ddp_num_buckets(ddp);
  double err = model_err(net, ref);
  dc_dist_ddp_free(ddp);
  dc_optim_free(opt);
  dc_optim_free(ropt);
  dc_module_free(net);
  dc_module_free(ref);
  return err;
}

static void test_parity(void) {
  int R = dc_dist_size(), nb, ov;
  double e = train_pair(false, false, (dc_dist_ddp_opts){0}, PLAIN, &nb, &ov);
  CHECK(e <= 1, "MLP, one bucket: error %g x tolerance", e);
  CHECK(nb == 1, "%d buckets", nb); /* overlapped only if the engine reports gradients */

  e = train_pair(false, false, (dc_dist_ddp_opts){.bucket_mb = 200.0 / (1 << 20)}, PLAIN, &nb, &ov);
  CHECK(e <= 1, "MLP, small buckets: error %g x tolerance", e);
  CHECK(nb >= 3, "%d buckets of 200 bytes", nb);

  e = train_pair(false, false, (dc_dist_ddp_opts){.bucket_mb = 200.0 / (1 << 20)}, REPORTS, &nb,
                 &ov);
  CHECK(e <= 1, "MLP, buckets started by reports: error %g x tolerance", e);
  /* the first sync learns the counts; then every bucket starts during "backward" */
  CHECK(R == 1 || ov == nb * (STEPS - 1), "%d of %d buckets started early", ov, nb * (STEPS - 1));

  e = train_pair(false, false, (dc_dist_ddp_opts){.bucket_mb = 200.0 / (1 << 20)}, LATE_REPORT, &nb,
                 &ov);
  CHECK(e <= 1, "MLP, a gradient that grows after its bucket started: error %g", e);

  e = train_pair(false, false, (dc_dist_ddp_opts){.no_overlap = true}, REPORTS, &nb, &ov);
  CHECK(e <= 1 && ov == 0, "MLP, no_overlap: error %g, %d overlapped", e, ov);

  e = train_pair(true, true, (dc_dist_ddp_opts){0}, PLAIN, &nb, &ov);
  CHECK(e <= 1,
        "CNN with SyncBatchNorm and Adam: error %g x tolerance (parameters and running "
        "statistics)",
        e);
}

/* Per-rank batch norm: every rank ends with rank 0's running statistics and equal parameters. */
static void test_per_rank_bn(void) {
  dc_module *net = make_cnn();
  dc_dist_ddp *ddp = dc_dist_ddp_new(net);
  dc_optim *opt = ddp_make_opt(net, true);
  for (int s = 0; s < 3; s++) {
    dc_scope_begin();
    batch bt = make_batch(s, true);
    CHECK_OK(dc_backward(dc_cross_entropy(dc_module_forward(net, my_rows(bt.x)), my_rows(bt.y))));
    CHECK_OK(dc_dist_ddp_sync(ddp));
    CHECK_OK(dc_optim_step(opt));
    dc_optim_zero_grad(opt);
    dc_scope_end();
  }
  dc_state_dict *sd = dc_module_state_dict(net);
  for (int i = 0; i < dc_state_dict_size(sd); i++) {
    dc_scope_begin();
    dc_tensor *t = dc_state_dict_tensor_at(sd, i);
    dc_tensor *hi = dc_clone(t), *lo = dc_clone(t);
    dc_dist_all_reduce_(hi, DC_DIST_MAX);
    dc_dist_all_reduce_(lo, DC_DIST_MIN);
    CHECK(rel_err(hi, lo, 0, 1) == 0, "'%s' differs between ranks", dc_state_dict_key_at(sd, i));
    dc_scope_end();
  }
  dc_state_dict_free(sd);
  dc_dist_ddp_free(ddp);
  dc_optim_free(opt);
  dc_module_free(net);
}

/* Layer "1" is used by rank 0 only, layer "2" by no rank: "1" gets the average of rank 0's
 * gradient and zeros, "2" keeps no gradient. With .sum the gradients are summed. */
static void test_unused(bool sum) {
  int R = dc_dist_size(), r = dc_dist_rank();
  dc_manual_seed(9);
  dc_module *net = dc_nn_sequential(dc_nn_linear(F, 3), dc_nn_linear(F, 3), dc_nn_linear(F, 3));
  dc_dist_ddp *ddp = dc_dist_ddp_new(net, .sum = sum);
  dc_scope_begin();
  batch bt = make_batch(0, false);
  dc_tensor *x = my_rows(bt.x);
  dc_tensor *out = dc_module_forward(dc_module_child_at(net, 0), x);
  if (r == 0) out = dc_add(out, dc_module_forward(dc_module_child_at(net, 1), x));
  CHECK_OK(dc_backward(dc_sum_all(out)));
  dc_tensor *g0 = dc_module_get_parameter(net, "0.weight")->grad;
  dc_tensor *g1 = dc_module_get_parameter(net, "1.weight")->grad;
  dc_tensor *e0 = dc_clone(g0), *e1 = g1 ? dc_clone(g1) : dc_zeros(DC_SHAPE(3, F), DC_F32);
  dc_dist_all_reduce_(e0, sum ? DC_DIST_SUM : DC_DIST_AVG);
  dc_dist_all_reduce_(e1, sum ? DC_DIST_SUM : DC_DIST_AVG);
  CHECK_OK(dc_dist_ddp_sync(ddp));
  g1 = dc_module_get_parameter(net, "1.weight")->grad;
  CHECK(rel_err(g0, e0, 1e-6, 1e-5) <= 1, "%s", "used by all: average");
  CHECK(g1 && rel_err(g1, e1, 1e-6, 1e-5) <= 1, "used by rank 0 only (%d ranks)", R);
  CHECK(dc_module_get_parameter(net, "2.weight")->grad == NULL, "%s", "unused stays NULL");
  dc_scope_end();
  dc_module_zero_grad(net);
  dc_dist_ddp_free(ddp);
  dc_module_free(net);
}

int main(void) {
  if (dc_dist_init(.timeout_s = 60) != DC_OK) {
    fprintf(stderr, "dist_init: %s\n", dc_last_error());
    return 1;
  }
  int64_t live = dc_live_tensors();
  test_parity();
  test_per_rank_bn();
  test_unused(false);
  test_unused(true);
  CHECK(dc_live_tensors() == live, "%lld tensors leaked", (long long)(dc_live_tensors() - live));
  return dist_check_finish("dist ddp");
}
