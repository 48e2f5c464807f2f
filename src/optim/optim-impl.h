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

/* How a step runs: the device's fused kernel (when its backend has DC_CAP_FUSED_OPTIM, else
 * the ops), the fused kernels' reference loop, or the ops whatever the device (tests). */
typedef enum dc__optim_path {
  DC__OPTIM_PATH_FUSED = 0,
  DC__OPTIM_PATH_REFERENCE,
  DC__OPTIM_PATH_OPS
} dc__optim_path;
int dc__optim_step_path(dc_optim *o, dc__optim_path path);
/* dc_optim_step through the fused kernel, or through the reference loop (tests). */
int dc__optim_step_with(dc_optim *o, bool reference);

/* unfused.c: one step of rule r written with ops, for slots[n] whose parameter, contiguous
 * gradient and buffers are params[i], grads[i], bufs[i] (slots give the scalars). Nothing is
 * written unless every new value could be computed. */
int dc__optim_step_ops(dc_optk_rule r, const dc_optk_slot *slots, dc_tensor *const *params,
                       dc_tensor *const *grads, dc_tensor *const (*bufs)[DC__OPTIM_NBUF],
                       int nslots);
/* The clipping passes written with ops: NORMS (a = p, writes norms[n] on the host), SCALE
 * (x *= a), CLAMP (x = clamp(x, a, b)). */
typedef enum dc__optim_clip_pass {
  DC__OPTIM_CLIP_NORMS = 0,
  DC__OPTIM_CLIP_SCALE,
  DC__OPTIM_CLIP_CLAMP
} dc__optim_clip_pass;
int dc__optim_clip_ops(dc_tensor *const *grads, int n, dc__optim_clip_pass pass, double a, double b,
                       double *norms);
/* dc_clip_grad_norm_ / dc_clip_grad_value_ with the ops path forced when ops is true (tests). */
int dc__clip_grad_norm_with(dc_tensor *const *params, int n, double max_norm, double norm_type,
                            bool error_if_nonfinite, double *total_norm, bool ops);
int dc__clip_grad_value_with(dc_tensor *const *params, int n, double clip_value, bool ops);

/* Appends (name, t) to st taking ownership of t's one reference (t made unscoped here). */
int dc__optim_state_push(dc_optim_state *st, const char *name, dc_tensor *t);
/* The status of a call that returned NULL: its error, or DC_ERR_NOMEM where none was set. */
static inline int dc__optim_failed(void) {
  return dc_last_status() != DC_OK ? (int)dc_last_status() : DC_ERR_NOMEM;
}
/* A 0-d unscoped tensor holding v. */
dc_tensor *dc__optim_scalar(double v, dc_dtype dt);

#endif
