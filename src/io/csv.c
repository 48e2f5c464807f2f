/* The per-epoch history of a run and its CSV form (metrics.csv): written with enough digits to
 * read back the same numbers, read back by header name so `deepc plot` can compare runs. */
#include <deepc/io.h>

#include "../core/core-impl.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int dc_history_append(dc_history *h, const dc_epoch_stats *row) {
  if (!h || !row) return dc__errs(DC_ERR_ARG, "history_append: NULL argument");
  if (h->n == h->cap) {
    int cap = h->cap ? h->cap * 2 : 16;
    dc_epoch_stats *r = dc__realloc(h->rows, sizeof *r * (size_t)h->cap, sizeof *r * (size_t)cap);
    if (!r) return DC_ERR_NOMEM;
    h->rows = r;
    h->cap = cap;
  }
  h->rows[h->n++] = *row;
  return DC_OK;
}

void dc_history_clear(dc_history *h) {
  if (!h) return;
  dc__free(h->rows);
  h->rows = NULL;
  h->n = h->cap = 0;
}

static const char *const COLS[] = {"epoch",   "train_loss", "train_acc", "val_loss",
                                   "val_acc", "lr",         "seconds"};
enum { NCOLS = 7 };

static double *field(dc_epoch_stats *r, int col) {
  switch (col) {
  case 1:
    return &r->train_loss;
  case 2:
    return &r->train_acc;
  case 3:
    return &r->val_loss;
  case 4:
    return &r->val_acc;
  case 5:
    return &r->lr;
  case 6:
    return &r->seconds;
  default:
    return NULL;
  }
}

static int fill_csv(FILE *f, const char *tmp, void *ctx) {
  (void)tmp;
  const dc_history *h = ctx;
  for (int c = 0; c < NCOLS; c++) fprintf(f, "%s%s", c ? "," : "", COLS[c]);
  fprintf(f, "\n");
  for (int i = 0; i < h->n; i++) {
    dc_epoch_stats r = h->rows[i];
    fprintf(f, "%d", r.epoch);
    for (int c = 1; c < NCOLS; c++) {
      double v = *field(&r, c);
      if (isnan(v))
        fprintf(f, ",");
      else
        fprintf(f, ",%.9g", v);
    }
    fprintf(f, "\n");
  }
  return DC_OK; /* dc__write_atomic checks ferror */
}

int dc_history_write_csv(const dc_history *h, const char *path) {
  if (!h || !path) return dc__errs(DC_ERR_ARG, "history_write_csv: NULL argument");
  return dc__write_atomic(path, "the history", fill_csv, (void *)h);
}

/* Splits a CSV line in place at commas (no quoting: these files hold numbers). */
static int split(char *line, char **cells, int max) {
  int n = 0;
  char *p = line;
  while (n < max) {
    cells[n++] = p;
    char *c = strchr(p, ',');
    if (!c) break;
    *c = 0;
    p = c + 1;
  }
  for (int i = 0; i < n; i++) {
    char *s = cells[i];
    size_t l = strlen(s);
    while (l && (s[l - 1] == '\n' || s[l - 1] == '\r' || s[l - 1] == ' ')) s[--l] = 0;
    while (*s == ' ') s++;
    cells[i] = s;
  }
  return n;
}

int dc_history_read_csv(const char *path, dc_history *out) {
  if (!path || !out) return dc__errs(DC_ERR_ARG, "history_read_csv: NULL argument");
  memset(out, 0, sizeof *out);
  FILE *f = fopen(path, "r");
  if (!f) return dc__errs(DC_ERR_IO, "%s: cannot open (%s)", path, strerror(errno));
  char line[4096];
  char *cells[32];
  int map[32];
  if (!fgets(line, sizeof line, f)) {
    fclose(f);
    return dc__errs(DC_ERR_FORMAT, "%s: empty file (expected a metrics.csv header)", path);
  }
  int nh = split(line, cells, 32), found = 0;
  for (int i = 0; i < nh; i++) {
    map[i] = -1;
    for (int c = 0; c < NCOLS; c++)
      if (strcmp(cells[i], COLS[c]) == 0) map[i] = c, found++;
  }
  if (found == 0 || map[0] != 0) {
    fclose(f);
    return dc__errs(DC_ERR_FORMAT,
                    "%s: line 1: expected a header starting with 'epoch,' (a deepc metrics.csv)",
                    path);
  }
  int lineno = 1, rc = DC_OK;
  while (fgets(line, sizeof line, f)) {
    lineno++;
    if (line[0] == '\n' || line[0] == 0) continue;
    int n = split(line, cells, 32);
    dc_epoch_stats r = {.train_loss = NAN,
                        .train_acc = NAN,
                        .val_loss = NAN,
                        .val_acc = NAN,
                        .lr = NAN,
                        .seconds = NAN};
    for (int i = 0; i < n && i < nh; i++) {
      if (map[i] < 0 || !cells[i][0]) continue;
      char *end;
      double v = strtod(cells[i], &end);
      if (*end) {
        rc = dc__errs(DC_ERR_FORMAT, "%s:%d: column %s: '%s' is not a number", path, lineno,
                      COLS[map[i]], cells[i]);
        break;
      }
      if (map[i] == 0 && !(v >= 0 && v <= INT_MAX && v == (double)(int)v)) {
        rc = dc__errs(DC_ERR_FORMAT, "%s:%d: column epoch: '%s' is not an epoch number", path,
                      lineno, cells[i]);
        break;
      }
      if (map[i] == 0)
        r.epoch = (int)v;
      else
        *field(&r, map[i]) = v;
    }
    if (rc == DC_OK) rc = dc_history_append(out, &r);
    if (rc != DC_OK) break;
  }
  fclose(f);
  if (rc != DC_OK) dc_history_clear(out);
  return rc;
}
