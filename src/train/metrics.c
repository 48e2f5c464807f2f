/* Classification metrics: a confusion matrix accumulated over batches of scores, with
 * accuracy, top-k accuracy, per-class precision / recall / F1 and their printing as plain or
 * markdown tables. Shapes: B batch, K classes. */
#include "train-impl.h"

#include <math.h>
#include <string.h>

dc_metrics *dc_metrics_new(int64_t num_classes, int topk) {
  if (num_classes < 1 || num_classes > (1 << 20))
    return dc__err(DC_ERR_ARG, "metrics_new: num_classes must be in [1, 2^20], got %lld",
                   (long long)num_classes);
  if (topk < 0) return dc__err(DC_ERR_ARG, "metrics_new: topk must be >= 0, got %d", topk);
  dc_metrics *m = dc__calloc(1, sizeof *m);
  if (!m) return NULL;
  m->num_classes = num_classes;
  m->topk = topk == 0 ? 5 : topk;
  if (m->topk > num_classes) m->topk = (int)num_classes;
  m->confusion = dc__calloc((size_t)(num_classes * num_classes), sizeof *m->confusion);
  if (!m->confusion) {
    dc__free(m);
    return NULL;
  }
  return m;
}

void dc_metrics_free(dc_metrics *m) {
  if (!m) return;
  dc__free(m->confusion);
  dc__free(m);
}

void dc_metrics_reset(dc_metrics *m) {
  if (!m) return;
  memset(m->confusion, 0, sizeof *m->confusion * (size_t)(m->num_classes * m->num_classes));
  m->count = m->topk_hits = 0;
  m->loss_sum = 0;
}

/* A detached float64 copy of t's elements in row-major order (malloc'ed), or NULL. */
static double *to_f64(dc_tensor *t, const char *what) {
  int64_t n = dc_numel(t);
  double *buf = dc__malloc(sizeof *buf * (size_t)(n > 0 ? n : 1));
  if (!buf) return NULL;
  bool prev = dc_set_grad_enabled(false);
  dc_tensor *d = t->dtype == DC_F64 ? NULL : dc_to_dtype(t, DC_F64);
  int rc = t->dtype != DC_F64 && !d ? (int)dc_last_status() /* conversion failed (memory) */
                                    : dc_copy_to_buffer(d ? d : t, buf, sizeof *buf * (size_t)n);
  dc_free(d);
  dc_set_grad_enabled(prev);
  if (rc != DC_OK) {
    dc__free(buf);
    return (dc__rewrap((dc_status)rc, "metrics: cannot read the %s: %s", what, dc_last_error()),
            (void *)NULL);
  }
  return buf;
}

/* Checks output [B, K] and target [B]. */
static int check_batch(const dc_metrics *m, dc_tensor *out, dc_tensor *target, const char *op) {
  if (!m || !out || !target) return dc__errs(DC_ERR_ARG, "%s: NULL argument", op);
  char a[64], b[64];
  if (out->ndim != 2 || target->ndim != 1 || target->shape[0] != out->shape[0])
    return dc__errs(DC_ERR_ARG, "%s: expected output [B, K] and target [B], got %s and %s", op,
                    dc_shape_str(dc_shape_of(out), a, sizeof a),
                    dc_shape_str(dc_shape_of(target), b, sizeof b));
  if (out->shape[1] != m->num_classes)
    return dc__errs(DC_ERR_ARG, "%s: output has %lld classes, the metrics %lld", op,
                    (long long)out->shape[1], (long long)m->num_classes);
  return DC_OK;
}

int dc_metrics_update(dc_metrics *m, dc_tensor *out, dc_tensor *target) {
  int rc = check_batch(m, out, target, "metrics_update");
  if (rc != DC_OK) return rc;
  int64_t B = out->shape[0], K = out->shape[1];
  double *x = to_f64(out, "output");               /* [B, K] */
  double *y = x ? to_f64(target, "target") : NULL; /* [B] */
  if (!x || !y) {
    dc__free(x);
    return dc_last_status();
  }
  for (int64_t i = 0; i < B; i++) {
    double yv = y[i];
    if (!(yv >= 0 && yv < (double)K) || yv != floor(yv)) {
      dc__free(x);
      dc__free(y);
      return dc__errs(DC_ERR_ARG,
                      "metrics_update: target %g of sample %lld is not a class in [0, %lld)", yv,
                      (long long)i, (long long)K);
    }
  }
  for (int64_t i = 0; i < B; i++) {
    const double *row = x + i * K;
    int64_t t = (int64_t)y[i], arg = 0, rank = 0;
    for (int64_t j = 1; j < K; j++) /* first maximum; NaN counts as a maximum (torch.argmax) */
      if (!isnan(row[arg]) && (row[j] > row[arg] || isnan(row[j]))) arg = j;
    /* rank of the true class: larger scores, and equal scores at smaller indices */
    for (int64_t j = 0; j < K; j++)
      if (row[j] > row[t] || (j < t && row[j] == row[t])) rank++;
    m->confusion[t * K + arg]++;
    if (rank < m->topk) m->topk_hits++;
  }
  m->count += B;
  dc__free(x);
  dc__free(y);
  return DC_OK;
}

void dc_metrics_add_loss(dc_metrics *m, double mean_loss, int64_t batch) {
  if (m) m->loss_sum += mean_loss * (double)batch;
}

int dc_metrics_merge(dc_metrics *into, const dc_metrics *from) {
  if (!into || !from || into->num_classes != from->num_classes)
    return dc__errs(DC_ERR_ARG, "metrics_merge: both must exist and have the same classes");
  int64_t kk = into->num_classes * into->num_classes;
  for (int64_t i = 0; i < kk; i++) into->confusion[i] += from->confusion[i];
  into->count += from->count;
  into->topk_hits += from->topk_hits;
  into->loss_sum += from->loss_sum;
  return DC_OK;
}

static int64_t correct(const dc_metrics *m) {
  int64_t c = 0;
  for (int64_t k = 0; k < m->num_classes; k++) c += m->confusion[k * m->num_classes + k];
  return c;
}

double dc_metrics_accuracy(const dc_metrics *m) {
  return m && m->count ? (double)correct(m) / (double)m->count : NAN;
}
double dc_metrics_topk_accuracy(const dc_metrics *m) {
  return m && m->count ? (double)m->topk_hits / (double)m->count : NAN;
}
double dc_metrics_mean_loss(const dc_metrics *m) {
  return m && m->count ? m->loss_sum / (double)m->count : NAN;
}

int64_t dc_metrics_support(const dc_metrics *m, int64_t k) {
  if (!m || k < 0 || k >= m->num_classes) return 0;
  int64_t s = 0;
  for (int64_t j = 0; j < m->num_classes; j++) s += m->confusion[k * m->num_classes + j];
  return s;
}

static int64_t predicted(const dc_metrics *m, int64_t k) {
  int64_t s = 0;
  for (int64_t i = 0; i < m->num_classes; i++) s += m->confusion[i * m->num_classes + k];
  return s;
}

double dc_metrics_recall(const dc_metrics *m, int64_t k) {
  int64_t s = dc_metrics_support(m, k);
  return s ? (double)m->confusion[k * m->num_classes + k] / (double)s : NAN;
}

double dc_metrics_precision(const dc_metrics *m, int64_t k) {
  if (!m || k < 0 || k >= m->num_classes) return NAN;
  int64_t p = predicted(m, k);
  return p ? (double)m->confusion[k * m->num_classes + k] / (double)p : NAN;
}

double dc_metrics_f1(const dc_metrics *m, int64_t k) {
  double p = dc_metrics_precision(m, k), r = dc_metrics_recall(m, k);
  if (isnan(p) || isnan(r)) return NAN;
  return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

static double macro(const dc_metrics *m, double (*f)(const dc_metrics *, int64_t)) {
  if (!m) return NAN;
  double s = 0;
  int n = 0;
  for (int64_t k = 0; k < m->num_classes; k++) {
    double v = f(m, k);
    if (!isnan(v)) s += v, n++;
  }
  return n ? s / n : NAN;
}
double dc_metrics_macro_precision(const dc_metrics *m) { return macro(m, dc_metrics_precision); }
double dc_metrics_macro_recall(const dc_metrics *m) { return macro(m, dc_metrics_recall); }
double dc_metrics_macro_f1(const dc_metrics *m) { return macro(m, dc_metrics_f1); }

/* ---- printing ---- */
static const char *class_label(const char *const *names, int64_t k, char *buf, size_t n) {
  if (names && names[k]) return names[k];
  snprintf(buf, n, "%lld", (long long)k);
  return buf;
}

static void pct(char *buf, size_t n, double v) {
  if (isnan(v))
    snprintf(buf, n, "-");
  else
    snprintf(buf, n, "%.2f", 100 * v);
}

int dc_metrics_print_classes(FILE *f, const dc_metrics *m, const char *const *names, bool md) {
  if (!f || !m) return dc__errs(DC_ERR_ARG, "metrics_print_classes: NULL argument");
  int w = 9; /* "macro avg" */
  char lb[32];
  for (int64_t k = 0; k < m->num_classes; k++) {
    int l = (int)strlen(class_label(names, k, lb, sizeof lb));
    if (l > w) w = l;
  }
  if (w > 40) w = 40;
  char p[16], r[16], f1[16];
  if (md) {
    fprintf(f, "| class | precision %% | recall (accuracy) %% | F1 %% | support |\n");
    fprintf(f, "|---|---:|---:|---:|---:|\n");
  } else {
    fprintf(f, "%-*s  %9s  %9s  %7s  %7s\n", w, "class", "precision", "accuracy", "F1", "support");
  }
  for (int64_t k = 0; k < m->num_classes; k++) {
    pct(p, sizeof p, dc_metrics_precision(m, k));
    pct(r, sizeof r, dc_metrics_recall(m, k));
    pct(f1, sizeof f1, dc_metrics_f1(m, k));
    const char *name = class_label(names, k, lb, sizeof lb);
    long long s = (long long)dc_metrics_support(m, k);
    if (md)
      fprintf(f, "| %s | %s | %s | %s | %lld |\n", name, p, r, f1, s);
    else
      fprintf(f, "%-*.*s  %9s  %9s  %7s  %7lld\n", w, w, name, p, r, f1, s);
  }
  pct(p, sizeof p, dc_metrics_macro_precision(m));
  pct(r, sizeof r, dc_metrics_macro_recall(m));
  pct(f1, sizeof f1, dc_metrics_macro_f1(m));
  if (md)
    fprintf(f, "| **macro average** | %s | %s | %s | %lld |\n", p, r, f1, (long long)m->count);
  else
    fprintf(f, "%-*s  %9s  %9s  %7s  %7lld\n", w, "macro avg", p, r, f1, (long long)m->count);
  return ferror(f) ? dc__errs(DC_ERR_IO, "metrics_print_classes: write failed") : DC_OK;
}

int dc_metrics_print_confusion(FILE *f, const dc_metrics *m, const char *const *names, bool md) {
  if (!f || !m) return dc__errs(DC_ERR_ARG, "metrics_print_confusion: NULL argument");
  int64_t K = m->num_classes;
  char lb[32];
  if (md) {
    fprintf(f, "| true \\ predicted |");
    for (int64_t j = 0; j < K; j++) fprintf(f, " %s |", class_label(names, j, lb, sizeof lb));
    fprintf(f, "\n|---|");
    for (int64_t j = 0; j < K; j++) fprintf(f, "---:|");
    fprintf(f, "\n");
    for (int64_t i = 0; i < K; i++) {
      fprintf(f, "| **%s** |", class_label(names, i, lb, sizeof lb));
      for (int64_t j = 0; j < K; j++) {
        long long v = (long long)m->confusion[i * K + j];
        fprintf(f, i == j ? " **%lld** |" : " %lld |", v);
      }
      fprintf(f, "\n");
    }
  } else {
    /* columns are numbered; rows carry the class names with their number */
    int w = 4, cw = 5;
    for (int64_t k = 0; k < K; k++) {
      int l = (int)strlen(class_label(names, k, lb, sizeof lb)) + 5;
      if (l > w) w = l;
      for (int64_t j = 0; j < K; j++) {
        int d = snprintf(lb, sizeof lb, "%lld", (long long)m->confusion[k * K + j]) + 1;
        if (d > cw) cw = d;
      }
    }
    if (w > 30) w = 30;
    fprintf(f, "%-*s", w, "true \\ pred");
    for (int64_t j = 0; j < K; j++) fprintf(f, "%*lld", cw, (long long)j);
    fprintf(f, "\n");
    for (int64_t i = 0; i < K; i++) {
      char row[64];
      snprintf(row, sizeof row, "%2lld %s", (long long)i, class_label(names, i, lb, sizeof lb));
      fprintf(f, "%-*.*s", w, w - 1, row);
      for (int64_t j = 0; j < K; j++) fprintf(f, "%*lld", cw, (long long)m->confusion[i * K + j]);
      fprintf(f, "\n");
    }
  }
  return ferror(f) ? dc__errs(DC_ERR_IO, "metrics_print_confusion: write failed") : DC_OK;
}

/* ---- one batch ---- */
static double one_batch(dc_tensor *out, dc_tensor *target, int k) {
  if (!out || out->ndim != 2) {
    dc__err(DC_ERR_ARG, "accuracy: expected output [B, K]");
    return NAN;
  }
  dc_metrics *m = dc_metrics_new(out->shape[1], k);
  if (!m) return NAN;
  double a = NAN;
  if (dc_metrics_update(m, out, target) == DC_OK)
    a = k == 1 ? dc_metrics_accuracy(m) : dc_metrics_topk_accuracy(m);
  dc_metrics_free(m);
  return a;
}

double dc_accuracy(dc_tensor *out, dc_tensor *target) { return one_batch(out, target, 1); }

double dc_topk_accuracy(dc_tensor *out, dc_tensor *target, int k) {
  if (k < 1) {
    dc__err(DC_ERR_ARG, "topk_accuracy: k must be >= 1, got %d", k);
    return NAN;
  }
  return one_batch(out, target, k);
}
