/* Training and evaluation: classification metrics, a trainer (epochs, loss, optimizer,
 * schedule, loaders, callbacks, history, early stopping, NaN handling, checkpoint state), the
 * configuration files of `deepc train` and whole runs driven by them (outputs in a folder,
 * resume, grid search). Shapes: B batch, K classes. */
#ifndef DEEPC_TRAIN_H
#define DEEPC_TRAIN_H

#include "tensor.h"
#include "nn.h"
#include "optim.h"
#include "data.h"
#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================= metrics =======================
 * Accumulates a confusion matrix (and top-k hits, and a loss sum) over batches of logits. */
typedef struct dc_metrics {
  int64_t num_classes; /* K */
  int topk;            /* k of the top-k count (1 = plain accuracy) */
  int64_t *confusion;  /* [K, K]: row = true class, column = predicted class (argmax) */
  int64_t count;       /* samples seen */
  int64_t topk_hits;   /* samples whose class is among the k largest outputs */
  double loss_sum;     /* sum over batches of mean loss x batch size (dc_metrics_add_loss) */
} dc_metrics;

/* topk 0 means 5 (clamped to K). NULL + error for K < 1. */
DC_API dc_metrics *dc_metrics_new(int64_t num_classes, int topk);
DC_API void dc_metrics_free(dc_metrics *m);
DC_API void dc_metrics_reset(dc_metrics *m);
/* output [B, K] scores (any float dtype), target [B] class indices in [0, K) (any int dtype). */
DC_API int dc_metrics_update(dc_metrics *m, dc_tensor *output, dc_tensor *target);
DC_API void dc_metrics_add_loss(dc_metrics *m, double mean_loss, int64_t batch);
DC_API int dc_metrics_merge(dc_metrics *into, const dc_metrics *from);
DC_API double dc_metrics_accuracy(const dc_metrics *m); /* NaN when empty */
DC_API double dc_metrics_topk_accuracy(const dc_metrics *m);
DC_API double dc_metrics_mean_loss(const dc_metrics *m);
/* Per class (NaN when undefined: no sample of the class, or nothing predicted as it). Recall is
 * the per-class accuracy. */
DC_API double dc_metrics_precision(const dc_metrics *m, int64_t k);
DC_API double dc_metrics_recall(const dc_metrics *m, int64_t k);
DC_API double dc_metrics_f1(const dc_metrics *m, int64_t k);
DC_API int64_t dc_metrics_support(const dc_metrics *m, int64_t k); /* samples of class k */
/* Unweighted means over the classes where defined. */
DC_API double dc_metrics_macro_precision(const dc_metrics *m);
DC_API double dc_metrics_macro_recall(const dc_metrics *m);
DC_API double dc_metrics_macro_f1(const dc_metrics *m);
/* Plain text (markdown = false) or markdown tables: accuracy, then per class precision,
 * recall (= accuracy of the class), F1 and support, then the confusion matrix. names may be
 * NULL (classes shown as numbers). */
DC_API int dc_metrics_print_classes(FILE *f, const dc_metrics *m, const char *const *names,
                                    bool markdown);
DC_API int dc_metrics_print_confusion(FILE *f, const dc_metrics *m, const char *const *names,
                                      bool markdown);
/* One-shot helpers over one batch. */
DC_API double dc_accuracy(dc_tensor *output, dc_tensor *target);
DC_API double dc_topk_accuracy(dc_tensor *output, dc_tensor *target, int k);

/* ======================= trainer ======================= */
typedef struct dc_trainer dc_trainer;

/* loss = f(output, target): a 0-d tensor (mean over the batch). */
typedef dc_tensor *(*dc_loss_fn)(dc_tensor *output, dc_tensor *target, void *ud);

typedef struct dc_step_info {
  int epoch;        /* 1-based */
  int64_t batch;    /* 1-based within the epoch */
  int64_t nbatches; /* batches per epoch */
  int64_t step;     /* optimizer steps since the start of training (all epochs) */
  int64_t samples;  /* samples seen this epoch */
  double loss;      /* this batch's loss */
  double mean_loss; /* running mean over the epoch */
  double mean_acc;  /* running accuracy over the epoch */
  double lr;
  double seconds; /* since the epoch started */
  bool skipped;   /* the loss was not finite and the step was skipped (on_nan = skip) */
} dc_step_info;

/* Callbacks return DC_OK to go on; anything else stops training (fit returns it). */
typedef int (*dc_step_callback)(dc_trainer *t, const dc_step_info *s, void *ud);
typedef int (*dc_epoch_callback)(dc_trainer *t, const dc_epoch_stats *e, void *ud);

typedef enum dc_nan_policy { DC_NAN_STOP = 0, DC_NAN_SKIP } dc_nan_policy;
/* What early stopping and the best epoch follow: validation accuracy (higher is better),
 * validation loss or training loss (lower is better; TRAIN_LOSS also without a validation set:
 * "stop when the training loss has flattened out"). */
typedef enum dc_monitor {
  DC_MONITOR_VAL_ACC = 0,
  DC_MONITOR_VAL_LOSS,
  DC_MONITOR_TRAIN_LOSS
} dc_monitor;
typedef enum dc_sched_when {
  DC_SCHED_PER_EPOCH = 0, /* dc_sched_step after each epoch */
  DC_SCHED_PER_STEP,      /* after each optimizer step (OneCycleLR, warm-up) */
  DC_SCHED_ON_VAL_LOSS    /* dc_sched_step_metric(validation loss) after each epoch */
} dc_sched_when;

/* Data-parallel training (dist.h: dc_dist_trainer_hooks fills these); all NULL in one process.
 * reduce_loss: the batch loss becomes its mean over the ranks (so every rank takes the same
 * NaN decision); after_backward: between backward and clipping/step (gradient all-reduce);
 * reduce_metrics: an epoch's training or validation metrics become sums over the ranks
 * (loss_sum may be NULL). */
typedef struct dc_trainer_dist {
  int (*reduce_loss)(double *loss, void *ud);
  int (*after_backward)(void *ud);
  int (*reduce_metrics)(dc_metrics *m, double *loss_sum, void *ud);
  void *ud;
} dc_trainer_dist;

typedef struct dc_trainer_opts {
  int epochs;      /* total epochs (a resumed trainer runs the remaining ones) */
  dc_loss_fn loss; /* NULL: cross-entropy, mean */
  void *loss_ud;
  dc_loader *val;  /* validation loader or NULL */
  dc_sched *sched; /* or NULL; the trainer steps it, the caller frees it */
  dc_sched_when sched_when;
  int64_t num_classes;   /* for the metrics; 0: the model output's width */
  double clip_grad_norm; /* > 0: clip the global L2 norm of the gradients */
  dc_nan_policy on_nan;  /* a non-finite loss stops training (naming the step) or is skipped */
  int patience;          /* early stopping: epochs without improvement (0: off) */
  double min_delta;      /* smallest change that counts as an improvement */
  dc_monitor monitor;    /* for early stopping and the best epoch (needs val) */
  dc_step_callback on_step;
  dc_epoch_callback on_epoch; /* after the epoch is complete (history, best, RNG state) */
  void *cb_ud;
  dc_trainer_dist dist; /* data-parallel hooks */
  /* DC_BF16: each training step's forward and loss run under autocast (autocast.h) on the
   * input's device, the backward and the optimizer outside it (float32 gradients on the float32
   * parameters); DC_F32 (the default, 0): off. Validation runs as without it. */
  dc_dtype autocast;
} dc_trainer_opts;

/* The trainer borrows model, opt and the loaders (free them after the trainer). */
DC_API dc_trainer *dc_trainer_new(dc_module *model, dc_optim *opt, dc_loader *train,
                                  dc_trainer_opts o);
DC_API void dc_trainer_free(dc_trainer *t);
/* Runs epochs until opts.epochs are done, early stopping triggers or a callback stops it.
 * Returns DC_OK (also after early stopping) or the error status. */
DC_API int dc_trainer_fit(dc_trainer *t);
/* One epoch of training then validation; fills *out (may be NULL) and the history. */
DC_API int dc_trainer_epoch(dc_trainer *t, dc_epoch_stats *out);
DC_API const dc_history *dc_trainer_history(const dc_trainer *t);
DC_API int dc_trainer_epochs_done(const dc_trainer *t);
DC_API int64_t dc_trainer_steps_done(const dc_trainer *t);
DC_API int dc_trainer_best_epoch(const dc_trainer *t); /* 0 before any validation */
DC_API bool dc_trainer_is_best(const dc_trainer *t);   /* the last epoch is the best so far */
DC_API bool dc_trainer_stopped_early(const dc_trainer *t);
DC_API int64_t dc_trainer_skipped_steps(const dc_trainer *t);
/* Everything a bit-identical resume needs, as "model.*", "optim.*", "sched.*" and "trainer.*"
 * entries (history, epoch, step, best, early-stopping counter, RNG state). */
DC_API int dc_trainer_save_state(const dc_trainer *t, dc_ckpt *c);
/* Restores it (model, optimizer, schedule, RNG, loader epoch, history, counters). */
DC_API int dc_trainer_load_state(dc_trainer *t, const dc_ckpt *c);

/* Runs the model in eval mode under no_grad over the whole loader; adds every batch to m
 * (and the loss to m when loss is given; NULL loss: cross-entropy). Restores the model's mode. */
DC_API int dc_evaluate(dc_module *model, dc_loader *l, dc_loss_fn loss, void *loss_ud,
                       dc_metrics *m);

/* ======================= configuration files =======================
 * INI files (see docs/training.md): [model], [data], [train], [optim], [schedule] and a free
 * [vars] section whose values replace ${name} in the others. Every key is checked against a
 * schema (unknown keys get a "did you mean"), every value against its type. */
typedef struct dc_config dc_config;

DC_API dc_config *dc_config_load(const char *path);
/* name is used in messages ("<name>:12: ..."). */
DC_API dc_config *dc_config_parse(const char *text, const char *name);
/* The schema's defaults only. */
DC_API dc_config *dc_config_default(void);
DC_API dc_config *dc_config_clone(const dc_config *c);
DC_API void dc_config_free(dc_config *c);
/* "section.key=value" (as --set): checked like a line of the file; errors begin with
 * "--set section.key=value: ". */
DC_API int dc_config_set(dc_config *c, const char *assignment);
DC_API int dc_config_set_value(dc_config *c, const char *key, const char *value);
/* The value with ${vars} replaced (the default when unset); NULL + error for an unknown key. */
DC_API const char *dc_config_get(const dc_config *c, const char *key);
DC_API bool dc_config_is_set(const dc_config *c, const char *key);
/* The whole configuration as an INI text, every key with its value (malloc'ed; free()). */
DC_API char *dc_config_to_string(const dc_config *c, bool only_set);
/* Prints the documented list of sections and keys with types and defaults. */
DC_API void dc_config_print_schema(FILE *f);
/* The key list in a format: TEXT as dc_config_print_schema (every key with type, default, range
 * and meaning), MARKDOWN the tables of docs/training.md, BRIEF the key names per section (as
 * `deepc train --help` ends). All come from one table, so they agree. */
typedef enum dc_keys_format { DC_KEYS_TEXT, DC_KEYS_MARKDOWN, DC_KEYS_BRIEF } dc_keys_format;
DC_API void dc_config_print_keys(FILE *f, dc_keys_format fmt);

/* ======================= runs ======================= */
typedef enum dc_progress_mode {
  DC_PROGRESS_AUTO = 0, /* a bar when the log is a terminal, plain lines otherwise */
  DC_PROGRESS_BAR,
  DC_PROGRESS_LINES,
  DC_PROGRESS_QUIET /* nothing but errors */
} dc_progress_mode;

typedef struct dc_run_opts {
  const char *out_dir; /* NULL: runs/<config file stem> */
  bool resume;         /* continue from out_dir/last.ckpt */
  FILE *log;           /* progress; NULL: stderr */
  dc_progress_mode progress;
  FILE *out;             /* the final results (test accuracy, per-class table); NULL: stdout */
  bool no_summary;       /* do not print the final results */
  bool show_model;       /* print the model's layer table (torchinfo-like) before training */
  int stop_after_epochs; /* > 0: stop (as if interrupted) after this many epochs in this call */
  /* When non-NULL and set non-zero (by a signal handler), the run stops after the current step
   * with DC_ERR_STATE; the last finished epoch's checkpoint stays for --resume. */
  volatile int *interrupt;
  /* "cpu", "testdev", "cuda": overrides train.device for this run without changing the
   * configuration written to config.ini and the checkpoints (so a checkpoint is the same file
   * whichever device trained it); NULL: train.device. */
  const char *device;
} dc_run_opts;

typedef struct dc_run_result {
  int epochs_done;
  int best_epoch;
  bool stopped_early;
  double train_loss, train_acc; /* last epoch */
  double val_loss, val_acc;     /* last epoch */
  double best_val_acc, best_val_loss;
  double test_loss, test_acc; /* model used for the test: best (restore_best) or last */
  double seconds;             /* wall time of the whole run */
  char out_dir[1024];
} dc_run_result;

/* Builds data, model, optimizer and schedule from the configuration, trains, evaluates on the
 * test set and writes out_dir: config.ini, metrics.csv, curves.png, curves.svg, TensorBoard
 * events (tb/), last.ckpt, best.ckpt and report.md. res may be NULL. */
DC_API int dc_run(const dc_config *c, const dc_run_opts *o, dc_run_result *res);

typedef struct dc_eval_opts {
  const char *data; /* dataset name or path; NULL: the checkpoint's configured test set */
  bool train_split; /* evaluate on the training split instead of the test split */
  int64_t limit;    /* first n samples only (0: all) */
  FILE *out;        /* NULL: stdout */
  bool markdown;
  const char *device; /* where to run the model ("cpu", "testdev", ...); NULL: the cpu */
} dc_eval_opts;
/* Rebuilds the model from the configuration stored in a checkpoint, loads its weights and
 * prints accuracy, per-class accuracy and the confusion matrix. m (may be NULL) receives the
 * metrics (free with dc_metrics_free). */
DC_API int dc_eval_checkpoint(const char *ckpt_path, const dc_eval_opts *o, dc_metrics **m);
/* The model of a checkpoint of `deepc train`, rebuilt from its stored configuration with its
 * weights, in eval mode (for export). *input: one sample's shape; when it is empty (ndim 0) the
 * dataset is opened to find it. *names (may be NULL) receives the class names stored in the
 * checkpoint, *nnames their count (free with dc_checkpoint_names_free). */
DC_API dc_module *dc_checkpoint_model(const char *ckpt_path, dc_shape *input, char ***names,
                                      int64_t *nnames);
DC_API void dc_checkpoint_names_free(char **names, int64_t n);

/* Grid search: every combination of the values of each key ("optim.lr" -> {"0.1","0.01"}),
 * one run per combination in out_dir/<k=v,...>, ranked by best validation accuracy; prints
 * the table and the best run's test accuracy to o->log. */
typedef struct dc_grid_axis {
  const char *key;
  const char *const *values;
  int n;
} dc_grid_axis;
DC_API int dc_search(const dc_config *c, const dc_grid_axis *axes, int naxes, const dc_run_opts *o,
                     FILE *table);

#ifdef __cplusplus
}
#endif
#endif
