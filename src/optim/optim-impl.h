/* Internal to src/optim: the optimizer object (groups, parameters, per-parameter state), shared
 * by the step, state_dict, schedule and clipping files. Symbols carry the dc__optim_ prefix. */
#ifndef DC_OPTIM_IMPL_H
#define DC_OPTIM_IMPL_H

#include <deepc/autograd.h>
#include <deepc/optim.h>
#include "../backend/optim-kernels.h"

/* State tensors per parameter (at most three, named per kind by dc__optim_buf_name). */
#define DC__OPTIM_NBUF 3

typedef struct dc__optim_group {
  dc_optim_hparams hp;
  int first, n;      /* its parameters are o->params[first .. first + n) */
  double initial_lr; /* torch's group['initial_lr'], set by the first schedule */
  bool has_initial_lr;
} dc__optim_group;

typedef struct dc__optim_pstate {
  dc_tensor *buf[DC__OPTIM_NBUF]; /* owned, unscoped; the parameter's shape and dtype */
  int64_t step;                   /* updates applied (Adam, AdamW, RMSprop, Adagrad) */
  bool has_state;                 /* torch's state[p] is not empty */
} dc__optim_pstate;

struct dc_optim {
  dc_optim_kind kind;
  dc_device device;
  int nparams, cap_params;
  dc_tensor **params;      /* [nparams] references, group after group */
  dc__optim_pstate *state; /* [nparams] */
  int ngroups, cap_groups;
  dc__optim_group *groups; /* [ngroups] */
};

/* "momentum_buffer", "exp_avg", ...: the name of state buffer k for this kind, NULL if unused. */
const char *dc__optim_buf_name(dc_optim_kind kind, int k);
/* Whether this kind keeps a "step" count. */
bool dc__optim_has_step(dc_optim_kind kind);
/* Checks a group's hyper-parameters (torch's messages, prefixed with the optimizer name). */
int dc__optim_check_hparams(dc_optim_kind kind, const dc_optim_hparams *hp);
/* Creates the state buffers a parameter needs now (zero, or Adagrad's initial value). */
int dc__optim_init_state(dc_optim *o, int index);
/* Frees every state buffer of parameter index and forgets its step. */
void dc__optim_clear_state(dc_optim *o, int index);
/* A new zero-filled, unscoped tensor like p (float dtype of p). */
dc_tensor *dc__optim_new_buffer(const dc_tensor *p, double fill);
/* The group index of parameter i. */
int dc__optim_group_of(const dc_optim *o, int i);

/* dc_optim_step through the fused kernel, or through the reference loop (tests). */
int dc__optim_step_with(dc_optim *o, bool reference);

/* Appends (name, t) to st taking ownership of t's one reference (t made unscoped here). */
int dc__optim_state_push(dc_optim_state *st, const char *name, dc_tensor *t);
/* A 0-d unscoped tensor holding v. */
dc_tensor *dc__optim_scalar(double v, dc_dtype dt);

#endif
