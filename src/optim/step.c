/* dc_optim_step: gathers every parameter with a gradient (all groups), creates missing state on
 * the parameters' device, advances the step counts, computes the per-tensor scalars of torch's
 * rules in double (bias corrections, Adagrad's decayed lr) and hands one slot list to the
 * device backend's fused kernel, or to the same rules written with ops (unfused.c) where the
 * backend has none. Slots carry device pointers: only the backend dereferences them. */
#include "optim-impl.h"

#include <math.h>
#include <string.h>

static dc_optk_rule rule_of(dc_optim_kind kind) {
  switch (kind) {
  case DC_OPTIM_SGD:
    return DC_OPTK_SGD;
  case DC_OPTIM_ADAM:
  case DC_OPTIM_ADAMW:
    return DC_OPTK_ADAM;
  case DC_OPTIM_RMSPROP:
    return DC_OPTK_RMSPROP;
  case DC_OPTIM_ADAGRAD:
    return DC_OPTK_ADAGRAD;
  case DC_OPTIM_KIND_COUNT:
    break;
  }
  return DC_OPTK_RULE_COUNT;
}

static dc_optk_hparams kernel_hparams(dc_optim_kind kind, const dc_optim_hparams *h) {
  return (dc_optk_hparams){.lr = h->lr,
                           .weight_decay = h->weight_decay,
                           .momentum = h->momentum,
                           .dampening = h->dampening,
                           .beta1 = h->betas[0],
                           .beta2 = h->betas[1],
                           .eps = h->eps,
                           .alpha = h->alpha,
                           .maximize = h->maximize,
                           .nesterov = h->nesterov,
                           .amsgrad = h->amsgrad,
                           .decoupled_wd = kind == DC_OPTIM_ADAMW,
                           .centered = h->centered};
}

/* The address of t's first element on its device (never dereferenced here). */
static void *tensor_data(const dc_tensor *t) {
  return t ? (char *)t->storage->data + (size_t)t->offset * dc_dtype_size(t->dtype) : NULL;
}

/* The gradient of parameter i as the update reads it: checked, and copied when not contiguous
 * (*tmp then owns the copy). */
static dc_tensor *grad_of(const dc_optim *o, int i, dc_tensor **tmp) {
  const dc_tensor *p = o->params[i];
  dc_tensor *g = p->grad;
  *tmp = NULL;
  if (!dc_shape_equal(dc_shape_of(g), dc_shape_of(p)) || g->dtype != p->dtype ||
      g->device != p->device) {
    char a[128], b[128];
    return dc__err(DC_ERR_ARG,
                   "%s step: param %d is %s %s on %s but its .grad is %s %s on %s; a "
                   "gradient must match its parameter",
                   dc_optim_kind_name(o->kind), i, dc_dtype_name(p->dtype),
                   dc_shape_str(dc_shape_of(p), a, sizeof a), dc_device_name(p->device),
                   dc_dtype_name(g->dtype), dc_shape_str(dc_shape_of(g), b, sizeof b),
                   dc_device_name(g->device));
  }
  if (dc_is_contiguous(g)) return g;
  dc_tensor *c = dc__new(dc_shape_of(g), g->dtype, g->device);
  if (!c) return NULL;
  dc__unscope(c);
  if (dc__backend(c->device)->ew->copy(c, g) != DC_OK) {
    dc__unref(c);
    return NULL;
  }
  *tmp = c;
  return c;
}

/* Every parameter with a gradient on dev, and its state with it. */
static int check_devices(const dc_optim *o, int i, dc_device dev) {
  const char *kn = dc_optim_kind_name(o->kind);
  const dc_tensor *p = o->params[i];
  if (p->device != dev)
    return dc__errs(DC_ERR_ARG,
                    "%s step: param %d is on %s but an earlier parameter is on %s; one "
                    "optimizer updates parameters of one device (move the whole model "
                    "with dc_module_to)",
                    kn, i, dc_device_name(p->device), dc_device_name(dev));
  for (int k = 0; k < DC__OPTIM_NBUF; k++) {
    const dc_tensor *b = o->state[i].buf[k];
    if (b && b->device != dev)
      return dc__errs(DC_ERR_ARG,
                      "%s step: state '%s' of param %d is on %s but the parameter is on %s; "
                      "move the optimizer's state with dc_optimizer_to(opt, %s)",
                      kn, dc__optim_buf_name(o->kind, k), i, dc_device_name(b->device),
                      dc_device_name(dev), dc_device_name(dev));
  }
  return DC_OK;
}

/* Buffers the rule needs now that the state lacks (a hyper-parameter switched on later). */
static int ensure_buffers(dc_optim *o, int i, const dc_optim_hparams *h, dc_tensor **fresh) {
  dc__optim_pstate *s = &o->state[i];
  *fresh = NULL;
  if (!s->has_state && o->kind != DC_OPTIM_SGD) {
    int rc = dc__optim_init_state(o, i);
    if (rc != DC_OK) return rc;
  }
  bool need[DC__OPTIM_NBUF] = {false, false, false};
  switch (o->kind) {
  case DC_OPTIM_SGD:
    if (h->momentum != 0 && !s->buf[0]) { /* torch: buf = clone(d_p) on its first step */
      *fresh = dc__new(dc_shape_of(o->params[i]), o->params[i]->dtype, o->params[i]->device);
      if (!*fresh) return dc_last_status();
      dc__unscope(*fresh);
    }
    break;
  case DC_OPTIM_ADAM:
  case DC_OPTIM_ADAMW:
    need[2] = h->amsgrad;
    break;
  case DC_OPTIM_RMSPROP:
    need[1] = h->momentum > 0;
    need[2] = h->centered;
    break;
  case DC_OPTIM_ADAGRAD:
  case DC_OPTIM_KIND_COUNT:
    break;
  }
  for (int k = 0; k < DC__OPTIM_NBUF; k++)
    if (need[k] && !s->buf[k]) {
      s->buf[k] = dc__optim_new_buffer(o->params[i], 0.0);
      if (!s->buf[k]) return dc_last_status();
    }
  return DC_OK;
}

/* Slot of parameter i for this step (its step count already advanced). */
static dc_optk_slot make_slot(const dc_optim *o, int i, const dc_optk_hparams *khp,
                              const dc_optim_hparams *h, const dc_tensor *grad, bool init_buf) {
  const dc__optim_pstate *s = &o->state[i];
  const dc_tensor *p = o->params[i];
  dc_optk_slot sl = {.hp = khp,
                     .dtype = p->dtype,
                     .n = dc_numel(p),
                     .param = tensor_data(p),
                     .grad = tensor_data(grad),
                     .init_buf = init_buf,
                     .bias2_sqrt = 1.0};
  for (int k = 0; k < DC__OPTIM_NBUF; k++) sl.buf[k] = tensor_data(s->buf[k]);
  double t = (double)s->step;
  if (o->kind == DC_OPTIM_ADAM || o->kind == DC_OPTIM_ADAMW) {
    if (h->no_bias_correction) {
      sl.step_size = h->lr;
    } else { /* torch: step_size = lr / (1 - beta1 ** step), sqrt(1 - beta2 ** step) */
      sl.step_size = h->lr / (1 - pow(h->betas[0], t));
      sl.bias2_sqrt = sqrt(1 - pow(h->betas[1], t));
    }
  } else if (o->kind == DC_OPTIM_ADAGRAD) {
    sl.step_size = h->lr / (1 + (t - 1) * h->lr_decay);
  }
  return sl;
}

/* The update of slots[n] on dev: the backend's fused kernel, or the ops. */
static int run_update(const dc_optim *o, dc__optim_path path, dc_device dev,
                      const dc_optk_slot *slots, const int *index, dc_tensor *const *grads, int n) {
  dc_optk_rule r = rule_of(o->kind);
  if (path != DC__OPTIM_PATH_OPS && dc__backend_supports(dev, DC_CAP_FUSED_OPTIM)) {
    const struct dc_optim_kernels *k = dc__backend(dev)->optim;
    return (path == DC__OPTIM_PATH_REFERENCE ? k->step_ref : k->step)(r, slots, n);
  }
  if (!dc__backend(dev)) return dc_last_status();
  dc_tensor **ps = dc__malloc(sizeof *ps * (size_t)(n > 0 ? n : 1));
  dc_tensor **gs = dc__malloc(sizeof *gs * (size_t)(n > 0 ? n : 1));
  dc_tensor *(*bs)[DC__OPTIM_NBUF] = dc__malloc(sizeof *bs * (size_t)(n > 0 ? n : 1));
  int rc = ps && gs && bs ? DC_OK : DC_ERR_NOMEM;
  for (int j = 0; j < n && rc == DC_OK; j++) {
    ps[j] = o->params[index[j]];
    gs[j] = grads[index[j]];
    for (int k = 0; k < DC__OPTIM_NBUF; k++) bs[j][k] = o->state[index[j]].buf[k];
  }
  if (rc == DC_OK)
    rc = dc__optim_step_ops(r, slots, ps, gs, (dc_tensor *const(*)[DC__OPTIM_NBUF])bs, n);
  dc__free(ps);
  dc__free(gs);
  dc__free(bs);
  return rc;
}

int dc__optim_step_path(dc_optim *o, dc__optim_path path) {
  if (!o) return dc__errs(DC_ERR_ARG, "optim_step: optimizer is NULL");
  int n = o->nparams, rc = DC_OK, nslots = 0;
  dc_device dev = DC_CPU;
  bool have_dev = false;
  dc_optk_slot *slots = dc__calloc((size_t)n, sizeof *slots);
  int *index = dc__calloc((size_t)n, sizeof *index); /* parameter of each slot */
  dc_optk_hparams *khp = dc__calloc((size_t)o->ngroups, sizeof *khp);
  dc_tensor **tmp = dc__calloc((size_t)n, sizeof *tmp);     /* contiguous copies of gradients */
  dc_tensor **fresh = dc__calloc((size_t)n, sizeof *fresh); /* new SGD momentum buffers */
  dc_tensor **grads = dc__calloc((size_t)n, sizeof *grads);
  bool *had = dc__calloc((size_t)n, sizeof *had); /* has_state before this step */
  if (!slots || !index || !khp || !tmp || !fresh || !grads || !had) {
    rc = DC_ERR_NOMEM;
    goto done;
  }
  /* pass 0: one device for the parameters being updated and their state */
  for (int i = 0; i < n && rc == DC_OK; i++) {
    if (!o->params[i]->grad) continue;
    if (!have_dev) dev = o->params[i]->device;
    have_dev = true;
    rc = check_devices(o, i, dev);
  }
  if (rc != DC_OK || !have_dev) goto done;
  /* pass 1: check gradients and make state; nothing observable changes if this fails */
  for (int g = 0; g < o->ngroups && rc == DC_OK; g++) {
    const dc__optim_group *G = &o->groups[g];
    khp[g] = kernel_hparams(o->kind, &G->hp);
    for (int i = G->first; i < G->first + G->n && rc == DC_OK; i++) {
      if (!o->params[i]->grad) continue;
      grads[i] = grad_of(o, i, &tmp[i]);
      if (!grads[i])
        rc = dc__optim_failed();
      else
        rc = ensure_buffers(o, i, &G->hp, &fresh[i]);
    }
  }
  if (rc != DC_OK) goto done;
  /* pass 2: advance the counts and describe the update */
  for (int g = 0; g < o->ngroups; g++) {
    const dc__optim_group *G = &o->groups[g];
    for (int i = G->first; i < G->first + G->n; i++) {
      if (!grads[i]) continue;
      dc__optim_pstate *s = &o->state[i];
      bool init_buf = fresh[i] != NULL;
      if (init_buf) s->buf[0] = fresh[i];
      had[i] = s->has_state;
      s->step++;
      s->has_state = true;
      index[nslots] = i;
      slots[nslots++] = make_slot(o, i, &khp[g], &G->hp, grads[i], init_buf);
    }
  }
  rc = run_update(o, path, dev, slots, index, grads, nslots);
  for (int i = 0; i < n; i++) {
    if (!grads[i]) continue;
    if (rc == DC_OK) { /* the new buffers now belong to the state */
      fresh[i] = NULL;
      o->params[i]->storage->version++; /* written in place */
      continue;
    }
    dc__optim_pstate *s = &o->state[i]; /* the update failed (it changes nothing then): undo */
    if (fresh[i]) s->buf[0] = NULL;
    s->step--;
    s->has_state = had[i];
  }
done:
  for (int i = 0; tmp && i < n; i++) dc__unref(tmp[i]);
  for (int i = 0; fresh && i < n; i++) dc__unref(fresh[i]);
  dc__free(slots);
  dc__free(index);
  dc__free(khp);
  dc__free(tmp);
  dc__free(fresh);
  dc__free(grads);
  dc__free(had);
  return rc;
}

int dc__optim_step_with(dc_optim *o, bool reference) {
  return dc__optim_step_path(o, reference ? DC__OPTIM_PATH_REFERENCE : DC__OPTIM_PATH_FUSED);
}

int dc_optim_step(dc_optim *o) { return dc__optim_step_path(o, DC__OPTIM_PATH_FUSED); }
