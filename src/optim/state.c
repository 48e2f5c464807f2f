/* Optimizer checkpoints: torch's state_dict flattened to named tensors ("state.3.exp_avg",
 * "param_groups.0.lr") and loaded back, so a resumed run continues bit for bit. Buffers are
 * saved on their device and loaded onto the parameter's (from any device); numbers are read
 * with dc_item. Also the dc_optim_state list itself (shared with the schedules in sched.c). */
#include "optim-impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- the named-tensor list ---- */

/* Appends (name, t) and takes over one reference to t (released by dc_optim_state_free). */
static int append(dc_optim_state *st, const char *name, dc_tensor *t) {
  if (st->n == st->cap) {
    int cap = st->cap ? st->cap * 2 : 16;
    char **nm = dc__realloc(st->names, sizeof *nm * (size_t)st->cap, sizeof *nm * (size_t)cap);
    if (!nm) return DC_ERR_NOMEM;
    st->names = nm;
    dc_tensor **ts =
        dc__realloc(st->tensors, sizeof *ts * (size_t)st->cap, sizeof *ts * (size_t)cap);
    if (!ts) return DC_ERR_NOMEM;
    st->tensors = ts;
    st->cap = cap;
  }
  char *copy = dc__strdup(name);
  if (!copy) return DC_ERR_NOMEM;
  st->names[st->n] = copy;
  st->tensors[st->n++] = t;
  return DC_OK;
}

int dc__optim_state_push(dc_optim_state *st, const char *name, dc_tensor *t) {
  if (!t) return dc_last_status() != DC_OK ? dc_last_status() : DC_ERR_NOMEM;
  dc__unscope(t);
  int rc = append(st, name, t);
  if (rc != DC_OK) dc__unref(t);
  return rc;
}

dc_tensor *dc__optim_scalar(double v, dc_dtype dt) {
  dc_tensor *t = dc_scalar(v, dt);
  dc__unscope(t);
  return t;
}

int dc_optim_state_set(dc_optim_state *st, const char *name, dc_tensor *t) {
  if (!st || !name || !t)
    return dc__errs(DC_ERR_ARG, "optim_state_set: %s is NULL",
                    !st     ? "state"
                    : !name ? "name"
                            : "tensor");
  dc__ref(t);
  for (int i = 0; i < st->n; i++)
    if (strcmp(st->names[i], name) == 0) {
      dc__unref(st->tensors[i]);
      st->tensors[i] = t;
      return DC_OK;
    }
  int rc = append(st, name, t);
  if (rc != DC_OK) dc__unref(t);
  return rc;
}

dc_tensor *dc_optim_state_get(const dc_optim_state *st, const char *name) {
  if (!st || !name) return NULL;
  for (int i = 0; i < st->n; i++)
    if (strcmp(st->names[i], name) == 0) return st->tensors[i];
  return NULL;
}

void dc_optim_state_free(dc_optim_state *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) {
    dc__free(st->names[i]);
    dc__unref(st->tensors[i]);
  }
  dc__free(st->names);
  dc__free(st->tensors);
  memset(st, 0, sizeof *st);
}

/* ---- saving ---- */

/* A copy of t, unscoped */
static dc_tensor *copy_of(const dc_tensor *t) {
  dc_tensor *c = dc__new(dc_shape_of(t), t->dtype, t->device);
  if (!c) return NULL;
  dc__unscope(c);
  if (dc__backend(c->device)->ew->copy(c, t) != DC_OK) {
    dc__unref(c);
    return NULL;
  }
  return c;
}

/* Hyper-parameter keys per kind (torch's group keys), with where they live. */
typedef enum hp_type { HP_NUM, HP_BOOL, HP_PAIR } hp_type;
typedef struct hp_key {
  const char *name;
  hp_type type;
  size_t offset;
  unsigned kinds; /* bit per dc_optim_kind */
} hp_key;

#define DC__K(k) (1u << (k))
#define DC__ALLK 0x1fu
#define DC__ADAMS (DC__K(DC_OPTIM_ADAM) | DC__K(DC_OPTIM_ADAMW))
static const hp_key HP_KEYS[] = {
    {"lr", HP_NUM, offsetof(dc_optim_hparams, lr), DC__ALLK},
    {"momentum", HP_NUM, offsetof(dc_optim_hparams, momentum),
     DC__K(DC_OPTIM_SGD) | DC__K(DC_OPTIM_RMSPROP)},
    {"dampening", HP_NUM, offsetof(dc_optim_hparams, dampening), DC__K(DC_OPTIM_SGD)},
    {"nesterov", HP_BOOL, offsetof(dc_optim_hparams, nesterov), DC__K(DC_OPTIM_SGD)},
    {"betas", HP_PAIR, offsetof(dc_optim_hparams, betas), DC__ADAMS},
    {"eps", HP_NUM, offsetof(dc_optim_hparams, eps), DC__ALLK & ~DC__K(DC_OPTIM_SGD)},
    {"weight_decay", HP_NUM, offsetof(dc_optim_hparams, weight_decay), DC__ALLK},
    {"amsgrad", HP_BOOL, offsetof(dc_optim_hparams, amsgrad), DC__ADAMS},
    {"no_bias_correction", HP_BOOL, offsetof(dc_optim_hparams, no_bias_correction), DC__ADAMS},
    {"alpha", HP_NUM, offsetof(dc_optim_hparams, alpha), DC__K(DC_OPTIM_RMSPROP)},
    {"centered", HP_BOOL, offsetof(dc_optim_hparams, centered), DC__K(DC_OPTIM_RMSPROP)},
    {"lr_decay", HP_NUM, offsetof(dc_optim_hparams, lr_decay), DC__K(DC_OPTIM_ADAGRAD)},
    {"initial_accumulator_value", HP_NUM, offsetof(dc_optim_hparams, initial_accumulator_value),
     DC__K(DC_OPTIM_ADAGRAD)},
    {"maximize", HP_BOOL, offsetof(dc_optim_hparams, maximize), DC__ALLK},
};
#define DC__NKEYS ((int)(sizeof HP_KEYS / sizeof HP_KEYS[0]))

static dc_tensor *hp_tensor(const hp_key *k, const dc_optim_hparams *h) {
  const char *base = (const char *)h + k->offset;
  switch (k->type) {
  case HP_NUM:
    return dc__optim_scalar(*(const double *)base, DC_F64);
  case HP_BOOL:
    return dc__optim_scalar(*(const bool *)base, DC_BOOL);
  case HP_PAIR: {
    dc_tensor *t = dc_from_data(base, DC_SHAPE(2), DC_F64);
    dc__unscope(t);
    return t;
  }
  }
  return NULL;
}

static int save_param_state(const dc_optim *o, int i, dc_optim_state *out) {
  const dc__optim_pstate *s = &o->state[i];
  char name[96];
  int rc = DC_OK;
  if (!s->has_state) return DC_OK;
  if (dc__optim_has_step(o->kind)) {
    snprintf(name, sizeof name, "state.%d.step", i);
    rc = dc__optim_state_push(out, name, dc__optim_scalar((double)s->step, DC_F64));
  }
  for (int k = 0; k < DC__OPTIM_NBUF && rc == DC_OK; k++) {
    if (!s->buf[k]) continue;
    snprintf(name, sizeof name, "state.%d.%s", i, dc__optim_buf_name(o->kind, k));
    rc = dc__optim_state_push(out, name, copy_of(s->buf[k]));
  }
  return rc;
}

static int save_group(const dc_optim *o, int g, dc_optim_state *out) {
  const dc__optim_group *G = &o->groups[g];
  char name[96];
  int rc = DC_OK;
  for (int k = 0; k < DC__NKEYS && rc == DC_OK; k++) {
    if (!(HP_KEYS[k].kinds & DC__K(o->kind))) continue;
    snprintf(name, sizeof name, "param_groups.%d.%s", g, HP_KEYS[k].name);
    rc = dc__optim_state_push(out, name, hp_tensor(&HP_KEYS[k], &G->hp));
  }
  if (rc == DC_OK && G->has_initial_lr) {
    snprintf(name, sizeof name, "param_groups.%d.initial_lr", g);
    rc = dc__optim_state_push(out, name, dc__optim_scalar(G->initial_lr, DC_F64));
  }
  if (rc != DC_OK) return rc;
  dc_tensor *idx = dc__new(DC_SHAPE(G->n), DC_I64, DC_CPU);
  if (!idx) return dc_last_status();
  dc__unscope(idx);
  for (int k = 0; k < G->n; k++) ((int64_t *)dc_data(idx))[k] = G->first + k; /* a cpu tensor */
  snprintf(name, sizeof name, "param_groups.%d.params", g);
  return dc__optim_state_push(out, name, idx);
}

int dc_optim_state_dict(const dc_optim *o, dc_optim_state *out) {
  if (!o || !out)
    return dc__errs(DC_ERR_ARG, "optim_state_dict: %s is NULL", !o ? "optimizer" : "out");
  memset(out, 0, sizeof *out);
  int rc = DC_OK;
  for (int i = 0; i < o->nparams && rc == DC_OK; i++) rc = save_param_state(o, i, out);
  for (int g = 0; g < o->ngroups && rc == DC_OK; g++) rc = save_group(o, g, out);
  if (rc != DC_OK) dc_optim_state_free(out);
  return rc;
}

/* ---- loading ---- */

/* Parses "<prefix><int>.<rest>"; false when name does not have that form. */
static bool parse_indexed(const char *name, const char *prefix, long *index, const char **rest) {
  size_t n = strlen(prefix);
  if (strncmp(name, prefix, n) != 0) return false;
  char *end;
  *index = strtol(name + n, &end, 10);
  if (end == name + n || *end != '.') return false;
  *rest = end + 1;
  return true;
}

typedef struct load_plan {
  dc__optim_pstate *state; /* [nparams] new state */
  dc__optim_group *groups; /* [ngroups] new hyper-parameters */
  bool saw_groups;
  long max_group;
} load_plan;

static int load_state_entry(const dc_optim *o, load_plan *pl, const char *name, long i,
                            const char *key, const dc_tensor *t) {
  const char *kn = dc_optim_kind_name(o->kind);
  if (i < 0 || i >= o->nparams)
    return dc__errs(DC_ERR_ARG,
                    "%s load_state_dict: entry '%s' names param %ld but the optimizer "
                    "has %d parameters",
                    kn, name, i, o->nparams);
  dc__optim_pstate *s = &pl->state[i];
  if (strcmp(key, "step") == 0 && dc__optim_has_step(o->kind)) {
    double v = dc_numel(t) == 1 ? dc_item(t) : -1;
    if (!(v >= 0 && v == floor(v) && v < 9e15))
      return dc__errs(DC_ERR_ARG, "%s load_state_dict: '%s' must hold one whole number >= 0", kn,
                      name);
    s->step = (int64_t)v;
    s->has_state = true;
    return DC_OK;
  }
  int k = 0;
  while (k < DC__OPTIM_NBUF &&
         !(dc__optim_buf_name(o->kind, k) && strcmp(dc__optim_buf_name(o->kind, k), key) == 0))
    k++;
  if (k == DC__OPTIM_NBUF) {
    char keys[160] = "";
    if (dc__optim_has_step(o->kind)) strcat(keys, "step");
    for (int j = 0; j < DC__OPTIM_NBUF; j++)
      if (dc__optim_buf_name(o->kind, j)) {
        if (keys[0]) strcat(keys, ", ");
        strcat(keys, dc__optim_buf_name(o->kind, j));
      }
    return dc__errs(DC_ERR_ARG,
                    "%s load_state_dict: unknown entry '%s' (%s keeps %s per "
                    "parameter)",
                    kn, name, kn, keys);
  }
  const dc_tensor *p = o->params[i];
  if (!dc_shape_equal(dc_shape_of(t), dc_shape_of(p)) || !dc_dtype_is_float(t->dtype)) {
    char a[128], b[128];
    return dc__errs(DC_ERR_ARG, "%s load_state_dict: '%s' is %s %s but param %ld is %s %s", kn,
                    name, dc_dtype_name(t->dtype), dc_shape_str(dc_shape_of(t), a, sizeof a), i,
                    dc_dtype_name(p->dtype), dc_shape_str(dc_shape_of(p), b, sizeof b));
  }
  dc__unref(s->buf[k]); /* a repeated name: the last one wins */
  s->buf[k] = dc__new(dc_shape_of(p), p->dtype, p->device);
  if (!s->buf[k]) return dc_last_status();
  dc__unscope(s->buf[k]);
  s->has_state = true;
  return dc_copy_(s->buf[k], t); /* to the param's device and dtype, like torch's cast */
}

static int load_group_entry(const dc_optim *o, load_plan *pl, const char *name, long g,
                            const char *key, const dc_tensor *t) {
  const char *kn = dc_optim_kind_name(o->kind);
  if (g < 0 || g >= o->ngroups)
    return dc__errs(DC_ERR_ARG,
                    "%s load_state_dict: loaded state dict has a different number of "
                    "parameter groups (entry '%s', the optimizer has %d)",
                    kn, name, o->ngroups);
  pl->saw_groups = true;
  if (g > pl->max_group) pl->max_group = g;
  dc__optim_group *G = &pl->groups[g];
  int64_t n = dc_numel(t);
  if (strcmp(key, "params") == 0) {
    if (n != G->n)
      return dc__errs(DC_ERR_ARG,
                      "%s load_state_dict: loaded state dict contains a parameter "
                      "group that doesn't match the size of optimizer's group (group "
                      "%ld: %lld saved, %d here)",
                      kn, g, (long long)n, G->n);
    return DC_OK;
  }
  if (strcmp(key, "initial_lr") == 0 && n == 1) {
    G->initial_lr = dc_item(t);
    G->has_initial_lr = true;
    return DC_OK;
  }
  for (int k = 0; k < DC__NKEYS; k++) {
    const hp_key *hk = &HP_KEYS[k];
    if (!(hk->kinds & DC__K(o->kind)) || strcmp(hk->name, key) != 0) continue;
    char *base = (char *)&G->hp + hk->offset;
    if (n != (hk->type == HP_PAIR ? 2 : 1))
      return dc__errs(DC_ERR_ARG, "%s load_state_dict: '%s' must hold %d value%s, it has %lld", kn,
                      name, hk->type == HP_PAIR ? 2 : 1, hk->type == HP_PAIR ? "s" : "",
                      (long long)n);
    if (hk->type == HP_BOOL)
      *(bool *)base = dc_item(t) != 0;
    else if (hk->type == HP_NUM)
      *(double *)base = dc_item(t);
    else
      for (int j = 0; j < 2; j++) ((double *)base)[j] = dc_item_at(t, j);
    return DC_OK;
  }
  return dc__errs(DC_ERR_ARG, "%s load_state_dict: unknown entry '%s' (not a %s group key)", kn,
                  name, kn);
}

int dc_optim_load_state_dict(dc_optim *o, const dc_optim_state *st) {
  if (!o || !st)
    return dc__errs(DC_ERR_ARG, "optim_load_state_dict: %s is NULL", !o ? "optimizer" : "state");
  load_plan pl = {.max_group = -1};
  pl.state = dc__calloc((size_t)o->nparams, sizeof *pl.state);
  pl.groups = dc__malloc(sizeof *pl.groups * (size_t)o->ngroups);
  int rc = pl.state && pl.groups ? DC_OK : DC_ERR_NOMEM;
  if (rc == DC_OK) memcpy(pl.groups, o->groups, sizeof *pl.groups * (size_t)o->ngroups);
  for (int e = 0; e < st->n && rc == DC_OK; e++) {
    const char *name = st->names[e], *key;
    const dc_tensor *t = st->tensors[e];
    long idx;
    if (!t)
      rc = dc__errs(DC_ERR_ARG, "optim_load_state_dict: entry '%s' has no tensor", name);
    else if (parse_indexed(name, "state.", &idx, &key))
      rc = load_state_entry(o, &pl, name, idx, key, t);
    else if (parse_indexed(name, "param_groups.", &idx, &key))
      rc = load_group_entry(o, &pl, name, idx, key, t);
    else
      rc = dc__errs(DC_ERR_ARG,
                    "%s load_state_dict: unknown entry '%s' (names are "
                    "state.<param>.<key> and param_groups.<group>.<key>)",
                    dc_optim_kind_name(o->kind), name);
  }
  if (rc == DC_OK && pl.saw_groups && pl.max_group + 1 != o->ngroups)
    rc = dc__errs(DC_ERR_ARG,
                  "%s load_state_dict: loaded state dict has a different number of "
                  "parameter groups (%ld saved, %d here)",
                  dc_optim_kind_name(o->kind), pl.max_group + 1, o->ngroups);
  for (int g = 0; g < o->ngroups && rc == DC_OK; g++)
    rc = dc__optim_check_hparams(o->kind, &pl.groups[g].hp);
  if (rc == DC_OK) { /* commit */
    for (int i = 0; i < o->nparams; i++) {
      dc__optim_clear_state(o, i);
      o->state[i] = pl.state[i];
    }
    memcpy(o->groups, pl.groups, sizeof *pl.groups * (size_t)o->ngroups);
  } else if (pl.state) {
    for (int i = 0; i < o->nparams; i++)
      for (int k = 0; k < DC__OPTIM_NBUF; k++) dc__unref(pl.state[i].buf[k]);
  }
  dc__free(pl.state);
  dc__free(pl.groups);
  return rc;
}
