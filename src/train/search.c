/* Grid search: one run per combination of the given values (each in its own folder under the
 * search folder), then a table ranked by the best validation accuracy, written to search.md and
 * search.csv, with the test accuracy of the best configuration only (choosing on the test set
 * would overstate it). */
#include "train-impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct trial {
  char name[512]; /* "optim.lr=0.1,model.dropout=0.3" */
  dc_run_result r;
  int status;
  char error[512];
} trial;

static int by_val_acc(const void *a, const void *b) {
  const trial *x = a, *y = b;
  double u = x->status == DC_OK ? x->r.best_val_acc : -1,
         v = y->status == DC_OK ? y->r.best_val_acc : -1;
  if (isnan(u)) u = -1;
  if (isnan(v)) v = -1;
  return u < v ? 1 : u > v ? -1 : 0;
}

/* A folder name from "key=value" pairs: '/' and spaces replaced. */
static void folder_name(const char *name, char *buf, size_t n) {
  size_t i = 0;
  for (; name[i] && i + 1 < n; i++) {
    char ch = name[i];
    buf[i] = ch == '/' || ch == ' ' || ch == '\\' ? '_' : ch;
  }
  buf[i] = 0;
}

static void print_table(FILE *f, const trial *ts, int n, bool md) {
  if (md)
    fprintf(f,
            "| rank | configuration | best val acc | val loss | best epoch | epochs | seconds |\n"
            "|---:|---|---:|---:|---:|---:|---:|\n");
  else
    fprintf(f, "%4s  %-44s %12s %9s %5s %7s %8s\n", "rank", "configuration", "best val acc",
            "val loss", "best", "epochs", "seconds");
  for (int i = 0; i < n; i++) {
    const trial *t = &ts[i];
    if (t->status != DC_OK) {
      if (md)
        fprintf(f, "| - | %s | failed: %s | | | | |\n", t->name, t->error);
      else
        fprintf(f, "%4s  %-44s failed: %s\n", "-", t->name, t->error);
      continue;
    }
    if (md)
      fprintf(f, "| %d | %s | %.2f %% | %.4f | %d | %d | %.1f |\n", i + 1, t->name,
              100 * t->r.best_val_acc, t->r.best_val_loss, t->r.best_epoch, t->r.epochs_done,
              t->r.seconds);
    else
      fprintf(f, "%4d  %-44s %11.2f%% %9.4f %5d %7d %8.1f\n", i + 1, t->name,
              100 * t->r.best_val_acc, t->r.best_val_loss, t->r.best_epoch, t->r.epochs_done,
              t->r.seconds);
  }
}

/* The number of combinations, every axis with values; at most 64 axes and 10000 runs. */
static int count_runs(const dc_grid_axis *axes, int naxes, int64_t *total) {
  if (naxes > 64) return dc__errs(DC_ERR_ARG, "search: at most 64 --grid keys, got %d", naxes);
  *total = 1;
  for (int a = 0; a < naxes; a++) {
    if (axes[a].n < 1) return dc__errs(DC_ERR_ARG, "search: --grid %s has no values", axes[a].key);
    *total *= axes[a].n;
    if (*total > 10000) return dc__errs(DC_ERR_ARG, "search: more than 10000 combinations");
  }
  return DC_OK;
}

/* The device, and every key and value, checked before the first run. */
static int check_grid(const dc_config *base, const dc_grid_axis *axes, int naxes,
                      const char *device) {
  dc_device dev;
  int rc = dc__run_device(dc__config_spec(base), device, &dev);
  if (rc != DC_OK) return rc;
  for (int a = 0; a < naxes; a++)
    for (int v = 0; v < axes[a].n; v++) {
      dc_config *c = dc_config_clone(base);
      if (!c) return dc_last_status();
      rc = dc_config_set_value(c, axes[a].key, axes[a].values[v]);
      dc_config_free(c);
      if (rc != DC_OK)
        return dc__rewrap((dc_status)rc, "--grid %s: %s", axes[a].key, dc_last_error());
    }
  return DC_OK;
}

/* The search folder: o->out_dir or runs/search-<config stem>. */
static void search_dir(const dc_config *base, const dc_run_opts *o, char *dir, size_t n) {
  if (o->out_dir) {
    snprintf(dir, n, "%s", o->out_dir);
    return;
  }
  const char *name = dc__config_name(base), *s = strrchr(name, '/');
  s = s ? s + 1 : name;
  const char *dot = strrchr(s, '.');
  snprintf(dir, n, "runs/search-%.*s", dot && dot != s ? (int)(dot - s) : (int)strlen(s), s);
}

/* Run k of the grid (the last axis varies fastest) in dir/<its name>. */
static int run_trial(const dc_config *base, const dc_grid_axis *axes, int naxes, int64_t k,
                     int64_t total, const char *dir, const dc_run_opts *o, trial *t) {
  FILE *log = o->log ? o->log : stderr;
  dc_config *c = dc_config_clone(base);
  if (!c) return dc_last_status();
  int64_t rest = k;
  size_t at = 0;
  int idx[64] = {0};
  for (int a = naxes - 1; a >= 0 && a < 64; a--) {
    idx[a] = (int)(rest % axes[a].n);
    rest /= axes[a].n;
  }
  for (int a = 0; a < naxes && a < 64; a++) {
    dc_config_set_value(c, axes[a].key, axes[a].values[idx[a]]);
    at += (size_t)snprintf(t->name + at, sizeof t->name - at, "%s%s=%s", a ? "," : "", axes[a].key,
                           axes[a].values[idx[a]]);
    if (at >= sizeof t->name) at = sizeof t->name - 1;
  }
  if (naxes == 0) snprintf(t->name, sizeof t->name, "base");
  char sub[600], path[1700];
  folder_name(t->name, sub, sizeof sub);
  snprintf(path, sizeof path, "%s/%s", dir, sub);
  if (o->progress != DC_PROGRESS_QUIET)
    fprintf(log, "\n== run %lld/%lld: %s ==\n", (long long)k + 1, (long long)total, t->name);
  dc_run_opts ro = *o;
  ro.out_dir = path;
  ro.no_summary = true;
  ro.resume = false;
  t->status = dc_run(c, &ro, &t->r);
  if (t->status != DC_OK) {
    snprintf(t->error, sizeof t->error, "%s", dc_last_error());
    if (o->progress != DC_PROGRESS_QUIET) fprintf(log, "run failed: %s\n", t->error);
  }
  dc_config_free(c);
  return DC_OK;
}

/* The ranked table and the best run on the terminal. */
static void print_ranking(FILE *table, const trial *ts, int64_t total, const char *dir) {
  fprintf(table, "\ngrid search: %lld runs in %s, ranked by best validation accuracy\n\n",
          (long long)total, dir);
  print_table(table, ts, (int)total, false);
  if (ts[0].status == DC_OK)
    fprintf(table,
            "\nbest: %s\n  best validation accuracy %.2f%% (epoch %d); test accuracy %.2f%% (loss "
            "%.4f)\n  run folder: %s\n",
            ts[0].name, 100 * ts[0].r.best_val_acc, ts[0].r.best_epoch, 100 * ts[0].r.test_acc,
            ts[0].r.test_loss, ts[0].r.out_dir);
  fflush(table);
}

/* search.md and search.csv in dir. */
static void write_tables(const dc_config *base, const trial *ts, int64_t total, const char *dir) {
  char path[1100];
  snprintf(path, sizeof path, "%s/search.md", dir);
  FILE *f = fopen(path, "w");
  if (f) {
    fprintf(f, "# Grid search: %s\n\nRanked by best validation accuracy.\n\n",
            dc__config_name(base));
    print_table(f, ts, (int)total, true);
    if (ts[0].status == DC_OK)
      fprintf(f, "\nBest configuration: `%s`, test accuracy **%.2f %%** (%s).\n", ts[0].name,
              100 * ts[0].r.test_acc, ts[0].r.out_dir);
    fclose(f);
  }
  snprintf(path, sizeof path, "%s/search.csv", dir);
  f = fopen(path, "w");
  if (f) {
    fprintf(f, "rank,configuration,best_val_acc,best_val_loss,best_epoch,epochs,seconds,status\n");
    for (int64_t i = 0; i < total; i++)
      fprintf(f, "%lld,\"%s\",%.6f,%.6f,%d,%d,%.2f,%s\n", (long long)i + 1, ts[i].name,
              ts[i].r.best_val_acc, ts[i].r.best_val_loss, ts[i].r.best_epoch, ts[i].r.epochs_done,
              ts[i].r.seconds, ts[i].status == DC_OK ? "ok" : "failed");
    fclose(f);
  }
}

int dc_search(const dc_config *base, const dc_grid_axis *axes, int naxes, const dc_run_opts *opts,
              FILE *table) {
  if (!base || (naxes > 0 && !axes)) return dc__errs(DC_ERR_ARG, "search: NULL argument");
  dc_run_opts o = opts ? *opts : (dc_run_opts){0};
  if (!table) table = stdout;
  int64_t total = 1;
  int rc = count_runs(axes, naxes, &total);
  if (rc == DC_OK) rc = check_grid(base, axes, naxes, o.device);
  if (rc != DC_OK) return rc;
  char dir[1024];
  search_dir(base, &o, dir, sizeof dir);
  if ((rc = dc__mkdirs(dir)) != DC_OK) return rc;
  trial *ts = dc__calloc((size_t)total, sizeof *ts);
  if (!ts) return DC_ERR_NOMEM;
  for (int64_t k = 0; k < total; k++) {
    if ((rc = run_trial(base, axes, naxes, k, total, dir, &o, &ts[k])) != DC_OK) {
      dc__free(ts);
      return rc;
    }
    if (o.interrupt && *o.interrupt) break;
  }
  qsort(ts, (size_t)total, sizeof *ts, by_val_acc);
  print_ranking(table, ts, total, dir);
  write_tables(base, ts, total, dir);
  bool any = false;
  for (int64_t i = 0; i < total; i++) any = any || ts[i].status == DC_OK;
  rc = any ? DC_OK : dc__errs(DC_ERR_STATE, "search: every run failed (first: %s)", ts[0].error);
  dc__free(ts);
  return rc;
}
