/* Exercise 5: deep MLPs and optimizers. A network of L hidden layers of width d (5 inputs, ELU
 * with alpha = 1, 3 softmax outputs, cross-entropy), initialised with a fixed seed (weights
 * N(0, 1/fan_in), biases 0):
 *   1. the output for L = 5, d = 10 and the input x_i = i (1..5);
 *   2. L = 30: the norm of each layer's weight gradient for the target class 0, printed and
 *      plotted against the layer index (gradnorm.png);
 *   3. L = 5 trained by full-batch gradient descent with SGD, momentum (rho = 0.9) and Nesterov:
 *      ||W_t|| (all weights), loss and accuracy on train and test per iteration (curves_*.png,
 *      weight_norm.png, optim.csv). Data: five features of scikit-learn's wine data (178 wines,
 *      3 classes), standardised, split 2/3 train, 1/3 test with the seed.
 * usage: deep_mlp [--out DIR] [--wine CSV] [--iters N] [--lr X] */
#include "lineplot.h"

#include <deepc/deepc.h>
#include <deepc/io.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { IN = 5, OUT = 3, MAXL = 64, MAXN = 512, NOPT = 3 };

typedef struct mlp {
  int nl;                 /* linear layers: L hidden + 1 output */
  dc_tensor *w[MAXL + 1]; /* [out, in] */
  dc_tensor *b[MAXL + 1]; /* [out] */
} mlp;

static mlp mlp_new(int L, int d, uint64_t seed) {
  mlp m = {.nl = L + 1};
  dc_manual_seed(seed);
  for (int l = 0; l <= L; l++) {
    int64_t in = l == 0 ? IN : d, out = l == L ? OUT : d;
    m.w[l] = dc_requires_grad_(
        dc_mul_scalar(dc_randn(DC_SHAPE(out, in), DC_F64), 1 / sqrt((double)in)), true);
    m.b[l] = dc_requires_grad_(dc_zeros(DC_SHAPE(out), DC_F64), true);
  }
  return m;
}

static void mlp_free(mlp *m) {
  for (int l = 0; l < m->nl; l++) dc_free(m->w[l]), dc_free(m->b[l]);
}

/* logits [N, 3] of x [N, 5] */
static dc_tensor *mlp_forward(const mlp *m, dc_tensor *x) {
  for (int l = 0; l < m->nl; l++) {
    x = dc_linear(x, m->w[l], m->b[l]);
    if (l < m->nl - 1) x = dc_elu(x, 1.0);
  }
  return x;
}

static int fail(const char *what) {
  fprintf(stderr, "deep_mlp: %s: %s\n", what, dc_last_error());
  return 1;
}

/* 1. the output of the L = 5, d = 10 network for x_i = i */
static int part_output(void) {
  mlp m = mlp_new(5, 10, 0);
  dc_scope_begin();
  double xv[IN] = {1, 2, 3, 4, 5};
  dc_tensor *z = mlp_forward(&m, dc_from_data(xv, DC_SHAPE(1, IN), DC_F64));
  dc_tensor *p = dc_softmax(z, 1);
  if (!p) return fail("forward");
  printf("1. L = 5, d = 10, x = (1, 2, 3, 4, 5), seed 0\n   logits  ");
  for (int k = 0; k < OUT; k++) printf(" %+.6f", dc_item_at(z, k));
  printf("\n   softmax ");
  for (int k = 0; k < OUT; k++) printf(" %.6f", dc_item_at(p, k));
  printf("\n");
  dc_scope_end();
  mlp_free(&m);
  return 0;
}

/* 2. gradient norms per layer of the L = 30 network, target class 0 */
static int part_gradnorm(const char *dir) {
  enum { L = 30 };
  mlp m = mlp_new(L, 10, 0);
  dc_scope_begin();
  double xv[IN] = {1, 2, 3, 4, 5};
  int64_t t0 = 0;
  dc_tensor *loss = dc_cross_entropy(mlp_forward(&m, dc_from_data(xv, DC_SHAPE(1, IN), DC_F64)),
                                     dc_from_data(&t0, DC_SHAPE(1), DC_I64));
  if (!loss || dc_backward(loss) != DC_OK) return fail("backward");
  double idx[L + 1], norm[L + 1];
  printf("\n2. L = 30, d = 10: ||dLoss/dW_l|| for target (1, 0, 0), loss %.6f\n   layer  norm\n",
         dc_item(loss));
  for (int l = 0; l <= L; l++) {
    idx[l] = l + 1;
    norm[l] = sqrt(dc_item(dc_sum_all(dc_mul(m.w[l]->grad, m.w[l]->grad))));
    printf("   %5d  %.6e%s\n", l + 1, norm[l], l == L ? "  (output layer)" : "");
  }
  printf("   first / last hidden layer: %.3g\n", norm[0] / norm[L - 1]);
  dc_scope_end();
  mlp_free(&m);
  char path[1024];
  snprintf(path, sizeof path, "%s/gradnorm.png", dir);
  lineplot_series s = {"||grad W_l||", idx, norm, L + 1};
  return lineplot_write(path, &s, 1,
                        (lineplot_opts){.title = "L = 30, ELU: gradient norm per layer",
                                        .xlabel = "layer (1 = next to the input)",
                                        .ylabel = "||dLoss/dW||",
                                        .log_y = true});
}

/* Reads the wine CSV (first line: counts and class names; then 13 features and the class). */
static int load_wine(const char *path, double *x, int64_t *y, int *n) {
  FILE *f = fopen(path, "r");
  if (!f) return fprintf(stderr, "deep_mlp: cannot open %s (--wine CSV)\n", path), 1;
  char line[4096];
  if (!fgets(line, sizeof line, f)) return fclose(f), 1;
  *n = 0;
  while (*n < MAXN && fgets(line, sizeof line, f)) {
    double v[14];
    char *p = line;
    int k = 0;
    for (; k < 14; k++) {
      char *end;
      v[k] = strtod(p, &end);
      if (end == p) break;
      p = *end == ',' ? end + 1 : end;
    }
    if (k != 14) break;
    for (int j = 0; j < IN; j++) x[*n * IN + j] = v[j];
    y[(*n)++] = (int64_t)v[13];
  }
  fclose(f);
  if (*n < 10)
    return fprintf(stderr, "deep_mlp: %s: expected rows of 13 numbers and a class\n", path), 1;
  for (int j = 0; j < IN; j++) { /* standardise each feature */
    double m = 0, s = 0;
    for (int i = 0; i < *n; i++) m += x[i * IN + j];
    m /= *n;
    for (int i = 0; i < *n; i++) s += (x[i * IN + j] - m) * (x[i * IN + j] - m);
    s = sqrt(s / *n);
    for (int i = 0; i < *n; i++) x[i * IN + j] = (x[i * IN + j] - m) / s;
  }
  return 0;
}

static void eval(const mlp *m, dc_tensor *x, dc_tensor *y, double *loss, double *acc) {
  dc_scope_begin();
  dc_no_grad_begin();
  dc_tensor *z = mlp_forward(m, x);
  *loss = dc_item(dc_cross_entropy(z, y));
  *acc = dc_item(dc_mean_all(dc_to_dtype(dc_eq(dc_argmax(z, 1, false), y), DC_F64)));
  dc_no_grad_end();
  dc_scope_end();
}

/* 3. SGD, momentum, Nesterov on the wine data */
static int part_optim(const char *dir, const char *wine, int iters, double lr) {
  static double xs[MAXN * IN];
  static int64_t ys[MAXN];
  int n;
  if (load_wine(wine, xs, ys, &n)) return 1;
  dc_manual_seed(1);
  dc_tensor *perm = dc_randperm(n);
  int ntr = 2 * n / 3;
  dc_tensor *xall = dc_from_data(xs, DC_SHAPE(n, IN), DC_F64),
            *yall = dc_from_data(ys, DC_SHAPE(n), DC_I64);
  dc_tensor *xtr = dc_index_select(xall, 0, dc_narrow(perm, 0, 0, ntr));
  dc_tensor *ytr = dc_index_select(yall, 0, dc_narrow(perm, 0, 0, ntr));
  dc_tensor *xte = dc_index_select(xall, 0, dc_narrow(perm, 0, ntr, n - ntr));
  dc_tensor *yte = dc_index_select(yall, 0, dc_narrow(perm, 0, ntr, n - ntr));
  const char *names[NOPT] = {"SGD", "momentum 0.9", "Nesterov 0.9"};
  dc_history hist[NOPT] = {{0}};
  double *wn = calloc((size_t)NOPT * (iters + 1), sizeof(double));
  double *it = calloc((size_t)iters + 1, sizeof(double));
  char path[1024];
  snprintf(path, sizeof path, "%s/optim.csv", dir);
  FILE *csv = fopen(path, "w");
  if (!wn || !it || !csv || !xte) return fail("optim setup");
  fprintf(csv, "optimizer,iteration,weight_norm,train_loss,train_acc,test_loss,test_acc\n");
  printf("\n3. L = 5, d = 10 on wine (%d train, %d test, features 1-5), full-batch, lr %g, %d "
         "iterations\n   %-14s %10s %10s %10s %10s %10s\n",
         ntr, n - ntr, lr, iters, "optimizer", "||W_T||", "train loss", "train acc", "test loss",
         "test acc");
  for (int o = 0; o < NOPT; o++) {
    mlp m = mlp_new(5, 10, 0); /* the same start for all three */
    dc_tensor *ps[2 * (MAXL + 1)];
    for (int l = 0; l < m.nl; l++) ps[2 * l] = m.w[l], ps[2 * l + 1] = m.b[l];
    dc_optim_hparams h = dc_optim_defaults(DC_OPTIM_SGD);
    h.lr = lr, h.momentum = o ? 0.9 : 0, h.nesterov = o == 2;
    dc_optim *opt = dc_optim_create(DC_OPTIM_SGD, ps, 2 * m.nl, h);
    if (!opt) return fail("optimizer");
    for (int t = 0; t <= iters; t++) {
      dc_scope_begin();
      dc_epoch_stats r = {.epoch = t, .lr = lr};
      eval(&m, xtr, ytr, &r.train_loss, &r.train_acc);
      eval(&m, xte, yte, &r.val_loss, &r.val_acc);
      double s = 0;
      for (int l = 0; l < m.nl; l++) s += dc_item(dc_sum_all(dc_mul(m.w[l], m.w[l])));
      wn[o * (iters + 1) + t] = sqrt(s), it[t] = t;
      dc_history_append(&hist[o], &r);
      fprintf(csv, "%s,%d,%.9g,%.9g,%.9g,%.9g,%.9g\n", names[o], t, sqrt(s), r.train_loss,
              r.train_acc, r.val_loss, r.val_acc);
      if (t == iters) {
        printf("   %-14s %10.4f %10.4f %9.2f%% %10.4f %9.2f%%\n", names[o], sqrt(s), r.train_loss,
               100 * r.train_acc, r.val_loss, 100 * r.val_acc);
        dc_scope_end();
        break;
      }
      dc_optim_zero_grad(opt);
      int rc = dc_backward(dc_cross_entropy(mlp_forward(&m, xtr), ytr));
      if (rc == DC_OK) rc = dc_optim_step(opt);
      dc_scope_end();
      if (rc != DC_OK) return fail("training step");
    }
    dc_optim_free(opt);
    mlp_free(&m);
  }
  fclose(csv);
  const dc_history *runs[NOPT] = {&hist[0], &hist[1], &hist[2]};
  int rc = 0;
  for (int o = 0; o < NOPT && !rc; o++) { /* one loss/accuracy figure per optimizer, then all */
    static const char *file[NOPT] = {"curves_sgd.png", "curves_momentum.png",
                                     "curves_nesterov.png"};
    snprintf(path, sizeof path, "%s/%s", dir, file[o]);
    rc = dc_plot_curves(path, &runs[o], NULL, 1, names[o]);
  }
  snprintf(path, sizeof path, "%s/curves_all.png", dir);
  if (!rc)
    rc = dc_plot_curves(path, runs, names, NOPT, "SGD vs momentum vs Nesterov (dashed: test)");
  if (rc) return fail("plot");
  lineplot_series s[NOPT];
  for (int o = 0; o < NOPT; o++)
    s[o] = (lineplot_series){names[o], it, wn + o * (iters + 1), iters + 1};
  snprintf(path, sizeof path, "%s/weight_norm.png", dir);
  rc = lineplot_write(path, s, NOPT,
                      (lineplot_opts){.title = "||W_t||: all weights of the L = 5 network",
                                      .xlabel = "iteration",
                                      .ylabel = "||W_t||"});
  for (int o = 0; o < NOPT; o++) dc_history_clear(&hist[o]);
  free(wn), free(it);
  dc_free(perm), dc_free(xall), dc_free(yall), dc_free(xtr), dc_free(ytr), dc_free(xte),
      dc_free(yte);
  printf("   written: %s/{optim.csv, weight_norm.png, curves_sgd.png, curves_momentum.png, "
         "curves_nesterov.png, curves_all.png} (x axis 'epoch' = iteration: full-batch)\n",
         dir);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  const char *dir = ".",
             *wine = "/usr/lib/python3/dist-packages/sklearn/datasets/data/wine_data.csv";
  int iters = 200;
  double lr = 0.05;
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(argv[i], "--out") && v)
      dir = v, i++;
    else if (!strcmp(argv[i], "--wine") && v)
      wine = v, i++;
    else if (!strcmp(argv[i], "--iters") && v && atoi(v) > 0)
      iters = atoi(v), i++;
    else if (!strcmp(argv[i], "--lr") && v && atof(v) > 0)
      lr = atof(v), i++;
    else
      return fprintf(stderr, "usage: deep_mlp [--out DIR] [--wine CSV] [--iters N] [--lr X]\n"), 2;
  }
  if (part_output() || part_gradnorm(dir) || part_optim(dir, wine, iters, lr)) return 1;
  return 0;
}
