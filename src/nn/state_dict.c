/* State dicts: ordered key -> tensor maps with PyTorch's keys, made from a module tree and loaded
 * back with strict checking (missing, unexpected and mis-shaped keys all reported at once).
 * Reading and writing files (.pth, safetensors, npz) is left to src/io. */
#include "nn-impl.h"

#include <stdio.h>
#include <string.h>

struct dc_state_dict {
  int n, cap;
  char **keys;
  dc_tensor **vals; /* owned references (dc__ref) */
};

dc_state_dict *dc_state_dict_new(void) { return dc__calloc(1, sizeof(dc_state_dict)); }

void dc_state_dict_free(dc_state_dict *sd) {
  if (!sd) return;
  for (int i = 0; i < sd->n; i++) {
    dc__free(sd->keys[i]);
    dc__unref(sd->vals[i]);
  }
  dc__free(sd->keys);
  dc__free(sd->vals);
  dc__free(sd);
}

static int find_key(const dc_state_dict *sd, const char *key) {
  for (int i = 0; i < sd->n; i++)
    if (strcmp(sd->keys[i], key) == 0) return i;
  return -1;
}

int dc_state_dict_set(dc_state_dict *sd, const char *key, dc_tensor *t) {
  if (!sd || !key || !t)
    return dc__errs(DC_ERR_ARG, "dc_state_dict_set: NULL %s",
                    !sd    ? "dict"
                    : !key ? "key"
                           : "tensor");
  int i = find_key(sd, key);
  if (i >= 0) {
    dc__ref(t);
    dc__unref(sd->vals[i]);
    sd->vals[i] = t;
    return DC_OK;
  }
  if (sd->n == sd->cap) {
    int cap = sd->cap ? sd->cap * 2 : 16;
    char **k = dc__realloc(sd->keys, sizeof *k * (size_t)sd->cap, sizeof *k * (size_t)cap);
    if (!k) return DC_ERR_NOMEM;
    sd->keys = k;
    dc_tensor **v = dc__realloc(sd->vals, sizeof *v * (size_t)sd->cap, sizeof *v * (size_t)cap);
    if (!v) return DC_ERR_NOMEM;
    sd->vals = v;
    sd->cap = cap;
  }
  char *k = dc__strdup(key);
  if (!k) return DC_ERR_NOMEM;
  sd->keys[sd->n] = k;
  sd->vals[sd->n++] = dc__ref(t);
  return DC_OK;
}

dc_tensor *dc_state_dict_get(const dc_state_dict *sd, const char *key) {
  if (!sd || !key) return NULL;
  int i = find_key(sd, key);
  return i < 0 ? NULL : sd->vals[i];
}

int dc_state_dict_size(const dc_state_dict *sd) { return sd ? sd->n : 0; }

const char *dc_state_dict_key_at(const dc_state_dict *sd, int i) {
  return sd && i >= 0 && i < sd->n ? sd->keys[i] : NULL;
}

dc_tensor *dc_state_dict_tensor_at(const dc_state_dict *sd, int i) {
  return sd && i >= 0 && i < sd->n ? sd->vals[i] : NULL;
}

dc_state_dict *dc_module_state_dict(const dc_module *m) {
  int n;
  dc_named_tensor *l = dc__module_list(m, DC__LIST_STATE, &n);
  if (!l) return NULL;
  dc_state_dict *sd = dc_state_dict_new();
  for (int i = 0; sd && i < n; i++)
    if (dc_state_dict_set(sd, l[i].name, l[i].tensor) != DC_OK) {
      dc_state_dict_free(sd);
      sd = NULL;
    }
  dc_named_tensors_free(l, n);
  return sd;
}

void dc_load_result_free(dc_load_result *res) {
  if (!res) return;
  for (int i = 0; i < res->nmissing; i++) dc__free(res->missing[i]);
  for (int i = 0; i < res->nunexpected; i++) dc__free(res->unexpected[i]);
  dc__free(res->missing);
  dc__free(res->unexpected);
  *res = (dc_load_result){0};
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0 && (a == b || s[a - b - 1] == '.');
}

/* Same shape, or a 0-d tensor given as [1] (PyTorch accepts those from older checkpoints). */
static bool shape_ok(const dc_tensor *model, const dc_tensor *given) {
  if (dc_shape_equal(dc_shape_of(model), dc_shape_of(given))) return true;
  return model->ndim == 0 && given->ndim == 1 && given->shape[0] == 1;
}

/* Appends `"key"` to a list line of the message, eliding past the buffer. */
static void add_key(char *msg, size_t n, int k, const char *key) {
  dc__appendf(msg, n, "%s\"%s\"", k ? ", " : " ", key);
}

static char **copy_keys(char **src, int n) {
  char **out = dc__calloc((size_t)(n ? n : 1), sizeof *out);
  for (int i = 0; out && i < n; i++) out[i] = dc__strdup(src[i]);
  return out;
}

int dc_module_load_state_dict(dc_module *m, const dc_state_dict *sd, bool strict,
                              dc_load_result *res) {
  if (res) *res = (dc_load_result){0};
  if (!m || !sd)
    return dc__errs(DC_ERR_ARG, "load_state_dict: NULL %s", m ? "state dict" : "module");
  int n;
  dc_named_tensor *l = dc__module_list(m, DC__LIST_STATE, &n);
  if (!l) return dc_last_status();
  bool *used = dc__calloc((size_t)sd->n + 1, 1);
  int *src = dc__calloc((size_t)n + 1, sizeof *src);
  char **missing = dc__calloc((size_t)n + 1, sizeof *missing);
  char **unexpected = dc__calloc((size_t)sd->n + 1, sizeof *unexpected);
  char msg[2048], mism[1536] = "";
  int nmiss = 0, nunex = 0, nbad = 0, rc = DC_OK;
  if (!used || !src || !missing || !unexpected) {
    rc = DC_ERR_NOMEM;
    goto done;
  }
  for (int i = 0; i < n; i++) {
    int j = find_key(sd, l[i].name);
    src[i] = j;
    if (j < 0) {
      if (!ends_with(l[i].name, "num_batches_tracked")) missing[nmiss++] = l[i].name;
      continue;
    }
    used[j] = true;
    if (!shape_ok(l[i].tensor, sd->vals[j])) {
      char a[128], b[128];
      dc__appendf(mism, sizeof mism,
                  "\n  size mismatch for %s: copying a tensor of shape %s "
                  "from the state dict, the shape in the model is %s",
                  l[i].name, dc_shape_str(dc_shape_of(sd->vals[j]), a, sizeof a),
                  dc_shape_str(dc_shape_of(l[i].tensor), b, sizeof b));
      nbad++;
    }
  }
  for (int j = 0; j < sd->n; j++)
    if (!used[j]) unexpected[nunex++] = sd->keys[j];
  if (nbad || (strict && (nmiss || nunex))) {
    snprintf(msg, sizeof msg,
             "load_state_dict: error(s) in loading the state dict for %s:", m->type->name);
    if (strict && nmiss) {
      dc__appendf(msg, sizeof msg, "\n  missing key(s):");
      for (int k = 0; k < nmiss; k++) add_key(msg, sizeof msg, k, missing[k]);
    }
    if (strict && nunex) {
      dc__appendf(msg, sizeof msg, "\n  unexpected key(s):");
      for (int k = 0; k < nunex; k++) add_key(msg, sizeof msg, k, unexpected[k]);
    }
    dc__appendf(msg, sizeof msg, "%s", mism);
    if (strict && (nmiss || nunex))
      dc__appendf(msg, sizeof msg, "\n  (pass strict=false to load the matching keys only)");
    rc = dc__errs(DC_ERR_ARG, "%s", msg);
    goto done;
  }
  bool grad_mode = dc_set_grad_enabled(false);
  for (int i = 0; i < n && rc == DC_OK; i++) {
    if (src[i] < 0) continue;
    dc_tensor *v = sd->vals[src[i]];
    if (l[i].tensor->ndim == 0 && v->ndim == 1) { /* a 0-d value saved as [1] */
      dc_tensor *s0 = dc_reshape(v, DC_SCALAR_SHAPE);
      rc = s0 ? dc_copy_(l[i].tensor, s0) : (int)dc_last_status();
      dc_free(s0);
    } else {
      rc = dc_copy_(l[i].tensor, v);
    }
  }
  dc_set_grad_enabled(grad_mode);
done:
  if (res && (rc == DC_OK || rc == DC_ERR_ARG)) {
    res->missing = copy_keys(missing, nmiss);
    res->unexpected = copy_keys(unexpected, nunex);
    res->nmissing = res->missing ? nmiss : 0;
    res->nunexpected = res->unexpected ? nunex : 0;
  }
  dc__free(used);
  dc__free(src);
  dc__free(missing);
  dc__free(unexpected);
  dc_named_tensors_free(l, n);
  return rc;
}
