/* report.md of a run: final accuracies (train, validation, test), the per-class table and the
 * confusion matrix of the test set, the curves, the epoch history and the configuration. */
#include "train-impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void pct_or_dash(char *b, size_t n, double v) {
  if (isnan(v))
    snprintf(b, n, "-");
  else
    snprintf(b, n, "%.2f %%", 100 * v);
}

static void num_or_dash(char *b, size_t n, double v) {
  if (isnan(v))
    snprintf(b, n, "-");
  else
    snprintf(b, n, "%.4f", v);
}

typedef struct report_ctx {
  const dc_config *c;
  const dc__data *d;
  const dc_history *h;
  const dc_run_result *r;
  const dc_metrics *test;
  const char *model_repr;
  int64_t nparams;
} report_ctx;

/* The header: data, model, optimizer, epochs. */
static void write_summary(FILE *f, const report_ctx *x) {
  const dc_config *c = x->c;
  const dc__run_spec *sp = dc__config_spec(c);
  const dc__data *d = x->d;
  char cnt[32];
  fprintf(f, "# Training report: %s\n\n", dc__config_name(c));
  fprintf(f, "- data: %s, %lld classes; %lld training, %lld validation%s, %lld test samples\n",
          sp->data.dataset, (long long)d->num_classes, (long long)dc_dataset_len(d->train),
          (long long)(d->val ? dc_dataset_len(d->val) : 0),
          d->val_is_test ? " (the test set is used for validation)" : "",
          (long long)dc_dataset_len(d->test));
  fprintf(f, "- model: %s parameters (see below)\n", dc_format_count(x->nparams, cnt, sizeof cnt));
  char lr[32] = "default";
  if (!isnan(sp->optim.lr)) snprintf(lr, sizeof lr, "%g", sp->optim.lr);
  fprintf(f, "- optimizer: %s, lr %s; schedule: %s; batch size %lld; seed %lld\n",
          dc__spec_choice(DC__K_optim_name, (int)sp->optim.name), lr,
          dc__spec_choice(DC__K_schedule_name, (int)sp->schedule.name),
          (long long)sp->train.batch_size, (long long)sp->train.seed);
  fprintf(f, "- epochs: %d of %lld%s; best epoch %d; wall time %.1f s\n\n", x->r->epochs_done,
          (long long)sp->train.epochs, x->r->stopped_early ? " (early stopping)" : "",
          x->r->best_epoch, x->r->seconds);
}

/* The results table, and the test set's per-class table and confusion matrix. */
static void write_results(FILE *f, const report_ctx *x) {
  const dc_run_result *r = x->r;
  const dc_metrics *test = x->test;
  char a[32], b[32];
  fprintf(f, "## Results\n\n| split | loss | accuracy |\n|---|---:|---:|\n");
  num_or_dash(a, sizeof a, r->train_loss), pct_or_dash(b, sizeof b, r->train_acc);
  fprintf(f, "| train (last epoch, running mean) | %s | %s |\n", a, b);
  num_or_dash(a, sizeof a, r->val_loss), pct_or_dash(b, sizeof b, r->val_acc);
  fprintf(f, "| validation (last epoch) | %s | %s |\n", a, b);
  num_or_dash(a, sizeof a, r->best_val_loss), pct_or_dash(b, sizeof b, r->best_val_acc);
  fprintf(f, "| validation (best epoch %d) | %s | %s |\n", r->best_epoch, a, b);
  num_or_dash(a, sizeof a, r->test_loss), pct_or_dash(b, sizeof b, r->test_acc);
  bool best_w = dc__config_spec(x->c)->train.restore_best && r->best_epoch > 0;
  fprintf(f, "| **test** (weights of epoch %d) | %s | **%s** |\n\n",
          best_w ? r->best_epoch : r->epochs_done, a, b);
  if (!test) return;
  const char *const *names = (const char *const *)x->d->class_names;
  pct_or_dash(a, sizeof a, dc_metrics_topk_accuracy(test));
  fprintf(f, "Top-%d test accuracy: %s. Macro F1: %.2f %%.\n\n", test->topk, a,
          100 * dc_metrics_macro_f1(test));
  fprintf(f, "## Per-class results (test set)\n\n");
  dc_metrics_print_classes(f, test, names, true);
  fprintf(f, "\n## Confusion matrix (test set; rows: true class, columns: predicted)\n\n");
  dc_metrics_print_confusion(f, test, names, true);
}

static int fill_report(FILE *f, const char *tmp, void *ctx) {
  (void)tmp;
  const report_ctx *x = ctx;
  write_summary(f, x);
  write_results(f, x);
  fprintf(f, "\n## Curves\n\n![loss and accuracy](curves.png)\n\n");
  fprintf(f,
          "## History\n\n| epoch | train loss | train acc | val loss | val acc | lr | seconds |\n");
  fprintf(f, "|---:|---:|---:|---:|---:|---:|---:|\n");
  for (int i = 0; i < x->h->n; i++) {
    const dc_epoch_stats *e = &x->h->rows[i];
    char tl[32], ta[32], vl[32], va[32];
    num_or_dash(tl, sizeof tl, e->train_loss), pct_or_dash(ta, sizeof ta, e->train_acc);
    num_or_dash(vl, sizeof vl, e->val_loss), pct_or_dash(va, sizeof va, e->val_acc);
    fprintf(f, "| %d | %s | %s | %s | %s | %.3g | %.1f |\n", e->epoch, tl, ta, vl, va, e->lr,
            e->seconds);
  }
  fprintf(f, "\n## Model\n\n```\n%s\n```\n", x->model_repr ? x->model_repr : "");
  char *cfg = dc_config_to_string(x->c, true);
  fprintf(f, "\n## Configuration (values that differ from the defaults)\n\n```ini\n%s```\n",
          cfg ? cfg : "");
  free(cfg);
  return DC_OK; /* dc__write_atomic checks ferror */
}

int dc__write_report(const char *path, const dc_config *c, const dc__data *d, const dc_history *h,
                     const dc_run_result *r, const dc_metrics *test, const char *model_repr,
                     int64_t nparams) {
  report_ctx x = {c, d, h, r, test, model_repr, nparams};
  return dc__write_atomic(path, "the report", fill_report, &x);
}
