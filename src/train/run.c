/* A whole training run driven by a configuration: seeds, data, model, optimizer and schedule
 * (build.c), the trainer with progress display, and after each epoch metrics.csv, TensorBoard
 * scalars, curves and atomic checkpoints (last.ckpt, best.ckpt); at the end the test set and
 * report.md. Resuming reloads last.ckpt and continues bit for bit. */
#include "train-impl.h"

#include <deepc/dist.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RUN_STOP = 100 }; /* a callback's request to stop (not an error) */

/* Everything the callbacks need. */
typedef struct run_ctx {
  const dc_config *cfg;
  const dc__run_spec *spec; /* cfg's typed values */
  const dc__data *data;
  const dc_run_opts *o;
  char dir[1024];
  dc__progress prog;
  dc_tb_writer *tb;
  int64_t batch_size;
  int epochs_this_call;
  char shape[64];
  bool writer;     /* rank 0 of a data-parallel job (or the only process): writes the outputs */
  int64_t skipped; /* skipped steps already reported (train.on_nan = skip) */
} run_ctx;

static void path_in(char *buf, size_t n, const run_ctx *r, const char *name) {
  snprintf(buf, n, "%s/%s", r->dir, name);
}

static int on_step(dc_trainer *t, const dc_step_info *s, void *ud) {
  (void)t;
  run_ctx *r = ud;
  dc_step_info job = *s; /* data-parallel: every rank has as many samples as rank 0 */
  job.samples *= dc_dist_size();
  dc__progress_step(&r->prog, &job, r->batch_size);
  if (r->o->interrupt && *r->o->interrupt)
    return dc__errs(DC_ERR_STATE,
                    "interrupted at epoch %d, batch %lld; the checkpoint of epoch %d is in "
                    "%s/last.ckpt (continue with --resume)",
                    s->epoch, (long long)s->batch, s->epoch - 1, r->dir);
  return DC_OK;
}

/* The checkpoint of the trainer's current state with the run's metadata. */
static dc_ckpt *make_ckpt(const dc_trainer *t, const run_ctx *r) {
  dc_ckpt *c = dc_ckpt_new();
  if (!c) return NULL;
  char *cfg = dc_config_to_string(r->cfg, false);
  size_t len = 0;
  for (int64_t k = 0; k < r->data->num_classes; k++) len += strlen(r->data->class_names[k]) + 1;
  char *names = dc__malloc(len + 1);
  char ep[32], best[32];
  snprintf(ep, sizeof ep, "%d", dc_trainer_epochs_done(t));
  snprintf(best, sizeof best, "%d", dc_trainer_best_epoch(t));
  int rc = cfg && names ? DC_OK : DC_ERR_NOMEM;
  if (names) {
    names[0] = 0;
    for (int64_t k = 0; k < r->data->num_classes; k++)
      strcat(strcat(names, r->data->class_names[k]), k + 1 < r->data->num_classes ? "\n" : "");
  }
  if (rc == DC_OK) rc = dc_ckpt_set_meta(c, "format", "deepc-checkpoint");
  if (rc == DC_OK) rc = dc_ckpt_set_meta(c, "deepc_version", DEEPC_VERSION);
  if (rc == DC_OK) rc = dc_ckpt_set_meta(c, "config", cfg);
  if (rc == DC_OK) rc = dc_ckpt_set_meta(c, "classes", names);
  if (rc == DC_OK) rc = dc_ckpt_set_meta(c, "input_shape", r->shape);
  if (rc == DC_OK) rc = dc_ckpt_set_meta(c, "epoch", ep);
  if (rc == DC_OK) rc = dc_ckpt_set_meta(c, "best_epoch", best);
  if (rc == DC_OK) rc = dc_trainer_save_state(t, c);
  free(cfg);
  dc__free(names);
  if (rc != DC_OK) {
    dc_ckpt_free(c);
    return NULL;
  }
  return c;
}

/* metrics.csv, curves.png and curves.svg: all from the history, so written after the
 * checkpoints (a run killed in between rewrites them when it resumes) */
static int write_history_files(const run_ctx *r, const dc_history *h) {
  char csv[1100];
  path_in(csv, sizeof csv, r, "metrics.csv");
  int rc = dc_history_write_csv(h, csv);
  if (rc != DC_OK) return rc;
  char png[1100], svg[1100];
  path_in(png, sizeof png, r, "curves.png");
  path_in(svg, sizeof svg, r, "curves.svg");
  const dc_history *runs[1] = {h};
  char title[256];
  const char *name = dc__config_name(r->cfg), *slash = strrchr(name, '/');
  snprintf(title, sizeof title, "%s", slash ? slash + 1 : name);
  char *dot = strrchr(title, '.');
  if (dot && dot != title) *dot = 0;
  rc = dc_plot_curves(png, runs, NULL, 1, title);
  if (rc == DC_OK) rc = dc_plot_curves(svg, runs, NULL, 1, title);
  return rc;
}

static int on_epoch(dc_trainer *t, const dc_epoch_stats *e, void *ud) {
  run_ctx *r = ud;
  dc__progress_epoch(&r->prog, e, dc_trainer_is_best(t));
  int64_t skipped = dc_trainer_skipped_steps(t);
  if (skipped > r->skipped && r->o->progress != DC_PROGRESS_QUIET) {
    fprintf(r->o->log ? r->o->log : stderr,
            "epoch %d: %lld steps skipped (non-finite loss or gradients; %lld in all)\n", e->epoch,
            (long long)(skipped - r->skipped), (long long)skipped);
    r->skipped = skipped;
  }
  int rc = DC_OK;
  if (r->tb) {
    const char *tags[] = {"loss/train",   "loss/val", "accuracy/train",
                          "accuracy/val", "lr",       "epoch_seconds"};
    double v[] = {e->train_loss, e->val_loss, e->train_acc, e->val_acc, e->lr, e->seconds};
    for (int i = 0; i < 6 && rc == DC_OK; i++)
      if (!isnan(v[i])) rc = dc_tb_add_scalar(r->tb, tags[i], e->epoch, v[i]);
    if (rc == DC_OK) rc = dc_tb_flush(r->tb);
    if (rc != DC_OK) return rc;
  }
  dc_ckpt *c = r->writer ? make_ckpt(t, r) : NULL;
  if (r->writer && !c) return dc_last_status();
  /* best.ckpt before last.ckpt: a run killed between the two redoes the epoch on --resume and
   * writes both again, so best.ckpt is never older than last.ckpt says it should be */
  char path[1100];
  if (c && dc_trainer_is_best(t)) {
    path_in(path, sizeof path, r, "best.ckpt");
    rc = dc_ckpt_save(c, path);
  }
  path_in(path, sizeof path, r, "last.ckpt");
  if (rc == DC_OK && c) rc = dc_ckpt_save(c, path);
  dc_ckpt_free(c);
  if (rc != DC_OK) return rc;
  if (r->writer && (rc = write_history_files(r, dc_trainer_history(t))) != DC_OK) return rc;
  r->epochs_this_call++;
  if (r->o->stop_after_epochs > 0 && r->epochs_this_call >= r->o->stop_after_epochs)
    return RUN_STOP;
  return DC_OK;
}

/* runs/<config file stem> */
static void default_dir(const dc_config *c, char *buf, size_t n) {
  const char *name = dc__config_name(c);
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  const char *dot = strrchr(base, '.');
  int len = dot && dot != base ? (int)(dot - base) : (int)strlen(base);
  snprintf(buf, n, "runs/%.*s", len, base);
}

static void print_summary(FILE *f, const run_ctx *r, const dc_run_result *res,
                          const dc_metrics *test) {
  bool best_w = r->spec->train.restore_best && res->best_epoch > 0;
  fprintf(f, "\ntest accuracy: %.2f%% (loss %.4f) with the weights of epoch %d",
          100 * res->test_acc, res->test_loss, best_w ? res->best_epoch : res->epochs_done);
  if (!isnan(res->best_val_acc))
    fprintf(f, " (validation accuracy %.2f%% at the best epoch %d, by %s)", 100 * res->best_val_acc,
            res->best_epoch, dc__spec_choice(DC__K_train_monitor, (int)r->spec->train.monitor));
  fprintf(f, "\n\n");
  dc_metrics_print_classes(f, test, (const char *const *)r->data->class_names, false);
  fprintf(f, "\nconfusion matrix (rows: true class, columns: predicted class)\n");
  dc_metrics_print_confusion(f, test, (const char *const *)r->data->class_names, false);
  fprintf(f, "\ncurves:      %s/curves.png (and curves.svg)\n", r->dir);
  fprintf(f, "report:      %s/report.md\n", r->dir);
  fprintf(f, "metrics:     %s/metrics.csv, TensorBoard events in %s/tb\n", r->dir, r->dir);
  fprintf(f, "checkpoints: %s/best.ckpt, %s/last.ckpt (deepc eval %s/best.ckpt)\n", r->dir, r->dir,
          r->dir);
  fflush(f);
}

/* The last and best rows of the history into res. */
static void fill_result(dc_run_result *res, const dc_trainer *t) {
  const dc_history *h = dc_trainer_history(t);
  res->epochs_done = dc_trainer_epochs_done(t);
  res->best_epoch = dc_trainer_best_epoch(t);
  res->stopped_early = dc_trainer_stopped_early(t);
  res->train_loss = res->train_acc = res->val_loss = res->val_acc = NAN;
  res->best_val_acc = res->best_val_loss = NAN;
  if (h->n) {
    const dc_epoch_stats *e = &h->rows[h->n - 1];
    res->train_loss = e->train_loss, res->train_acc = e->train_acc;
    res->val_loss = e->val_loss, res->val_acc = e->val_acc;
  }
  for (int i = 0; i < h->n; i++)
    if (h->rows[i].epoch == res->best_epoch)
      res->best_val_acc = h->rows[i].val_acc, res->best_val_loss = h->rows[i].val_loss;
}

/* Loads the model weights of a checkpoint file. */
static int load_weights(dc_module *m, const char *path) {
  dc_ckpt *c = dc_ckpt_load(path);
  if (!c) return dc_last_status();
  dc_state_dict *sd = dc_ckpt_get_state_dict(c, "model.");
  int rc = sd ? dc_module_load_state_dict(m, sd, true, NULL) : (int)dc_last_status();
  dc_state_dict_free(sd);
  dc_ckpt_free(c);
  return rc;
}

/* Training batches in flight per loader worker: a ring of about 16 MiB of float32 samples,
 * between PyTorch's 2 and 32 per worker. In a deep ring the worker runs ahead in bursts (loader.c
 * wakes it once half the ring is free) instead of being woken once per step, each wake-up a
 * context switch that can preempt the training thread; Fashion-MNIST's 200 KB batches get 32. */
static int train_prefetch(dc_shape sample, int64_t bs, int workers) {
  int64_t batch = 4 * bs * dc__shape_numel(&sample);
  int64_t p = ((int64_t)16 << 20) / ((batch > 0 ? batch : 1) * (workers > 0 ? workers : 1));
  return p < 2 ? 2 : p > 32 ? 32 : (int)p;
}

/* In a data-parallel job each rank loads its shard (dist.h): equal shards for training, uneven
 * ones (no sample twice) for evaluation, whose metrics are summed over the ranks. Evaluation
 * loaders keep the default 2 batches per worker (prefetch 0). */
static dc_loader *make_loader(dc_dataset *ds, int64_t bs, bool train, int workers, int prefetch,
                              uint64_t seed, dc_device dev) {
  if (!ds) return NULL;
  int R = dc_dist_size(), rank = dc_dist_rank();
  int64_t len = R > 1 ? dc_dist_shard_len(dc_dataset_len(ds), R, rank, !train) : dc_dataset_len(ds);
  /* a last batch of one sample cannot be batch-normalised in training mode */
  bool drop_last = train && len > bs && len % bs == 1;
  return dc_loader_new(ds, .batch_size = bs, .shuffle = train, .drop_last = drop_last,
                       .num_workers = workers, .prefetch = prefetch, .seed = seed,
                       .num_replicas = R, .rank = rank, .shard_uneven = !train, .device = dev);
}

/* Checks that a resumed configuration matches the checkpoint's; returns a warning or "". */
static void resume_check(const dc_config *c, const dc_ckpt *ck, char *warn, size_t n) {
  warn[0] = 0;
  const char *text = dc_ckpt_meta(ck, "config");
  dc_config *old = text ? dc_config_parse(text, "checkpoint") : NULL;
  if (!old) {
    dc_clear_error();
    return;
  }
  char diff[1024];
  dc__config_diff(old, c, diff, sizeof diff);
  dc_config_free(old);
  if (diff[0]) snprintf(warn, n, "%s", diff);
}

/* What dc_run builds, released by run_free. */
typedef struct run_parts {
  dc_device dev;
  dc_ckpt *resume; /* --resume: last.ckpt */
  dc__data data;
  dc__loss_cfg loss;
  dc_module *model;
  dc_optim *opt;
  dc_dist_ddp *ddp;
  dc_loader *tl, *vl, *te; /* training, validation (NULL: the test set), test */
  dc_sched *sched;
  dc_trainer *t;
  dc_metrics *test;
  char *repr;
  bool anomaly_prev, anomaly_set; /* train.detect_anomaly, restored at the end */
} run_parts;

/* Options, output folder and device: all checked before any work. */
static int run_begin(dc_run_opts *o, run_ctx *r, dc_run_result *res, dc_device *dev) {
  if (!r->writer) { /* data-parallel: rank 0 alone logs and writes */
    o->progress = DC_PROGRESS_QUIET;
    o->no_summary = true;
  }
  if (o->out_dir)
    snprintf(r->dir, sizeof r->dir, "%s", o->out_dir);
  else
    default_dir(r->cfg, r->dir, sizeof r->dir);
  size_t dl = strlen(r->dir);
  while (dl > 1 && r->dir[dl - 1] == '/') r->dir[--dl] = 0;
  snprintf(res->out_dir, sizeof res->out_dir, "%s", r->dir);
  int rc = dc__run_device(r->spec, o->device, dev);
  if (rc != DC_OK) return rc;
  rc = dc__mkdirs(r->dir);
  if (rc != DC_OK) return rc;
  if (r->writer) dc__remove_stale_temps(r->dir);
  return DC_OK;
}

/* --resume: the checkpoint to continue from (*ck stays NULL otherwise). */
static int open_resume(const run_ctx *r, dc_ckpt **ck) {
  *ck = NULL;
  if (!r->o->resume) return DC_OK;
  char path[1100];
  path_in(path, sizeof path, r, "last.ckpt");
  if (!dc__path_exists(path))
    return dc__errs(DC_ERR_IO, "--resume: %s does not exist (nothing to resume in %s)", path,
                    r->dir);
  return (*ck = dc_ckpt_load(path)) ? DC_OK : dc_last_status();
}

/* The model on its device (the optimizer and its state are built there), the optimizer, and
 * the data-parallel wrapper. */
static int build_model_optim(const run_ctx *r, run_parts *p, int nranks) {
  if (r->batch_size % nranks != 0)
    return dc__errs(DC_ERR_ARG,
                    "train.batch_size = %lld is the batch of the whole job and must be "
                    "a multiple of its %d ranks (each rank takes batch_size / %d)",
                    (long long)r->batch_size, nranks, nranks);
  if (!(p->model = dc__build_model(r->spec, &p->data))) return dc__status_or_nomem();
  int rc;
  if (p->dev != DC_CPU && (rc = dc_module_to(p->model, p->dev)) != DC_OK) return rc;
  if (nranks > 1 && r->spec->train.sync_batchnorm &&
      (rc = dc_dist_convert_sync_batchnorm(p->model)) != DC_OK)
    return rc;
  if (!(p->opt = dc__build_optim(r->spec, p->model))) return dc__status_or_nomem();
  if (nranks > 1 && !(p->ddp = dc_dist_ddp_new(p->model))) return dc__status_or_nomem();
  return DC_OK;
}

/* Training (this rank's share of the batch), test and validation loaders. */
static int build_loaders(const run_ctx *r, run_parts *p, int nranks) {
  const dc__run_spec *sp = r->spec;
  uint64_t seed = (uint64_t)sp->train.seed;
  int64_t tbs = r->batch_size / nranks, ebs = sp->train.eval_batch_size;
  int workers = (int)sp->data.workers;
  int prefetch = train_prefetch(p->data.sample_shape, tbs, workers);
  dc__data *d = &p->data;
  if (!(p->tl =
            make_loader(d->train, tbs, true, workers, prefetch, dc__seed_stream(seed, 1), p->dev)))
    return dc__status_or_nomem();
  if (!(p->te = make_loader(d->test, ebs, false, workers, 0, dc__seed_stream(seed, 3), p->dev)))
    return dc__status_or_nomem();
  if (d->val &&
      !(p->vl = make_loader(d->val, ebs, false, workers, 0, dc__seed_stream(seed, 2), p->dev)))
    return dc__status_or_nomem();
  return DC_OK;
}

/* The schedule and the trainer with the run's callbacks; anomaly mode as configured. */
static int build_trainer(run_ctx *r, run_parts *p) {
  const dc__run_spec *sp = r->spec;
  dc_sched_when when;
  int rc = dc__build_sched(sp, p->opt, dc_loader_len(p->tl), &p->sched, &when);
  if (rc != DC_OK) return rc;
  dc__monitor mon = sp->train.monitor;
  dc_trainer_opts to = {
      .epochs = (int)sp->train.epochs,
      .loss = dc__loss_call,
      .loss_ud = &p->loss,
      .val = p->vl ? p->vl : p->te, /* val_split = 0: validate on the test set */
      .sched = p->sched,
      .sched_when = when,
      .num_classes = p->data.num_classes,
      .clip_grad_norm = sp->train.clip_grad_norm,
      .on_nan = sp->train.on_nan == DC__NAN_SKIP ? DC_NAN_SKIP : DC_NAN_STOP,
      .autocast = sp->train.amp == DC__AMP_BF16 ? DC_BF16 : DC_F32,
      .patience = (int)sp->train.early_stop,
      .min_delta = sp->train.min_delta,
      .monitor = mon == DC__MON_VAL_LOSS     ? DC_MONITOR_VAL_LOSS
                 : mon == DC__MON_TRAIN_LOSS ? DC_MONITOR_TRAIN_LOSS
                                             : DC_MONITOR_VAL_ACC,
      .on_step = on_step,
      .on_epoch = on_epoch,
      .cb_ud = r,
      .dist = dc_dist_trainer_hooks(p->ddp),
  };
  if (!(p->t = dc_trainer_new(p->model, p->opt, p->tl, to))) return dc__status_or_nomem();
  p->anomaly_prev = dc_set_detect_anomaly(sp->train.detect_anomaly);
  p->anomaly_set = true;
  return DC_OK;
}

/* --resume: warns about changed settings and loads the training state. */
static int restore_resume(run_ctx *r, run_parts *p, FILE *log) {
  char warn[1100];
  resume_check(r->cfg, p->resume, warn, sizeof warn);
  if (warn[0] && r->o->progress != DC_PROGRESS_QUIET)
    fprintf(log, "warning: --resume with settings that differ from the checkpoint's: %s\n", warn);
  int rc = dc_trainer_load_state(p->t, p->resume);
  if (rc != DC_OK)
    return dc__rewrap((dc_status)rc, "--resume from %s/last.ckpt: %s", r->dir, dc_last_error());
  r->skipped = dc_trainer_skipped_steps(p->t);
  return DC_OK;
}

/* config.ini, the TensorBoard writer (rank 0) and the model's text for the report. */
static int open_outputs(run_ctx *r, run_parts *p) {
  char path[1100];
  char *cfg_text = r->writer ? dc_config_to_string(r->cfg, false) : NULL;
  if (r->writer && !cfg_text) return dc__status_or_nomem();
  path_in(path, sizeof path, r, "config.ini");
  FILE *cf = cfg_text ? fopen(path, "w") : NULL;
  if (cf) fputs(cfg_text, cf), fclose(cf);
  free(cfg_text);
  path_in(path, sizeof path, r, "tb");
  if (r->writer && !(r->tb = dc_tb_open(path))) return dc__status_or_nomem();
  p->repr = dc_module_repr(p->model);
  return DC_OK;
}

/* The progress display, and the line that says what is trained where. */
static void start_progress(run_ctx *r, const run_parts *p, FILE *log) {
  int epochs = (int)r->spec->train.epochs;
  dc__progress_init(&r->prog, log, r->o->progress, epochs);
  if (r->o->progress == DC_PROGRESS_QUIET) return;
  const dc__data *d = &p->data;
  char cnt[32];
  fprintf(log, "%s %s: %s parameters, %lld train / %lld %s / %lld test samples, %d epochs -> %s\n",
          p->resume ? "resuming" : "training", dc__config_name(r->cfg),
          dc_format_count(dc_module_num_parameters(p->model, false), cnt, sizeof cnt),
          (long long)dc_dataset_len(d->train),
          (long long)(p->vl ? dc_dataset_len(d->val) : dc_dataset_len(d->test)),
          p->vl ? "validation" : "test (as validation)", (long long)dc_dataset_len(d->test), epochs,
          r->dir);
  if (r->o->show_model) {
    dc_model_summary *ms = dc_summary(p->model, d->sample_shape);
    if (ms) dc_summary_print(log, ms);
    dc_summary_free(ms);
  }
  if (p->resume) fprintf(log, "resuming after epoch %d\n", dc_trainer_epochs_done(p->t));
  fflush(log);
}

/* The test set, with the best epoch's weights when asked (data-parallel: summed over ranks). */
static int score_test(const run_ctx *r, run_parts *p, dc_run_result *res, int nranks) {
  char path[1100];
  path_in(path, sizeof path, r, "best.ckpt");
  int rc;
  if (nranks > 1 && (rc = dc_dist_barrier()) != DC_OK) return rc; /* rank 0's files are written */
  if (r->spec->train.restore_best && res->best_epoch > 0 && res->best_epoch != res->epochs_done &&
      dc__path_exists(path) && (rc = load_weights(p->model, path)) != DC_OK)
    return rc;
  if (!(p->test = dc_metrics_new(p->data.num_classes, 5))) return dc__status_or_nomem();
  if ((rc = dc_evaluate(p->model, p->te, dc__loss_call, &p->loss, p->test)) != DC_OK) return rc;
  if ((rc = dc_dist_metrics_all_reduce(p->test, NULL)) != DC_OK) return rc;
  res->test_loss = dc_metrics_mean_loss(p->test);
  res->test_acc = dc_metrics_accuracy(p->test);
  return DC_OK;
}

/* metrics.csv, the curves and report.md (rank 0), then the summary on stdout. */
static int write_final(const run_ctx *r, const run_parts *p, const dc_run_result *res) {
  int rc = DC_OK;
  if (r->writer && (rc = write_history_files(r, dc_trainer_history(p->t))) != DC_OK) return rc;
  char path[1100];
  path_in(path, sizeof path, r, "report.md");
  rc = r->writer ? dc__write_report(path, r->cfg, &p->data, dc_trainer_history(p->t), res, p->test,
                                    p->repr, dc_module_num_parameters(p->model, false))
                 : DC_OK;
  if (rc != DC_OK) return rc;
  if (!r->o->no_summary) print_summary(r->o->out ? r->o->out : stdout, r, res, p->test);
  return DC_OK;
}

/* Builds everything on the loaded data, trains, and scores the test set. */
static int run_train(run_ctx *r, run_parts *p, dc_run_result *res, double t_start) {
  int nranks = dc_dist_size();
  FILE *log = r->o->log ? r->o->log : stderr;
  r->data = &p->data;
  dc_shape_str(p->data.sample_shape, r->shape, sizeof r->shape);
  dc__build_loss(r->spec, &p->loss);
  r->batch_size = r->spec->train.batch_size; /* >= 1, as eval_batch_size (spec.h) */
  int rc = build_model_optim(r, p, nranks);
  if (rc == DC_OK) rc = build_loaders(r, p, nranks);
  if (rc == DC_OK) rc = build_trainer(r, p);
  if (rc == DC_OK && p->resume) rc = restore_resume(r, p, log);
  if (rc == DC_OK) rc = open_outputs(r, p);
  if (rc != DC_OK) return rc;
  start_progress(r, p, log);
  rc = dc_trainer_fit(p->t);
  if (rc != DC_OK && rc != RUN_STOP) return rc;
  fill_result(res, p->t);
  if (rc == RUN_STOP) { /* --stop-after: no test set */
    res->test_loss = res->test_acc = NAN;
    res->seconds = dc__now() - t_start;
    if (r->o->progress != DC_PROGRESS_QUIET)
      fprintf(log, "stopped after epoch %d as asked; continue with --resume\n", res->epochs_done);
    return DC_OK;
  }
  if ((rc = score_test(r, p, res, nranks)) != DC_OK) return rc;
  res->seconds = dc__now() - t_start;
  return write_final(r, p, res);
}

static void run_free(run_ctx *r, run_parts *p) {
  if (p->anomaly_set) dc_set_detect_anomaly(p->anomaly_prev);
  free(p->repr);
  dc_metrics_free(p->test);
  dc_tb_close(r->tb);
  dc_trainer_free(p->t);
  dc_dist_ddp_free(p->ddp);
  dc_sched_free(p->sched);
  dc_loader_free(p->tl);
  dc_loader_free(p->vl);
  dc_loader_free(p->te);
  dc_optim_free(p->opt);
  dc_module_free(p->model);
  dc__data_free(&p->data);
  dc_ckpt_free(p->resume);
}

int dc_run(const dc_config *c, const dc_run_opts *opts, dc_run_result *res_out) {
  if (!c) return dc__errs(DC_ERR_ARG, "run: NULL configuration");
  dc_run_opts o = opts ? *opts : (dc_run_opts){0};
  dc_run_result res = {0};
  double t_start = dc__now();
  const dc__run_spec *sp = dc__config_spec(c);
  run_ctx r = {.cfg = c, .spec = sp, .o = &o, .writer = dc_dist_is_main()};
  run_parts p = {0};
  int rc = run_begin(&o, &r, &res, &p.dev);
  if (rc == DC_OK) rc = open_resume(&r, &p.resume);
  if (rc != DC_OK) return rc;
  dc_manual_seed((uint64_t)sp->train.seed);
  if ((rc = dc__build_data(sp, &p.data, NULL)) != DC_OK) {
    dc_ckpt_free(p.resume);
    return rc;
  }
  rc = run_train(&r, &p, &res, t_start);
  run_free(&r, &p);
  if (res_out) *res_out = res;
  return rc;
}
