/* Optimizer objects: torch's defaults, the checks made when an optimizer or a group is created
 * (torch's wording), parameter groups, hyper-parameter access, zero_grad and the per-parameter
 * state buffers. The update itself is in step.c, checkpoints in state.c. */
#include "optim-impl.h"

#include <math.h>
#include <string.h>

static const char *const KIND_NAMES[DC_OPTIM_KIND_COUNT] = {"SGD", "Adam", "AdamW", "RMSprop",
                                                            "Adagrad"};

const char *dc_optim_kind_name(dc_optim_kind kind) {
  return (int)kind >= 0 && kind < DC_OPTIM_KIND_COUNT ? KIND_NAMES[kind] : "unknown optimizer";
}

dc_optim_hparams dc_optim_defaults(dc_optim_kind kind) {
  dc_optim_hparams h = {0};
  switch (kind) {
  case DC_OPTIM_SGD:
    h.lr = NAN;
    break; /* torch: lr=required */
  case DC_OPTIM_ADAM:
  case DC_OPTIM_ADAMW:
    h.lr = 1e-3;
    h.betas[0] = 0.9;
    h.betas[1] = 0.999;
    h.eps = 1e-8;
    h.weight_decay = kind == DC_OPTIM_ADAMW ? 1e-2 : 0.0;
    break;
  case DC_OPTIM_RMSPROP:
    h.lr = 1e-2;
    h.alpha = 0.99;
    h.eps = 1e-8;
    break;
  case DC_OPTIM_ADAGRAD:
    h.lr = 1e-2;
    h.eps = 1e-10;
    break;
  case DC_OPTIM_KIND_COUNT:
    break;
  }
  return h;
}

/* ---- checks ---- */

/* torch's "Invalid <what> value: v" check; !(v >= 0) also catches NaN */
static int nonneg(double v, const char *what, const char *name) {
  if (v >= 0) return DC_OK;
  return dc__errs(DC_ERR_ARG, "%s: Invalid %s value: %g (must be >= 0)", name, what, v);
}

int dc__optim_check_hparams(dc_optim_kind kind, const dc_optim_hparams *h) {
  const char *name = dc_optim_kind_name(kind);
  int rc;
  if ((int)kind < 0 || kind >= DC_OPTIM_KIND_COUNT)
    return dc__errs(DC_ERR_ARG,
                    "optimizer: unknown kind %d (use DC_OPTIM_SGD ... DC_OPTIM_ADAGRAD)",
                    (int)kind);
  if (!(h->lr >= 0))
    return dc__errs(DC_ERR_ARG, "%s: Invalid learning rate: %g (must be >= 0)%s", name, h->lr,
                    kind == DC_OPTIM_SGD && isnan(h->lr) ? "; SGD has no default lr, set hp.lr"
                                                         : "");
  if ((rc = nonneg(h->weight_decay, "weight_decay", name)) != DC_OK) return rc;
  switch (kind) {
  case DC_OPTIM_SGD:
    if ((rc = nonneg(h->momentum, "momentum", name)) != DC_OK) return rc;
    if (isnan(h->dampening)) return dc__errs(DC_ERR_ARG, "SGD: Invalid dampening value: nan");
    if (h->nesterov && (h->momentum <= 0 || h->dampening != 0))
      return dc__errs(DC_ERR_ARG,
                      "SGD: Nesterov momentum requires a momentum and zero dampening "
                      "(got momentum %g, dampening %g)",
                      h->momentum, h->dampening);
    break;
  case DC_OPTIM_ADAM:
  case DC_OPTIM_ADAMW:
    if ((rc = nonneg(h->eps, "epsilon", name)) != DC_OK) return rc;
    for (int k = 0; k < 2; k++)
      if (!(h->betas[k] >= 0 && h->betas[k] < 1))
        return dc__errs(DC_ERR_ARG,
                        "%s: Invalid beta parameter at index %d: %g (betas must be in "
                        "[0, 1))",
                        name, k, h->betas[k]);
    break;
  case DC_OPTIM_RMSPROP:
    if ((rc = nonneg(h->eps, "epsilon", name)) != DC_OK) return rc;
    if ((rc = nonneg(h->momentum, "momentum", name)) != DC_OK) return rc;
    if ((rc = nonneg(h->alpha, "alpha", name)) != DC_OK) return rc;
    break;
  case DC_OPTIM_ADAGRAD:
    if ((rc = nonneg(h->lr_decay, "lr_decay", name)) != DC_OK) return rc;
    if ((rc = nonneg(h->initial_accumulator_value, "initial_accumulator_value", name)) != DC_OK)
      return rc;
    if ((rc = nonneg(h->eps, "epsilon", name)) != DC_OK) return rc;
    break;
  case DC_OPTIM_KIND_COUNT:
    break;
  }
  return DC_OK;
}

static int check_param(const dc_optim *o, const dc_tensor *p, int k, int g, dc_device *dev) {
  const char *name = dc_optim_kind_name(o->kind);
  if (!p)
    return dc__errs(DC_ERR_ARG,
                    "%s: param %d of group %d is NULL (did the call that made it "
                    "fail? see its error)",
                    name, k, g);
  if (!dc_dtype_is_float(p->dtype))
    return dc__errs(DC_ERR_ARG,
                    "%s: optimizer can only optimize floating-point Tensors, but param "
                    "%d of group %d is %s",
                    name, k, g, dc_dtype_name(p->dtype));
  if (p->dtype != DC_F32 && p->dtype != DC_F64)
    return dc__errs(DC_ERR_ARG,
                    "%s: param %d of group %d is %s; the optimizers update float32 "
                    "and float64 parameters: convert it with dc_to_dtype",
                    name, k, g, dc_dtype_name(p->dtype));
  if (p->grad_fn)
    return dc__errs(DC_ERR_ARG,
                    "%s: can't optimize a non-leaf Tensor (param %d of group %d was "
                    "made by '%s'); optimize the leaf it came from",
                    name, k, g, dc_grad_fn_name(p));
  if (!p->requires_grad)
    return dc__errs(DC_ERR_ARG,
                    "%s: param %d of group %d does not require grad; mark it with "
                    "dc_requires_grad_(p, true) or leave it out of the optimizer",
                    name, k, g);
  if (!dc_is_contiguous(p))
    return dc__errs(DC_ERR_ARG,
                    "%s: param %d of group %d is not contiguous; the fused update "
                    "needs contiguous parameters (make the leaf from a contiguous copy)",
                    name, k, g);
  if (k == 0 && o->nparams == 0) *dev = p->device;
  if (p->device != *dev)
    return dc__errs(DC_ERR_ARG,
                    "%s: param %d of group %d is on %s but the optimizer's first "
                    "parameter is on %s; one optimizer updates parameters of one device "
                    "(move them with dc_module_to first)",
                    name, k, g, dc_device_name(p->device), dc_device_name(*dev));
  return DC_OK;
}

typedef struct param_ref {
  const dc_tensor *p;
  int index; /* global index (existing params first, then the new group's) */
} param_ref;

static int cmp_param_ref(const void *a, const void *b) {
  uintptr_t x = (uintptr_t)((const param_ref *)a)->p, y = (uintptr_t)((const param_ref *)b)->p;
  return x < y ? -1 : x > y;
}

/* A parameter in two groups (or twice in one) is an error, as torch. Sorting keeps it n log n. */
static int check_duplicates(const dc_optim *o, const dc_param_group *g) {
  int total = o->nparams + g->n;
  param_ref *r = dc__malloc(sizeof *r * (size_t)(total > 0 ? total : 1));
  if (!r) return DC_ERR_NOMEM;
  for (int i = 0; i < o->nparams; i++) r[i] = (param_ref){o->params[i], i};
  for (int i = 0; i < g->n; i++) r[o->nparams + i] = (param_ref){g->params[i], o->nparams + i};
  qsort(r, (size_t)total, sizeof *r, cmp_param_ref);
  int rc = DC_OK;
  for (int i = 1; i < total && rc == DC_OK; i++) {
    if (r[i].p != r[i - 1].p) continue;
    int a = r[i].index < r[i - 1].index ? r[i].index : r[i - 1].index;
    int b = r[i].index < r[i - 1].index ? r[i - 1].index : r[i].index;
    int new_group = o->ngroups;
    if (a >= o->nparams)
      rc = dc__errs(DC_ERR_ARG,
                    "%s: optimizer contains a parameter group with duplicate "
                    "parameters (params %d and %d of group %d are the same tensor)",
                    dc_optim_kind_name(o->kind), a - o->nparams, b - o->nparams, new_group);
    else
      rc = dc__errs(DC_ERR_ARG,
                    "%s: some parameters appear in more than one parameter group "
                    "(param %d of group %d is already in group %d)",
                    dc_optim_kind_name(o->kind), b - o->nparams, new_group,
                    dc__optim_group_of(o, a));
  }
  dc__free(r);
  return rc;
}

static bool grow(dc_optim *o, int more_params) {
  if (o->ngroups == o->cap_groups) {
    int cap = o->cap_groups ? o->cap_groups * 2 : 4;
    dc__optim_group *g =
        dc__realloc(o->groups, sizeof *g * (size_t)o->cap_groups, sizeof *g * (size_t)cap);
    if (!g) return false;
    o->groups = g;
    o->cap_groups = cap;
  }
  if (o->nparams + more_params > o->cap_params) {
    int cap = o->cap_params ? o->cap_params : 16;
    while (cap < o->nparams + more_params) cap *= 2;
    dc_tensor **p =
        dc__realloc(o->params, sizeof *p * (size_t)o->cap_params, sizeof *p * (size_t)cap);
    if (!p) return false;
    o->params = p;
    dc__optim_pstate *s =
        dc__realloc(o->state, sizeof *s * (size_t)o->cap_params, sizeof *s * (size_t)cap);
    if (!s) return false;
    o->state = s;
    o->cap_params = cap;
  }
  return true;
}

int dc_optim_add_param_group(dc_optim *o, dc_param_group g) {
  if (!o) return dc__errs(DC_ERR_ARG, "add_param_group: optimizer is NULL");
  const char *name = dc_optim_kind_name(o->kind);
  if (g.n < 0 || (g.n > 0 && !g.params))
    return dc__errs(DC_ERR_ARG,
                    "%s: parameter group %d has %s (n = %d); pass an array of n "
                    "tensors",
                    name, o->ngroups,
                    g.params ? "a negative size"
                             : "no "
                               "params array",
                    g.n);
  int rc = dc__optim_check_hparams(o->kind, &g.hp);
  if (rc != DC_OK) return rc;
  dc_device dev = o->nparams > 0 ? o->params[0]->device : DC_CPU;
  for (int k = 0; k < g.n; k++) {
    rc = check_param(o, g.params[k], k, o->ngroups, &dev);
    if (rc != DC_OK) return rc;
  }
  rc = check_duplicates(o, &g);
  if (rc != DC_OK) return rc;
  if (!grow(o, g.n)) return DC_ERR_NOMEM;
  o->groups[o->ngroups] = (dc__optim_group){.hp = g.hp, .first = o->nparams, .n = g.n};
  for (int k = 0; k < g.n; k++) {
    o->params[o->nparams + k] = dc__ref(g.params[k]);
    memset(&o->state[o->nparams + k], 0, sizeof o->state[0]);
  }
  o->nparams += g.n;
  o->ngroups++;
  if (o->kind == DC_OPTIM_ADAGRAD) /* torch's Adagrad makes its state when it is created */
    for (int k = o->nparams - g.n; k < o->nparams; k++) {
      rc = dc__optim_init_state(o, k);
      if (rc != DC_OK) return rc;
    }
  return DC_OK;
}

dc_optim *dc_optim_new(dc_optim_kind kind, const dc_param_group *groups, int ngroups) {
  if ((int)kind < 0 || kind >= DC_OPTIM_KIND_COUNT)
    return dc__err(DC_ERR_ARG,
                   "optimizer: unknown kind %d (use DC_OPTIM_SGD ... "
                   "DC_OPTIM_ADAGRAD)",
                   (int)kind);
  if (ngroups <= 0 || !groups)
    return dc__err(DC_ERR_ARG, "%s: optimizer got an empty parameter list (%d groups)",
                   dc_optim_kind_name(kind), ngroups);
  dc_optim *o = dc__calloc(1, sizeof *o);
  if (!o) return NULL;
  o->kind = kind;
  for (int g = 0; g < ngroups; g++)
    if (dc_optim_add_param_group(o, groups[g]) != DC_OK) {
      dc_optim_free(o);
      return NULL;
    }
  if (o->nparams == 0) {
    dc_optim_free(o);
    return dc__err(DC_ERR_ARG, "%s: optimizer got an empty parameter list",
                   dc_optim_kind_name(kind));
  }
  return o;
}

dc_optim *dc_optim_create(dc_optim_kind kind, dc_tensor *const *params, int n,
                          dc_optim_hparams hp) {
  dc_param_group g = {.params = params, .n = n, .hp = hp};
  return dc_optim_new(kind, &g, 1);
}

dc_optim *dc_optim_sgd(dc_tensor *const *params, int n, double lr, double momentum) {
  dc_optim_hparams hp = dc_optim_defaults(DC_OPTIM_SGD);
  hp.lr = lr;
  hp.momentum = momentum;
  return dc_optim_create(DC_OPTIM_SGD, params, n, hp);
}

dc_optim *dc_optim_adam(dc_tensor *const *params, int n, double lr) {
  dc_optim_hparams hp = dc_optim_defaults(DC_OPTIM_ADAM);
  hp.lr = lr;
  return dc_optim_create(DC_OPTIM_ADAM, params, n, hp);
}

dc_optim *dc_optim_adamw(dc_tensor *const *params, int n, double lr, double weight_decay) {
  dc_optim_hparams hp = dc_optim_defaults(DC_OPTIM_ADAMW);
  hp.lr = lr;
  hp.weight_decay = weight_decay;
  return dc_optim_create(DC_OPTIM_ADAMW, params, n, hp);
}

void dc_optim_free(dc_optim *o) {
  if (!o) return;
  for (int i = 0; i < o->nparams; i++) {
    dc__optim_clear_state(o, i);
    dc__unref(o->params[i]);
  }
  dc__free(o->params);
  dc__free(o->state);
  dc__free(o->groups);
  dc__free(o);
}

void dc_optim_zero_grad(dc_optim *o) {
  if (!o) return;
  for (int i = 0; i < o->nparams; i++) dc_zero_grad(o->params[i]);
}

/* ---- access ---- */

dc_optim_kind dc_optim_kind_of(const dc_optim *o) { return o ? o->kind : DC_OPTIM_KIND_COUNT; }
int dc_optim_num_groups(const dc_optim *o) { return o ? o->ngroups : 0; }
int dc_optim_num_params(const dc_optim *o) { return o ? o->nparams : 0; }

dc_tensor *dc_optim_param(const dc_optim *o, int index) {
  if (!o || index < 0 || index >= o->nparams)
    return dc__err(DC_ERR_ARG,
                   "optim_param: index %d out of range (the optimizer has %d "
                   "parameters)",
                   index, o ? o->nparams : 0);
  return o->params[index];
}

static bool check_group(const dc_optim *o, int group, const char *fn) {
  if (!o) {
    dc__err(DC_ERR_ARG, "%s: optimizer is NULL", fn);
    return false;
  }
  if (group < 0 || group >= o->ngroups) {
    dc__err(DC_ERR_ARG, "%s: group %d out of range (the optimizer has %d parameter groups)", fn,
            group, o->ngroups);
    return false;
  }
  return true;
}

double dc_optim_get_lr(const dc_optim *o, int group) {
  return check_group(o, group, "optim_get_lr") ? o->groups[group].hp.lr : NAN;
}

int dc_optim_set_lr(dc_optim *o, int group, double lr) {
  if (!check_group(o, group, "optim_set_lr")) return dc_last_status();
  dc_optim_hparams h = o->groups[group].hp;
  h.lr = lr;
  return dc_optim_set_hparams(o, group, &h);
}

int dc_optim_get_hparams(const dc_optim *o, int group, dc_optim_hparams *out) {
  if (!check_group(o, group, "optim_get_hparams")) return dc_last_status();
  *out = o->groups[group].hp;
  return DC_OK;
}

int dc_optim_set_hparams(dc_optim *o, int group, const dc_optim_hparams *hp) {
  if (!check_group(o, group, "optim_set_hparams")) return dc_last_status();
  if (!hp) return dc__errs(DC_ERR_ARG, "optim_set_hparams: hp is NULL");
  int rc = dc__optim_check_hparams(o->kind, hp);
  if (rc == DC_OK) o->groups[group].hp = *hp;
  return rc;
}

int dc__optim_group_of(const dc_optim *o, int i) {
  for (int g = 0; g < o->ngroups; g++)
    if (i >= o->groups[g].first && i < o->groups[g].first + o->groups[g].n) return g;
  return -1;
}

/* ---- per-parameter state ---- */

const char *dc__optim_buf_name(dc_optim_kind kind, int k) {
  static const char *const names[DC_OPTIM_KIND_COUNT][DC__OPTIM_NBUF] = {
      [DC_OPTIM_SGD] = {"momentum_buffer", NULL, NULL},
      [DC_OPTIM_ADAM] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
      [DC_OPTIM_ADAMW] = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
      [DC_OPTIM_RMSPROP] = {"square_avg", "momentum_buffer", "grad_avg"},
      [DC_OPTIM_ADAGRAD] = {"sum", NULL, NULL},
  };
  if ((int)kind < 0 || kind >= DC_OPTIM_KIND_COUNT || k < 0 || k >= DC__OPTIM_NBUF) return NULL;
  return names[kind][k];
}

bool dc__optim_has_step(dc_optim_kind kind) { return kind != DC_OPTIM_SGD; }

dc_tensor *dc__optim_new_buffer(const dc_tensor *p, double fill) {
  dc_tensor *t = dc__new(dc_shape_of(p), p->dtype, p->device);
  if (!t) return NULL;
  dc__unscope(t);
  const dc_backend *be = dc__backend(p->device);
  if (!be || be->ew->fill(t, fill) != DC_OK) {
    dc__unref(t);
    return NULL;
  }
  return t;
}

int dc__optim_init_state(dc_optim *o, int i) {
  const dc_optim_hparams *h = &o->groups[dc__optim_group_of(o, i)].hp;
  dc__optim_pstate *s = &o->state[i];
  bool need[DC__OPTIM_NBUF] = {false, false, false};
  double fill = 0.0;
  switch (o->kind) {
  case DC_OPTIM_SGD:
    break; /* the momentum buffer starts as the first gradient (step.c) */
  case DC_OPTIM_ADAM:
  case DC_OPTIM_ADAMW:
    need[0] = need[1] = true;
    need[2] = h->amsgrad;
    break;
  case DC_OPTIM_RMSPROP:
    need[0] = true;
    need[1] = h->momentum > 0;
    need[2] = h->centered;
    break;
  case DC_OPTIM_ADAGRAD:
    need[0] = true;
    fill = h->initial_accumulator_value;
    break;
  case DC_OPTIM_KIND_COUNT:
    break;
  }
  for (int k = 0; k < DC__OPTIM_NBUF; k++) {
    if (!need[k] || s->buf[k]) continue;
    s->buf[k] = dc__optim_new_buffer(o->params[i], fill);
    if (!s->buf[k]) return dc_last_status() != DC_OK ? dc_last_status() : DC_ERR_NOMEM;
  }
  s->has_state = true;
  return DC_OK;
}

void dc__optim_clear_state(dc_optim *o, int i) {
  dc__optim_pstate *s = &o->state[i];
  for (int k = 0; k < DC__OPTIM_NBUF; k++) dc__unref(s->buf[k]);
  memset(s, 0, sizeof *s);
}
