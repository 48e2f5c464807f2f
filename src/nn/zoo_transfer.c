/* Transfer learning on any module tree: finding and replacing the classification head, freezing
 * sub-trees and splitting the parameters into backbone/head groups with their own learning
 * rates. Loading a pretrained weight file is io's (src/io/pretrained.c). */
#include "zoo-impl.h"

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
