/* The trainer on a small synthetic problem: learning, history and callbacks, evaluation in eval
 * mode under no_grad, early stopping, NaN policy (stop naming the step, or skip), and a resume
 * from saved state that continues bit for bit. Shapes: N samples, F features, K classes. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <deepc/train.h>
#include <math.h>
#include <string.h>

enum { N = 256, F = 8, K = 3 };

/* Three Gaussian blobs in F dimensions: class k centred at 2 * e_k. */
static dc_dataset *blobs(uint64_t seed) {
  dc_manual_seed(seed);
  dc_tensor *x = dc_randn(DC_SHAPE(N, F), DC_F32);
  int64_t y[N];
  float *px = dc_data(x);
  for (int i = 0; i < N; i++) {
    y[i] = i % K;
    px[i * F + y[i]] += 2.0f;
  }
  dc_tensor *yt = dc_from_data(y, DC_SHAPE(N), DC_I64);
  dc_dataset *ds = dc_tensor_dataset(x, yt);
  dc_free(x);
  dc_free(yt);
  cr_assert_not_null(ds, "%s", dc_last_error());
  return ds;
}

typedef struct rig {
  dc_dataset *ds;
  dc_loader *tl, *vl;
  dc_module *m;
  dc_optim *opt;
  dc_named_tensor *ps;
  int np;
} rig;

static rig make_rig(double lr, double dropout) {
  rig r = {0};
  r.ds = blobs(1);
  r.tl = dc_loader_new(r.ds, .batch_size = 32, .shuffle = true, .seed = 5);
  r.vl = dc_loader_new(r.ds, .batch_size = 100, .seed = 6);
  dc_manual_seed(3);
  r.m = dc_nn_sequential(dc_nn_linear(F, 16), dc_nn_relu(), dc_nn_dropout(dropout),
                         dc_nn_linear(16, K));
  cr_assert_not_null(r.m, "%s", dc_last_error());
  r.ps = dc_module_trainable_parameters(r.m, &r.np);
  dc_tensor *arr[8];
  for (int i = 0; i < r.np; i++) arr[i] = r.ps[i].tensor;
  r.opt = dc_optim_sgd(arr, r.np, lr, 0.9);
  cr_assert_not_null(r.opt, "%s", dc_last_error());
  return r;
}

static void free_rig(rig *r) {
  dc_optim_free(r->opt);
  dc_named_tensors_free(r->ps, r->np);
  dc_module_free(r->m);
  dc_loader_free(r->tl);
  dc_loader_free(r->vl);
  dc_dataset_free(r->ds);
}

typedef struct counts {
  int steps, epochs;
  int64_t last_batch;
} counts;

static int count_step(dc_trainer *t, const dc_step_info *s, void *ud) {
  (void)t;
  counts *c = ud;
  c->steps++;
  c->last_batch = s->batch;
  cr_assert(s->batch >= 1 && s->batch <= s->nbatches);
  return DC_OK;
}
static int count_epoch(dc_trainer *t, const dc_epoch_stats *e, void *ud) {
  counts *c = ud;
  c->epochs++;
  cr_assert_eq(e->epoch, dc_trainer_epochs_done(t));
  return DC_OK;
}

Test(trainer, learns_with_history_and_callbacks) {
  rig r = make_rig(0.05, 0.2);
  counts c = {0};
  dc_trainer *t = dc_trainer_new(
      r.m, r.opt, r.tl,
      (dc_trainer_opts){
          .epochs = 6, .val = r.vl, .on_step = count_step, .on_epoch = count_epoch, .cb_ud = &c});
  cr_assert_not_null(t, "%s", dc_last_error());
  cr_assert_eq(dc_trainer_fit(t), DC_OK, "%s", dc_last_error());
  const dc_history *h = dc_trainer_history(t);
  cr_assert_eq(h->n, 6);
  cr_assert_eq(c.epochs, 6);
  cr_assert_eq(c.steps, 6 * 8); /* 256 / 32 */
  cr_assert_eq(dc_trainer_steps_done(t), 48);
  cr_assert_lt(h->rows[5].train_loss, h->rows[0].train_loss);
  cr_assert_gt(h->rows[5].val_acc, 0.8, "val acc %g", h->rows[5].val_acc);
  cr_assert_float_eq(h->rows[0].lr, 0.05, 1e-12);
  cr_assert(h->rows[0].seconds >= 0);
  /* evaluation: eval mode (dropout off), no graph, mode restored, deterministic */
  dc_metrics *a = dc_metrics_new(K, 2), *b = dc_metrics_new(K, 2);
  cr_assert(dc_module_is_training(r.m));
  int64_t live = dc_live_tensors();
  cr_assert_eq(dc_evaluate(r.m, r.vl, NULL, NULL, a), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_evaluate(r.m, r.vl, NULL, NULL, b), DC_OK);
  cr_assert_eq(dc_live_tensors(), live, "evaluate leaks tensors");
  cr_assert(dc_module_is_training(r.m));
  cr_assert_eq(a->count, N);
  cr_assert_eq(memcmp(a->confusion, b->confusion, sizeof(int64_t) * K * K), 0);
  cr_assert_float_eq(a->loss_sum, b->loss_sum, 0);
  cr_assert_float_eq(dc_metrics_accuracy(a), h->rows[5].val_acc, 1e-12);
  dc_metrics_free(a);
  dc_metrics_free(b);
  dc_trainer_free(t);
  free_rig(&r);
}

Test(trainer, early_stopping) {
  rig r = make_rig(0.0, 0.0); /* lr 0: nothing improves after the first epoch */
  dc_trainer *t =
      dc_trainer_new(r.m, r.opt, r.tl, (dc_trainer_opts){.epochs = 20, .val = r.vl, .patience = 3});
  cr_assert_eq(dc_trainer_fit(t), DC_OK, "%s", dc_last_error());
  cr_assert(dc_trainer_stopped_early(t));
  cr_assert_eq(dc_trainer_epochs_done(t), 4);
  cr_assert_eq(dc_trainer_best_epoch(t), 1);
  dc_trainer_free(t);
  free_rig(&r);
}

/* monitor = train loss: stops without a validation set once the training loss stops falling by
 * min_delta (lr 0: from the first epoch on), and keeps going while it falls. */
Test(trainer, early_stopping_on_train_loss) {
  rig r = make_rig(0.0, 0.0);
  dc_trainer_opts o = {
      .epochs = 20, .patience = 2, .min_delta = 1e-6, .monitor = DC_MONITOR_TRAIN_LOSS};
  dc_trainer *t = dc_trainer_new(r.m, r.opt, r.tl, o);
  cr_assert_eq(dc_trainer_fit(t), DC_OK, "%s", dc_last_error());
  cr_assert(dc_trainer_stopped_early(t));
  cr_assert_eq(dc_trainer_epochs_done(t), 3);
  cr_assert_eq(dc_trainer_best_epoch(t), 1);
  dc_trainer_free(t);
  free_rig(&r);
  r = make_rig(0.05, 0.0); /* learning: the loss falls by more than 1e-6 each epoch */
  o.epochs = 4;
  t = dc_trainer_new(r.m, r.opt, r.tl, o);
  cr_assert_eq(dc_trainer_fit(t), DC_OK, "%s", dc_last_error());
  cr_assert(!dc_trainer_stopped_early(t));
  cr_assert_eq(dc_trainer_epochs_done(t), 4);
  dc_trainer_free(t);
  free_rig(&r);
}

static dc_tensor *nan_after_3(dc_tensor *out, dc_tensor *target, void *ud) {
  int *calls = ud;
  dc_tensor *l = dc_cross_entropy(out, target);
  if (++*calls > 3) return dc_mul_scalar(l, NAN);
  return l;
}

Test(trainer, nan_stop_and_skip) {
  rig r = make_rig(0.05, 0.0);
  int calls = 0;
  dc_trainer *t = dc_trainer_new(
      r.m, r.opt, r.tl, (dc_trainer_opts){.epochs = 2, .loss = nan_after_3, .loss_ud = &calls});
  cr_assert_neq(dc_trainer_fit(t), DC_OK);
  cr_assert(strstr(dc_last_error(), "epoch 1, batch 4 (step 4)"), "%s", dc_last_error());
  dc_trainer_free(t);
  calls = 0;
  t = dc_trainer_new(
      r.m, r.opt, r.tl,
      (dc_trainer_opts){
          .epochs = 2, .loss = nan_after_3, .loss_ud = &calls, .on_nan = DC_NAN_SKIP});
  cr_assert_eq(dc_trainer_fit(t), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_trainer_skipped_steps(t), 16 - 3);
  cr_assert_eq(dc_trainer_steps_done(t), 3);
  dc_trainer_free(t);
  free_rig(&r);
}

/* Weights of the model as one float vector. */
static void weights(dc_module *m, float *out, int max) {
  int n, at = 0;
  dc_named_tensor *ps = dc_module_parameters(m, &n);
  for (int i = 0; i < n; i++) {
    int64_t k = dc_numel(ps[i].tensor);
    cr_assert_leq(at + k, max);
    dc_copy_to_buffer(ps[i].tensor, out + at, sizeof(float) * (size_t)k);
    at += (int)k;
  }
  dc_named_tensors_free(ps, n);
}

Test(trainer, resume_is_bit_identical) {
  enum { W = 8 * 16 + 16 + 16 * 3 + 3 };
  float full[W], resumed[W];
  /* uninterrupted: 4 epochs with dropout (RNG) and a step schedule */
  rig a = make_rig(0.05, 0.3);
  dc_sched *sa = dc_sched_step_lr(a.opt, 2, 0.5);
  dc_trainer *ta =
      dc_trainer_new(a.m, a.opt, a.tl, (dc_trainer_opts){.epochs = 4, .val = a.vl, .sched = sa});
  cr_assert_eq(dc_trainer_fit(ta), DC_OK, "%s", dc_last_error());
  weights(a.m, full, W);
  /* interrupted after 2 epochs, state saved ... */
  rig b = make_rig(0.05, 0.3);
  dc_sched *sb = dc_sched_step_lr(b.opt, 2, 0.5);
  dc_trainer *tb =
      dc_trainer_new(b.m, b.opt, b.tl, (dc_trainer_opts){.epochs = 4, .val = b.vl, .sched = sb});
  cr_assert_eq(dc_trainer_epoch(tb, NULL), DC_OK);
  cr_assert_eq(dc_trainer_epoch(tb, NULL), DC_OK);
  dc_ckpt *ck = dc_ckpt_new();
  cr_assert_eq(dc_trainer_save_state(tb, ck), DC_OK, "%s", dc_last_error());
  dc_trainer_free(tb);
  dc_sched_free(sb);
  free_rig(&b);
  /* ... then a fresh process-like setup (other RNG draws in between) resumes */
  dc_manual_seed(999);
  dc_free(dc_rand(DC_SHAPE(10), DC_F32));
  rig c = make_rig(0.05, 0.3);
  dc_sched *sc = dc_sched_step_lr(c.opt, 2, 0.5);
  dc_trainer *tc =
      dc_trainer_new(c.m, c.opt, c.tl, (dc_trainer_opts){.epochs = 4, .val = c.vl, .sched = sc});
  cr_assert_eq(dc_trainer_load_state(tc, ck), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_trainer_epochs_done(tc), 2);
  cr_assert_eq(dc_trainer_fit(tc), DC_OK, "%s", dc_last_error());
  weights(c.m, resumed, W);
  cr_assert_eq(memcmp(full, resumed, sizeof full), 0, "resumed weights differ");
  const dc_history *ha = dc_trainer_history(ta), *hc = dc_trainer_history(tc);
  cr_assert_eq(hc->n, 4);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(ha->rows[i].train_loss, hc->rows[i].train_loss, "epoch %d", i + 1);
    cr_assert_eq(ha->rows[i].val_acc, hc->rows[i].val_acc);
    cr_assert_eq(ha->rows[i].lr, hc->rows[i].lr);
  }
  cr_assert_float_eq(hc->rows[3].lr, 0.025, 1e-12);
  dc_ckpt_free(ck);
  dc_trainer_free(tc);
  dc_sched_free(sc);
  free_rig(&c);
  dc_trainer_free(ta);
  dc_sched_free(sa);
  free_rig(&a);
}

Test(trainer, bad_arguments) {
  cr_assert_null(dc_trainer_new(NULL, NULL, NULL, (dc_trainer_opts){0}));
  cr_assert(strstr(dc_last_error(), "model"));
  dc_ckpt *ck = dc_ckpt_new();
  rig r = make_rig(0.05, 0);
  dc_trainer *t = dc_trainer_new(r.m, r.opt, r.tl, (dc_trainer_opts){.epochs = 1});
  cr_assert_neq(dc_trainer_load_state(t, ck), DC_OK);
  cr_assert(strstr(dc_last_error(), "trainer.counters"), "%s", dc_last_error());
  dc_trainer_free(t);
  free_rig(&r);
  dc_ckpt_free(ck);
}
