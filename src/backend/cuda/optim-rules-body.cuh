/* Typed bodies of optim-rules.cuh, included once per element type with T (float or double),
 * FN(name) (adds the type suffix) and SQRT (sqrtf or sqrt) defined. Each update is the CPU's
 * reference loop body (cpu/optim/fused-body.h) for element i: the same statements in the same
 * order, the double hyper-parameters cast to T where the CPU casts them, one rounding per
 * operation. Shapes: [N] = the slot's or buffer's elements, i < N. */

/* torch.maximum: NaN wins */
DC__HD T FN(dc__cu_optk_maximum)(T a, T b) { return (a != a || a > b) ? a : b; }

/* SGD: b = mu b + (1 - tau) g (b = g on the first step); d = nesterov ? g + mu b : b; p -= lr d */
DC__HD void FN(dc__cu_optk_sgd)(const dc__cu_optk_slot *s, int64_t i) {
  const dc_optk_hparams *hp = &s->hp;
  T *p = (T *)s->param, *b = (T *)s->buf[0];
  const T *grad = (const T *)s->grad;
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

/* Adam/AdamW: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; vmax = max(vmax, v) (amsgrad);
 * p -= step_size * m / (sqrt(v) / sqrt(1 - b2^t) + eps); AdamW first p *= 1 - lr wd */
DC__HD void FN(dc__cu_optk_adam)(const dc__cu_optk_slot *s, int64_t i) {
  const dc_optk_hparams *hp = &s->hp;
  T *p = (T *)s->param, *m = (T *)s->buf[0], *v = (T *)s->buf[1], *vm = (T *)s->buf[2];
  const T *grad = (const T *)s->grad;
  T g = hp->maximize ? -grad[i] : grad[i];
  if (hp->decoupled_wd)
    p[i] = p[i] * (T)(1 - hp->lr * hp->weight_decay);
  else if (hp->weight_decay != 0)
    g = g + (T)hp->weight_decay * p[i];
  m[i] = m[i] * (T)hp->beta1 + (T)(1 - hp->beta1) * g;
  v[i] = v[i] * (T)hp->beta2 + (T)(1 - hp->beta2) * g * g;
  T vhat = v[i];
  if (hp->amsgrad) {
    vm[i] = FN(dc__cu_optk_maximum)(vm[i], v[i]);
    vhat = vm[i];
  }
  T denom = SQRT(vhat) / (T)s->bias2_sqrt + (T)hp->eps;
  p[i] = p[i] + (T)(-s->step_size) * m[i] / denom;
}

/* RMSprop: sq = a sq + (1-a) g^2; ga = a ga + (1-a) g (centered); avg = sqrt(sq - ga^2) + eps;
 * b = mu b + g / avg, p -= lr b (momentum > 0), else p -= lr g / avg */
DC__HD void FN(dc__cu_optk_rmsprop)(const dc__cu_optk_slot *s, int64_t i) {
  const dc_optk_hparams *hp = &s->hp;
  T *p = (T *)s->param, *sq = (T *)s->buf[0], *b = (T *)s->buf[1], *ga = (T *)s->buf[2];
  const T *grad = (const T *)s->grad;
  T a = (T)hp->alpha, oma = (T)(1 - hp->alpha);
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

/* Adagrad: sum += g^2; p -= clr g / (sqrt(sum) + eps), clr = lr / (1 + (t - 1) lr_decay) */
DC__HD void FN(dc__cu_optk_adagrad)(const dc__cu_optk_slot *s, int64_t i) {
  const dc_optk_hparams *hp = &s->hp;
  T *p = (T *)s->param, *sum = (T *)s->buf[0];
  const T *grad = (const T *)s->grad;
  T g = hp->maximize ? -grad[i] : grad[i];
  if (hp->weight_decay != 0) g = g + (T)hp->weight_decay * p[i];
  sum[i] = sum[i] + g * g;
  p[i] = p[i] + (T)(-s->step_size) * g / (SQRT(sum[i]) + (T)hp->eps);
}

/* Element i of slot s under rule r. */
DC__HD void FN(dc__cu_optk_update)(dc_optk_rule r, const dc__cu_optk_slot *s, int64_t i) {
  switch (r) {
  case DC_OPTK_SGD:
    FN(dc__cu_optk_sgd)(s, i);
    break;
  case DC_OPTK_ADAM:
    FN(dc__cu_optk_adam)(s, i);
    break;
  case DC_OPTK_RMSPROP:
    FN(dc__cu_optk_rmsprop)(s, i);
    break;
  case DC_OPTK_ADAGRAD:
    FN(dc__cu_optk_adagrad)(s, i);
    break;
  case DC_OPTK_RULE_COUNT:
    break;
  }
}

/* x[i] *= (T)coef */
DC__HD void FN(dc__cu_optk_scale)(T *x, int64_t i, double coef) { x[i] = x[i] * (T)coef; }

/* x[i] = min(max(x[i], lo), hi), NaN stays */
DC__HD void FN(dc__cu_optk_clamp)(T *x, int64_t i, double lo, double hi) {
  T l = (T)lo, h = (T)hi;
  T v = x[i] < l ? l : x[i];
  x[i] = v > h ? h : v;
}

/* Lane j (< DC__CU_NORM_LANES) of the norm partial of one chunk x[n] (n <= DC__CU_NORM_CHUNK):
 * lanes 0-7 are the CPU's accumulators acc[j] over elements j, j + 8, ... below n rounded down to
 * eight, lane 8 its tail; the extremes and counts are split the same way; the p-norm's sum runs
 * in lane 0 alone, in element order, as on the CPU. */
DC__HD double FN(dc__cu_norm_lane)(const T *x, int64_t n, int j, dc__cu_norm_kind k, double p) {
  int64_t n8 = n - n % 8, from = j < 8 ? j : n8, to = j < 8 ? n8 : n, step = j < 8 ? 8 : 1;
  double acc = dc__cu_norm_init(k);
  switch (k) {
  case DC__CU_NORM_L2:
    for (int64_t i = from; i < to; i += step) acc += (double)x[i] * (double)x[i];
    return acc;
  case DC__CU_NORM_L1:
    for (int64_t i = from; i < to; i += step) acc += fabs((double)x[i]);
    return acc;
  case DC__CU_NORM_INF:
  case DC__CU_NORM_NEGINF:
    for (int64_t i = from; i < to; i += step) {
      double a = fabs((double)x[i]);
      if (a != a) return a;
      if (k == DC__CU_NORM_INF ? a > acc : a < acc) acc = a;
    }
    return acc;
  case DC__CU_NORM_L0:
    for (int64_t i = from; i < to; i += step) acc += x[i] != 0;
    return acc;
  case DC__CU_NORM_P:
    if (j == 0)
      for (int64_t i = 0; i < n; i++) acc += pow(fabs((double)x[i]), p);
    return acc;
  }
  return NAN;
}
