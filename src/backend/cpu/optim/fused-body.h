/* Typed bodies of the fused optimizer updates, included by fused.c once per element type with
 * T (float or double), FN(name) (adds the type suffix) and SQRT (sqrtf or sqrt) defined.
 * Each rule comes twice: a blocked, vectorised version (a block of at most DC__OPTK_BLOCK
 * elements of one slot, scratch on the stack) and a per-element reference loop over a whole
 * slot. Both follow torch 1.13's statement order and round after every operation like torch's
 * unfused kernels, so they agree bit for bit with each other. Shapes: [n] = slot elements. */

/* g[n] = (maximize ? -grad : grad) + weight_decay * p, the decay only when coupled and != 0 */
static inline void FN(effective_grad)(T *restrict g, const T *restrict grad, const T *restrict p,
                                      int64_t n, const dc_optk_hparams *hp, bool coupled_wd) {
  if (hp->maximize)
    for (int64_t i = 0; i < n; i++) g[i] = -grad[i];
  else
    for (int64_t i = 0; i < n; i++) g[i] = grad[i];
  if (coupled_wd && hp->weight_decay != 0) {
    T wd = (T)hp->weight_decay;
    for (int64_t i = 0; i < n; i++) g[i] = g[i] + wd * p[i];
  }
}

/* torch.maximum: NaN wins */
static inline T FN(maximum)(T a, T b) { return (a != a || a > b) ? a : b; }

/* ---- blocked versions: elements [off, off + n) of slot s, n <= DC__OPTK_BLOCK ---- */

/* SGD: b = mu b + (1 - tau) g (b = g on the first step); d = nesterov ? g + mu b : b; p -= lr d */
DC__OPTK_CLONES static void FN(sgd_block)(const dc_optk_slot *s, int64_t off, int64_t n) {
  const dc_optk_hparams *hp = s->hp;
  T *restrict p = (T *)s->param + off;
  T g[DC__OPTK_BLOCK];
  FN(effective_grad)(g, (const T *)s->grad + off, p, n, hp, true);
  const T *d = g;
  if (hp->momentum != 0) {
    T *restrict b = (T *)s->buf[0] + off;
    T mom = (T)hp->momentum, omd = (T)(1 - hp->dampening);
    if (s->init_buf)
      for (int64_t i = 0; i < n; i++) b[i] = g[i];
    else
      for (int64_t i = 0; i < n; i++) b[i] = b[i] * mom + omd * g[i];
    if (hp->nesterov)
      for (int64_t i = 0; i < n; i++) g[i] = g[i] + mom * b[i];
    else
      d = b;
  }
  T nlr = (T)(-hp->lr);
  for (int64_t i = 0; i < n; i++) p[i] = p[i] + nlr * d[i];
}

/* Adam/AdamW: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; vmax = max(vmax, v) (amsgrad);
 * p -= step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps); AdamW first p *= 1 - lr wd */
DC__OPTK_CLONES static void FN(adam_block)(const dc_optk_slot *s, int64_t off, int64_t n) {
  const dc_optk_hparams *hp = s->hp;
  T *restrict p = (T *)s->param + off;
  T *restrict m = (T *)s->buf[0] + off;
  T *restrict v = (T *)s->buf[1] + off;
  T g[DC__OPTK_BLOCK];
  FN(effective_grad)(g, (const T *)s->grad + off, p, n, hp, !hp->decoupled_wd);
  if (hp->decoupled_wd) {
    T f = (T)(1 - hp->lr * hp->weight_decay);
    for (int64_t i = 0; i < n; i++) p[i] = p[i] * f;
  }
  T b1 = (T)hp->beta1, omb1 = (T)(1 - hp->beta1), b2 = (T)hp->beta2, omb2 = (T)(1 - hp->beta2);
  for (int64_t i = 0; i < n; i++) m[i] = m[i] * b1 + omb1 * g[i];
  for (int64_t i = 0; i < n; i++) v[i] = v[i] * b2 + omb2 * g[i] * g[i];
  const T *vv = v;
  if (hp->amsgrad) {
    T *restrict vm = (T *)s->buf[2] + off;
    for (int64_t i = 0; i < n; i++) vm[i] = FN(maximum)(vm[i], v[i]);
    vv = vm;
  }
  T bc2 = (T)s->bias2_sqrt, eps = (T)hp->eps, nss = (T)(-s->step_size);
  for (int64_t i = 0; i < n; i++) p[i] = p[i] + nss * m[i] / (SQRT(vv[i]) / bc2 + eps);
}

/* RMSprop: sq = a sq + (1-a) g^2; ga = a ga + (1-a) g (centered); avg = sqrt(sq - ga^2) + eps;
 * b = mu b + g / avg, p -= lr b (momentum > 0), else p -= lr g / avg */
DC__OPTK_CLONES static void FN(rmsprop_block)(const dc_optk_slot *s, int64_t off, int64_t n) {
  const dc_optk_hparams *hp = s->hp;
  T *restrict p = (T *)s->param + off;
  T *restrict sq = (T *)s->buf[0] + off;
  T g[DC__OPTK_BLOCK], avg[DC__OPTK_BLOCK];
  FN(effective_grad)(g, (const T *)s->grad + off, p, n, hp, true);
  T a = (T)hp->alpha, oma = (T)(1 - hp->alpha), eps = (T)hp->eps, nlr = (T)(-hp->lr);
  for (int64_t i = 0; i < n; i++) sq[i] = sq[i] * a + oma * g[i] * g[i];
  if (hp->centered) {
    T *restrict ga = (T *)s->buf[2] + off;
    for (int64_t i = 0; i < n; i++) ga[i] = ga[i] * a + oma * g[i];
    for (int64_t i = 0; i < n; i++) avg[i] = SQRT(sq[i] - ga[i] * ga[i]) + eps;
  } else {
    for (int64_t i = 0; i < n; i++) avg[i] = SQRT(sq[i]) + eps;
  }
  if (hp->momentum > 0) {
    T *restrict b = (T *)s->buf[1] + off;
    T mom = (T)hp->momentum;
    for (int64_t i = 0; i < n; i++) b[i] = b[i] * mom + g[i] / avg[i];
    for (int64_t i = 0; i < n; i++) p[i] = p[i] + nlr * b[i];
  } else {
    for (int64_t i = 0; i < n; i++) p[i] = p[i] + nlr * g[i] / avg[i];
  }
}

/* Adagrad: sum += g^2; p -= clr g / (sqrt(sum) + eps), clr = lr / (1 + (t - 1) lr_decay) */
DC__OPTK_CLONES static void FN(adagrad_block)(const dc_optk_slot *s, int64_t off, int64_t n) {
  const dc_optk_hparams *hp = s->hp;
  T *restrict p = (T *)s->param + off;
  T *restrict sum = (T *)s->buf[0] + off;
  T g[DC__OPTK_BLOCK];
  FN(effective_grad)(g, (const T *)s->grad + off, p, n, hp, true);
  T eps = (T)hp->eps, nclr = (T)(-s->step_size);
  for (int64_t i = 0; i < n; i++) sum[i] = sum[i] + g[i] * g[i];
  for (int64_t i = 0; i < n; i++) p[i] = p[i] + nclr * g[i] / (SQRT(sum[i]) + eps);
}

/* ---- reference versions: one element at a time over the whole slot ---- */

static void FN(sgd_ref)(const dc_optk_slot *s) {
  const dc_optk_hparams *hp = s->hp;
  T *p = s->param, *b = s->buf[0];
  const T *grad = s->grad;
  for (int64_t i = 0; i < s->n; i++) {
    T g = hp->maximize ? -grad[i] : grad[i];
    if (hp->weight_decay != 0) g = g + (T)hp->weight_decay * p[i];
    if (hp->momentum != 0) {
      if (s->init_buf)
        b[i] = g;
      else
        b[i] = b[i] * (T)hp->momentum + (T)(1 - hp->dampening) * g;
      g = hp->nesterov ? g + (T)hp->momentum * b[i] : b[i];
    }
    p[i] = p[i] + (T)(-hp->lr) * g;
  }
}

static void FN(adam_ref)(const dc_optk_slot *s) {
  const dc_optk_hparams *hp = s->hp;
  T *p = s->param, *m = s->buf[0], *v = s->buf[1], *vm = s->buf[2];
  const T *grad = s->grad;
  for (int64_t i = 0; i < s->n; i++) {
    T g = hp->maximize ? -grad[i] : grad[i];
    if (hp->decoupled_wd)
      p[i] = p[i] * (T)(1 - hp->lr * hp->weight_decay);
    else if (hp->weight_decay != 0)
      g = g + (T)hp->weight_decay * p[i];
    m[i] = m[i] * (T)hp->beta1 + (T)(1 - hp->beta1) * g;
    v[i] = v[i] * (T)hp->beta2 + (T)(1 - hp->beta2) * g * g;
    T vhat = v[i];
    if (hp->amsgrad) {
      vm[i] = FN(maximum)(vm[i], v[i]);
      vhat = vm[i];
    }
    T denom = SQRT(vhat) / (T)s->bias2_sqrt + (T)hp->eps;
    p[i] = p[i] + (T)(-s->step_size) * m[i] / denom;
  }
}

static void FN(rmsprop_ref)(const dc_optk_slot *s) {
  const dc_optk_hparams *hp = s->hp;
  T *p = s->param, *sq = s->buf[0], *b = s->buf[1], *ga = s->buf[2];
  const T *grad = s->grad;
  T a = (T)hp->alpha, oma = (T)(1 - hp->alpha);
  for (int64_t i = 0; i < s->n; i++) {
    T g = hp->maximize ? -grad[i] : grad[i];
    if (hp->weight_decay != 0) g = g + (T)hp->weight_decay * p[i];
    sq[i] = sq[i] * a + oma * g * g;
    T avg;
    if (hp->centered) {
      ga[i] = ga[i] * a + oma * g;
      avg = SQRT(sq[i] - ga[i] * ga[i]);
    } else {
      avg = SQRT(sq[i]);
    }
    avg = avg + (T)hp->eps;
    if (hp->momentum > 0) {
      b[i] = b[i] * (T)hp->momentum + g / avg;
      p[i] = p[i] + (T)(-hp->lr) * b[i];
    } else {
      p[i] = p[i] + (T)(-hp->lr) * g / avg;
    }
  }
}

static void FN(adagrad_ref)(const dc_optk_slot *s) {
  const dc_optk_hparams *hp = s->hp;
  T *p = s->param, *sum = s->buf[0];
  const T *grad = s->grad;
  for (int64_t i = 0; i < s->n; i++) {
    T g = hp->maximize ? -grad[i] : grad[i];
    if (hp->weight_decay != 0) g = g + (T)hp->weight_decay * p[i];
    sum[i] = sum[i] + g * g;
    p[i] = p[i] + (T)(-s->step_size) * g / (SQRT(sum[i]) + (T)hp->eps);
  }
}

/* Elements [off, off + n) of slot s, any n, through the blocked versions. */
static void FN(chunk)(dc_optk_rule rule, const dc_optk_slot *s, int64_t off, int64_t n) {
  for (int64_t b = off; b < off + n; b += DC__OPTK_BLOCK) {
    int64_t len = off + n - b < DC__OPTK_BLOCK ? off + n - b : DC__OPTK_BLOCK;
    switch (rule) {
    case DC_OPTK_SGD:
      FN(sgd_block)(s, b, len);
      break;
    case DC_OPTK_ADAM:
      FN(adam_block)(s, b, len);
      break;
    case DC_OPTK_RMSPROP:
      FN(rmsprop_block)(s, b, len);
      break;
    case DC_OPTK_ADAGRAD:
      FN(adagrad_block)(s, b, len);
      break;
    case DC_OPTK_RULE_COUNT:
      break;
    }
  }
}

static void FN(ref)(dc_optk_rule rule, const dc_optk_slot *s) {
  switch (rule) {
  case DC_OPTK_SGD:
    FN(sgd_ref)(s);
    break;
  case DC_OPTK_ADAM:
    FN(adam_ref)(s);
    break;
  case DC_OPTK_RMSPROP:
    FN(rmsprop_ref)(s);
    break;
  case DC_OPTK_ADAGRAD:
    FN(adagrad_ref)(s);
    break;
  case DC_OPTK_RULE_COUNT:
    break;
  }
}
