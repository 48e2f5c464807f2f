/* Learning-rate schedules reproducing torch.optim.lr_scheduler 1.13 step for step: the same
 * recursive ("chainable") formulas on the groups' current lr, the closed forms SequentialLR uses
 * at its milestones, torch's initial step when a schedule is made, group['initial_lr'] shared
 * through the optimizer, OneCycleLR's momentum cycling and ReduceLROnPlateau's bookkeeping.
 * G = number of parameter groups of the optimizer. */
#include "optim-impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef enum sched_kind {
  SK_STEP = 0,
  SK_MULTISTEP,
  SK_EXPONENTIAL,
  SK_COSINE,
  SK_LINEAR,
  SK_ONECYCLE,
  SK_SEQUENTIAL,
  SK_CHAINED,
  SK_PLATEAU,
  SK_COUNT
} sched_kind;

static const char *const SCHED_NAMES[SK_COUNT] = {
    "StepLR",     "MultiStepLR",  "ExponentialLR",    "CosineAnnealingLR", "LinearLR",
    "OneCycleLR", "SequentialLR", "ChainedScheduler", "ReduceLROnPlateau"};

/* OneCycleLR reads these per group: torch's group['initial_lr'], ['max_lr'], ... */
typedef enum oc_key { OC_INITIAL_LR = 0, OC_MAX_LR, OC_MIN_LR, OC_MAX_MOM, OC_BASE_MOM } oc_key;
typedef struct oc_phase {
  double end_step;
  oc_key start_lr, end_lr, start_mom, end_mom;
} oc_phase;

struct dc_sched {
  sched_kind kind;
  dc_optim *o;
  int ngroups; /* G */
  int64_t last_epoch;
  int64_t step_count; /* torch's _step_count */
  double *base_lrs;   /* [G] */
  double *last_lr;    /* [G] */
  double *scratch;    /* [2 G]: new lrs, new momenta */
  bool owned;         /* a child of a sequential or chained schedule */
  /* StepLR, MultiStepLR, ExponentialLR */
  int step_size;
  double gamma;
  int *milestones; /* [nmilestones] sorted: MultiStepLR's, or SequentialLR's */
  int nmilestones;
  /* CosineAnnealingLR */
  int t_max;
  double eta_min;
  /* LinearLR */
  double start_factor, end_factor;
  int total_iters;
  /* OneCycleLR */
  int64_t total_steps;
  oc_phase phases[3];
  int nphases;
  bool anneal_linear, cycle_momentum, use_beta1;
  double *oc; /* [G, 4]: max_lr, min_lr, max_momentum, base_momentum */
  /* SequentialLR, ChainedScheduler */
  dc_sched **children; /* [nchildren], owned */
  int nchildren;
  /* ReduceLROnPlateau */
  dc_plateau_opts pl;
  double *min_lrs; /* [G] */
  double best;
  int64_t num_bad_epochs, cooldown_counter;
};

static bool is_basic(sched_kind k) { return k <= SK_ONECYCLE; }

static double *group_lr(const dc_sched *s, int g) { return &s->o->groups[g].hp.lr; }

static dc_sched *sched_alloc(sched_kind kind, dc_optim *o) {
  if (!o) return dc__err(DC_ERR_ARG, "%s: optimizer is NULL", SCHED_NAMES[kind]);
  dc_sched *s = dc__calloc(1, sizeof *s);
  if (!s) return NULL;
  s->kind = kind;
  s->o = o;
  s->ngroups = o->ngroups;
  s->last_epoch = -1;
  size_t g = (size_t)o->ngroups;
  s->base_lrs = dc__calloc(g, sizeof(double));
  s->last_lr = dc__calloc(g, sizeof(double));
  s->scratch = dc__calloc(2 * g, sizeof(double));
  if (!s->base_lrs || !s->last_lr || !s->scratch) {
    dc_sched_free(s);
    return NULL;
  }
  for (int k = 0; k < o->ngroups; k++) s->last_lr[k] = o->groups[k].hp.lr;
  return s;
}

void dc_sched_free(dc_sched *s) {
  if (!s) return;
  for (int k = 0; k < s->nchildren; k++) dc_sched_free(s->children[k]);
  dc__free(s->children);
  dc__free(s->base_lrs);
  dc__free(s->last_lr);
  dc__free(s->scratch);
  dc__free(s->milestones);
  dc__free(s->oc);
  dc__free(s->min_lrs);
  dc__free(s);
}

static int check_groups(const dc_sched *s) {
  if (s->o->ngroups != s->ngroups)
    return dc__errs(DC_ERR_STATE,
                    "%s: the optimizer has %d parameter groups but had %d when the "
                    "schedule was made; make the schedule after add_param_group",
                    SCHED_NAMES[s->kind], s->o->ngroups, s->ngroups);
  return DC_OK;
}

/* ---- the formulas ---- */

static double oc_value(const dc_sched *s, int g, oc_key k) {
  if (k == OC_INITIAL_LR) return s->o->groups[g].initial_lr;
  return s->oc[g * 4 + (int)k - 1];
}

static double anneal(const dc_sched *s, double start, double end, double pct) {
  if (s->anneal_linear) return (end - start) * pct + start;
  double cos_out = cos(M_PI * pct) + 1;
  return end + (start - end) / 2.0 * cos_out;
}

static int onecycle_lr(const dc_sched *s, double *lr, double *mom) {
  int64_t step = s->last_epoch;
  if (step > s->total_steps)
    return dc__errs(DC_ERR_STATE,
                    "OneCycleLR: Tried to step %lld times. The specified number of "
                    "total steps is %lld",
                    (long long)step + 1, (long long)s->total_steps);
  for (int g = 0; g < s->ngroups; g++) {
    double start_step = 0;
    for (int i = 0; i < s->nphases; i++) {
      const oc_phase *ph = &s->phases[i];
      if ((double)step <= ph->end_step || i == s->nphases - 1) {
        double pct = ((double)step - start_step) / (ph->end_step - start_step);
        lr[g] = anneal(s, oc_value(s, g, ph->start_lr), oc_value(s, g, ph->end_lr), pct);
        mom[g] = anneal(s, oc_value(s, g, ph->start_mom), oc_value(s, g, ph->end_mom), pct);
        break;
      }
      start_step = ph->end_step;
    }
  }
  return DC_OK;
}

/* torch's get_lr(): the next lr of every group from the current one (chainable form). */
static int chain_lr(const dc_sched *s, double *lr, double *mom) {
  int64_t e = s->last_epoch;
  for (int g = 0; g < s->ngroups; g++) {
    double cur = *group_lr(s, g), base = s->base_lrs[g], eta = s->eta_min;
    switch (s->kind) {
    case SK_STEP:
      lr[g] = (e == 0 || e % s->step_size != 0) ? cur : cur * s->gamma;
      break;
    case SK_MULTISTEP: {
      int c = 0;
      for (int k = 0; k < s->nmilestones; k++) c += s->milestones[k] == e;
      lr[g] = c == 0 ? cur : cur * pow(s->gamma, c);
      break;
    }
    case SK_EXPONENTIAL:
      lr[g] = e == 0 ? cur : cur * s->gamma;
      break;
    case SK_COSINE: {
      double T = s->t_max;
      if (e == 0)
        lr[g] = cur;
      else if (s->step_count == 1 && e > 0)
        lr[g] = eta + (base - eta) * (1 + cos((double)e * M_PI / T)) / 2;
      else if ((e - 1 - s->t_max) % (2 * (int64_t)s->t_max) == 0)
        lr[g] = cur + (base - eta) * (1 - cos(M_PI / T)) / 2;
      else
        lr[g] =
            (1 + cos(M_PI * (double)e / T)) / (1 + cos(M_PI * (double)(e - 1) / T)) * (cur - eta) +
            eta;
      break;
    }
    case SK_LINEAR: {
      double sf = s->start_factor, ef = s->end_factor;
      if (e == 0)
        lr[g] = cur * sf;
      else if (e > s->total_iters)
        lr[g] = cur;
      else
        lr[g] = cur * (1. + (ef - sf) / (s->total_iters * sf + (double)(e - 1) * (ef - sf)));
      break;
    }
    case SK_ONECYCLE:
      return onecycle_lr(s, lr, mom);
    case SK_SEQUENTIAL:
    case SK_CHAINED:
    case SK_PLATEAU:
    case SK_COUNT:
      break;
    }
  }
  return DC_OK;
}

/* torch's _get_closed_form_lr(), used by step(epoch); false when the schedule has none. */
static bool closed_lr(const dc_sched *s, double *lr) {
  int64_t e = s->last_epoch;
  for (int g = 0; g < s->ngroups; g++) {
    double base = s->base_lrs[g], eta = s->eta_min;
    switch (s->kind) {
    case SK_STEP:
      lr[g] = base * pow(s->gamma, (double)(e / s->step_size));
      break;
    case SK_MULTISTEP: {
      int c = 0; /* bisect_right */
      while (c < s->nmilestones && s->milestones[c] <= e) c++;
      lr[g] = base * pow(s->gamma, c);
      break;
    }
    case SK_EXPONENTIAL:
      lr[g] = base * pow(s->gamma, (double)e);
      break;
    case SK_COSINE:
      lr[g] = eta + (base - eta) * (1 + cos(M_PI * (double)e / s->t_max)) / 2;
      break;
    case SK_LINEAR: {
      double m = (double)(e < s->total_iters ? e : s->total_iters);
      lr[g] = base * (s->start_factor + (s->end_factor - s->start_factor) * m / s->total_iters);
      break;
    }
    case SK_ONECYCLE:
    case SK_SEQUENTIAL:
    case SK_CHAINED:
    case SK_PLATEAU:
    case SK_COUNT:
      return false;
    }
  }
  return true;
}

/* torch's _LRScheduler.step(epoch): the next lrs, written into the groups. */
static int basic_step(dc_sched *s, bool has_epoch, int64_t epoch) {
  int rc = check_groups(s);
  if (rc != DC_OK) return rc;
  int64_t le = s->last_epoch, sc = s->step_count;
  double *lr = s->scratch, *mom = s->scratch + s->ngroups;
  s->step_count++;
  s->last_epoch = has_epoch ? epoch : le + 1;
  if (!(has_epoch && closed_lr(s, lr))) rc = chain_lr(s, lr, mom);
  if (rc != DC_OK) {
    s->last_epoch = le;
    s->step_count = sc;
    return rc;
  }
  for (int g = 0; g < s->ngroups; g++) {
    dc_optim_hparams *h = &s->o->groups[g].hp;
    if (s->kind == SK_ONECYCLE && s->cycle_momentum) {
      if (s->use_beta1)
        h->betas[0] = mom[g];
      else
        h->momentum = mom[g];
    }
    h->lr = lr[g];
    s->last_lr[g] = h->lr;
  }
  return DC_OK;
}

/* torch's _LRScheduler.__init__ (last_epoch = -1) and _initial_step. */
static int basic_init(dc_sched *s) {
  for (int g = 0; g < s->ngroups; g++) {
    dc__optim_group *G = &s->o->groups[g];
    if (!G->has_initial_lr) {
      G->initial_lr = G->hp.lr;
      G->has_initial_lr = true;
    }
    s->base_lrs[g] = G->initial_lr;
  }
  s->step_count = 0;
  return basic_step(s, false, 0);
}

static dc_sched *finish_basic(dc_sched *s) {
  if (basic_init(s) != DC_OK) {
    dc_sched_free(s);
    return NULL;
  }
  return s;
}

/* ---- constructors ---- */

dc_sched *dc_sched_step_lr(dc_optim *o, int step_size, double gamma) {
  if (step_size <= 0)
    return dc__err(DC_ERR_ARG, "StepLR: step_size must be a positive number of epochs, got %d",
                   step_size);
  if (!(gamma >= 0)) return dc__err(DC_ERR_ARG, "StepLR: gamma must be >= 0, got %g", gamma);
  dc_sched *s = sched_alloc(SK_STEP, o);
  if (!s) return NULL;
  s->step_size = step_size;
  s->gamma = gamma;
  return finish_basic(s);
}

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return x < y ? -1 : x > y;
}

dc_sched *dc_sched_multistep_lr(dc_optim *o, const int *milestones, int n, double gamma) {
  if (n < 0 || (n > 0 && !milestones))
    return dc__err(DC_ERR_ARG, "MultiStepLR: milestones is %s (n = %d)",
                   milestones ? "a negative count" : "NULL", n);
  if (!(gamma >= 0)) return dc__err(DC_ERR_ARG, "MultiStepLR: gamma must be >= 0, got %g", gamma);
  dc_sched *s = sched_alloc(SK_MULTISTEP, o);
  if (!s) return NULL;
  s->gamma = gamma;
  s->nmilestones = n;
  s->milestones = dc__malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
  if (!s->milestones) {
    dc_sched_free(s);
    return NULL;
  }
  if (n > 0) memcpy(s->milestones, milestones, sizeof(int) * (size_t)n);
  qsort(s->milestones, (size_t)n, sizeof(int), cmp_int); /* a repeated milestone counts twice */
  return finish_basic(s);
}

dc_sched *dc_sched_exponential_lr(dc_optim *o, double gamma) {
  if (!(gamma >= 0)) return dc__err(DC_ERR_ARG, "ExponentialLR: gamma must be >= 0, got %g", gamma);
  dc_sched *s = sched_alloc(SK_EXPONENTIAL, o);
  if (!s) return NULL;
  s->gamma = gamma;
  return finish_basic(s);
}

dc_sched *dc_sched_cosine_annealing_lr(dc_optim *o, int t_max, double eta_min) {
  if (t_max <= 0)
    return dc__err(DC_ERR_ARG,
                   "CosineAnnealingLR: T_max must be a positive number of steps, got "
                   "%d",
                   t_max);
  if (!(eta_min >= 0))
    return dc__err(DC_ERR_ARG, "CosineAnnealingLR: eta_min must be >= 0, got %g", eta_min);
  dc_sched *s = sched_alloc(SK_COSINE, o);
  if (!s) return NULL;
  s->t_max = t_max;
  s->eta_min = eta_min;
  return finish_basic(s);
}

dc_sched *dc_sched_linear_lr(dc_optim *o, double start_factor, double end_factor, int total_iters) {
  if (!(start_factor > 0 && start_factor <= 1))
    return dc__err(DC_ERR_ARG,
                   "LinearLR: Starting multiplicative factor expected to be greater "
                   "than 0 and less or equal to 1, got %g",
                   start_factor);
  if (!(end_factor >= 0 && end_factor <= 1))
    return dc__err(DC_ERR_ARG,
                   "LinearLR: Ending multiplicative factor expected to be between 0 "
                   "and 1, got %g",
                   end_factor);
  if (total_iters <= 0)
    return dc__err(DC_ERR_ARG, "LinearLR: total_iters must be a positive number of steps, got %d",
                   total_iters);
  dc_sched *s = sched_alloc(SK_LINEAR, o);
  if (!s) return NULL;
  s->start_factor = start_factor;
  s->end_factor = end_factor;
  s->total_iters = total_iters;
  return finish_basic(s);
}

dc_onecycle_opts dc_onecycle_defaults(double max_lr, int64_t total_steps) {
  return (dc_onecycle_opts){.max_lr = max_lr,
                            .total_steps = total_steps,
                            .pct_start = 0.3,
                            .cycle_momentum = true,
                            .base_momentum = 0.85,
                            .max_momentum = 0.95,
                            .div_factor = 25.,
                            .final_div_factor = 1e4};
}

static int onecycle_check(const dc_optim *o, const dc_onecycle_opts *p, int64_t *total) {
  if (p->total_steps == 0 && p->epochs == 0 && p->steps_per_epoch == 0)
    return dc__errs(DC_ERR_ARG, "OneCycleLR: You must define either total_steps OR (epochs AND "
                                "steps_per_epoch)");
  if (p->total_steps != 0) {
    if (p->total_steps < 0)
      return dc__errs(DC_ERR_ARG, "OneCycleLR: Expected positive integer total_steps, but got %lld",
                      (long long)p->total_steps);
    *total = p->total_steps;
  } else {
    if (p->epochs <= 0)
      return dc__errs(DC_ERR_ARG, "OneCycleLR: Expected positive integer epochs, but got %lld",
                      (long long)p->epochs);
    if (p->steps_per_epoch <= 0)
      return dc__errs(DC_ERR_ARG,
                      "OneCycleLR: Expected positive integer steps_per_epoch, but got "
                      "%lld",
                      (long long)p->steps_per_epoch);
    *total = p->epochs * p->steps_per_epoch;
  }
  if (!(p->pct_start >= 0 && p->pct_start <= 1))
    return dc__errs(DC_ERR_ARG, "OneCycleLR: Expected float between 0 and 1 pct_start, but got %g",
                    p->pct_start);
  if (!(p->div_factor > 0) || !(p->final_div_factor > 0))
    return dc__errs(DC_ERR_ARG,
                    "OneCycleLR: div_factor and final_div_factor must be > 0, got %g "
                    "and %g",
                    p->div_factor, p->final_div_factor);
  for (int g = 0; g < o->ngroups; g++) {
    double m = p->max_lrs ? p->max_lrs[g] : p->max_lr;
    if (!(m >= 0 && isfinite(m)))
      return dc__errs(DC_ERR_ARG, "OneCycleLR: max_lr of group %d must be finite and >= 0, got %g",
                      g, m);
  }
  if (p->cycle_momentum) {
    if (o->kind == DC_OPTIM_ADAGRAD)
      return dc__errs(DC_ERR_ARG, "OneCycleLR: optimizer must support momentum with "
                                  "`cycle_momentum` option enabled (Adagrad has neither momentum "
                                  "nor betas; set cycle_momentum = false)");
    bool beta = o->kind == DC_OPTIM_ADAM || o->kind == DC_OPTIM_ADAMW;
    double lo = p->base_momentum, hi = p->max_momentum;
    if (!(lo >= 0 && hi >= 0 && (!beta || (lo < 1 && hi < 1))))
      return dc__errs(DC_ERR_ARG, "OneCycleLR: base_momentum %g and max_momentum %g must be >= 0%s",
                      lo, hi, beta ? " and < 1 (they become Adam's beta1)" : "");
  }
  return DC_OK;
}

dc_sched *dc_sched_onecycle_lr(dc_optim *o, dc_onecycle_opts p) {
  if (!o) return dc__err(DC_ERR_ARG, "OneCycleLR: optimizer is NULL");
  int64_t total = 0;
  if (onecycle_check(o, &p, &total) != DC_OK) return NULL;
  dc_sched *s = sched_alloc(SK_ONECYCLE, o);
  if (!s) return NULL;
  s->oc = dc__calloc((size_t)s->ngroups * 4, sizeof(double));
  if (!s->oc) {
    dc_sched_free(s);
    return NULL;
  }
  s->total_steps = total;
  double T = (double)total;
  if (p.three_phase) {
    s->nphases = 3;
    s->phases[0] =
        (oc_phase){p.pct_start * T - 1, OC_INITIAL_LR, OC_MAX_LR, OC_MAX_MOM, OC_BASE_MOM};
    s->phases[1] =
        (oc_phase){2 * p.pct_start * T - 2, OC_MAX_LR, OC_INITIAL_LR, OC_BASE_MOM, OC_MAX_MOM};
    s->phases[2] = (oc_phase){T - 1, OC_INITIAL_LR, OC_MIN_LR, OC_MAX_MOM, OC_MAX_MOM};
  } else {
    s->nphases = 2;
    s->phases[0] =
        (oc_phase){p.pct_start * T - 1, OC_INITIAL_LR, OC_MAX_LR, OC_MAX_MOM, OC_BASE_MOM};
    s->phases[1] = (oc_phase){T - 1, OC_MAX_LR, OC_MIN_LR, OC_BASE_MOM, OC_MAX_MOM};
  }
  s->anneal_linear = p.anneal_linear;
  s->cycle_momentum = p.cycle_momentum;
  s->use_beta1 = o->kind == DC_OPTIM_ADAM || o->kind == DC_OPTIM_ADAMW;
  for (int g = 0; g < s->ngroups; g++) {
    dc__optim_group *G = &o->groups[g];
    double max_lr = p.max_lrs ? p.max_lrs[g] : p.max_lr;
    G->initial_lr = max_lr / p.div_factor;
    G->has_initial_lr = true;
    double *v = &s->oc[g * 4];
    v[0] = max_lr;
    v[1] = G->initial_lr / p.final_div_factor;
    v[2] = p.max_momentum;
    v[3] = p.base_momentum;
    if (p.cycle_momentum) {
      if (s->use_beta1)
        G->hp.betas[0] = p.max_momentum;
      else
        G->hp.momentum = p.max_momentum;
    }
  }
  return finish_basic(s);
}

dc_plateau_opts dc_plateau_defaults(void) {
  return (dc_plateau_opts){.mode = DC_PLATEAU_MIN,
                           .factor = 0.1,
                           .patience = 10,
                           .threshold = 1e-4,
                           .threshold_mode = DC_THRESHOLD_REL,
                           .eps = 1e-8};
}

dc_sched *dc_sched_reduce_on_plateau(dc_optim *o, dc_plateau_opts p) {
  const char *n = "ReduceLROnPlateau";
  if (!(p.factor < 1.0 && p.factor >= 0))
    return dc__err(DC_ERR_ARG, "%s: Factor should be < 1.0 (and >= 0), got %g", n, p.factor);
  if (p.mode != DC_PLATEAU_MIN && p.mode != DC_PLATEAU_MAX)
    return dc__err(DC_ERR_ARG, "%s: mode %d is unknown! (DC_PLATEAU_MIN or DC_PLATEAU_MAX)", n,
                   (int)p.mode);
  if (p.threshold_mode != DC_THRESHOLD_REL && p.threshold_mode != DC_THRESHOLD_ABS)
    return dc__err(DC_ERR_ARG,
                   "%s: threshold mode %d is unknown! (DC_THRESHOLD_REL or "
                   "DC_THRESHOLD_ABS)",
                   n, (int)p.threshold_mode);
  if (p.patience < 0 || p.cooldown < 0 || !(p.threshold >= 0) || !(p.eps >= 0))
    return dc__err(DC_ERR_ARG,
                   "%s: patience (%d), cooldown (%d), threshold (%g) and eps (%g) must "
                   "be >= 0",
                   n, p.patience, p.cooldown, p.threshold, p.eps);
  dc_sched *s = sched_alloc(SK_PLATEAU, o);
  if (!s) return NULL;
  s->min_lrs = dc__calloc((size_t)s->ngroups, sizeof(double));
  if (!s->min_lrs) {
    dc_sched_free(s);
    return NULL;
  }
  for (int g = 0; g < s->ngroups; g++) {
    s->min_lrs[g] = p.min_lrs ? p.min_lrs[g] : p.min_lr;
    if (!(s->min_lrs[g] >= 0)) {
      dc_sched_free(s);
      return dc__err(DC_ERR_ARG, "%s: min_lr of group %d must be >= 0, got %g", n, g,
                     p.min_lrs ? p.min_lrs[g] : p.min_lr);
    }
  }
  p.min_lrs = NULL; /* not kept: the caller's array */
  s->pl = p;
  s->last_epoch = 0;
  s->best = p.mode == DC_PLATEAU_MIN ? INFINITY : -INFINITY;
  return s;
}

/* Frees schedules handed to a composite that could not be made (ownership was given), except
 * those another composite owns; each once. */
static void release(dc_sched *const *scheds, int n) {
  for (int k = 0; scheds && k < n; k++) {
    bool first = true;
    for (int j = 0; j < k; j++) first = first && scheds[j] != scheds[k];
    if (scheds[k] && !scheds[k]->owned && first) dc_sched_free(scheds[k]);
  }
}

/* Checks children for a composite; frees them all on error (ownership was given). */
static int adopt(dc_sched *s, const char *name, dc_sched *const *scheds, int n, bool allow_seq) {
  int rc = DC_OK;
  if (n <= 0 || !scheds)
    rc = dc__errs(DC_ERR_ARG, "%s: needs at least one schedule (got %d)", name, n);
  for (int k = 0; k < n && rc == DC_OK; k++) {
    const dc_sched *c = scheds[k];
    if (!c)
      rc = dc__errs(DC_ERR_ARG,
                    "%s: schedule %d is NULL (did making it fail? see its "
                    "error)",
                    name, k);
    else if (c->owned)
      rc = dc__errs(DC_ERR_ARG, "%s: schedule %d already belongs to another composite schedule",
                    name, k);
    else if (c->o != scheds[0]->o || (s->o && c->o != s->o))
      rc = dc__errs(DC_ERR_ARG,
                    "%s expects all schedulers to belong to the same optimizer, but "
                    "got schedulers at index 0 and %d to be different",
                    name, k);
    else if (!is_basic(c->kind) && !(allow_seq && c->kind == SK_SEQUENTIAL))
      rc = dc__errs(DC_ERR_ARG, "%s: schedule %d is a %s, which cannot be nested here", name, k,
                    SCHED_NAMES[c->kind]);
    for (int j = 0; j < k && rc == DC_OK; j++)
      if (scheds[j] == c)
        rc = dc__errs(DC_ERR_ARG, "%s: schedules %d and %d are the same", name, j, k);
  }
  if (rc == DC_OK) s->children = dc__malloc(sizeof *s->children * (size_t)n);
  if (rc == DC_OK && !s->children) rc = DC_ERR_NOMEM;
  if (rc != DC_OK) {
    release(scheds, n);
    return rc;
  }
  for (int k = 0; k < n; k++) {
    s->children[k] = scheds[k];
    scheds[k]->owned = true;
  }
  s->nchildren = n;
  return DC_OK;
}

dc_sched *dc_sched_sequential_lr(dc_optim *o, dc_sched *const *scheds, int n,
                                 const int *milestones) {
  const char *name = "SequentialLR";
  if (!o) {
    release(scheds, n);
    return dc__err(DC_ERR_ARG, "%s: optimizer is NULL", name);
  }
  dc_sched *s = sched_alloc(SK_SEQUENTIAL, o);
  if (!s) {
    release(scheds, n);
    return NULL;
  }
  int rc = adopt(s, name, scheds, n, false);
  if (rc == DC_OK && n > 1 && !milestones)
    rc = dc__errs(DC_ERR_ARG, "%s: %d schedules need %d milestones, got NULL", name, n, n - 1);
  for (int k = 1; rc == DC_OK && k < n - 1; k++)
    if (milestones[k] <= milestones[k - 1])
      rc = dc__errs(DC_ERR_ARG, "%s: milestones must increase (milestones[%d] = %d after %d)", name,
                    k, milestones[k], milestones[k - 1]);
  if (rc == DC_OK) {
    s->nmilestones = n - 1;
    s->milestones = dc__malloc(sizeof(int) * (size_t)(n > 1 ? n - 1 : 1));
    if (!s->milestones)
      rc = DC_ERR_NOMEM;
    else if (n > 1)
      memcpy(s->milestones, milestones, sizeof(int) * (size_t)(n - 1));
  }
  if (rc != DC_OK) {
    dc_sched_free(s);
    return NULL;
  }
  /* torch: lr = initial_lr, every child's last_epoch -= 1, then the first child's initial step */
  s->last_epoch = 0;
  for (int g = 0; g < s->ngroups; g++)
    if (o->groups[g].has_initial_lr) o->groups[g].hp.lr = o->groups[g].initial_lr;
  for (int k = 0; k < n; k++) s->children[k]->last_epoch -= 1;
  s->children[0]->step_count = 0;
  if (basic_step(s->children[0], false, 0) != DC_OK) {
    dc_sched_free(s);
    return NULL;
  }
  memcpy(s->last_lr, s->children[0]->last_lr, sizeof(double) * (size_t)s->ngroups);
  return s;
}

dc_sched *dc_sched_chained(dc_sched *const *scheds, int n) {
  const char *name = "ChainedScheduler";
  dc_optim *o = n > 0 && scheds && scheds[0] ? scheds[0]->o : NULL;
  if (!o) {
    release(scheds, n);
    return dc__err(DC_ERR_ARG, "%s: needs at least one schedule (got %d, the first %s)", name, n,
                   n > 0 && scheds ? "is NULL" : "missing");
  }
  dc_sched *s = sched_alloc(SK_CHAINED, o);
  if (!s) {
    release(scheds, n);
    return NULL;
  }
  if (adopt(s, name, scheds, n, true) != DC_OK) {
    dc_sched_free(s);
    return NULL;
  }
  return s;
}

/* ---- stepping ---- */

static int plateau_step(dc_sched *s, double metric) {
  int rc = check_groups(s);
  if (rc != DC_OK) return rc;
  const dc_plateau_opts *p = &s->pl;
  s->last_epoch += 1;
  bool better;
  if (p->mode == DC_PLATEAU_MIN)
    better = p->threshold_mode == DC_THRESHOLD_REL ? metric < s->best * (1. - p->threshold)
                                                   : metric < s->best - p->threshold;
  else
    better = p->threshold_mode == DC_THRESHOLD_REL ? metric > s->best * (p->threshold + 1.)
                                                   : metric > s->best + p->threshold;
  if (better) {
    s->best = metric;
    s->num_bad_epochs = 0;
  } else {
    s->num_bad_epochs += 1;
  }
  if (s->cooldown_counter > 0) {
    s->cooldown_counter -= 1;
    s->num_bad_epochs = 0; /* bad epochs in cooldown do not count */
  }
  if (s->num_bad_epochs > p->patience) {
    for (int g = 0; g < s->ngroups; g++) {
      double old = *group_lr(s, g), lo = s->min_lrs[g], n = old * p->factor;
      if (lo > n) n = lo;
      if (old - n > p->eps) *group_lr(s, g) = n;
    }
    s->cooldown_counter = p->cooldown;
    s->num_bad_epochs = 0;
  }
  for (int g = 0; g < s->ngroups; g++) s->last_lr[g] = *group_lr(s, g);
  return DC_OK;
}

static int sequential_step(dc_sched *s) {
  s->last_epoch += 1;
  int idx = 0; /* bisect_right(milestones, last_epoch) */
  while (idx < s->nmilestones && s->milestones[idx] <= s->last_epoch) idx++;
  dc_sched *c = s->children[idx];
  int rc = idx > 0 && s->milestones[idx - 1] == s->last_epoch ? basic_step(c, true, 0)
                                                              : basic_step(c, false, 0);
  if (rc != DC_OK) {
    s->last_epoch -= 1;
    return rc;
  }
  memcpy(s->last_lr, c->last_lr, sizeof(double) * (size_t)s->ngroups);
  return DC_OK;
}

int dc_sched_step(dc_sched *s) {
  if (!s) return dc__errs(DC_ERR_ARG, "sched_step: schedule is NULL");
  switch (s->kind) {
  case SK_STEP:
  case SK_MULTISTEP:
  case SK_EXPONENTIAL:
  case SK_COSINE:
  case SK_LINEAR:
  case SK_ONECYCLE:
    return basic_step(s, false, 0);
  case SK_SEQUENTIAL:
    return sequential_step(s);
  case SK_CHAINED: {
    int rc = check_groups(s);
    for (int k = 0; k < s->nchildren && rc == DC_OK; k++) rc = dc_sched_step(s->children[k]);
    if (rc != DC_OK) return rc;
    for (int g = 0; g < s->ngroups; g++) s->last_lr[g] = *group_lr(s, g);
    return DC_OK;
  }
  case SK_PLATEAU:
    return dc__errs(DC_ERR_ARG, "ReduceLROnPlateau steps on a metric: call "
                                "dc_sched_step_metric(s, validation_loss)");
  case SK_COUNT:
    break;
  }
  return dc__errs(DC_ERR_ARG, "sched_step: corrupt schedule");
}

int dc_sched_step_metric(dc_sched *s, double metric) {
  if (!s) return dc__errs(DC_ERR_ARG, "sched_step_metric: schedule is NULL");
  if (s->kind != SK_PLATEAU)
    return dc__errs(DC_ERR_ARG,
                    "sched_step_metric: only ReduceLROnPlateau takes a metric; step "
                    "a %s with dc_sched_step",
                    SCHED_NAMES[s->kind]);
  return plateau_step(s, metric);
}

int dc_sched_step_metric_tensor(dc_sched *s, const dc_tensor *metric) {
  if (!metric) return dc__errs(DC_ERR_ARG, "sched_step_metric_tensor: metric is NULL");
  if (dc_numel(metric) != 1)
    return dc__errs(DC_ERR_ARG,
                    "sched_step_metric_tensor: the metric must hold one value, it has %lld",
                    (long long)dc_numel(metric));
  dc_clear_error();
  double v = dc_item(metric); /* from any device: waits for it */
  if (isnan(v) && dc_last_status() != DC_OK) return dc_last_status();
  return dc_sched_step_metric(s, v);
}

double dc_sched_get_last_lr(const dc_sched *s, int group) {
  if (!s) {
    dc__err(DC_ERR_ARG, "sched_get_last_lr: schedule is NULL");
    return NAN;
  }
  if (group < 0 || group >= s->ngroups) {
    dc__err(DC_ERR_ARG, "sched_get_last_lr: group %d out of range (%d groups)", group, s->ngroups);
    return NAN;
  }
  return s->last_lr[group];
}

int64_t dc_sched_last_epoch(const dc_sched *s) { return s ? s->last_epoch : -1; }

const char *dc_sched_name(const dc_sched *s) { return s ? SCHED_NAMES[s->kind] : "NULL"; }

/* ---- state ---- */

static dc_tensor *vec_tensor(const double *v, int n) {
  dc_tensor *t = dc_from_data(v, DC_SHAPE(n), DC_F64);
  dc__unscope(t);
  return t;
}

static int push_num(dc_optim_state *out, const char *prefix, const char *key, double v) {
  char name[160];
  snprintf(name, sizeof name, "%s%s", prefix, key);
  return dc__optim_state_push(out, name, dc__optim_scalar(v, DC_F64));
}

static int save(const dc_sched *s, const char *prefix, dc_optim_state *out) {
  char name[160];
  int rc = DC_OK;
  if (s->kind != SK_CHAINED) rc = push_num(out, prefix, "last_epoch", (double)s->last_epoch);
  if (rc == DC_OK && is_basic(s->kind)) {
    rc = push_num(out, prefix, "_step_count", (double)s->step_count);
    snprintf(name, sizeof name, "%sbase_lrs", prefix);
    if (rc == DC_OK) rc = dc__optim_state_push(out, name, vec_tensor(s->base_lrs, s->ngroups));
  }
  if (rc == DC_OK && s->kind == SK_PLATEAU) {
    rc = push_num(out, prefix, "best", s->best);
    if (rc == DC_OK) rc = push_num(out, prefix, "num_bad_epochs", (double)s->num_bad_epochs);
    if (rc == DC_OK) rc = push_num(out, prefix, "cooldown_counter", (double)s->cooldown_counter);
  }
  snprintf(name, sizeof name, "%s_last_lr", prefix);
  if (rc == DC_OK) rc = dc__optim_state_push(out, name, vec_tensor(s->last_lr, s->ngroups));
  for (int k = 0; k < s->nchildren && rc == DC_OK; k++) {
    snprintf(name, sizeof name, "%s_schedulers.%d.", prefix, k);
    rc = save(s->children[k], name, out);
  }
  return rc;
}

int dc_sched_state_dict(const dc_sched *s, dc_optim_state *out) {
  if (!s || !out)
    return dc__errs(DC_ERR_ARG, "sched_state_dict: %s is NULL", !s ? "schedule" : "out");
  memset(out, 0, sizeof *out);
  int rc = save(s, "", out);
  if (rc != DC_OK) dc_optim_state_free(out);
  return rc;
}

/* One entry key of s: checked (apply false) or stored (apply true). */
static int load_key(dc_sched *s, const char *name, const char *key, const dc_tensor *t,
                    bool apply) {
  int64_t n = dc_numel(t);
  bool whole = n == 1 && dc_item(t) == floor(dc_item(t)) && fabs(dc_item(t)) < 9e15;
  int64_t *ifield = NULL;
  if (strcmp(key, "last_epoch") == 0 && s->kind != SK_CHAINED)
    ifield = &s->last_epoch;
  else if (strcmp(key, "_step_count") == 0 && is_basic(s->kind))
    ifield = &s->step_count;
  else if (strcmp(key, "num_bad_epochs") == 0 && s->kind == SK_PLATEAU)
    ifield = &s->num_bad_epochs;
  else if (strcmp(key, "cooldown_counter") == 0 && s->kind == SK_PLATEAU)
    ifield = &s->cooldown_counter;
  if (ifield) {
    if (!whole)
      return dc__errs(DC_ERR_ARG, "%s load_state_dict: '%s' must hold one whole number",
                      SCHED_NAMES[s->kind], name);
    if (apply) *ifield = (int64_t)dc_item(t);
    return DC_OK;
  }
  if (strcmp(key, "best") == 0 && s->kind == SK_PLATEAU) {
    if (n != 1)
      return dc__errs(DC_ERR_ARG,
                      "ReduceLROnPlateau load_state_dict: '%s' must hold one "
                      "number",
                      name);
    if (apply) s->best = dc_item(t);
    return DC_OK;
  }
  double *vec = NULL;
  if (strcmp(key, "base_lrs") == 0 && is_basic(s->kind))
    vec = s->base_lrs;
  else if (strcmp(key, "_last_lr") == 0)
    vec = s->last_lr;
  if (!vec)
    return dc__errs(DC_ERR_ARG, "%s load_state_dict: unknown entry '%s'", SCHED_NAMES[s->kind],
                    name);
  if (n != s->ngroups)
    return dc__errs(DC_ERR_ARG,
                    "%s load_state_dict: '%s' has %lld values but the optimizer has %d "
                    "parameter groups",
                    SCHED_NAMES[s->kind], name, (long long)n, s->ngroups);
  for (int g = 0; apply && g < s->ngroups; g++) vec[g] = dc_item_at(t, g);
  return DC_OK;
}

static int load(dc_sched *s, const dc_optim_state *st, const char *prefix, bool apply) {
  size_t pn = strlen(prefix);
  int rc = DC_OK;
  for (int e = 0; e < st->n && rc == DC_OK; e++) {
    const char *name = st->names[e];
    if (strncmp(name, prefix, pn) != 0) continue;
    const char *key = name + pn;
    if (strncmp(key, "_schedulers.", 12) == 0) {
      char *end;
      long k = strtol(key + 12, &end, 10);
      if (end == key + 12 || *end != '.' || k < 0 || k >= s->nchildren)
        rc = dc__errs(DC_ERR_ARG,
                      "%s load_state_dict: entry '%s' names no child schedule (this "
                      "one has %d)",
                      SCHED_NAMES[s->kind], name, s->nchildren);
      continue; /* the child reads it below */
    }
    if (!st->tensors[e])
      rc = dc__errs(DC_ERR_ARG, "sched_load_state_dict: '%s' has no tensor", name);
    else
      rc = load_key(s, name, key, st->tensors[e], apply);
  }
  for (int k = 0; k < s->nchildren && rc == DC_OK; k++) {
    char sub[160];
    snprintf(sub, sizeof sub, "%s_schedulers.%d.", prefix, k);
    rc = load(s->children[k], st, sub, apply);
  }
  return rc;
}

int dc_sched_load_state_dict(dc_sched *s, const dc_optim_state *st) {
  if (!s || !st)
    return dc__errs(DC_ERR_ARG, "sched_load_state_dict: %s is NULL", !s ? "schedule" : "state");
  int rc = load(s, st, "", false);
  return rc == DC_OK ? load(s, st, "", true) : rc;
}
