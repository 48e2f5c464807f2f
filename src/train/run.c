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

int dc_run(const dc_config *c, const dc_run_opts *opts, dc_run_result *res_out) {
  if (!c) return dc__errs(DC_ERR_ARG, "run: NULL configuration");
  dc_run_opts o = opts ? *opts : (dc_run_opts){0};
  dc_run_result res = {0};
  double t_start = dc__now();
  const dc__run_spec *sp = dc__config_spec(c);
  run_ctx r = {.cfg = c, .spec = sp, .o = &o, .writer = dc_dist_is_main()};
  int nranks = dc_dist_size();
  if (!r.writer) { /* data-parallel: rank 0 alone logs and writes */
    o.progress = DC_PROGRESS_QUIET;
    o.no_summary = true;
  }
  if (o.out_dir)
    snprintf(r.dir, sizeof r.dir, "%s", o.out_dir);
  else
    default_dir(c, r.dir, sizeof r.dir);
  size_t dl = strlen(r.dir);
  while (dl > 1 && r.dir[dl - 1] == '/') r.dir[--dl] = 0;
  snprintf(res.out_dir, sizeof res.out_dir, "%s", r.dir);
  FILE *log = o.log ? o.log : stderr;
  FILE *out = o.out ? o.out : stdout;
  dc_device dev;
  int rc = dc__run_device(sp, o.device, &dev); /* before any work */
  if (rc != DC_OK) return rc;
  rc = dc__mkdirs(r.dir);
  if (rc != DC_OK) return rc;
  if (r.writer) dc__remove_stale_temps(r.dir);
  char path[1100];
  dc_ckpt *resume = NULL;
  if (o.resume) {
    path_in(path, sizeof path, &r, "last.ckpt");
    if (!dc__path_exists(path))
      return dc__errs(DC_ERR_IO, "--resume: %s does not exist (nothing to resume in %s)", path,
                      r.dir);
    if (!(resume = dc_ckpt_load(path))) return dc_last_status();
  }
  uint64_t seed = (uint64_t)sp->train.seed;
  dc_manual_seed(seed);
  dc__data data;
  rc = dc__build_data(sp, &data, NULL);
  if (rc != DC_OK) {
    dc_ckpt_free(resume);
    return rc;
  }
  r.data = &data;
  dc_shape_str(data.sample_shape, r.shape, sizeof r.shape);
  dc_module *model = NULL;
  dc_optim *opt = NULL;
  dc_sched *sched = NULL;
  dc_loader *tl = NULL, *vl = NULL, *te = NULL;
  dc_trainer *t = NULL;
  dc_dist_ddp *ddp = NULL;
  dc_metrics *test = NULL;
  char *repr = NULL;
  bool anomaly_prev = false, anomaly_set = false; /* train.detect_anomaly, restored at the end */
  dc__loss_cfg loss;
  dc__build_loss(sp, &loss);
  r.batch_size = sp->train.batch_size; /* >= 1, as eval_batch_size (spec.h) */
  int64_t ebs = sp->train.eval_batch_size;
  int workers = (int)sp->data.workers;
  int epochs = (int)sp->train.epochs;
  if (r.batch_size % nranks != 0) {
    rc = dc__errs(DC_ERR_ARG,
                  "train.batch_size = %lld is the batch of the whole job and must be "
                  "a multiple of its %d ranks (each rank takes batch_size / %d)",
                  (long long)r.batch_size, nranks, nranks);
    goto done;
  }
  if (!(model = dc__build_model(sp, &data))) goto fail_status;
  /* the model goes to the device first, the optimizer (and its state) is built there */
  if (dev != DC_CPU && (rc = dc_module_to(model, dev)) != DC_OK) goto done;
  if (nranks > 1 && sp->train.sync_batchnorm &&
      (rc = dc_dist_convert_sync_batchnorm(model)) != DC_OK)
    goto done;
  if (!(opt = dc__build_optim(sp, model))) goto fail_status;
  if (nranks > 1 && !(ddp = dc_dist_ddp_new(model))) goto fail_status;
  int64_t tbs = r.batch_size / nranks;
  int prefetch = train_prefetch(data.sample_shape, tbs, workers);
  if (!(tl = make_loader(data.train, tbs, true, workers, prefetch, dc__seed_stream(seed, 1), dev)))
    goto fail_status;
  if (!(te = make_loader(data.test, ebs, false, workers, 0, dc__seed_stream(seed, 3), dev)))
    goto fail_status;
  if (data.val &&
      !(vl = make_loader(data.val, ebs, false, workers, 0, dc__seed_stream(seed, 2), dev)))
    goto fail_status;
  dc_sched_when when;
  if ((rc = dc__build_sched(sp, opt, dc_loader_len(tl), &sched, &when)) != DC_OK) goto done;
  dc__monitor mon = sp->train.monitor;
  dc_trainer_opts to = {
      .epochs = epochs,
      .loss = dc__loss_call,
      .loss_ud = &loss,
      .val = vl ? vl : te, /* val_split = 0: validate on the test set */
      .sched = sched,
      .sched_when = when,
      .num_classes = data.num_classes,
      .clip_grad_norm = sp->train.clip_grad_norm,
      .on_nan = sp->train.on_nan == DC__NAN_SKIP ? DC_NAN_SKIP : DC_NAN_STOP,
      .patience = (int)sp->train.early_stop,
      .min_delta = sp->train.min_delta,
      .monitor = mon == DC__MON_VAL_LOSS     ? DC_MONITOR_VAL_LOSS
                 : mon == DC__MON_TRAIN_LOSS ? DC_MONITOR_TRAIN_LOSS
                                             : DC_MONITOR_VAL_ACC,
      .on_step = on_step,
      .on_epoch = on_epoch,
      .cb_ud = &r,
      .dist = dc_dist_trainer_hooks(ddp),
  };
  if (!(t = dc_trainer_new(model, opt, tl, to))) goto fail_status;
  anomaly_prev = dc_set_detect_anomaly(sp->train.detect_anomaly);
  anomaly_set = true;
  if (resume) {
    char warn[1100];
    resume_check(c, resume, warn, sizeof warn);
    if (warn[0] && o.progress != DC_PROGRESS_QUIET)
      fprintf(log, "warning: --resume with settings that differ from the checkpoint's: %s\n", warn);
    if ((rc = dc_trainer_load_state(t, resume)) != DC_OK) {
      rc = dc__rewrap((dc_status)rc, "--resume from %s/last.ckpt: %s", r.dir, dc_last_error());
      goto done;
    }
    r.skipped = dc_trainer_skipped_steps(t);
  }
  /* outputs */
  char *cfg_text = r.writer ? dc_config_to_string(c, false) : NULL;
  if (r.writer && !cfg_text) goto fail_status;
  path_in(path, sizeof path, &r, "config.ini");
  FILE *cf = cfg_text ? fopen(path, "w") : NULL;
  if (cf) fputs(cfg_text, cf), fclose(cf);
  free(cfg_text);
  path_in(path, sizeof path, &r, "tb");
  if (r.writer && !(r.tb = dc_tb_open(path))) goto fail_status;
  repr = dc_module_repr(model);
  dc__progress_init(&r.prog, log, o.progress, epochs);
  if (o.progress != DC_PROGRESS_QUIET) {
    char cnt[32];
    fprintf(log,
            "%s %s: %s parameters, %lld train / %lld %s / %lld test samples, %d epochs -> %s\n",
            resume ? "resuming" : "training", dc__config_name(c),
            dc_format_count(dc_module_num_parameters(model, false), cnt, sizeof cnt),
            (long long)dc_dataset_len(data.train),
            (long long)(vl ? dc_dataset_len(data.val) : dc_dataset_len(data.test)),
            vl ? "validation" : "test (as validation)", (long long)dc_dataset_len(data.test),
            epochs, r.dir);
    if (o.show_model) {
      dc_model_summary *ms = dc_summary(model, data.sample_shape);
      if (ms) dc_summary_print(log, ms);
      dc_summary_free(ms);
    }
    if (resume) fprintf(log, "resuming after epoch %d\n", dc_trainer_epochs_done(t));
    fflush(log);
  }
  rc = dc_trainer_fit(t);
  if (rc == RUN_STOP) {
    fill_result(&res, t);
    res.test_loss = res.test_acc = NAN;
    res.seconds = dc__now() - t_start;
    rc = DC_OK;
    if (o.progress != DC_PROGRESS_QUIET)
      fprintf(log, "stopped after epoch %d as asked; continue with --resume\n", res.epochs_done);
    goto done;
  }
  if (rc != DC_OK) goto done;
  fill_result(&res, t);
  /* the test set, with the best epoch's weights when asked */
  path_in(path, sizeof path, &r, "best.ckpt");
  if (nranks > 1 && (rc = dc_dist_barrier()) != DC_OK) goto done; /* rank 0's files are written */
  if (sp->train.restore_best && res.best_epoch > 0 && res.best_epoch != res.epochs_done &&
      dc__path_exists(path) && (rc = load_weights(model, path)) != DC_OK)
    goto done;
  if (!(test = dc_metrics_new(data.num_classes, 5))) goto fail_status;
  if ((rc = dc_evaluate(model, te, dc__loss_call, &loss, test)) != DC_OK) goto done;
  if ((rc = dc_dist_metrics_all_reduce(test, NULL)) != DC_OK) goto done;
  res.test_loss = dc_metrics_mean_loss(test);
  res.test_acc = dc_metrics_accuracy(test);
  res.seconds = dc__now() - t_start;
  if (r.writer && (rc = write_history_files(&r, dc_trainer_history(t))) != DC_OK) goto done;
  path_in(path, sizeof path, &r, "report.md");
  rc = r.writer ? dc__write_report(path, c, &data, dc_trainer_history(t), &res, test, repr,
                                   dc_module_num_parameters(model, false))
                : DC_OK;
  if (rc != DC_OK) goto done;
  if (!o.no_summary) print_summary(out, &r, &res, test);
  goto done;
fail_status:
  rc = dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
done:
  if (anomaly_set) dc_set_detect_anomaly(anomaly_prev);
  free(repr);
  dc_metrics_free(test);
  dc_tb_close(r.tb);
  dc_trainer_free(t);
  dc_dist_ddp_free(ddp);
  dc_sched_free(sched);
  dc_loader_free(tl);
  dc_loader_free(vl);
  dc_loader_free(te);
  dc_optim_free(opt);
  dc_module_free(model);
  dc__data_free(&data);
  dc_ckpt_free(resume);
  if (res_out) *res_out = res;
  return rc;
}
