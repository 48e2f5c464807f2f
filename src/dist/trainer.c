/* The trainer's data-parallel hooks (train.h's dc_trainer_dist): the batch loss averaged over
 * the ranks, the gradient all-reduce after each backward, and the epoch's metrics summed over
 * the ranks, so every rank takes the same decisions (NaN policy, best epoch, early stopping) and
 * rank 0 logs the numbers of the whole job. */
#include "dist-impl.h"

static int hook_loss(double *loss, void *ud) {
  (void)ud;
  return dc_dist_all_reduce_buffer(loss, 1, DC_F64, DC_DIST_AVG);
}

static int hook_backward(void *ud) { return dc_dist_ddp_sync(ud); }

static int hook_metrics(dc_metrics *m, double *loss_sum, void *ud) {
  (void)ud;
  return dc_dist_metrics_all_reduce(m, loss_sum);
}

dc_trainer_dist dc_dist_trainer_hooks(dc_dist_ddp *d) {
  if (!d || dc__dist.size == 1) return (dc_trainer_dist){0};
  return (dc_trainer_dist){.reduce_loss = hook_loss,
                           .after_backward = hook_backward,
                           .reduce_metrics = hook_metrics,
                           .ud = d};
}

int dc_dist_metrics_all_reduce(dc_metrics *m, double *loss_sum) {
  if (!m) return dc__errs(DC_ERR_ARG, "dist metrics_all_reduce: metrics are NULL");
  if (dc__dist.size == 1) return DC_OK;
  int64_t k = m->num_classes;
  /* every rank must agree on K before the counts are summed */
  int64_t kk[2] = {k, -k};
  int rc = dc_dist_all_reduce_buffer(kk, 2, DC_I64, DC_DIST_MAX);
  if (rc != DC_OK) return rc;
  if (kk[0] != k || -kk[1] != k)
    return dc__errs(DC_ERR_ARG,
                    "dist metrics_all_reduce: the ranks count different numbers of "
                    "classes (%lld here, %lld to %lld over the job)",
                    (long long)k, (long long)-kk[1], (long long)kk[0]);
  int64_t *counts = dc__malloc(sizeof *counts * (size_t)(k * k + 2));
  if (!counts) return DC_ERR_NOMEM;
  for (int64_t i = 0; i < k * k; i++) counts[i] = m->confusion[i];
  counts[k * k] = m->count;
  counts[k * k + 1] = m->topk_hits;
  double sums[2] = {m->loss_sum, loss_sum ? *loss_sum : 0};
  rc = dc_dist_all_reduce_buffer(counts, k * k + 2, DC_I64, DC_DIST_SUM);
  if (rc == DC_OK) rc = dc_dist_all_reduce_buffer(sums, 2, DC_F64, DC_DIST_SUM);
  if (rc == DC_OK) {
    for (int64_t i = 0; i < k * k; i++) m->confusion[i] = counts[i];
    m->count = counts[k * k];
    m->topk_hits = counts[k * k + 1];
    m->loss_sum = sums[0];
    if (loss_sum) *loss_sum = sums[1];
  }
  dc__free(counts);
  return rc;
}
