/* Printing tensors the way PyTorch does: tensor([[...]], dtype=..., grad_fn=<...>), with
 * summarisation (edge items, "...") past 1000 elements. */
#include "core-impl.h"

#include <deepc/autograd.h>

#include <math.h>
#include <string.h>

typedef struct sbuf {
  char *p;
  size_t n, cap;
  bool oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) DC__PRINTF(2, 3);
static void put(sbuf *b, const char *fmt, ...) {
  if (b->oom) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (b->p && b->n + (size_t)k < b->cap) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = (b->cap ? b->cap * 2 : 256) + (size_t)k;
    char *q = dc__realloc(b->p, b->cap, cap);
    if (!q) {
      b->oom = true;
      return;
    }
    b->p = q;
    b->cap = cap;
  }
}

typedef struct fmt_info {
  bool is_float, ints_only, sci;
  int width, prec;
} fmt_info;

static int64_t off_of(const dc_tensor *t, const int64_t *idx) {
  int64_t o = t->offset;
  for (int d = 0; d < t->ndim; d++) o += idx[d] * t->stride[d];
  return o;
}

static double at(const dc_tensor *t, int64_t off) {
  return dc__load((const char *)t->storage->data + (size_t)off * dc_dtype_size(t->dtype), t->dtype);
}

static void fmt_value(char *out, size_t n, double v, const fmt_info *f, dc_dtype dt) {
  if (dt == DC_BOOL)
    snprintf(out, n, "%s", v != 0 ? "True" : "False");
  else if (!f->is_float)
    snprintf(out, n, "%.0f", v);
  else if (isnan(v))
    snprintf(out, n, "nan");
  else if (isinf(v))
    snprintf(out, n, v > 0 ? "inf" : "-inf");
  else if (f->sci)
    snprintf(out, n, "%.*e", f->prec, v);
  else if (f->ints_only)
    snprintf(out, n, "%.0f.", v);
  else
    snprintf(out, n, "%.*f", f->prec, v);
}

static void rec(sbuf *b, const dc_tensor *t, int64_t *idx, int d, const fmt_info *f, bool summ,
                int indent) {
  if (d == t->ndim) {
    char v[64];
    fmt_value(v, sizeof v, at(t, off_of(t, idx)), f, t->dtype);
    put(b, "%*s", f->width, v);
    return;
  }
  put(b, "[");
  int64_t n = t->shape[d];
  for (int64_t i = 0; i < n; i++) {
    if (summ && n > 6 && i == 3) {
      put(b, d == t->ndim - 1 ? "..., " : "...,\n%*s", indent + 1, "");
      i = n - 3;
    }
    idx[d] = i;
    rec(b, t, idx, d + 1, f, summ, indent + 1);
    if (i < n - 1) {
      if (d == t->ndim - 1)
        put(b, ", ");
      else {
        put(b, ",");
        for (int k = 0; k < t->ndim - d - 1; k++) put(b, "\n");
        put(b, "%*s", indent + 1, "");
      }
    }
  }
  put(b, "]");
}

typedef struct range {
  double lo, hi; /* signed extremes of the finite values */
} range;

static void scan(const dc_tensor *t, int64_t *idx, int d, bool summ, double *mx, double *mn,
                 bool *ints, int *nfin, range *rg) {
  if (d == t->ndim) {
    double v = at(t, off_of(t, idx));
    if (!isfinite(v)) return;
    if (*nfin == 0 || v < rg->lo) rg->lo = v;
    if (*nfin == 0 || v > rg->hi) rg->hi = v;
    double a = fabs(v);
    if (*nfin == 0 || a > *mx) *mx = a;
    if (a > 0 && (*mn == 0 || a < *mn)) *mn = a;
    if (v != floor(v)) *ints = false;
    (*nfin)++;
    return;
  }
  int64_t n = t->shape[d];
  for (int64_t i = 0; i < n; i++) {
    if (summ && n > 6 && i == 3) i = n - 3;
    idx[d] = i;
    scan(t, idx, d + 1, summ, mx, mn, ints, nfin, rg);
  }
}

/* t (on the cpu) formatted as PyTorch prints it; the device, requires_grad and grad_fn shown are
 * those of of (t itself, or the device tensor t is a host copy of). */
static char *format(const dc_tensor *t, const dc_tensor *of) {
  sbuf b = {0};
  bool summ = dc_numel(t) > 1000;
  int64_t idx[DC_MAX_DIMS] = {0};
  fmt_info f = {.is_float = dc_dtype_is_float(t->dtype), .prec = 4};
  double mx = 0, mn = 0;
  bool ints = true;
  int nfin = 0;
  range rg = {0, 0};
  if (dc_numel(t) > 0) scan(t, idx, 0, summ, &mx, &mn, &ints, &nfin, &rg);
  f.ints_only = ints;
  if (f.is_float && !ints && nfin > 0 &&
      (mx >= 1e8 || (mn > 0 && mn < 1e-4) || (mn > 0 && mx / mn > 1000)))
    f.sci = true;
  /* width: longest formatted element */
  f.width = 1;
  if (dc_numel(t) > 0) {
    char v[64];
    double probe[2] = {rg.lo, rg.hi};
    for (int k = 0; k < 2; k++) {
      fmt_value(v, sizeof v, probe[k], &f, t->dtype);
      if ((int)strlen(v) > f.width) f.width = (int)strlen(v);
    }
    if (t->dtype == DC_BOOL) f.width = 5;
  }
  put(&b, "tensor(");
  if (dc_numel(t) == 0)
    put(&b, "[]");
  else
    rec(&b, t, idx, 0, &f, summ, 7);
  bool show_dtype = !(t->dtype == DC_F32 || t->dtype == DC_I64 || t->dtype == DC_BOOL);
  if (dc_numel(t) == 0 && t->ndim != 1) {
    char sb[128];
    put(&b, ", size=(%s)", dc_shape_str(dc_shape_of(t), sb, sizeof sb));
  }
  if (of->device != DC_CPU) put(&b, ", device='%s'", dc_device_name(of->device));
  if (show_dtype) put(&b, ", dtype=torch.%s", dc_dtype_name(t->dtype));
  if (of->grad_fn)
    put(&b, ", grad_fn=<%s>", dc_grad_fn_name(of));
  else if (of->requires_grad)
    put(&b, ", requires_grad=True");
  put(&b, ")");
  if (b.oom) {
    dc__free(b.p);
    return NULL;
  }
  /* return a malloc'ed copy so callers free() it */
  char *r = malloc(b.n + 1);
  if (r) memcpy(r, b.p, b.n + 1);
  dc__free(b.p);
  return r;
}

char *dc_to_string(const dc_tensor *t) {
  if (!t) return strdup("tensor(NULL)");
  if (t->device == DC_CPU) return format(t, t);
  /* a device tensor: one explicit, synchronising read into a host view, formatted */
  dc_tensor *h = dc__host_view(t);
  char *r = h ? format(h, t) : NULL;
  dc_free(h);
  return r;
}

int dc_fprint(FILE *fp, const dc_tensor *t) {
  char *s = dc_to_string(t);
  if (!s) return dc__errs(DC_ERR_NOMEM, "print: out of memory");
  fprintf(fp, "%s\n", s);
  free(s);
  return DC_OK;
}

int dc_print(const dc_tensor *t) { return dc_fprint(stdout, t); }
