/* Optimizers (SGD, Adam, AdamW, RMSprop, Adagrad) over parameter groups, learning-rate schedules
 * and gradient clipping, with torch.optim 1.13's update rules, defaults, error wording and
 * state_dict names, for parameters on any device. The update runs in the device backend's fused
 * multi-tensor kernels (through ops where it has none). */
#ifndef DEEPC_OPTIM_H
#define DEEPC_OPTIM_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum dc_optim_kind {
  DC_OPTIM_SGD = 0,
  DC_OPTIM_ADAM,
  DC_OPTIM_ADAMW,
  DC_OPTIM_RMSPROP,
  DC_OPTIM_ADAGRAD,
  DC_OPTIM_KIND_COUNT
} dc_optim_kind;

/* Hyper-parameters of one parameter group (torch's param_group keys). One struct serves every
 * optimizer; fields an optimizer does not use are ignored. Start from dc_optim_defaults(kind)
 * (torch's defaults) and change what you need. */
typedef struct dc_optim_hparams {
  double lr;               /* SGD has no default: dc_optim_defaults leaves NaN, set it */
  double weight_decay;     /* L2 added to the gradient (AdamW: decoupled, p *= 1 - lr * wd) */
  bool maximize;           /* ascend the objective instead of descending */
  double momentum;         /* SGD, RMSprop */
  double dampening;        /* SGD */
  bool nesterov;           /* SGD: needs momentum > 0 and dampening == 0 */
  double betas[2];         /* Adam, AdamW: in [0, 1) */
  bool amsgrad;            /* Adam, AdamW: use the running max of v_t */
  bool no_bias_correction; /* Adam, AdamW: skip the 1 - beta^t corrections (for teaching) */
  double eps;              /* Adam, AdamW, RMSprop, Adagrad */
  double alpha;            /* RMSprop smoothing constant */
  bool centered;           /* RMSprop: normalise by the variance estimate */
  double lr_decay;         /* Adagrad */
  double initial_accumulator_value; /* Adagrad */
} dc_optim_hparams;

/* torch.optim 1.13's defaults for kind (SGD: lr NaN, it must be given). */
DC_API dc_optim_hparams dc_optim_defaults(dc_optim_kind kind);
/* "SGD", "Adam", "AdamW", "RMSprop", "Adagrad" */
DC_API const char *dc_optim_kind_name(dc_optim_kind kind);

/* A parameter group: n parameters (float32/float64 leaves that require grad, contiguous, all on
 * one device) with their own hyper-parameters. A parameter may appear in one group only. */
typedef struct dc_param_group {
  dc_tensor *const *params;
  int n;
  dc_optim_hparams hp;
} dc_param_group;

typedef struct dc_optim dc_optim;

/* Checks every hyper-parameter and parameter (errors worded like torch's) and returns the
 * optimizer, or NULL + dc_last_error(). The optimizer holds a reference to each parameter. */
DC_API dc_optim *dc_optim_new(dc_optim_kind kind, const dc_param_group *groups, int ngroups);
/* One group. */
DC_API dc_optim *dc_optim_create(dc_optim_kind kind, dc_tensor *const *params, int n,
                                 dc_optim_hparams hp);
/* Shorthands: torch's defaults for everything not named. */
DC_API dc_optim *dc_optim_sgd(dc_tensor *const *params, int n, double lr, double momentum);
DC_API dc_optim *dc_optim_adam(dc_tensor *const *params, int n, double lr);
DC_API dc_optim *dc_optim_adamw(dc_tensor *const *params, int n, double lr, double weight_decay);
/* torch's add_param_group (fine-tuning: unfreeze layers as training goes). */
DC_API int dc_optim_add_param_group(dc_optim *o, dc_param_group g);
DC_API void dc_optim_free(dc_optim *o);
/* Moves every state buffer (momentum_buffer, exp_avg, ...) to dev, like PyTorch users moving
 * the state tensors after optimizer.load_state_dict; state made later is made on the
 * parameters' device. The parameters are not moved: that is dc_module_to's (or
 * dc_move_to_device_'s) job, and a step needs both on one device. A device this build lacks
 * is DC_ERR_ARG naming the devices it has; on any error nothing moves. */
DC_API int dc_optimizer_to(dc_optim *opt, dc_device dev);

/* One update of every parameter whose .grad is set (parameters with .grad == NULL are skipped,
 * like torch). Runs the fused multi-tensor kernel of the parameters' backend, or the same rules
 * through ops on a device without one; nothing is read back to the host. The parameters, their
 * gradients and the state must be on one device: after moving the model (dc_module_to), move
 * existing state with dc_optimizer_to (a step says so otherwise). */
DC_API int dc_optim_step(dc_optim *o);
/* Sets .grad of every parameter to NULL (torch's zero_grad(set_to_none=True)). */
DC_API void dc_optim_zero_grad(dc_optim *o);

DC_API dc_optim_kind dc_optim_kind_of(const dc_optim *o);
DC_API int dc_optim_num_groups(const dc_optim *o);
DC_API int dc_optim_num_params(const dc_optim *o); /* over all groups, in group order */
DC_API dc_tensor *dc_optim_param(const dc_optim *o, int index);
/* lr of a group (NaN + error for a bad group index). */
DC_API double dc_optim_get_lr(const dc_optim *o, int group);
DC_API int dc_optim_set_lr(dc_optim *o, int group, double lr);
DC_API int dc_optim_get_hparams(const dc_optim *o, int group, dc_optim_hparams *out);
/* Replaces a group's hyper-parameters after the same checks as dc_optim_new. */
DC_API int dc_optim_set_hparams(dc_optim *o, int group, const dc_optim_hparams *hp);

/* ---- state for checkpoints (torch's state_dict, flattened to named tensors) ----
 * Optimizer names: "state.<param index>.<key>" (momentum_buffer, exp_avg, exp_avg_sq,
 * max_exp_avg_sq, square_avg, grad_avg, sum: copies in the parameter's dtype and shape; step:
 * 0-d float64), "param_groups.<g>.<key>" (lr, betas [2], eps, ..., params: int64 indices; 0-d
 * float64 numbers, bool flags). Schedulers: "last_epoch", "base_lrs", "_last_lr", ...
 * A dc_optim_state holds one reference to each tensor; dc_optim_state_free releases them. */
typedef struct dc_optim_state {
  int n;
  char **names;
  dc_tensor **tensors;
  int cap; /* internal */
} dc_optim_state;

/* Copies of the state; buffers stay on their device (read them with dc_copy_to_buffer or move
 * them with dc_to_device to save them), the numbers are cpu tensors. */
DC_API int dc_optim_state_dict(const dc_optim *o, dc_optim_state *out);
/* Replaces the optimizer's state with st's (torch's load_state_dict): every parameter state is
 * taken from st (parameters without entries start fresh), group hyper-parameters named in st
 * are set, others kept. Buffers are copied onto their parameter's device and dtype from any
 * device (cpu state from a file into a model on a device). Checked first: nothing changes on
 * error. */
DC_API int dc_optim_load_state_dict(dc_optim *o, const dc_optim_state *st);
/* Adds (or replaces) an entry; takes its own reference to t. For states read from a file. */
DC_API int dc_optim_state_set(dc_optim_state *st, const char *name, dc_tensor *t);
/* The tensor stored under name, or NULL. */
DC_API dc_tensor *dc_optim_state_get(const dc_optim_state *st, const char *name);
DC_API void dc_optim_state_free(dc_optim_state *st);

/* ---- learning-rate schedules (torch.optim.lr_scheduler) ----
 * A schedule changes the lr of every group of its optimizer. Made after the optimizer (making
 * one performs torch's initial step), stepped after dc_optim_step, per epoch or per iteration
 * as you choose. Composable: dc_sched_sequential_lr (warm-up, then another) and
 * dc_sched_chained (several at once). Free schedules before their optimizer. */
typedef struct dc_sched dc_sched;

DC_API dc_sched *dc_sched_step_lr(dc_optim *o, int step_size, double gamma);
DC_API dc_sched *dc_sched_multistep_lr(dc_optim *o, const int *milestones, int n, double gamma);
DC_API dc_sched *dc_sched_exponential_lr(dc_optim *o, double gamma);
DC_API dc_sched *dc_sched_cosine_annealing_lr(dc_optim *o, int t_max, double eta_min);
/* Linear warm-up: lr * factor going from start_factor to end_factor over total_iters steps. */
DC_API dc_sched *dc_sched_linear_lr(dc_optim *o, double start_factor, double end_factor,
                                    int total_iters);
/* scheds[k] runs until milestones[k] (n - 1 milestones). Takes ownership of scheds. */
DC_API dc_sched *dc_sched_sequential_lr(dc_optim *o, dc_sched *const *scheds, int n,
                                        const int *milestones);
/* Steps every schedule in turn (torch's ChainedScheduler). Takes ownership of scheds. */
DC_API dc_sched *dc_sched_chained(dc_sched *const *scheds, int n);

typedef struct dc_onecycle_opts {
  double max_lr;         /* every group, unless max_lrs is given */
  const double *max_lrs; /* [ngroups] or NULL */
  int64_t total_steps;   /* or epochs * steps_per_epoch when 0 */
  int64_t epochs, steps_per_epoch;
  double pct_start;        /* 0.3 */
  bool anneal_linear;      /* false: cosine annealing (torch's 'cos') */
  bool cycle_momentum;     /* true: cycle SGD/RMSprop momentum or Adam's beta1 */
  double base_momentum;    /* 0.85 */
  double max_momentum;     /* 0.95 */
  double div_factor;       /* 25: initial_lr = max_lr / div_factor */
  double final_div_factor; /* 1e4: min_lr = initial_lr / final_div_factor */
  bool three_phase;
} dc_onecycle_opts;
/* torch's defaults with the two required values. */
DC_API dc_onecycle_opts dc_onecycle_defaults(double max_lr, int64_t total_steps);
DC_API dc_sched *dc_sched_onecycle_lr(dc_optim *o, dc_onecycle_opts opts);

typedef enum dc_plateau_mode { DC_PLATEAU_MIN = 0, DC_PLATEAU_MAX } dc_plateau_mode;
typedef enum dc_threshold_mode { DC_THRESHOLD_REL = 0, DC_THRESHOLD_ABS } dc_threshold_mode;
typedef struct dc_plateau_opts {
  dc_plateau_mode mode;
  double factor;    /* 0.1: new_lr = lr * factor, < 1 */
  int patience;     /* 10 */
  double threshold; /* 1e-4 */
  dc_threshold_mode threshold_mode;
  int cooldown;          /* 0 */
  double min_lr;         /* every group, unless min_lrs is given */
  const double *min_lrs; /* [ngroups] or NULL */
  double eps;            /* 1e-8: smaller lr changes are ignored */
} dc_plateau_opts;
DC_API dc_plateau_opts dc_plateau_defaults(void);
/* ReduceLROnPlateau: step it with dc_sched_step_metric(s, validation_loss). */
DC_API dc_sched *dc_sched_reduce_on_plateau(dc_optim *o, dc_plateau_opts opts);

DC_API int dc_sched_step(dc_sched *s);
DC_API int dc_sched_step_metric(dc_sched *s, double metric);
/* The same with a one-element tensor on any device (a loss), read with dc_item: this waits for
 * the device, like torch's scheduler.step(loss) calling float(loss). */
DC_API int dc_sched_step_metric_tensor(dc_sched *s, const dc_tensor *metric);
/* The lr of a group after the last step (torch's get_last_lr()[group]); NaN + error if bad. */
DC_API double dc_sched_get_last_lr(const dc_sched *s, int group);
DC_API int64_t dc_sched_last_epoch(const dc_sched *s);
DC_API const char *dc_sched_name(const dc_sched *s); /* "StepLR", "OneCycleLR", ... */
DC_API int dc_sched_state_dict(const dc_sched *s, dc_optim_state *out);
DC_API int dc_sched_load_state_dict(dc_sched *s, const dc_optim_state *st);
DC_API void dc_sched_free(dc_sched *s);

/* ---- gradient clipping (torch.nn.utils) ----
 * Scales the gradients of params so that their global norm of order norm_type (any p,
 * INFINITY / -INFINITY included) is at most max_norm; writes the norm before clipping to
 * *total_norm (may be NULL). A non-finite norm with error_if_nonfinite is an error and the
 * gradients are left untouched. Parameters with .grad == NULL are skipped. */
DC_API int dc_clip_grad_norm_(dc_tensor *const *params, int n, double max_norm, double norm_type,
                              bool error_if_nonfinite, double *total_norm);
/* Both work on the gradients' device; clip_grad_norm_ reads the per-tensor norms back to the
 * host (it waits for the device once). */
/* Clamps every gradient to [-clip_value, clip_value]. */
DC_API int dc_clip_grad_value_(dc_tensor *const *params, int n, double clip_value);

#ifdef __cplusplus
}
#endif
#endif
