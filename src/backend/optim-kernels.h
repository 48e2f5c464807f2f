/* The optimizer kernel family of a backend: fused multi-tensor updates (one pass over every
 * parameter of a step) and the gradient-clipping passes. src/optim computes the per-tensor
 * scalars (bias corrections, decayed lr) in double; kernels only do elementwise work.
 * Every array is contiguous with n elements: [n] below. */
#ifndef DC_OPTIM_KERNELS_H
#define DC_OPTIM_KERNELS_H

#include "backend.h"

#define DC_OPTIM_KERNELS_VERSION 1

/* The update rule; AdamW is DC_OPTK_ADAM with decoupled_wd. */
typedef enum dc_optk_rule {
  DC_OPTK_SGD = 0,
  DC_OPTK_ADAM,
  DC_OPTK_RMSPROP,
  DC_OPTK_ADAGRAD,
  DC_OPTK_RULE_COUNT
} dc_optk_rule;

/* Hyper-parameters of a group as the kernels see them (torch's names). */
typedef struct dc_optk_hparams {
  double lr, weight_decay, momentum, dampening, beta1, beta2, eps, alpha;
  bool maximize, nesterov, amsgrad, decoupled_wd, centered;
} dc_optk_hparams;

/* One parameter of a step. State buffers by rule (NULL when unused):
 *   SGD:     buf[0] momentum_buffer (NULL when momentum == 0)
 *   Adam:    buf[0] exp_avg, buf[1] exp_avg_sq, buf[2] max_exp_avg_sq (amsgrad)
 *   RMSprop: buf[0] square_avg, buf[1] momentum_buffer (momentum > 0), buf[2] grad_avg (centered)
 *   Adagrad: buf[0] sum */
typedef struct dc_optk_slot {
  const dc_optk_hparams *hp; /* of the parameter's group */
  dc_dtype dtype;            /* DC_F32 or DC_F64, for param, grad and buffers alike */
  int64_t n;
  void *param;       /* [n] updated in place */
  const void *grad;  /* [n] */
  void *buf[3];      /* [n] each */
  double step_size;  /* Adam: lr / (1 - beta1^t); Adagrad: lr / (1 + (t - 1) lr_decay) */
  double bias2_sqrt; /* Adam: sqrt(1 - beta2^t) */
  bool init_buf;     /* SGD: this step creates the momentum buffer (= the gradient) */
} dc_optk_slot;

/* A plain buffer for the clipping passes. */
typedef struct dc_optk_buf {
  void *data; /* [n] */
  int64_t n;
  dc_dtype dtype; /* DC_F32 or DC_F64 */
} dc_optk_buf;

struct dc_optim_kernels {
  int version; /* DC_OPTIM_KERNELS_VERSION */
  /* Applies the rule to every slot: vectorised, threaded over fixed chunks of all slots. A
   * kernel that fails (allocation) must do so before it changes any element. */
  int (*step)(dc_optk_rule rule, const dc_optk_slot *slots, int nslots);
  /* The same update as a plain serial loop per element: the test oracle (bitwise equal). */
  int (*step_ref)(dc_optk_rule rule, const dc_optk_slot *slots, int nslots);
  /* norms[k] = p-norm of bufs[k] (p = INFINITY: max |x|, -INFINITY: min |x|, 0: count of
   * non-zeros, else (sum |x|^p)^(1/p)), accumulated in double, independent of thread count. */
  int (*norms)(const dc_optk_buf *bufs, int nbufs, double p, double *norms);
  /* x *= (T)coef for every buffer. */
  int (*scale)(const dc_optk_buf *bufs, int nbufs, double coef);
  /* x = min(max(x, lo), hi) for every buffer (NaN stays NaN, like torch.clamp). */
  int (*clamp)(const dc_optk_buf *bufs, int nbufs, double lo, double hi);
};

#endif
