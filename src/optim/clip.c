/* Gradient clipping with torch.nn.utils' rules: clip_grad_norm_ (a global norm of any order over
 * every gradient, norm of the per-tensor norms as torch computes it, coefficient
 * max_norm / (norm + 1e-6) clamped to 1) and clip_grad_value_, on any device: the gradients'
 * backend's kernels (optim-kernels.h) where it has DC_CAP_FUSED_OPTIM, else ops (unfused.c).
 * The per-tensor norms come back to the host (one synchronising read per step). */
#include "optim-impl.h"

#include <math.h>

/* The gradients of params (NULL grads skipped) as tensors and as kernel buffers (device
 * addresses, never dereferenced here); *nb = how many. */
typedef struct grads {
  int nb;
  dc_device dev;
  dc_tensor **t;    /* [nb] */
  dc_optk_buf *buf; /* [nb] */
  bool fused;       /* the backend's kernels, else ops */
} grads;

static void grads_free(grads *gs) {
  dc__free(gs->t);
  dc__free(gs->buf);
}

static int collect(const char *fn, dc_tensor *const *params, int n, bool ops, grads *gs) {
  *gs = (grads){.dev = DC_CPU};
  if (n < 0 || (n > 0 && !params))
    return dc__errs(DC_ERR_ARG, "%s: params is %s (n = %d)", fn,
                    params ? "a negative count" : "NULL", n);
  gs->t = dc__malloc(sizeof *gs->t * (size_t)(n > 0 ? n : 1));
  gs->buf = dc__malloc(sizeof *gs->buf * (size_t)(n > 0 ? n : 1));
  if (!gs->t || !gs->buf) {
    grads_free(gs);
    return DC_ERR_NOMEM;
  }
  for (int i = 0; i < n; i++) {
    const dc_tensor *p = params[i];
    if (!p) {
      grads_free(gs);
      return dc__errs(DC_ERR_ARG, "%s: param %d is NULL", fn, i);
    }
    dc_tensor *g = p->grad;
    if (!g) continue;
    bool other = gs->nb > 0 && g->device != gs->dev;
    if ((g->dtype != DC_F32 && g->dtype != DC_F64) || !dc_is_contiguous(g) || other) {
      grads_free(gs);
      return dc__errs(DC_ERR_ARG,
                      "%s: the gradient of param %d is %s%s%s; clipping works on "
                      "contiguous float32/float64 gradients of one device",
                      fn, i, dc_dtype_name(g->dtype), dc_is_contiguous(g) ? "" : ", not contiguous",
                      other ? ", on another device" : "");
    }
    gs->dev = g->device;
    gs->t[gs->nb] = g;
    gs->buf[gs->nb++] =
        (dc_optk_buf){(char *)g->storage->data + (size_t)g->offset * dc_dtype_size(g->dtype),
                      dc_numel(g), g->dtype};
  }
  if (gs->nb > 0 && !dc__backend(gs->dev)) {
    grads_free(gs);
    return dc_last_status();
  }
  gs->fused = !ops && dc__backend_supports(gs->dev, DC_CAP_FUSED_OPTIM);
  return DC_OK;
}

/* The gradients were written in place. */
static void bump_versions(const grads *gs) {
  for (int i = 0; i < gs->nb; i++) gs->t[i]->storage->version++;
}

static int pass_norms(const grads *gs, double p, double *norms) {
  if (!gs->fused) return dc__optim_clip_ops(gs->t, gs->nb, DC__OPTIM_CLIP_NORMS, p, 0, norms);
  return dc__backend(gs->dev)->optim->norms(gs->buf, gs->nb, p, norms);
}

static int pass_scale(const grads *gs, double coef) {
  if (!gs->fused) return dc__optim_clip_ops(gs->t, gs->nb, DC__OPTIM_CLIP_SCALE, coef, 0, NULL);
  int rc = dc__backend(gs->dev)->optim->scale(gs->buf, gs->nb, coef);
  if (rc == DC_OK) bump_versions(gs);
  return rc;
}

static int pass_clamp(const grads *gs, double lo, double hi) {
  if (!gs->fused) return dc__optim_clip_ops(gs->t, gs->nb, DC__OPTIM_CLIP_CLAMP, lo, hi, NULL);
  int rc = dc__backend(gs->dev)->optim->clamp(gs->buf, gs->nb, lo, hi);
  if (rc == DC_OK) bump_versions(gs);
  return rc;
}

/* torch.norm(stack(norms), p) */
static double norm_of_norms(const double *v, int n, double p) {
  double acc = p == -INFINITY ? INFINITY : 0.0;
  for (int i = 0; i < n; i++) {
    double a = fabs(v[i]);
    if (p == INFINITY || p == -INFINITY) {
      if (a != a || acc != acc)
        acc = NAN;
      else if (p == INFINITY ? a > acc : a < acc)
        acc = a;
    } else if (p == 0) {
      acc += a != 0;
    } else if (p == 1) {
      acc += a;
    } else if (p == 2) {
      acc += a * a;
    } else {
      acc += pow(a, p);
    }
  }
  if (p == 2) return sqrt(acc);
  if (p == 0 || p == 1 || p == INFINITY || p == -INFINITY) return acc;
  return pow(acc, 1.0 / p);
}

int dc__clip_grad_norm_with(dc_tensor *const *params, int n, double max_norm, double norm_type,
                            bool error_if_nonfinite, double *total_norm, bool ops) {
  const char *fn = "clip_grad_norm_";
  if (total_norm) *total_norm = 0.0;
  if (!(max_norm >= 0))
    return dc__errs(DC_ERR_ARG, "%s: max_norm must be >= 0, got %g", fn, max_norm);
  if (isnan(norm_type)) return dc__errs(DC_ERR_ARG, "%s: norm_type is NaN", fn);
  grads gs;
  int rc = collect(fn, params, n, ops, &gs);
  if (rc != DC_OK) return rc;
  if (gs.nb == 0) { /* torch returns tensor(0.) */
    grads_free(&gs);
    return DC_OK;
  }
  double *norms = dc__malloc(sizeof *norms * (size_t)gs.nb);
  if (!norms) {
    rc = DC_ERR_NOMEM;
    goto done;
  }
  rc = pass_norms(&gs, norm_type, norms);
  if (rc != DC_OK) goto done;
  double total = norm_of_norms(norms, gs.nb, norm_type);
  if (total_norm) *total_norm = total;
  if (error_if_nonfinite && !isfinite(total)) {
    rc = dc__errs(DC_ERR_STATE,
                  "%s: the total norm of order %g for gradients from `parameters` is "
                  "non-finite (%g), so it cannot be clipped. To disable this error "
                  "and scale the gradients by the non-finite norm anyway, set "
                  "error_if_nonfinite = false",
                  fn, norm_type, total);
    goto done;
  }
  bool all_f32 = true;
  for (int i = 0; i < gs.nb; i++) all_f32 = all_f32 && gs.buf[i].dtype == DC_F32;
  /* torch: clamp(max_norm / (total_norm + 1e-6), max=1) in the gradients' dtype, where
   * scalar / tensor is computed as tensor.reciprocal() * scalar */
  double coef;
  if (all_f32) {
    float c = (1.0f / ((float)total + 1e-6f)) * (float)max_norm;
    coef = c > 1.0f ? 1.0 : (double)c;
  } else {
    coef = (1.0 / (total + 1e-6)) * max_norm;
    if (coef > 1.0) coef = 1.0;
  }
  if (coef != 1.0) rc = pass_scale(&gs, coef); /* x * 1 == x: skip the pass */
done:
  dc__free(norms);
  grads_free(&gs);
  return rc;
}

int dc_clip_grad_norm_(dc_tensor *const *params, int n, double max_norm, double norm_type,
                       bool error_if_nonfinite, double *total_norm) {
  return dc__clip_grad_norm_with(params, n, max_norm, norm_type, error_if_nonfinite, total_norm,
                                 false);
}

int dc__clip_grad_value_with(dc_tensor *const *params, int n, double clip_value, bool ops) {
  const char *fn = "clip_grad_value_";
  if (!(clip_value >= 0))
    return dc__errs(DC_ERR_ARG,
                    "%s: clip_value must be >= 0 (gradients are clamped to "
                    "[-clip_value, clip_value]), got %g",
                    fn, clip_value);
  grads gs;
  int rc = collect(fn, params, n, ops, &gs);
  if (rc != DC_OK) return rc;
  if (gs.nb > 0) rc = pass_clamp(&gs, -clip_value, clip_value);
  grads_free(&gs);
  return rc;
}

int dc_clip_grad_value_(dc_tensor *const *params, int n, double clip_value) {
  return dc__clip_grad_value_with(params, n, clip_value, false);
}
