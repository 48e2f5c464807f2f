/* Anomaly detection (torch.autograd.set_detect_anomaly): when on, every recorded op checks its
 * floating-point output and every backward node the gradients it returns; the first NaN or
 * infinity becomes an error naming the op, forward or backward, and the shapes. Off (the
 * default) it costs one predictable branch per op. The trainer adds the step (trainer.c). */
#include "../backend/backend.h"
#include "autograd-impl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

bool dc__anomaly_on;
static _Thread_local bool g_in_rule; /* a backward rule runs: its ops are not checked one by one */

bool dc_set_detect_anomaly(bool on) {
  bool prev = dc__anomaly_on;
  dc__anomaly_on = on;
  return prev;
}
bool dc_is_anomaly_enabled(void) { return dc__anomaly_on; }

/* The first NaN or infinity of a cpu tensor, -1 when none (or not floating point). */
static int64_t host_first_nonfinite(const dc_tensor *t) {
  int64_t n = dc_numel(t);
  bool flat = dc_is_contiguous(t);
  const char *base = (const char *)t->storage->data + (size_t)t->offset * dc_dtype_size(t->dtype);
  switch (t->dtype) {
  case DC_F32:
    if (flat) { /* all exponent bits set: NaN or infinity; an integer pass that vectorises */
      const uint32_t *p = (const uint32_t *)base;
      uint32_t any = 0;
      for (int64_t i = 0; i < n; i++) any |= (p[i] & 0x7f800000u) == 0x7f800000u;
      if (!any) return -1;
      for (int64_t i = 0; i < n; i++)
        if ((p[i] & 0x7f800000u) == 0x7f800000u) return i;
    }
    break;
  case DC_F64:
    if (flat) {
      const uint64_t *p = (const uint64_t *)base;
      const uint64_t e = 0x7ff0000000000000ull;
      uint64_t any = 0;
      for (int64_t i = 0; i < n; i++) any |= (p[i] & e) == e;
      if (!any) return -1;
      for (int64_t i = 0; i < n; i++)
        if ((p[i] & e) == e) return i;
    }
    break;
  case DC_F16:
  case DC_BF16:
    break;
  case DC_I64:
  case DC_I32:
  case DC_U8:
  case DC_BOOL:
  case DC_DTYPE_COUNT:
    return -1;
  }
  for (int64_t i = 0; i < n; i++) /* views and half types: element by element */
    if (!isfinite(dc_item_at(t, i))) return i;
  return -1;
}

/* On a device: sum(t * 0) is NaN exactly when an element is NaN or infinite; the product and
 * the sum run there through the backend's kernels (no ops: nothing is recorded or checked) and
 * one number comes back. Only when it is NaN, or for half types (the reductions take float32
 * and float64), is t read to the host to find the element. */
static int64_t device_first_nonfinite(const dc_tensor *t) {
  if (!dc_dtype_is_float(t->dtype) || dc_numel(t) == 0) return -1;
  const dc_backend *be = dc__backend(t->device);
  if (!be) return 0;
  bool found = true;
  if (t->dtype == DC_F32 || t->dtype == DC_F64) {
    dc_shape ones = {.ndim = t->ndim};
    for (int d = 0; d < t->ndim; d++) ones.d[d] = 1;
    dc_tensor *z = dc__new(dc_shape_of(t), t->dtype, t->device); /* t * 0, t's shape */
    dc_tensor *s = dc__new(ones, t->dtype, t->device);           /* [1, ..., 1] */
    const double zero[2] = {0.0, 0.0};
    uint32_t mask = t->ndim ? (uint32_t)((1ull << t->ndim) - 1) : 0;
    found = !z || !s || be->ew->unary(DC_UN_MUL_SCALAR, z, t, zero) != DC_OK ||
            be->red->reduce(DC_RED_SUM, s, z, mask) != DC_OK || !isfinite(dc_item(s));
    dc_free(s);
    dc_free(z);
  }
  if (!found) return -1;
  dc_tensor *h = dc__host_view(t);
  int64_t at = h ? host_first_nonfinite(h) : 0;
  dc_free(h);
  return at;
}

/* index of the first element that is NaN or infinite, -1 when all are finite (or t is not a
 * floating-point tensor) */
int64_t dc__first_nonfinite(const dc_tensor *t) {
  if (!t) return -1;
  return t->device == DC_CPU ? host_first_nonfinite(t) : device_first_nonfinite(t);
}

static const char *kind_of(double v) {
  return isnan(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity";
}

/* "[2, 3] float32, [3] float32" */
static void describe(char *buf, size_t n, int k, dc_tensor *const *ts) {
  size_t at = 0;
  buf[0] = 0;
  for (int i = 0; i < k && at < n; i++) {
    char s[96];
    if (!ts[i])
      snprintf(s, sizeof s, "none");
    else
      dc_shape_str(dc_shape_of(ts[i]), s, sizeof s);
    at += (size_t)snprintf(buf + at, n - at, "%s%s %s%s", i ? ", " : "", s,
                           ts[i] ? dc_dtype_name(ts[i]->dtype) : "",
                           ts[i] && dc__first_nonfinite(ts[i]) >= 0 ? " (already non-finite)" : "");
  }
}

bool dc__anomaly_forward(const char *op, dc_tensor *out, int n, dc_tensor *const *inputs) {
  if (g_in_rule) return true;
  int64_t bad = dc__first_nonfinite(out);
  if (bad < 0) return true;
  char ins[512], os[96];
  describe(ins, sizeof ins, n, inputs);
  dc_shape_str(dc_shape_of(out), os, sizeof os);
  dc__errs(DC_ERR_STATE,
           "anomaly: forward of '%s' produced %s at element %lld of its output %s %s (inputs: "
           "%s); dc_set_detect_anomaly / train.detect_anomaly is on",
           op, kind_of(dc_item_at(out, bad)), (long long)bad, os, dc_dtype_name(out->dtype), ins);
  return false;
}

int dc__anomaly_backward(dc_node *nd, dc_tensor *gout, dc_tensor **gin) {
  bool outer = g_in_rule;
  g_in_rule = true;
  int rc = nd->op->backward(nd, gout, gin);
  g_in_rule = outer;
  if (rc != DC_OK) return rc;
  for (int k = 0; k < nd->ninputs; k++) {
    int64_t bad = gin[k] ? dc__first_nonfinite(gin[k]) : -1;
    if (bad < 0) continue;
    char ins[512], gs[96], os[96];
    describe(ins, sizeof ins, nd->ninputs, nd->inputs);
    dc_shape_str(dc_shape_of(gin[k]), gs, sizeof gs);
    dc_shape_str(nd->out_shape, os, sizeof os);
    return dc__errs(DC_ERR_STATE,
                    "anomaly: backward of '%s' produced %s at element %lld of the gradient of its "
                    "input %d %s (op inputs: %s; output %s%s); dc_set_detect_anomaly / "
                    "train.detect_anomaly is on",
                    dc__op_name(nd->op), kind_of(dc_item_at(gin[k], bad)), (long long)bad, k, gs,
                    ins, os,
                    dc__first_nonfinite(gout) >= 0 ? ", whose incoming gradient was already "
                                                     "non-finite"
                                                   : "");
  }
  return DC_OK;
}
