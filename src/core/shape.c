/* Shape helpers: printing, dims, broadcasting, and the strided loop used by every kernel. */
#include "core-impl.h"

#include <stdio.h>
#include <string.h>

char *dc_shape_str(dc_shape s, char *buf, size_t n) {
  if (!buf || n == 0) return buf;
  size_t k = 0;
  k += (size_t)snprintf(buf + k, n - k, "[");
  for (int d = 0; d < s.ndim && k < n; d++)
    k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)s.d[d]);
  if (k < n) snprintf(buf + k, n - k, "]");
  return buf;
}

dc_shape dc_shape_of(const dc_tensor *t) {
  dc_shape s = {0};
  if (!t) return s;
  s.ndim = t->ndim;
  memcpy(s.d, t->shape, sizeof(int64_t) * (size_t)t->ndim);
  return s;
}

bool dc_shape_equal(dc_shape a, dc_shape b) {
  if (a.ndim != b.ndim) return false;
  for (int d = 0; d < a.ndim; d++)
    if (a.d[d] != b.d[d]) return false;
  return true;
}

int64_t dc_numel(const dc_tensor *t) {
  if (!t) return 0;
  int64_t n = 1;
  for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
  return n;
}

bool dc_is_contiguous(const dc_tensor *t) {
  if (dc_numel(t) == 0) return true; /* like torch: nothing to lay out */
  int64_t s = 1;
  for (int d = t->ndim - 1; d >= 0; d--) {
    if (t->shape[d] != 1 && t->stride[d] != s) return false;
    s *= t->shape[d];
  }
  return true;
}

bool dc__wrap_dim(const char *op, int *dim, int ndim) {
  int n = ndim > 0 ? ndim : 1;
  if (*dim < -n || *dim >= n) {
    dc__err(DC_ERR_ARG, "%s: dim %d is out of range for a tensor of %d dims (expected %d..%d)", op,
            *dim, ndim, -n, n - 1);
    return false;
  }
  if (*dim < 0) *dim += n;
  return true;
}

bool dc__check_nonnull(const char *op, int n, ...) {
  va_list ap;
  va_start(ap, n);
  bool ok = true;
  for (int k = 0; k < n; k++) {
    const dc_tensor *t = va_arg(ap, const dc_tensor *);
    if (!t) {
      ok = false;
      /* keep the message of the call that produced the NULL, if any */
      if (dc_last_status() == DC_OK) dc__err(DC_ERR_ARG, "%s: argument %d is NULL", op, k + 1);
      break;
    }
  }
  va_end(ap);
  return ok;
}

bool dc__broadcast_shapes(const char *op, dc_shape a, dc_shape b, dc_shape *out) {
  int nd = a.ndim > b.ndim ? a.ndim : b.ndim;
  dc_shape r = {.ndim = nd};
  for (int k = 0; k < nd; k++) {
    int ia = a.ndim - 1 - k, ib = b.ndim - 1 - k;
    int64_t da = ia >= 0 ? a.d[ia] : 1, db = ib >= 0 ? b.d[ib] : 1;
    if (da != db && da != 1 && db != 1) {
      char sa[128], sb[128];
      dc__err(DC_ERR_ARG,
              "%s: shapes %s and %s cannot be broadcast: size %lld vs %lld in dim %d from the end; "
              "sizes must match or be 1",
              op, dc_shape_str(a, sa, sizeof sa), dc_shape_str(b, sb, sizeof sb), (long long)da,
              (long long)db, k + 1);
      return false;
    }
    r.d[nd - 1 - k] = da == 1 ? db : da;
  }
  *out = r;
  return true;
}

void dc__broadcast_strides(const dc_tensor *t, dc_shape s, int64_t *stride) {
  int off = s.ndim - t->ndim;
  for (int d = 0; d < s.ndim; d++) {
    int td = d - off;
    stride[d] = (td < 0 || t->shape[td] == 1) ? 0 : t->stride[td];
  }
}

void dc__loop_setup(dc__loop *L, dc_shape s, int nops, const dc_tensor *const *ops) {
  DC__CHECK(nops >= 1 && nops <= DC__LOOP_MAX_OPS, );
  int64_t st[DC__LOOP_MAX_OPS][DC_MAX_DIMS];
  for (int k = 0; k < nops; k++) {
    dc__broadcast_strides(ops[k], s, st[k]);
    L->base[k] = ops[k]->offset;
  }
  /* Drop size-1 dims, then merge dim d into d+1 where every operand is contiguous across. */
  int nd = 0;
  int64_t shp[DC_MAX_DIMS];
  for (int d = 0; d < s.ndim; d++) {
    if (s.d[d] == 1) continue;
    shp[nd] = s.d[d];
    for (int k = 0; k < nops; k++) st[k][nd] = st[k][d];
    nd++;
  }
  int m = 0;
  for (int d = 0; d < nd; d++) {
    if (m > 0) {
      bool merge = true;
      for (int k = 0; k < nops; k++)
        if (L->stride[k][m - 1] != st[k][d] * shp[d]) merge = false;
      if (merge) {
        L->shape[m - 1] *= shp[d];
        for (int k = 0; k < nops; k++) L->stride[k][m - 1] = st[k][d];
        continue;
      }
    }
    L->shape[m] = shp[d];
    for (int k = 0; k < nops; k++) L->stride[k][m] = st[k][d];
    m++;
  }
  if (m == 0) { /* scalar or all ones */
    L->shape[0] = 1;
    for (int k = 0; k < nops; k++) L->stride[k][0] = 0;
    m = 1;
  }
  int64_t total = 1;
  for (int d = 0; d < s.ndim; d++) total *= s.d[d];
  if (total == 0) L->shape[m - 1] = 0;
  L->nops = nops;
  L->ndim = m;
  L->inner = L->shape[m - 1];
  for (int k = 0; k < nops; k++) L->istride[k] = L->stride[k][m - 1];
  L->rows = 1;
  for (int d = 0; d < m - 1; d++) L->rows *= L->shape[d];
  if (total == 0) L->rows = 0;
}

void dc__loop_row(const dc__loop *L, int64_t r, int64_t *off) {
  for (int k = 0; k < L->nops; k++) off[k] = L->base[k];
  for (int d = L->ndim - 2; d >= 0 && r > 0; d--) {
    int64_t i = r % L->shape[d];
    r /= L->shape[d];
    for (int k = 0; k < L->nops; k++) off[k] += i * L->stride[k][d];
  }
}
