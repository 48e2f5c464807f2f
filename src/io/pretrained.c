/* Loading a pretrained weight file (.pth, .safetensors) into any module tree
 * (dc_zoo_load_pretrained, include/deepc/zoo.h): the prefix the file keeps the model's keys
 * under, a classification head of another shape left as initialised, strict or not. In io, above
 * nn: it reads files (dc_weights) and fills modules. */
#include "weights-impl.h"

#include "../nn/nn-impl.h"

#include <deepc/zoo.h>

#include <stdio.h>
#include <string.h>

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
