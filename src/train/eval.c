/* Evaluating a checkpoint written by a run: the model is rebuilt from the configuration stored
 * in it, its weights loaded, and the test split (or another dataset) scored: accuracy, top-5,
 * per-class table and confusion matrix. */
#include "train-impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The configuration that scores an ONNX model: the defaults with model.arch = onnx:FILE. */
static dc_config *onnx_config(const char *path) {
  dc_config *c = dc_config_default();
  size_t n = strlen(path) + sizeof "model.arch=onnx:";
  char *kv = c ? dc__malloc(n) : NULL;
  if (kv) snprintf(kv, n, "model.arch=onnx:%s", path);
  if (c && (!kv || dc_config_set(c, kv) != DC_OK)) {
    dc_config_free(c);
    c = NULL;
  }
  dc__free(kv);
  return c;
}

/* The checkpoint (or ONNX model) and the configuration that rebuilds its model. */
static int eval_open(const char *path, const dc_eval_opts *o, bool onnx, dc_ckpt **ck,
                     dc_config **c) {
  if (onnx && !o->data)
    return dc__errs(DC_ERR_ARG, "eval: %s: an ONNX model needs --data (the dataset to score)",
                    path);
  *ck = onnx ? NULL : dc_ckpt_load(path);
  if (!onnx && !*ck) return dc_last_status();
  const char *text = dc_ckpt_meta(*ck, "config");
  if (!text && !onnx)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: no configuration in the checkpoint's metadata (it was not written by "
                    "`deepc train`); cannot rebuild the model",
                    path);
  *c = onnx ? onnx_config(path) : dc_config_parse(text, path);
  if (!*c)
    return dc__rewrap(dc_last_status(), "%s: stored configuration: %s", path, dc_last_error());
  return DC_OK;
}

/* Evaluates exactly the requested split: no hold-out for validation or a training subset. */
static int eval_settings(dc_config *c, const dc_eval_opts *o) {
  int rc = DC_OK;
  if (o->limit > 0 || o->train_split) {
    char buf[64];
    snprintf(buf, sizeof buf, "data.test_limit=%lld", (long long)o->limit);
    rc = dc_config_set(c, buf);
  }
  if (rc == DC_OK) rc = dc_config_set(c, "data.train_limit=0");
  if (rc == DC_OK) rc = dc_config_set(c, "data.val_split=0");
  return rc;
}

/* The model with the checkpoint's weights, on the device; dataset names d in messages. */
static int eval_model(const dc_config *c, const dc_ckpt *ck, const dc__data *d, const char *dataset,
                      dc_device dev, dc_module **model) {
  const char *classes = dc_ckpt_meta(ck, "classes");
  int64_t kk = 1;
  for (const char *p = classes; p && *p; p++) kk += *p == '\n';
  if (classes && kk != d->num_classes)
    return dc__errs(DC_ERR_ARG, "eval: the checkpoint's model has %lld classes but %s has %lld",
                    (long long)kk, dataset, (long long)d->num_classes);
  if (!(*model = dc__build_model(dc__config_spec(c), d))) return dc__status_or_nomem();
  int rc = DC_OK;
  if (ck) {
    dc_state_dict *sd = dc_ckpt_get_state_dict(ck, "model.");
    if (!sd) return dc__status_or_nomem();
    rc = dc_module_load_state_dict(*model, sd, true, NULL);
    dc_state_dict_free(sd);
  }
  if (rc == DC_OK && dev != DC_CPU) rc = dc_module_to(*model, dev);
  return rc;
}

/* The split to score: the test set, or (--train) the first o->limit training samples. */
static dc_dataset *eval_split(dc__data *d, const dc_eval_opts *o) {
  if (!o->train_split) return d->test;
  if (o->limit > 0 && o->limit < dc_dataset_len(d->train)) {
    int64_t *idx = dc__malloc(sizeof *idx * (size_t)o->limit);
    if (!idx) return NULL;
    for (int64_t i = 0; i < o->limit; i++) idx[i] = i;
    dc_dataset *sub = dc_subset(d->train, idx, o->limit);
    dc__free(idx);
    if (!sub) return NULL;
    dc_dataset_free(d->train);
    d->train = sub;
  }
  return d->train;
}

static void print_eval(FILE *out, const char *path, const dc_ckpt *ck, const dc_eval_opts *o,
                       const char *dataset, const dc__data *d, const dc_metrics *m) {
  const char *const *names = (const char *const *)d->class_names;
  const char *ep = dc_ckpt_meta(ck, "epoch");
  fprintf(out, "%s (epoch %s) on %s, %s split: %lld samples\n", path, ep ? ep : "?", dataset,
          o->train_split ? "training" : "test", (long long)m->count);
  fprintf(out, "accuracy: %.2f%%   top-%d: %.2f%%   loss: %.4f   macro F1: %.2f%%\n\n",
          100 * dc_metrics_accuracy(m), m->topk, 100 * dc_metrics_topk_accuracy(m),
          dc_metrics_mean_loss(m), 100 * dc_metrics_macro_f1(m));
  if (o->markdown) fprintf(out, "## Per-class results\n\n");
  dc_metrics_print_classes(out, m, names, o->markdown);
  fprintf(out, o->markdown ? "\n## Confusion matrix (rows: true, columns: predicted)\n\n"
                           : "\nconfusion matrix (rows: true class, columns: predicted class)\n");
  dc_metrics_print_confusion(out, m, names, o->markdown);
}

/* Builds the data and the model of checkpoint ck, scores the split and prints the results. */
static int eval_run(const char *path, const dc_eval_opts *o, dc_ckpt *ck, dc_config *c,
                    dc_device dev, dc_metrics **m_out) {
  const dc__run_spec *sp = dc__config_spec(c);
  dc__data d;
  int rc = dc__build_data(sp, &d, o->data);
  if (rc != DC_OK) return rc;
  dc_module *model = NULL;
  dc_loader *l = NULL;
  dc_metrics *m = NULL;
  dc__loss_cfg loss;
  dc__build_loss(sp, &loss);
  const char *dataset = o->data ? o->data : sp->data.dataset;
  dc_dataset *ds = NULL;
  if ((rc = eval_model(c, ck, &d, dataset, dev, &model)) == DC_OK && !(ds = eval_split(&d, o)))
    rc = dc__status_or_nomem();
  if (rc == DC_OK &&
      !(l = dc_loader_new(ds, .batch_size = sp->train.eval_batch_size,
                          .num_workers = (int)sp->data.workers, .seed = 1, .device = dev)))
    rc = dc__status_or_nomem();
  if (rc == DC_OK && !(m = dc_metrics_new(d.num_classes, 5))) rc = dc__status_or_nomem();
  if (rc == DC_OK) rc = dc_evaluate(model, l, dc__loss_call, &loss, m);
  if (rc == DC_OK) print_eval(o->out ? o->out : stdout, path, ck, o, dataset, &d, m);
  if (rc == DC_OK && m_out) *m_out = m, m = NULL;
  dc_metrics_free(m);
  dc_loader_free(l);
  dc_module_free(model);
  dc__data_free(&d);
  return rc;
}

int dc_eval_checkpoint(const char *path, const dc_eval_opts *opts, dc_metrics **m_out) {
  if (!path) return dc__errs(DC_ERR_ARG, "eval: NULL checkpoint path");
  dc_eval_opts o = opts ? *opts : (dc_eval_opts){0};
  if (m_out) *m_out = NULL;
  dc_device dev = DC_CPU;
  if (o.device && dc_device_parse(o.device, &dev) != DC_OK) /* before any work */
    return dc__rewrap(dc_last_status(), "--device %s: %s", o.device, dc_last_error());
  size_t plen = strlen(path);
  bool onnx = plen > 5 && !strcmp(path + plen - 5, ".onnx"); /* a model with its weights */
  dc_ckpt *ck = NULL;
  dc_config *c = NULL;
  int rc = eval_open(path, &o, onnx, &ck, &c);
  if (rc == DC_OK) rc = eval_settings(c, &o);
  if (rc == DC_OK) rc = eval_run(path, &o, ck, c, dev, m_out);
  dc_config_free(c);
  dc_ckpt_free(ck);
  return rc;
}
