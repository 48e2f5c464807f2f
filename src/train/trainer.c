/* The trainer: epochs of (forward, loss, backward, clip, step) over a loader, one scope per
 * step; validation in eval mode under no_grad; history, best epoch, early stopping, NaN policy,
 * callbacks; and the state a bit-identical resume needs (model, optimizer, schedule, RNG,
 * loader epoch, counters, history). Shapes: B batch, K classes. */
#include "train-impl.h"

#include "../autograd/autograd-impl.h"

#include <math.h>
#include <string.h>
#include <time.h>

struct dc_trainer {
  dc_module *model;
  dc_optim *opt;
  dc_loader *train;
  dc_trainer_opts o;
  dc_history hist;
  int epochs_done;
  int64_t steps;
  int best_epoch;
  double best_value;
  int bad_epochs; /* epochs since the last improvement */
  bool stopped_early;
  bool last_is_best;
  int64_t skipped;    /* non-finite losses skipped */
  dc_tensor **params; /* [nparams] for clipping, borrowed from the optimizer */
  int nparams;
};

double dc__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static dc_tensor *default_loss(dc_tensor *out, dc_tensor *target, void *ud) {
  (void)ud;
  return dc_cross_entropy(out, target);
}

dc_trainer *dc_trainer_new(dc_module *model, dc_optim *opt, dc_loader *train, dc_trainer_opts o) {
  if (!model || !opt || !train)
    return dc__err(DC_ERR_ARG, "trainer_new: %s is NULL",
                   !model ? "model"
                   : !opt ? "optimizer"
                          : "train loader");
  if (o.epochs < 0)
    return dc__err(DC_ERR_ARG, "trainer_new: epochs must be >= 0, got %d", o.epochs);
  if (o.patience < 0) return dc__err(DC_ERR_ARG, "trainer_new: patience must be >= 0");
  if (o.autocast != DC_F32 && o.autocast != DC_BF16)
    return dc__err(DC_ERR_ARG, "trainer_new: autocast must be DC_BF16 or DC_F32 (off), got %s",
                   (int)o.autocast >= 0 && o.autocast < DC_DTYPE_COUNT ? dc_dtype_name(o.autocast)
                                                                       : "an invalid dtype");
  dc_trainer *t = dc__calloc(1, sizeof *t);
  if (!t) return NULL;
  t->model = model;
  t->opt = opt;
  t->train = train;
  t->o = o;
  if (!t->o.loss) t->o.loss = default_loss;
  t->best_value = NAN;
  t->nparams = dc_optim_num_params(opt);
  t->params = dc__malloc(sizeof *t->params * (size_t)(t->nparams ? t->nparams : 1));
  if (!t->params) {
    dc__free(t);
    return NULL;
  }
  for (int i = 0; i < t->nparams; i++) t->params[i] = dc_optim_param(opt, i);
  return t;
}

void dc_trainer_free(dc_trainer *t) {
  if (!t) return;
  dc_history_clear(&t->hist);
  dc__free(t->params);
  dc__free(t);
}

const dc_history *dc_trainer_history(const dc_trainer *t) { return t ? &t->hist : NULL; }
int dc_trainer_epochs_done(const dc_trainer *t) { return t ? t->epochs_done : 0; }
int64_t dc_trainer_steps_done(const dc_trainer *t) { return t ? t->steps : 0; }
int dc_trainer_best_epoch(const dc_trainer *t) { return t ? t->best_epoch : 0; }
bool dc_trainer_is_best(const dc_trainer *t) { return t && t->last_is_best; }
bool dc_trainer_stopped_early(const dc_trainer *t) { return t && t->stopped_early; }
int64_t dc_trainer_skipped_steps(const dc_trainer *t) { return t ? t->skipped : 0; }

/* ---- evaluation ---- */
int dc_evaluate(dc_module *model, dc_loader *l, dc_loss_fn loss, void *ud, dc_metrics *m) {
  if (!model || !l || !m) return dc__errs(DC_ERR_ARG, "evaluate: NULL argument");
  if (!loss) loss = default_loss;
  bool was_training = dc_module_is_training(model);
  dc_module_eval(model);
  bool prev = dc_set_grad_enabled(false);
  int rc = dc_loader_set_epoch(l, 0);
  int64_t batch = 0;
  while (rc == DC_OK) {
    dc_scope_begin();
    dc_tensor *x = NULL, *y = NULL;
    int r = dc_loader_next(l, &x, &y);
    if (r <= 0) {
      if (r < 0)
        rc = dc__rewrap(dc_last_status(), "evaluate: batch %lld: %s", (long long)batch + 1,
                        dc_last_error());
      dc_scope_end();
      break;
    }
    batch++;
    dc_tensor *out = dc_module_forward(model, x);
    dc_tensor *lv = out ? loss(out, y, ud) : NULL;
    if (!lv)
      rc = dc_last_status() ? dc_last_status() : DC_ERR_ARG;
    else if ((rc = dc_metrics_update(m, out, y)) == DC_OK)
      dc_metrics_add_loss(m, dc_item(lv), out->shape[0]);
    dc_scope_end();
  }
  if (rc != DC_OK) {
    /* finish the epoch so the loader starts clean next time */
    dc_loader_set_epoch(l, 0);
  }
  dc_set_grad_enabled(prev);
  dc_module_train(model, was_training);
  return rc;
}

/* Whether t holds NaN or infinity (on a device the check runs there: anomaly.c). */
static bool has_nonfinite(const dc_tensor *t) { return dc__first_nonfinite(t) >= 0; }

/* The first parameter whose gradient holds NaN or infinity, or -1. */
static int nonfinite_grad(const dc_trainer *t) {
  for (int i = 0; i < t->nparams; i++)
    if (t->params[i]->grad && has_nonfinite(t->params[i]->grad)) return i;
  return -1;
}

/* an anomaly (anomaly mode) found in the step's forward or backward, with the step named */
static int step_error(const dc_trainer *t, const dc_step_info *s, int rc) {
  if (!dc_is_anomaly_enabled()) return rc;
  return dc__rewrap((dc_status)rc, "training stopped at epoch %d, batch %lld (step %lld): %s",
                    s->epoch, (long long)s->batch, (long long)t->steps + 1, dc_last_error());
}

/* ---- one training step (inside the caller's scope) ---- */
static int train_step(dc_trainer *t, dc_tensor *x, dc_tensor *y, dc_metrics *m, dc_step_info *s,
                      double *loss_sum) {
  bool amp = t->o.autocast != DC_F32;
  if (amp && dc_autocast_push(x->device, t->o.autocast, true) != DC_OK) return dc_last_status();
  dc_tensor *out = dc_module_forward(t->model, x);
  dc_tensor *loss = out ? t->o.loss(out, y, t->o.loss_ud) : NULL;
  if (amp) dc_autocast_pop();
  if (!loss) return step_error(t, s, dc_last_status() ? dc_last_status() : DC_ERR_ARG);
  if (dc_numel(loss) != 1)
    return dc__errs(DC_ERR_ARG, "trainer: the loss must be one number, got %lld elements",
                    (long long)dc_numel(loss));
  double lv = dc_item(loss);
  int64_t B = out->shape[0];
  int rc = t->o.dist.reduce_loss ? t->o.dist.reduce_loss(&lv, t->o.dist.ud) : DC_OK;
  if (rc != DC_OK) return rc;
  s->loss = lv;
  s->skipped = false;
  if (!isfinite(lv)) {
    if (t->o.on_nan == DC_NAN_STOP)
      return dc__errs(DC_ERR_STATE,
                      "training stopped: the loss became %s at epoch %d, batch %lld (step %lld); "
                      "lower the learning rate, clip the gradients (train.clip_grad_norm) or skip "
                      "such steps (train.on_nan = skip)",
                      isnan(lv) ? "NaN"
                      : lv > 0  ? "+infinity"
                                : "-infinity",
                      s->epoch, (long long)s->batch, (long long)t->steps + 1);
    t->skipped++;
    s->skipped = true;
    return DC_OK;
  }
  rc = dc_backward(loss);
  if (rc != DC_OK) rc = step_error(t, s, rc);
  if (rc == DC_OK && t->o.dist.after_backward) rc = t->o.dist.after_backward(t->o.dist.ud);
  int bad;
  if (rc == DC_OK && t->o.on_nan == DC_NAN_SKIP && (bad = nonfinite_grad(t)) >= 0) {
    /* a finite loss with non-finite gradients (an overflow in the backward): skipped too; the
     * same decision on every rank, the gradients being all-reduced */
    dc_optim_zero_grad(t->opt);
    t->skipped++;
    s->skipped = true;
    return DC_OK;
  }
  if (rc == DC_OK && t->o.clip_grad_norm > 0)
    rc = dc_clip_grad_norm_(t->params, t->nparams, t->o.clip_grad_norm, 2.0, false, NULL);
  if (rc == DC_OK) rc = dc_optim_step(t->opt);
  dc_optim_zero_grad(t->opt);
  if (rc != DC_OK) return rc;
  t->steps++;
  if (t->o.sched && t->o.sched_when == DC_SCHED_PER_STEP &&
      (rc = dc_sched_step(t->o.sched)) != DC_OK)
    return rc;
  *loss_sum += lv * (double)B;
  return dc_metrics_update(m, out, y);
}

/* Updates the best epoch and the early-stopping counter from the epoch's row. */
static void track_best(dc_trainer *t, const dc_epoch_stats *e) {
  bool by_train = t->o.monitor == DC_MONITOR_TRAIN_LOSS;
  bool has_val = t->o.val != NULL || by_train; /* a metric to follow; else the last is best */
  double v = !has_val || by_train                  ? -e->train_loss
             : t->o.monitor == DC_MONITOR_VAL_LOSS ? -e->val_loss
                                                   : e->val_acc; /* larger is better */
  bool improved = isnan(t->best_value) ? !isnan(v) : v > t->best_value + t->o.min_delta;
  t->last_is_best = improved || (!has_val);
  if (improved || !has_val) {
    if (!isnan(v)) t->best_value = v;
    t->best_epoch = e->epoch;
    t->bad_epochs = 0;
  } else {
    t->bad_epochs++;
    if (has_val && t->o.patience > 0 && t->bad_epochs >= t->o.patience) t->stopped_early = true;
  }
}

/* The number of classes: num_classes when set, else the model's output width on the first batch
 * x, probed in eval mode (no RNG draws, no running-statistics update: a resumed run stays
 * bit-identical). Stored in t->o.num_classes. */
static int probe_classes(dc_trainer *t, dc_tensor *x /* [B, ...] */, int64_t *K) {
  if (*K > 0) return DC_OK;
  bool prev = dc_set_grad_enabled(false);
  dc_module_eval(t->model);
  dc_tensor *probe = dc_module_forward(t->model, x); /* [B, K] */
  dc_module_train(t->model, true);
  dc_set_grad_enabled(prev);
  *K = probe && probe->ndim == 2 ? probe->shape[1] : 0;
  t->o.num_classes = *K;
  if (!probe) return dc_last_status() ? dc_last_status() : DC_ERR_ARG; /* the forward's error */
  if (*K <= 0)
    return dc__errs(DC_ERR_ARG, "trainer: set num_classes (the model output is not [B, K])");
  return DC_OK;
}

/* The epoch's training batches: a step each, then on_step. *m (made on the first batch) holds
 * the training metrics, *loss_sum the sample-weighted loss. */
static int train_batches(dc_trainer *t, dc_step_info *s, double t0, int64_t *K, dc_metrics **m,
                         double *loss_sum) {
  int rc = DC_OK;
  while (rc == DC_OK) {
    dc_scope_begin();
    dc_tensor *x = NULL, *y = NULL; /* [B, ...], [B] */
    int r = dc_loader_next(t->train, &x, &y);
    if (r <= 0) {
      if (r < 0)
        rc = dc__rewrap(dc_last_status() ? dc_last_status() : DC_ERR_IO, "epoch %d, batch %lld: %s",
                        s->epoch, (long long)s->batch + 1, dc_last_error());
      dc_scope_end();
      break;
    }
    s->batch++;
    if (!*m && (rc = probe_classes(t, x, K)) == DC_OK && !(*m = dc_metrics_new(*K, 1)))
      rc = dc_last_status();
    if (rc == DC_OK) rc = train_step(t, x, y, *m, s, loss_sum);
    if (rc == DC_OK) {
      s->step = t->steps;
      s->samples = (*m)->count;
      s->mean_loss = (*m)->count ? *loss_sum / (double)(*m)->count : NAN;
      s->mean_acc = dc_metrics_accuracy(*m);
      s->lr = dc_optim_get_lr(t->opt, 0);
      s->seconds = dc__now() - t0;
      if (t->o.on_step) rc = t->o.on_step(t, s, t->o.cb_ud);
    }
    dc_scope_end();
  }
  return rc;
}

/* The validation loss and accuracy of e (all ranks' when distributed); none without t->o.val. */
static int validate(dc_trainer *t, int64_t K, dc_epoch_stats *e) {
  if (!t->o.val) return DC_OK;
  dc_metrics *vm = dc_metrics_new(K > 0 ? K : 1, 1);
  int rc = vm ? DC_OK : dc_last_status();
  if (rc == DC_OK) rc = dc_evaluate(t->model, t->o.val, t->o.loss, t->o.loss_ud, vm);
  if (rc == DC_OK && t->o.dist.reduce_metrics)
    rc = t->o.dist.reduce_metrics(vm, NULL, t->o.dist.ud);
  if (rc == DC_OK) {
    e->val_loss = dc_metrics_mean_loss(vm);
    e->val_acc = dc_metrics_accuracy(vm);
  }
  dc_metrics_free(vm);
  return rc;
}

/* After the epoch's row e: the per-epoch scheduler step, the history row, the best epoch and
 * the on_epoch callback. */
static int end_epoch(dc_trainer *t, dc_epoch_stats *e, double t0, dc_epoch_stats *out) {
  int rc = DC_OK;
  if (t->o.sched && t->o.sched_when == DC_SCHED_PER_EPOCH) rc = dc_sched_step(t->o.sched);
  if (t->o.sched && t->o.sched_when == DC_SCHED_ON_VAL_LOSS)
    rc = dc_sched_step_metric(t->o.sched, t->o.val ? e->val_loss : e->train_loss);
  if (rc != DC_OK) return rc;
  e->seconds = dc__now() - t0;
  if ((rc = dc_history_append(&t->hist, e)) != DC_OK) return rc; /* not counted if it fails */
  t->epochs_done = e->epoch;
  track_best(t, e);
  if (out) *out = *e;
  if (t->o.on_epoch) rc = t->o.on_epoch(t, e, t->o.cb_ud);
  return rc;
}

int dc_trainer_epoch(dc_trainer *t, dc_epoch_stats *out) {
  if (!t) return dc__errs(DC_ERR_ARG, "trainer_epoch: NULL trainer");
  double t0 = dc__now();
  int epoch = t->epochs_done + 1;
  dc_module_train(t->model, true);
  int rc = dc_loader_set_epoch(t->train, t->epochs_done);
  if (rc != DC_OK) return rc;
  double lr = dc_optim_get_lr(t->opt, 0);
  int64_t K = t->o.num_classes;
  dc_metrics *m = NULL;
  dc_step_info s = {.epoch = epoch, .nbatches = dc_loader_len(t->train), .lr = lr};
  double loss_sum = 0;
  rc = train_batches(t, &s, t0, &K, &m, &loss_sum);
  if (rc == DC_OK && m && t->o.dist.reduce_metrics)
    rc = t->o.dist.reduce_metrics(m, &loss_sum, t->o.dist.ud);
  dc_epoch_stats e = {.epoch = epoch, .lr = lr, .val_loss = NAN, .val_acc = NAN};
  e.train_loss = m && m->count ? loss_sum / (double)m->count : NAN;
  e.train_acc = dc_metrics_accuracy(m);
  dc_metrics_free(m);
  if (rc == DC_OK) rc = validate(t, K, &e);
  return rc == DC_OK ? end_epoch(t, &e, t0, out) : rc;
}

int dc_trainer_fit(dc_trainer *t) {
  if (!t) return dc__errs(DC_ERR_ARG, "trainer_fit: NULL trainer");
  while (t->epochs_done < t->o.epochs && !t->stopped_early) {
    int rc = dc_trainer_epoch(t, NULL);
    if (rc != DC_OK) return rc;
  }
  return DC_OK;
}

/* ---- state for checkpoints ---- */
enum {
  C_EPOCHS,
  C_STEPS,
  C_BEST_EPOCH,
  C_BAD,
  C_STOPPED,
  C_SKIPPED,
  C_RNG_SEED,
  C_RNG_CTR,
  C_LAST_BEST,
  NCOUNTERS
};
enum { HCOLS = 7 };

static int put_tensor(dc_ckpt *c, const char *name, const void *data, dc_shape s, dc_dtype dt) {
  dc_tensor *t = dc_from_data(data, s, dt);
  if (!t) return dc_last_status();
  int rc = dc_ckpt_set_tensor(c, name, t);
  dc_free(t);
  return rc;
}

int dc_trainer_save_state(const dc_trainer *t, dc_ckpt *c) {
  if (!t || !c) return dc__errs(DC_ERR_ARG, "trainer_save_state: NULL argument");
  dc_state_dict *sd = dc_module_state_dict(t->model);
  if (!sd) return dc_last_status();
  for (int i = 0; i < dc_state_dict_size(sd); i++) /* never a checkpoint of diverged weights */
    if (has_nonfinite(dc_state_dict_tensor_at(sd, i))) {
      int e = dc__errs(DC_ERR_STATE,
                       "trainer_save_state: the model's '%s' holds NaN or infinity after %lld "
                       "steps (epoch %d): the weights diverged, so no checkpoint is written and "
                       "the previous one stays; lower the learning rate, clip the gradients "
                       "(train.clip_grad_norm) or find the op with train.detect_anomaly = true",
                       dc_state_dict_key_at(sd, i), (long long)t->steps, t->epochs_done);
      dc_state_dict_free(sd);
      return e;
    }
  int rc = dc_ckpt_add_state_dict(c, "model.", sd);
  dc_state_dict_free(sd);
  if (rc != DC_OK) return rc;
  dc_optim_state st = {0};
  if ((rc = dc_optim_state_dict(t->opt, &st)) != DC_OK) return rc;
  rc = dc_ckpt_add_optim_state(c, "optim.", &st);
  dc_optim_state_free(&st);
  if (rc != DC_OK) return rc;
  if (t->o.sched) {
    if ((rc = dc_sched_state_dict(t->o.sched, &st)) != DC_OK) return rc;
    rc = dc_ckpt_add_optim_state(c, "sched.", &st);
    dc_optim_state_free(&st);
    if (rc != DC_OK) return rc;
  }
  uint64_t ctr = 0, seed = dc_rng_get_state(&ctr);
  int64_t cnt[NCOUNTERS] = {t->epochs_done, t->steps,         t->best_epoch,
                            t->bad_epochs,  t->stopped_early, t->skipped,
                            (int64_t)seed,  (int64_t)ctr,     t->last_is_best};
  if ((rc = put_tensor(c, "trainer.counters", cnt, DC_SHAPE(NCOUNTERS), DC_I64)) != DC_OK)
    return rc;
  if ((rc = put_tensor(c, "trainer.best_value", &t->best_value, DC_SCALAR_SHAPE, DC_F64)) != DC_OK)
    return rc;
  int n = t->hist.n;
  double *h = dc__malloc(sizeof *h * (size_t)(n ? n : 1) * HCOLS);
  if (!h) return DC_ERR_NOMEM;
  for (int i = 0; i < n; i++) {
    const dc_epoch_stats *r = &t->hist.rows[i];
    double row[HCOLS] = {r->epoch,   r->train_loss, r->train_acc, r->val_loss,
                         r->val_acc, r->lr,         r->seconds};
    memcpy(h + i * HCOLS, row, sizeof row);
  }
  rc = put_tensor(c, "trainer.history", h, DC_SHAPE(n, HCOLS), DC_F64);
  dc__free(h);
  return rc;
}

int dc_trainer_load_state(dc_trainer *t, const dc_ckpt *c) {
  if (!t || !c) return dc__errs(DC_ERR_ARG, "trainer_load_state: NULL argument");
  dc_tensor *cnt = dc_ckpt_tensor(c, "trainer.counters");
  dc_tensor *hist = dc_ckpt_tensor(c, "trainer.history");
  dc_tensor *best = dc_ckpt_tensor(c, "trainer.best_value");
  if (!cnt || !hist || !best || cnt->dtype != DC_I64 || dc_numel(cnt) != NCOUNTERS ||
      hist->dtype != DC_F64 || hist->ndim != 2 || hist->shape[1] != HCOLS)
    return dc__errs(DC_ERR_FORMAT,
                    "trainer_load_state: the checkpoint lacks the trainer's state "
                    "(trainer.counters, trainer.history): not written by a deepc run?");
  /* model, optimizer, schedule: each checks everything before changing anything */
  dc_state_dict *sd = dc_ckpt_get_state_dict(c, "model.");
  if (!sd) return dc_last_status();
  int rc = dc_module_load_state_dict(t->model, sd, true, NULL);
  dc_state_dict_free(sd);
  if (rc != DC_OK) return dc__rewrap((dc_status)rc, "checkpoint model: %s", dc_last_error());
  dc_optim_state st;
  if ((rc = dc_ckpt_get_optim_state(c, "optim.", &st)) != DC_OK) return rc;
  rc = dc_optim_load_state_dict(t->opt, &st);
  dc_optim_state_free(&st);
  if (rc != DC_OK) return dc__rewrap((dc_status)rc, "checkpoint optimizer: %s", dc_last_error());
  if (t->o.sched) {
    if ((rc = dc_ckpt_get_optim_state(c, "sched.", &st)) != DC_OK) return rc;
    rc = st.n ? dc_sched_load_state_dict(t->o.sched, &st)
              : dc__errs(DC_ERR_FORMAT,
                         "checkpoint: no schedule state, but a schedule is configured");
    dc_optim_state_free(&st);
    if (rc != DC_OK) return dc__rewrap((dc_status)rc, "checkpoint schedule: %s", dc_last_error());
  }
  int64_t k[NCOUNTERS]; /* explicit host reads: the checkpoint's tensors may be anywhere */
  if ((rc = dc_copy_to_buffer(cnt, k, sizeof k)) != DC_OK) return rc;
  t->epochs_done = (int)k[C_EPOCHS];
  t->steps = k[C_STEPS];
  t->best_epoch = (int)k[C_BEST_EPOCH];
  t->bad_epochs = (int)k[C_BAD];
  t->stopped_early = k[C_STOPPED] != 0;
  t->skipped = k[C_SKIPPED];
  t->last_is_best = k[C_LAST_BEST] != 0;
  dc_rng_set_state((uint64_t)k[C_RNG_SEED], (uint64_t)k[C_RNG_CTR]);
  t->best_value = dc_item(best);
  dc_history_clear(&t->hist);
  size_t hbytes = sizeof(double) * (size_t)dc_numel(hist);
  double *h = dc__malloc(hbytes ? hbytes : 1);
  if (!h) return DC_ERR_NOMEM;
  rc = dc_copy_to_buffer(hist, h, hbytes);
  for (int64_t i = 0; rc == DC_OK && i < hist->shape[0]; i++) {
    const double *r = h + i * HCOLS;
    dc_epoch_stats e = {(int)r[0], r[1], r[2], r[3], r[4], r[5], r[6]};
    rc = dc_history_append(&t->hist, &e);
  }
  dc__free(h);
  if (rc != DC_OK) return rc;
  return dc_loader_set_epoch(t->train, t->epochs_done);
}
