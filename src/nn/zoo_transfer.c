/* Transfer learning on any module tree: finding and replacing the classification head, loading
 * a pretrained weight file with the head left out when its shape differs, freezing sub-trees and
 * splitting the parameters into backbone/head groups with their own learning rates. */
#include "zoo-impl.h"

#include <deepc/io.h>

#include <ctype.h>
#include <stdio.h>
#include <string.h>

const char *dc_zoo_head_name(const dc_module *m, char *buf, size_t n) {
  if (!m || !buf || n == 0) return dc__err(DC_ERR_ARG, "zoo_head_name: NULL argument");
  int nm = 0;
  dc_named_module *mods = dc_module_modules(m, &nm);
  if (!mods) return NULL;
  const char *found = NULL;
  for (int i = 0; i < nm; i++)
    if (dc_module_get_type(mods[i].module) == &dc__type_linear) found = mods[i].name;
  if (found) snprintf(buf, n, "%s", found);
  dc_named_modules_free(mods, nm);
  if (!found)
    return dc__err(DC_ERR_ARG, "zoo: the model (%s) has no Linear layer to act as its head",
                   dc_module_type_name(m));
  return buf;
}

int dc_zoo_replace_head(dc_module *m, int64_t num_classes) {
  char path[256];
  if (num_classes < 1)
    return dc__errs(DC_ERR_ARG, "zoo_replace_head: num_classes is %lld; it must be >= 1",
                    (long long)num_classes);
  if (!dc_zoo_head_name(m, path, sizeof path)) return dc_last_status();
  if (!*path) return dc__errs(DC_ERR_ARG, "zoo_replace_head: the model itself is a Linear layer");
  const dc__linear_state *s = dc_module_state(dc_module_get_submodule(m, path));
  dc_module *head = dc_nn_linear(s->in, num_classes, .no_bias = !s->bias);
  if (head && !dc_module_is_training(m)) dc_module_eval(head);
  return dc_module_set_child(m, path, head) ? DC_OK : dc_last_status();
}

/* ---- freezing ---- */
static int freeze_path(dc_module *m, const char *path) {
  if (strcmp(path, "all") == 0 || strcmp(path, "none") == 0) {
    dc_module_requires_grad_(m, path[0] == 'n');
    return DC_OK;
  }
  if (strcmp(path, "backbone") == 0) {
    char head[256];
    if (!dc_zoo_head_name(m, head, sizeof head)) return dc_last_status();
    dc_module_requires_grad_(m, false);
    dc_module_requires_grad_(dc_module_get_submodule(m, head), true);
    return DC_OK;
  }
  dc_module *sub = dc_module_get_submodule(m, path);
  if (sub) {
    dc_module_requires_grad_(sub, false);
    return DC_OK;
  }
  dc_clear_error();
  dc_tensor *p = dc_module_get_parameter(m, path);
  if (!p)
    return dc__errs(DC_ERR_ARG,
                    "zoo_freeze: '%s' is neither a module nor a parameter of the model (use "
                    "dotted paths such as layer1, layer4.1.conv2, fc.bias, or backbone/all/none)",
                    path);
  dc_requires_grad_(p, false);
  return DC_OK;
}

int dc_zoo_freeze(dc_module *m, const char *what) {
  if (!m || !what) return dc__errs(DC_ERR_ARG, "zoo_freeze: NULL argument");
  const char *p = what;
  while (*p) {
    while (*p == ',' || isspace((unsigned char)*p)) p++;
    size_t k = 0;
    char item[256];
    while (p[k] && p[k] != ',') k++;
    size_t len = k;
    while (len && isspace((unsigned char)p[len - 1])) len--;
    if (len >= sizeof item) return dc__errs(DC_ERR_ARG, "zoo_freeze: path too long in '%s'", what);
    memcpy(item, p, len);
    item[len] = '\0';
    p += k;
    if (len) {
      int rc = freeze_path(m, item);
      if (rc != DC_OK) return rc;
    }
  }
  return DC_OK;
}

/* ---- parameter groups ---- */
void dc_zoo_param_groups_free(dc_param_group *groups, int ngroups) {
  for (int g = 0; groups && g < ngroups; g++) {
    dc__free((void *)(uintptr_t)groups[g].params);
    groups[g].params = NULL;
  }
}

int dc_zoo_param_groups(const dc_module *m, dc_optim_hparams hp, double backbone_lr,
                        dc_param_group groups[2], int *ngroups) {
  if (!m || !groups || !ngroups) return dc__errs(DC_ERR_ARG, "zoo_param_groups: NULL argument");
  char head[256];
  if (!dc_zoo_head_name(m, head, sizeof head)) return dc_last_status();
  size_t hl = strlen(head);
  int n = 0;
  dc_named_tensor *ps = dc_module_trainable_parameters(m, &n);
  if (!ps && n) return dc_last_status();
  dc_tensor **bb = dc__malloc(sizeof *bb * (size_t)(n + 1)),
            **hd = dc__malloc(sizeof *hd * (size_t)(n + 1));
  if (!bb || !hd) {
    dc__free(bb);
    dc__free(hd);
    dc_named_tensors_free(ps, n);
    return DC_ERR_NOMEM;
  }
  int nb = 0, nh = 0;
  for (int i = 0; i < n; i++) {
    bool is_head = hl == 0 || (strncmp(ps[i].name, head, hl) == 0 && ps[i].name[hl] == '.');
    if (is_head)
      hd[nh++] = ps[i].tensor;
    else
      bb[nb++] = ps[i].tensor;
  }
  dc_named_tensors_free(ps, n);
  groups[0] = (dc_param_group){.params = hd, .n = nh, .hp = hp};
  *ngroups = 1;
  if (nb) {
    dc_optim_hparams bh = hp;
    bh.lr = backbone_lr;
    groups[(*ngroups)++] = (dc_param_group){.params = bb, .n = nb, .hp = bh};
  } else {
    dc__free(bb);
  }
  return DC_OK;
}

/* ---- loading pretrained weights ---- */
static bool has_entry(const dc_weights *w, const char *prefix, const char *key) {
  char name[2048];
  snprintf(name, sizeof name, "%s%s", prefix, key);
  return dc_weights_find(w, name) >= 0;
}

/* The prefix under which the file holds the model's keys: the candidate matching most keys. */
static const char *find_prefix(const dc_weights *w, const dc_state_dict *msd) {
  static const char *const CANDIDATES[] = {
      "",        "model.",        "state_dict.", "model_state_dict.",
      "module.", "model.module.", "net.",        "network."};
  const char *best = NULL;
  int best_hits = 0;
  for (size_t c = 0; c < sizeof CANDIDATES / sizeof CANDIDATES[0]; c++) {
    int hits = 0;
    for (int i = 0; i < dc_state_dict_size(msd); i++)
      hits += has_entry(w, CANDIDATES[c], dc_state_dict_key_at(msd, i));
    if (hits > best_hits) best_hits = hits, best = CANDIDATES[c];
  }
  return best;
}

static bool under(const char *key, const char *head) {
  size_t hl = strlen(head);
  return strncmp(key, head, hl) == 0 && key[hl] == '.';
}

/* Appends "key" to a list of names in buf (at most a few shown). */
static void list_key(char *buf, size_t n, int *count, const char *key) {
  if (*count < 6) dc__appendf(buf, n, "%s%s", *count ? ", " : "", key);
  if (*count == 6) dc__appendf(buf, n, ", ...");
  (*count)++;
}

int dc_zoo_load_pretrained_opt(dc_module *m, const char *path, dc_pretrained_opts o) {
  if (!m || !path) return dc__errs(DC_ERR_ARG, "zoo_load_pretrained: NULL argument");
  dc_weights *w = dc_weights_load(path);
  if (!w) return dc_last_status();
  int rc = dc_zoo_load_weights(m, w, path, o);
  dc_weights_free(w);
  return rc;
}

int dc_zoo_load_weights(dc_module *m, const dc_weights *w, const char *path, dc_pretrained_opts o) {
  if (!m || !w) return dc__errs(DC_ERR_ARG, "zoo_load_weights: NULL argument");
  if (!path) path = "weights";
  dc_state_dict *msd = dc_module_state_dict(m), *sd = NULL, *use = NULL;
  char head[256] = "", skipped[512] = "", missing[1024] = "", unexpected[1024] = "";
  int nmiss = 0, nunexp = 0, rc = DC_OK;
  const char *prefix = msd ? (o.prefix ? o.prefix : find_prefix(w, msd)) : NULL;
  if (msd && !prefix)
    dc__err(
        DC_ERR_ARG,
        "%s: none of the model's keys (%s, ...) is in the file (its first entry is '%s'); is it "
        "the weights of another model?",
        path, dc_state_dict_key_at(msd, 0), dc_weights_count(w) ? dc_weights_name(w, 0) : "none");
  if (!prefix || !(sd = dc_weights_state_dict(w, prefix)) || !(use = dc_state_dict_new())) {
    rc = dc_last_status() ? dc_last_status() : DC_ERR_NOMEM;
    goto done;
  }
  if (!dc_zoo_head_name(m, head, sizeof head)) dc_clear_error(), head[0] = '\0';
  /* a head of another shape stays fresh (model.fc = nn.Linear(512, k) after loading) */
  bool skip_head = false;
  for (int i = 0; i < dc_state_dict_size(msd) && *head && !o.keep_head; i++) {
    const char *key = dc_state_dict_key_at(msd, i);
    dc_tensor *mine = dc_state_dict_tensor_at(msd, i), *theirs = dc_state_dict_get(sd, key);
    if (under(key, head) && theirs && !dc_shape_equal(dc_shape_of(mine), dc_shape_of(theirs)) &&
        !skip_head) {
      char a[96], b[96];
      skip_head = true;
      snprintf(skipped, sizeof skipped, "head %s left as initialised (%s: file %s, model %s)", head,
               key, dc_shape_str(dc_shape_of(theirs), a, sizeof a),
               dc_shape_str(dc_shape_of(mine), b, sizeof b));
    }
  }
  for (int i = 0; i < dc_state_dict_size(msd); i++) {
    const char *key = dc_state_dict_key_at(msd, i);
    if (!(skip_head && under(key, head)) && !dc_state_dict_get(sd, key) &&
        !strstr(key, "num_batches_tracked"))
      list_key(missing, sizeof missing, &nmiss, key);
  }
  for (int i = 0; i < dc_state_dict_size(sd) && rc == DC_OK; i++) {
    const char *key = dc_state_dict_key_at(sd, i);
    if (!dc_state_dict_get(msd, key))
      list_key(unexpected, sizeof unexpected, &nunexp, key);
    else if (!(skip_head && under(key, head)))
      rc = dc_state_dict_set(use, key, dc_state_dict_tensor_at(sd, i));
  }
  if (rc == DC_OK && !o.non_strict && (nmiss || nunexp))
    rc = dc__errs(DC_ERR_ARG,
                  "%s (prefix '%s'): %d key%s of the model missing from the file%s%s%s; %d "
                  "unexpected key%s%s%s%s",
                  path, prefix, nmiss, nmiss == 1 ? "" : "s", nmiss ? " (" : "", missing,
                  nmiss ? ")" : "", nunexp, nunexp == 1 ? "" : "s", nunexp ? " (" : "", unexpected,
                  nunexp ? ")" : "");
  if (rc == DC_OK) rc = dc_module_load_state_dict(m, use, false, NULL);
  if (rc == DC_OK && o.log) {
    fprintf(o.log, "loaded %d tensors from %s", dc_state_dict_size(use), path);
    fprintf(o.log, *prefix ? " (prefix '%s')\n" : "%s\n", prefix);
    if (*skipped) fprintf(o.log, "  %s\n", skipped);
    if (nmiss || nunexp)
      fprintf(o.log, "  not strict: %d missing (%s), %d unexpected (%s)\n", nmiss, missing, nunexp,
              unexpected);
  }
done:
  dc_state_dict_free(use);
  dc_state_dict_free(sd);
  dc_state_dict_free(msd);
  return rc;
}
