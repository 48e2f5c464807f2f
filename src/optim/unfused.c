/* The optimizer updates and clipping passes written with deepc ops, for a device whose backend
 * has no fused optimizer kernels (no DC_CAP_FUSED_OPTIM). Each rule states the fused kernels'
 * statement order (src/backend/cpu/optim/fused-body.h), one op per rounding, so both paths give
 * the same bits. Shapes: every tensor here has its parameter's shape [n]. */
#include "optim-impl.h"

#include <deepc/ops.h>
#include <math.h>

/* g = (maximize ? -grad : grad) + weight_decay * p, the decay only when coupled and != 0 */
static dc_tensor *effective_grad(dc_tensor *grad, dc_tensor *p, const dc_optk_hparams *hp,
                                 bool coupled_wd) {
  dc_tensor *g = hp->maximize ? dc_neg(grad) : grad;
  if (coupled_wd && hp->weight_decay != 0) g = dc_add(g, dc_mul_scalar(p, hp->weight_decay));
  return g;
}

/* new values of parameter and buffers for one slot: out[0] param, out[1 + k] buf[k] (NULL:
 * unchanged); the current values are p, g and buf[] */
static int rule_sgd(const dc_optk_slot *s, dc_tensor *p, dc_tensor *grad, dc_tensor *const *buf,
                    dc_tensor **out) {
  const dc_optk_hparams *hp = s->hp;
  dc_tensor *g = effective_grad(grad, p, hp, true), *d = g;
  if (hp->momentum != 0) {
    dc_tensor *b = s->init_buf ? g
                               : dc_add(dc_mul_scalar(buf[0], hp->momentum),
                                        dc_mul_scalar(g, 1 - hp->dampening));
    d = hp->nesterov ? dc_add(g, dc_mul_scalar(b, hp->momentum)) : b;
    out[1] = b;
  }
  out[0] = dc_add(p, dc_mul_scalar(d, -hp->lr));
  return DC_OK;
}

static int rule_adam(const dc_optk_slot *s, dc_tensor *p, dc_tensor *grad, dc_tensor *const *buf,
                     dc_tensor **out) {
  const dc_optk_hparams *hp = s->hp;
  dc_tensor *g = effective_grad(grad, p, hp, !hp->decoupled_wd);
  if (hp->decoupled_wd) p = dc_mul_scalar(p, 1 - hp->lr * hp->weight_decay);
  dc_tensor *m = dc_add(dc_mul_scalar(buf[0], hp->beta1), dc_mul_scalar(g, 1 - hp->beta1));
  dc_tensor *v =
      dc_add(dc_mul_scalar(buf[1], hp->beta2), dc_mul(dc_mul_scalar(g, 1 - hp->beta2), g));
  dc_tensor *vv = v;
  if (hp->amsgrad) vv = out[3] = dc_maximum(buf[2], v);
  dc_tensor *denom = dc_add_scalar(dc_div_scalar(dc_sqrt(vv), s->bias2_sqrt), hp->eps);
  out[0] = dc_add(p, dc_div(dc_mul_scalar(m, -s->step_size), denom));
  out[1] = m;
  out[2] = v;
  return DC_OK;
}

static int rule_rmsprop(const dc_optk_slot *s, dc_tensor *p, dc_tensor *grad, dc_tensor *const *buf,
                        dc_tensor **out) {
  const dc_optk_hparams *hp = s->hp;
  dc_tensor *g = effective_grad(grad, p, hp, true);
  dc_tensor *sq =
      dc_add(dc_mul_scalar(buf[0], hp->alpha), dc_mul(dc_mul_scalar(g, 1 - hp->alpha), g));
  dc_tensor *var = sq;
  if (hp->centered) {
    dc_tensor *ga = dc_add(dc_mul_scalar(buf[2], hp->alpha), dc_mul_scalar(g, 1 - hp->alpha));
    var = dc_sub(sq, dc_mul(ga, ga));
    out[3] = ga;
  }
  dc_tensor *avg = dc_add_scalar(dc_sqrt(var), hp->eps);
  if (hp->momentum > 0) {
    dc_tensor *b = dc_add(dc_mul_scalar(buf[1], hp->momentum), dc_div(g, avg));
    out[0] = dc_add(p, dc_mul_scalar(b, -hp->lr));
    out[2] = b;
  } else {
    out[0] = dc_add(p, dc_div(dc_mul_scalar(g, -hp->lr), avg));
  }
  out[1] = sq;
  return DC_OK;
}

static int rule_adagrad(const dc_optk_slot *s, dc_tensor *p, dc_tensor *grad, dc_tensor *const *buf,
                        dc_tensor **out) {
  const dc_optk_hparams *hp = s->hp;
  dc_tensor *g = effective_grad(grad, p, hp, true);
  dc_tensor *sum = dc_add(buf[0], dc_mul(g, g));
  out[0] =
      dc_add(p, dc_div(dc_mul_scalar(g, -s->step_size), dc_add_scalar(dc_sqrt(sum), s->hp->eps)));
  out[1] = sum;
  return DC_OK;
}

static int rule(dc_optk_rule r, const dc_optk_slot *s, dc_tensor *p, dc_tensor *g,
                dc_tensor *const *buf, dc_tensor **out) {
  switch (r) {
  case DC_OPTK_SGD:
    return rule_sgd(s, p, g, buf, out);
  case DC_OPTK_ADAM:
    return rule_adam(s, p, g, buf, out);
  case DC_OPTK_RMSPROP:
    return rule_rmsprop(s, p, g, buf, out);
  case DC_OPTK_ADAGRAD:
    return rule_adagrad(s, p, g, buf, out);
  case DC_OPTK_RULE_COUNT:
    break;
  }
  return dc__errs(DC_ERR_ARG, "optimizer step: unknown rule %d", (int)r);
}

/* Every new value is computed before any is written, so a failure (allocation) changes
 * nothing; then each is copied into its parameter or buffer (bumping their versions). */
int dc__optim_step_ops(dc_optk_rule r, const dc_optk_slot *slots, dc_tensor *const *params,
                       dc_tensor *const *grads, dc_tensor *const (*bufs)[DC__OPTIM_NBUF],
                       int nslots) {
  dc_tensor *(*out)[1 + DC__OPTIM_NBUF] =
      dc__calloc((size_t)(nslots > 0 ? nslots : 1), sizeof *out);
  if (!out) return DC_ERR_NOMEM;
  dc_no_grad_begin();
  dc_scope_begin();
  int rc = DC_OK;
  for (int i = 0; i < nslots && rc == DC_OK; i++) {
    rc = rule(r, &slots[i], params[i], grads[i], bufs[i], out[i]);
    /* every new value feeds the parameter's: a failed op (NULL, error set) shows there */
    if (rc == DC_OK && !out[i][0]) rc = dc__optim_failed();
  }
  for (int i = 0; i < nslots && rc == DC_OK; i++) {
    rc = dc_copy_(params[i], out[i][0]);
    for (int k = 0; k < DC__OPTIM_NBUF && rc == DC_OK; k++)
      if (out[i][1 + k]) rc = dc_copy_(bufs[i][k], out[i][1 + k]);
  }
  dc_scope_end();
  dc_no_grad_end();
  dc__free(out);
  return rc;
}

/* ---- clipping ---- */

/* The p-norm of g accumulated in double, as the fused norms kernel defines it, read to the host
 * (an explicit, synchronising read). */
static int norm_of(dc_tensor *g, double p, double *norm) {
  if (dc_numel(g) == 0) { /* the kernel's empty reductions */
    *norm = p == -INFINITY ? INFINITY : 0.0;
    return DC_OK;
  }
  dc_tensor *a = dc_abs(dc_to_dtype(g, DC_F64)), *r;
  if (p == INFINITY)
    r = dc_max(a);
  else if (p == -INFINITY)
    r = dc_min(a);
  else if (p == 0) /* count of non-zeros (NaN counts) */
    r = dc_rsub_scalar(dc_sum_all(dc_to_dtype(dc_eq_scalar(a, 0), DC_F64)), (double)dc_numel(g));
  else if (p == 1)
    r = dc_sum_all(a);
  else if (p == 2)
    r = dc_sqrt(dc_sum_all(dc_square(a)));
  else
    r = dc_pow_scalar(dc_sum_all(dc_pow_scalar(a, p)), 1.0 / p);
  if (!r) return dc__optim_failed();
  return dc_copy_to_buffer(r, norm, sizeof *norm);
}

/* One clipping pass over grads[n]; SCALE and CLAMP compute every new gradient before writing
 * any, so a failure changes nothing. */
int dc__optim_clip_ops(dc_tensor *const *grads, int n, dc__optim_clip_pass pass, double a, double b,
                       double *norms) {
  dc_tensor **v = dc__calloc((size_t)(n > 0 ? n : 1), sizeof *v);
  if (!v) return DC_ERR_NOMEM;
  dc_no_grad_begin();
  dc_scope_begin();
  int rc = DC_OK;
  for (int i = 0; i < n && rc == DC_OK; i++) {
    switch (pass) {
    case DC__OPTIM_CLIP_NORMS:
      rc = norm_of(grads[i], a, &norms[i]);
      continue;
    case DC__OPTIM_CLIP_SCALE:
      v[i] = dc_mul_scalar(grads[i], a);
      break;
    case DC__OPTIM_CLIP_CLAMP:
      v[i] = dc_clamp(grads[i], a, b);
      break;
    }
    if (!v[i]) rc = dc__optim_failed();
  }
  for (int i = 0; i < n && rc == DC_OK && pass != DC__OPTIM_CLIP_NORMS; i++)
    rc = dc_copy_(grads[i], v[i]);
  dc_scope_end();
  dc_no_grad_end();
  dc__free(v);
  return rc;
}
