/* Gradient clipping with torch.nn.utils' rules: clip_grad_norm_ (a global norm of any order over
 * every gradient, norm of the per-tensor norms as torch computes it, coefficient
 * max_norm / (norm + 1e-6) clamped to 1) and clip_grad_value_. Kernels: optim-kernels.h. */
#include "optim-impl.h"

#include <math.h>

/* Gradients of params as kernel buffers (NULL grads skipped); *nb = how many. */
static int collect(const char *fn, dc_tensor *const *params, int n, dc_optk_buf **bufs, int *nb,
                   dc_device *dev) {
  *bufs = NULL;
  *nb = 0;
  if (n < 0 || (n > 0 && !params))
    return dc__errs(DC_ERR_ARG, "%s: params is %s (n = %d)", fn,
                    params ? "a negative count" : "NULL", n);
  dc_optk_buf *b = dc__malloc(sizeof *b * (size_t)(n > 0 ? n : 1));
  if (!b) return DC_ERR_NOMEM;
  for (int i = 0; i < n; i++) {
    const dc_tensor *p = params[i];
    if (!p) {
      dc__free(b);
      return dc__errs(DC_ERR_ARG, "%s: param %d is NULL", fn, i);
    }
    const dc_tensor *g = p->grad;
    if (!g) continue;
    if ((g->dtype != DC_F32 && g->dtype != DC_F64) || !dc_is_contiguous(g) ||
        (*nb > 0 && g->device != *dev)) {
      dc__free(b);
      return dc__errs(DC_ERR_ARG,
                      "%s: the gradient of param %d is %s%s%s; clipping works on "
                      "contiguous float32/float64 gradients of one device",
                      fn, i, dc_dtype_name(g->dtype), dc_is_contiguous(g) ? "" : ", not contiguous",
                      *nb > 0 && g->device != *dev ? ", on another device" : "");
    }
    *dev = g->device;
    b[(*nb)++] =
        (dc_optk_buf){(char *)g->storage->data + (size_t)g->offset * dc_dtype_size(g->dtype),
                      dc_numel(g), g->dtype};
  }
  *bufs = b;
  return DC_OK;
}

/* The gradients were written in place. */
static void bump_versions(dc_tensor *const *params, int n) {
  for (int i = 0; i < n; i++)
    if (params[i]->grad) params[i]->grad->storage->version++;
}

static const struct dc_optim_kernels *kernels(const char *fn, dc_device dev) {
  const dc_backend *be = dc__backend(dev);
  if (!be) return NULL;
  if (!be->optim)
    return dc__err(DC_ERR_UNSUPPORTED, "%s: the %s backend has no optimizer kernels", fn, be->name);
  return be->optim;
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

int dc_clip_grad_norm_(dc_tensor *const *params, int n, double max_norm, double norm_type,
                       bool error_if_nonfinite, double *total_norm) {
  const char *fn = "clip_grad_norm_";
  if (total_norm) *total_norm = 0.0;
  if (!(max_norm >= 0))
    return dc__errs(DC_ERR_ARG, "%s: max_norm must be >= 0, got %g", fn, max_norm);
  if (isnan(norm_type)) return dc__errs(DC_ERR_ARG, "%s: norm_type is NaN", fn);
  dc_optk_buf *bufs;
  int nb;
  dc_device dev = DC_CPU;
  int rc = collect(fn, params, n, &bufs, &nb, &dev);
  if (rc != DC_OK) return rc;
  if (nb == 0) { /* torch returns tensor(0.) */
    dc__free(bufs);
    return DC_OK;
  }
  const struct dc_optim_kernels *k = kernels(fn, dev);
  double *norms = dc__malloc(sizeof *norms * (size_t)nb);
  if (!k || !norms) {
    rc = k ? DC_ERR_NOMEM : dc_last_status();
    goto done;
  }
  rc = k->norms(bufs, nb, norm_type, norms);
  if (rc != DC_OK) goto done;
  double total = norm_of_norms(norms, nb, norm_type);
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
  for (int i = 0; i < nb; i++) all_f32 = all_f32 && bufs[i].dtype == DC_F32;
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
  if (coef != 1.0) { /* x * 1 == x: skip the pass */
    rc = k->scale(bufs, nb, coef);
    if (rc == DC_OK) bump_versions(params, n);
  }
done:
  dc__free(norms);
  dc__free(bufs);
  return rc;
}

int dc_clip_grad_value_(dc_tensor *const *params, int n, double clip_value) {
  const char *fn = "clip_grad_value_";
  if (!(clip_value >= 0))
    return dc__errs(DC_ERR_ARG,
                    "%s: clip_value must be >= 0 (gradients are clamped to "
                    "[-clip_value, clip_value]), got %g",
                    fn, clip_value);
  dc_optk_buf *bufs;
  int nb;
  dc_device dev = DC_CPU;
  int rc = collect(fn, params, n, &bufs, &nb, &dev);
  if (rc != DC_OK || nb == 0) {
    dc__free(bufs);
    return rc;
  }
  const struct dc_optim_kernels *k = kernels(fn, dev);
  rc = k ? k->clamp(bufs, nb, -clip_value, clip_value) : (int)dc_last_status();
  if (rc == DC_OK) bump_versions(params, n);
  dc__free(bufs);
  return rc;
}
