/* Exercise 4, binary part: a solver that trains a model with a chosen update rule on a
 * (features, targets) pickle split in file order as the course asks (the first 500 samples for
 * training, the next 250 for validation and the 250 after those for testing), keeps the weights
 * of the best validation epoch and reports test accuracy. Four models: logistic regression and a
 * two-layer ReLU network with a logistic output (binary cross-entropy), the same two with the SVM
 * hinge loss (labels -1/+1, weight decay). The two-layer networks are trained for every hidden
 * size of --hidden and the one with the best validation accuracy is reported.
 * usage: solver DATA.pkl [--update sgd|momentum|nesterov|adam] [--lr X] [--epochs N]
 *               [--hidden H,H,...] [--split TRAIN,VAL,TEST] [--batch B] [--seed S]
 * Features are standardised with the training split's mean and std. */
#include <deepc/deepc.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct split {
  dc_tensor *x; /* [N, F] float32 */
  dc_tensor *y; /* [N] float32 in {0, 1} */
  int64_t n;
} split;

typedef struct solver_opts {
  const char *update;
  double lr;
  int epochs, batch;
  int hidden[16], nhidden; /* hidden sizes tried for the two-layer networks */
  int64_t split[3];        /* train, validation, test sample counts */
} solver_opts;

static int fail(const char *what) {
  fprintf(stderr, "solver: %s: %s\n", what, dc_last_error());
  return 1;
}

/* Reads (x, y) from the pickle, standardises x and splits it into the first want[0], the next
 * want[1] and the next want[2] samples. */
static int load(const char *path, const int64_t want[3], split sp[3], int64_t *nfeat) {
  dc_pickle *pk = dc_pickle_load(path);
  if (!pk) return fail(path);
  const dc_pyobj *r = dc_pickle_root(pk);
  if (!r || (r->kind != DC_PY_TUPLE && r->kind != DC_PY_LIST) || r->n != 2 ||
      r->items[0]->kind != DC_PY_ARRAY || r->items[1]->kind != DC_PY_ARRAY) {
    dc_pickle_free(pk);
    fprintf(stderr, "solver: %s: expected a pickle of (features [N, F], targets [N])\n", path);
    return 1;
  }
  dc_scope_begin();
  dc_tensor *x = dc_contiguous(dc_to_dtype(r->items[0]->array, DC_F64));
  dc_tensor *y = dc_contiguous(dc_to_dtype(r->items[1]->array, DC_F64));
  dc_shape xs = dc_shape_of(x);
  int64_t need = want[0] + want[1] + want[2];
  if (!x || !y || xs.ndim != 2 || dc_numel(y) != xs.d[0] || xs.d[0] < need) {
    dc_scope_end();
    dc_pickle_free(pk);
    fprintf(stderr,
            "solver: %s: features must be [N, F] and targets [N] with N >= %lld (the split "
            "%lld/%lld/%lld)\n",
            path, (long long)need, (long long)want[0], (long long)want[1], (long long)want[2]);
    return 1;
  }
  int64_t f = xs.d[1], cut[4] = {0, want[0], want[0] + want[1], need};
  double *xd = dc_data(x), *yd = dc_data(y);
  for (int64_t j = 0; j < f; j++) { /* standardise with the training split's statistics */
    double m = 0, v = 0;
    for (int64_t i = 0; i < cut[1]; i++) m += xd[i * f + j];
    m /= (double)cut[1];
    for (int64_t i = 0; i < cut[1]; i++) v += (xd[i * f + j] - m) * (xd[i * f + j] - m);
    double sd = sqrt(v / (double)cut[1]) + 1e-12;
    for (int64_t i = 0; i < need; i++) xd[i * f + j] = (xd[i * f + j] - m) / sd;
  }
  for (int k = 0; k < 3; k++) {
    sp[k].n = cut[k + 1] - cut[k];
    sp[k].x = dc_keep(dc_to_dtype(dc_narrow(x, 0, cut[k], sp[k].n), DC_F32));
    sp[k].y = dc_keep(dc_to_dtype(dc_narrow(y, 0, cut[k], sp[k].n), DC_F32));
    for (int64_t i = cut[k]; i < cut[k + 1]; i++)
      if (yd[i] != 0 && yd[i] != 1) {
        dc_scope_end();
        dc_pickle_free(pk);
        fprintf(stderr, "solver: %s: target %lld is %g; expected 0 or 1\n", path, (long long)i,
                yd[i]);
        return 1;
      }
  }
  *nfeat = f;
  dc_scope_end();
  dc_pickle_free(pk);
  return sp[0].x && sp[1].x && sp[2].x ? 0 : fail(path);
}

/* Loss of logits z [B] against targets y [B] in {0, 1}: BCE with logits, or the hinge loss on
 * labels 2y - 1. */
static dc_tensor *loss_of(dc_tensor *z, dc_tensor *y, bool hinge) {
  if (!hinge) return dc_binary_cross_entropy_with_logits(z, y, NULL, NULL, DC_REDUCTION_MEAN);
  return dc_hinge_loss(z, dc_add_scalar(dc_mul_scalar(y, 2), -1), 1.0, DC_REDUCTION_MEAN);
}

static dc_tensor *logits(dc_module *m, dc_tensor *x) {
  return dc_reshape(dc_module_forward(m, x), DC_SHAPE(-1));
}

/* Fraction of samples whose logit has the sign of the target (z > 0 <=> class 1). */
static double accuracy(dc_module *m, const split *s) {
  dc_scope_begin();
  dc_no_grad_begin();
  dc_module_eval(m);
  dc_tensor *z = dc_contiguous(logits(m, s->x));
  double ok = 0;
  const float *zd = z ? dc_data(z) : NULL, *yd = dc_data(s->y);
  for (int64_t i = 0; zd && i < s->n; i++) ok += (zd[i] > 0) == (yd[i] > 0.5f);
  dc_module_train(m, true);
  dc_no_grad_end();
  dc_scope_end();
  return zd ? ok / (double)s->n : NAN;
}

static dc_optim *make_optim(dc_module *m, const solver_opts *o, bool hinge) {
  int n;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &n);
  dc_tensor *params[16];
  for (int i = 0; i < n && i < 16; i++) params[i] = ps[i].tensor;
  bool adam = !strcmp(o->update, "adam");
  dc_optim_hparams h = dc_optim_defaults(adam ? DC_OPTIM_ADAM : DC_OPTIM_SGD);
  h.lr = o->lr > 0 ? o->lr : adam ? 1e-3 : 0.01;
  if (!strcmp(o->update, "momentum") || !strcmp(o->update, "nesterov")) h.momentum = 0.9;
  h.nesterov = !strcmp(o->update, "nesterov");
  if (hinge) h.weight_decay = 1e-3; /* the SVM's margin term: lambda/2 |w|^2 */
  dc_optim *opt = dc_optim_create(adam ? DC_OPTIM_ADAM : DC_OPTIM_SGD, params, n < 16 ? n : 16, h);
  dc_named_tensors_free(ps, n);
  return opt;
}

/* A copy of the model's weights (its state dict shares storage with the model). */
static dc_state_dict *snapshot(const dc_module *m) {
  dc_state_dict *live = dc_module_state_dict(m), *copy = dc_state_dict_new();
  for (int i = 0; live && copy && i < dc_state_dict_size(live); i++) {
    dc_tensor *t = dc_clone(dc_detach(dc_state_dict_tensor_at(live, i)));
    dc_state_dict_set(copy, dc_state_dict_key_at(live, i), t);
    dc_free(t);
  }
  dc_state_dict_free(live);
  return copy;
}

/* Trains one model; prints its row (hidden: its hidden size, 0 for none) and sets *val and *test
 * to its best validation accuracy and the test accuracy of that epoch's weights. Returns 0 or 1
 * on error. */
static int run(const char *name, const char *spec, int hidden, bool hinge, const split sp[3],
               const solver_opts *o, double *val, double *test) {
  dc_module *m = dc_nn_from_spec(spec);
  dc_optim *opt = m ? make_optim(m, o, hinge) : NULL;
  dc_state_dict *best = NULL;
  if (!opt) return fail(name);
  double best_acc = -1, last_loss = NAN;
  int best_epoch = 0;
  for (int e = 1; e <= o->epochs; e++) {
    dc_scope_begin();
    dc_tensor *perm = dc_randperm(sp[0].n);
    double sum = 0;
    for (int64_t s = 0; s < sp[0].n; s += o->batch) {
      dc_scope_begin();
      int64_t b = sp[0].n - s < o->batch ? sp[0].n - s : o->batch;
      dc_tensor *idx = dc_narrow(perm, 0, s, b);
      dc_tensor *l = loss_of(logits(m, dc_index_select(sp[0].x, 0, idx)),
                             dc_index_select(sp[0].y, 0, idx), hinge);
      dc_optim_zero_grad(opt);
      int rc = l ? dc_backward(l) : (int)dc_last_status();
      if (rc == DC_OK) rc = dc_optim_step(opt);
      if (rc == DC_OK) sum += dc_item(l) * (double)b;
      dc_scope_end();
      if (rc != DC_OK) {
        dc_scope_end();
        return fail(name);
      }
    }
    dc_scope_end();
    last_loss = sum / (double)sp[0].n;
    double va = accuracy(m, &sp[1]);
    if (va > best_acc) { /* keep the best validation epoch's weights */
      best_acc = va, best_epoch = e;
      if (best) dc_state_dict_free(best);
      best = snapshot(m);
    }
  }
  double tr = accuracy(m, &sp[0]), te;
  if (dc_module_load_state_dict(m, best, true, NULL) != DC_OK) return fail(name);
  te = accuracy(m, &sp[2]);
  char h[16] = "-";
  if (hidden) snprintf(h, sizeof h, "%d", hidden);
  printf("| %s | %s | %s | %.4f | %.2f %% | %.2f %% (epoch %d) | %.2f %% |\n", name,
         hinge ? "hinge" : "BCE", h, last_loss, 100 * tr, 100 * best_acc, best_epoch, 100 * te);
  *val = best_acc, *test = te;
  dc_state_dict_free(best);
  dc_optim_free(opt);
  dc_module_free(m);
  return 0;
}

/* The linear model: one row. */
static int linear(const char *name, bool hinge, const split sp[3], const solver_opts *o, int64_t f,
                  char *chosen, size_t cap) {
  char spec[64];
  double val, test;
  snprintf(spec, sizeof spec, "linear(%lld, 1)", (long long)f);
  if (run(name, spec, 0, hinge, sp, o, &val, &test)) return 1;
  snprintf(chosen, cap, "%s: test accuracy %.2f %%\n", name, 100 * test);
  return 0;
}

/* The two-layer network for every hidden size: one row each; the size with the best validation
 * accuracy (the first on ties) is the model reported. */
static int two_layer(const char *name, bool hinge, const split sp[3], const solver_opts *o,
                     int64_t f, char *chosen, size_t cap) {
  double best_val = -1, best_test = 0;
  int best_h = 0;
  for (int k = 0; k < o->nhidden; k++) {
    char spec[128];
    int h = o->hidden[k];
    double val, test;
    snprintf(spec, sizeof spec, "linear(%lld, %d), relu, linear(%d, 1)", (long long)f, h, h);
    if (run(name, spec, h, hinge, sp, o, &val, &test)) return 1;
    if (val > best_val) best_val = val, best_test = test, best_h = h;
  }
  snprintf(chosen, cap,
           "%s: %d hidden units chosen on validation (%.2f %%), test accuracy %.2f %%\n", name,
           best_h, 100 * best_val, 100 * best_test);
  return 0;
}

/* "50,100,200" into o->hidden; false on a bad list. */
static bool parse_hidden(solver_opts *o, const char *v) {
  o->nhidden = 0;
  for (const char *p = v; *p && o->nhidden < 16;) {
    char *end;
    long h = strtol(p, &end, 10);
    if (end == p || h < 1 || h > 100000 || (*end && *end != ',')) return false;
    o->hidden[o->nhidden++] = (int)h;
    p = *end ? end + 1 : end;
  }
  return o->nhidden > 0;
}

static bool parse_split(solver_opts *o, const char *v) {
  long long a, b, c;
  char tail;
  if (sscanf(v, "%lld,%lld,%lld%c", &a, &b, &c, &tail) != 3 || a < 1 || b < 1 || c < 1)
    return false;
  o->split[0] = a, o->split[1] = b, o->split[2] = c;
  return true;
}

int main(int argc, char **argv) {
  solver_opts o = {.update = "momentum", .epochs = 50, .batch = 50, .split = {500, 250, 250}};
  bool args_ok = parse_hidden(&o, "10,25,50,100,200");
  const char *path = NULL;
  unsigned long long seed = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--update") && v)
      o.update = v, i++;
    else if (!strcmp(a, "--lr") && v)
      o.lr = atof(v), i++;
    else if (!strcmp(a, "--epochs") && v)
      o.epochs = atoi(v), i++;
    else if (!strcmp(a, "--hidden") && v)
      args_ok &= parse_hidden(&o, v), i++;
    else if (!strcmp(a, "--split") && v)
      args_ok &= parse_split(&o, v), i++;
    else if (!strcmp(a, "--batch") && v)
      o.batch = atoi(v), i++;
    else if (!strcmp(a, "--seed") && v)
      seed = strtoull(v, NULL, 10), i++;
    else if (a[0] != '-' && !path)
      path = a;
    else
      path = NULL, i = argc;
  }
  const char *ups[] = {"sgd", "momentum", "nesterov", "adam"};
  bool known = false;
  for (int k = 0; k < 4; k++) known |= !strcmp(o.update, ups[k]);
  if (!path || !known || !args_ok || o.epochs < 1 || o.batch < 1) {
    fprintf(stderr, "usage: solver DATA.pkl [--update sgd|momentum|nesterov|adam] [--lr X] "
                    "[--epochs N] [--hidden H,H,...] [--split TRAIN,VAL,TEST] [--batch B] "
                    "[--seed S]\n");
    return 2;
  }
  dc_manual_seed(seed);
  split sp[3];
  int64_t f = 0;
  if (load(path, o.split, sp, &f)) return 1;
  printf("%s: %lld features; train %lld, validation %lld, test %lld samples; update %s, %d "
         "epochs, batch %d\n\n",
         path, (long long)f, (long long)sp[0].n, (long long)sp[1].n, (long long)sp[2].n, o.update,
         o.epochs, o.batch);
  printf("| model | loss | hidden | final train loss | train acc | best val acc | test acc |\n");
  printf("|---|---|---:|---:|---:|---:|---:|\n");
  char chosen[4][160];
  int rc = linear("logistic regression", false, sp, &o, f, chosen[0], sizeof chosen[0]) ||
           two_layer("two-layer, logistic output", false, sp, &o, f, chosen[1], sizeof chosen[1]) ||
           linear("linear SVM", true, sp, &o, f, chosen[2], sizeof chosen[2]) ||
           two_layer("two-layer SVM", true, sp, &o, f, chosen[3], sizeof chosen[3]);
  if (!rc) {
    printf("\n");
    for (int k = 0; k < 4; k++) fputs(chosen[k], stdout);
  }
  for (int k = 0; k < 3; k++) dc_free(sp[k].x), dc_free(sp[k].y);
  return rc;
}
