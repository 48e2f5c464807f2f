/* dc_gradcheck: compares analytic gradients with float64 central differences. The scalar checked
 * is sum(f(inputs) * r) for a fixed pseudo-random r, so every output element contributes. */
#include "../autograd-impl.h"

#include <math.h>
#include <string.h>

/* Fixed weights in [0.5, 1.5) from a private LCG (the global RNG is left untouched), made on the
 * host and moved to out's device. */
static dc_tensor *weights_like(const dc_tensor *out) {
  dc_tensor *r = dc_empty(dc_shape_of(out), DC_F64);
  if (!r) return NULL;
  double *p = dc_data(r);
  uint64_t s = 0x9E3779B97F4A7C15ull;
  for (int64_t i = 0, n = dc_numel(r); i < n; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    p[i] = 0.5 + (double)(s >> 11) * (1.0 / 9007199254740992.0);
  }
  return dc__host_to(r, out->device);
}

/* sum(f(inputs) * r) as a 0-d tensor (graph recorded if grad mode is on) */
static dc_tensor *objective(dc_gradcheck_fn f, dc_tensor *const *in, int n, void *ud,
                            dc_tensor **r) {
  dc_tensor *out = f(in, n, ud);
  if (!out) return NULL;
  if (out->dtype != DC_F64)
    return dc__err(DC_ERR_ARG, "gradcheck: the function returned %s; use float64 inputs and ops",
                   dc_dtype_name(out->dtype));
  if (!*r) {
    *r = weights_like(out);
    if (!*r) return NULL;
    dc_keep(*r);
  } else if (!dc_shape_equal(dc_shape_of(*r), dc_shape_of(out))) {
    return dc__err(DC_ERR_STATE, "gradcheck: the function's output shape changed between calls");
  }
  return dc_sum_all(dc_mul(out, *r));
}

/* Byte offset in t's storage of the element at flat (row-major) index i. */
static size_t elem_offset(const dc_tensor *t, int64_t i) {
  int64_t off = t->offset;
  for (int d = t->ndim - 1; d >= 0; d--) {
    off += (i % t->shape[d]) * t->stride[d];
    i /= t->shape[d];
  }
  return (size_t)off * sizeof(double);
}

/* x's element i set to v, on any device (the perturbation of a central difference). */
static bool set_elem(dc_tensor *x, int64_t i, double v) {
  return dc__storage_write(x, elem_offset(x, i), &v, sizeof v) == DC_OK;
}

static bool numeric_value(dc_gradcheck_fn f, dc_tensor *const *in, int n, void *ud, dc_tensor **r,
                          double *v) {
  if (dc_scope_begin() != DC_OK) return false;
  bool prev = dc_set_grad_enabled(false);
  dc_tensor *o = objective(f, in, n, ud, r);
  if (o) *v = dc_item(o);
  dc_set_grad_enabled(prev);
  dc_scope_end();
  return o != NULL;
}

bool dc_gradcheck_opt(dc_gradcheck_fn f, dc_tensor *const *in, int n, void *ud,
                      dc_gradcheck_opts o) {
  if (!f || !in || n <= 0) {
    dc__err(DC_ERR_ARG, "gradcheck: need a function and at least one input");
    return false;
  }
  double eps = o.eps > 0 ? o.eps : 1e-6, atol = o.atol > 0 ? o.atol : 1e-5;
  double rtol = o.rtol > 0 ? o.rtol : 1e-3;
  for (int k = 0; k < n; k++) {
    if (!in[k]) {
      dc__err(DC_ERR_ARG, "gradcheck: input %d is NULL", k);
      return false;
    }
    if (in[k]->requires_grad && in[k]->dtype != DC_F64) {
      dc__err(DC_ERR_ARG,
              "gradcheck: input %d is %s; gradcheck needs float64 inputs for "
              "accurate differences",
              k, dc_dtype_name(in[k]->dtype));
      return false;
    }
    if (in[k]->requires_grad && in[k]->grad_fn) {
      dc__err(DC_ERR_ARG,
              "gradcheck: input %d is not a leaf; pass leaves (dc_detach + "
              "dc_requires_grad_)",
              k);
      return false;
    }
  }
  dc_tensor *saved[64] = {0};
  if (n > 64) {
    dc__err(DC_ERR_ARG, "gradcheck: at most 64 inputs");
    return false;
  }
  for (int k = 0; k < n; k++) { /* set existing grads aside */
    saved[k] = in[k]->grad;
    in[k]->grad = NULL;
  }
  bool ok = false;
  dc_tensor *r = NULL;
  if (dc_scope_begin() != DC_OK) goto restore;
  dc_tensor *obj = objective(f, in, n, ud, &r);
  if (!obj || dc_backward(obj) != DC_OK) {
    dc_scope_end();
    goto restore;
  }
  dc_scope_end();
  ok = true;
  for (int k = 0; k < n && ok; k++) {
    dc_tensor *x = in[k];
    if (!x->requires_grad) continue;
    for (int64_t j = 0, m = dc_numel(x); j < m && ok; j++) {
      double analytic = x->grad ? dc_item_at(x->grad, j) : 0.0;
      double orig = dc_item_at(x, j), fp = 0, fm = 0;
      bool good = set_elem(x, j, orig + eps) && numeric_value(f, in, n, ud, &r, &fp);
      good = good && set_elem(x, j, orig - eps) && numeric_value(f, in, n, ud, &r, &fm);
      good = set_elem(x, j, orig) && good;
      if (!good) {
        ok = false;
        break;
      }
      double numeric = (fp - fm) / (2 * eps);
      bool match = fabs(analytic - numeric) <= atol + rtol * fabs(numeric) ||
                   (isnan(analytic) && isnan(numeric));
      if (o.verbose)
        fprintf(stderr, "gradcheck: input %d element %lld: analytic %.10g numeric %.10g%s\n", k,
                (long long)j, analytic, numeric, match ? "" : "  MISMATCH");
      if (!match) {
        char b[128];
        dc__err(DC_ERR_ARG,
                "gradcheck: input %d (shape %s) element %lld: analytic gradient "
                "%.10g vs numeric %.10g (atol %g, rtol %g)",
                k, dc_shape_str(dc_shape_of(x), b, sizeof b), (long long)j, analytic, numeric, atol,
                rtol);
        ok = false;
      }
    }
  }
restore:
  dc_free(r);
  for (int k = 0; k < n; k++) {
    dc_free(in[k]->grad);
    in[k]->grad = saved[k];
  }
  return ok;
}
