/* The model of a checkpoint of `deepc train` on its own (dc_checkpoint_model): the stored
 * configuration rebuilt with the sample shape given (or the dataset's), the weights loaded, the
 * class names read from the metadata. Used by `deepc export`; eval.c scores checkpoints. */
#include "train-impl.h"

#include <string.h>

void dc_checkpoint_names_free(char **names, int64_t n) {
  for (int64_t i = 0; names && i < n; i++) dc__free(names[i]);
  dc__free(names);
}

/* The newline-separated class names of the metadata as an array; *n 0 when absent. */
static char **split_names(const char *text, int64_t *n) {
  *n = 0;
  if (!text || !*text) return NULL;
  int64_t k = 1;
  for (const char *p = text; *p; p++) k += *p == '\n';
  char **v = dc__calloc((size_t)k, sizeof *v);
  for (int64_t i = 0; v && i < k; i++) {
    const char *e = strchr(text, '\n');
    size_t len = e ? (size_t)(e - text) : strlen(text);
    if (!(v[i] = dc__malloc(len + 1))) {
      dc_checkpoint_names_free(v, i);
      return NULL;
    }
    memcpy(v[i], text, len);
    v[i][len] = '\0';
    text += len + (e ? 1 : 0);
  }
  if (v) *n = k;
  return v;
}

/* The data description the model is built for: the given shape and the stored class count, or
 * the dataset's own when no shape is given. */
static int model_data(const dc_config *c, const dc_ckpt *ck, dc_shape in, dc__data *d) {
  *d = (dc__data){0};
  int64_t k = 0;
  char **names = split_names(dc_ckpt_meta(ck, "classes"), &k);
  dc_checkpoint_names_free(names, k);
  if (in.ndim > 0 && k > 0) {
    d->sample_shape = in;
    d->num_classes = k;
    return DC_OK;
  }
  return dc__build_data(dc__config_spec(c), d, NULL);
}

dc_module *dc_checkpoint_model(const char *path, dc_shape *input, char ***names, int64_t *nnames) {
  if (!path || !input) return dc__err(DC_ERR_ARG, "checkpoint_model: NULL argument");
  if (names) *names = NULL, *nnames = 0;
  dc_ckpt *ck = dc_ckpt_load(path);
  if (!ck) return NULL;
  const char *text = dc_ckpt_meta(ck, "config");
  dc_config *c = text ? dc_config_parse(text, path) : NULL;
  dc__data d = {0};
  dc_module *m = NULL;
  dc_state_dict *sd = NULL;
  if (!text)
    dc__err(DC_ERR_FORMAT,
            "%s: no configuration in the checkpoint's metadata (it was not "
            "written by `deepc train`); give a zoo MODEL and --weights instead",
            path);
  if (c && model_data(c, ck, *input, &d) == DC_OK &&
      (m = dc__build_model(dc__config_spec(c), &d)) &&
      (sd = dc_ckpt_get_state_dict(ck, "model.")) &&
      dc_module_load_state_dict(m, sd, true, NULL) == DC_OK) {
    dc_module_eval(m);
    *input = d.sample_shape;
    if (names) *names = split_names(dc_ckpt_meta(ck, "classes"), nnames);
  } else {
    dc_module_free(m);
    m = NULL;
  }
  dc_state_dict_free(sd);
  dc__data_free(&d);
  dc_config_free(c);
  dc_ckpt_free(ck);
  return m;
}
