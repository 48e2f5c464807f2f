/* Matrix products: dc_matmul (torch.matmul: dot, matrix-vector, batched with broadcast batch
 * dims), dc_bmm and dc_linear (F.linear). One differentiable core product of [B?, M, K] and
 * [B?, K, N] calls the backend's gemm_batched; matmul maps every other case onto it with views.
 * Dimension letters: B batch (flattened), M rows, N columns, K the summed dim. */
#include "../autograd/autograd-impl.h"
#include "../backend/backend.h"
#include "autocast-impl.h"

#include <string.h>

/* bfloat16 operands go straight to a backend that declares its products bfloat16-native (all
 * operands then bfloat16), else the product runs in float32 and its result is rounded once */
#define GEMM_BF16 (DC_BF16_BIT(DC_BF16_GEMM) | DC__AMP_SAME_DTYPE)

/* ---- argument checks ---- */

static bool check_operands(const char *op, const dc_tensor *a, const dc_tensor *b) {
  char sa[128], sb[128];
  if (a->dtype != b->dtype || !dc_dtype_is_float(a->dtype)) {
    dc__err(DC_ERR_ARG,
            "%s: both operands must have the same float dtype, got %s %s and %s %s; "
            "convert one with dc_to_dtype",
            op, dc_dtype_name(a->dtype), dc_shape_str(dc_shape_of(a), sa, sizeof sa),
            dc_dtype_name(b->dtype), dc_shape_str(dc_shape_of(b), sb, sizeof sb));
    return false;
  }
  if (a->dtype != DC_F32 && a->dtype != DC_F64 && a->dtype != DC_BF16) {
    dc__err(DC_ERR_UNSUPPORTED,
            "%s: dtype %s is not supported; convert to float32 with "
            "dc_to_dtype",
            op, dc_dtype_name(a->dtype));
    return false;
  }
  if (a->device != b->device) {
    dc__err(DC_ERR_ARG, "%s: operands are on different devices; move one with dc_to_device", op);
    return false;
  }
  return true;
}

static void *inner_mismatch(const char *op, const dc_tensor *a, const dc_tensor *b, int64_t ka,
                            int64_t kb) {
  char sa[128], sb[128];
  return dc__err(DC_ERR_ARG,
                 "%s: shapes %s and %s cannot be multiplied (%lld != %lld): the last "
                 "dim of the first operand must equal the %s of the second; transpose one of them "
                 "or fix the layer sizes",
                 op, dc_shape_str(dc_shape_of(a), sa, sizeof sa),
                 dc_shape_str(dc_shape_of(b), sb, sizeof sb), (long long)ka, (long long)kb,
                 b->ndim == 1 ? "size of the vector" : "second-to-last dim");
}

/* ---- the core product ---- */

static dc_tensor *mm_core(dc_tensor *a, dc_tensor *b);

/* a [B?, M, K] . b [B?, K, N]: gin[0] = gout . b^T, gin[1] = a^T . gout, each summed over the
 * batches its input was broadcast across */
static int mm_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *a = n->inputs[0], *b = n->inputs[1];
  if (dc__needs_grad(n, 0)) {
    dc_tensor *g = mm_core(gout, dc_transpose(b, -1, -2));
    gin[0] = g ? dc__sum_to(g, dc_shape_of(a)) : NULL;
    if (!gin[0]) return dc_last_status();
  }
  if (dc__needs_grad(n, 1)) {
    int64_t nb = gout->ndim == 3 ? gout->shape[0] : 1;
    bool shared = b->ndim == 2 || b->shape[0] == 1;
    if (shared && nb > 1) { /* b served every batch: one [K, B*M] . [B*M, N] product */
      int64_t m = a->shape[1], k = a->shape[2], nn = gout->shape[2];
      dc_tensor *a2 = dc_reshape(a, DC_SHAPE(nb * m, k));
      dc_tensor *g2 = dc_reshape(gout, DC_SHAPE(nb * m, nn));
      dc_tensor *g = mm_core(dc_transpose(a2, 0, 1), g2);
      gin[1] = g ? dc_reshape(g, dc_shape_of(b)) : NULL;
    } else {
      dc_tensor *g = mm_core(dc_transpose(a, -1, -2), gout);
      gin[1] = g ? dc__sum_to(g, dc_shape_of(b)) : NULL;
    }
    if (!gin[1]) return dc_last_status();
  }
  return DC_OK;
}

DC__OPDEF(MM, mm_backward);
DC__OPDEF(BMM, mm_backward);

/* out [B, M, N] (or [M, N] when both are 2-D) = a [B|1, M, K] or [M, K] . b [B|1, K, N] or
 * [K, N]; the caller has checked dtypes and inner dims. NULL in gives NULL out. */
static dc_tensor *mm_core(dc_tensor *a, dc_tensor *b) {
  if (!a || !b) return NULL;
  int64_t ba = a->ndim == 3 ? a->shape[0] : 1, bb = b->ndim == 3 ? b->shape[0] : 1;
  int64_t m = a->shape[a->ndim - 2], n = b->shape[b->ndim - 1];
  bool batched = a->ndim == 3 || b->ndim == 3;
  dc_shape s = batched ? DC_SHAPE(ba == 1 ? bb : ba, m, n) : DC_SHAPE(m, n);
  const dc_backend *be = dc__backend(a->device);
  dc_tensor *out = be ? dc__new(s, a->dtype, a->device) : NULL;
  if (!out) return NULL;
  if (be->linalg->gemm_batched(out, a, b, false, false, 1.0f, 0.0f) != DC_OK) {
    dc_free(out);
    return NULL;
  }
  dc_node *node;
  if (!dc__record(batched ? &dc__op_BMM : &dc__op_MM, out, 2, (dc_tensor *[]){a, b}, &node)) {
    dc_free(out);
    return NULL;
  }
  return out;
}

/* ---- matmul ---- */

/* True when x's dims before the last merge into one without a copy; *row_stride is then the
 * stride of the merged dim. */
static bool rows_fold(const dc_tensor *x, int64_t *row_stride) {
  int64_t want = -1;
  *row_stride = x->shape[x->ndim - 1] * x->stride[x->ndim - 1];
  for (int d = x->ndim - 2; d >= 0; d--) {
    if (x->shape[d] == 1) continue;
    if (want < 0)
      *row_stride = x->stride[d];
    else if (x->stride[d] != want)
      return false;
    want = x->stride[d] * x->shape[d];
  }
  return true;
}

/* a [..., M, K] (3+ dims) . b [K] or [K, N]: folded to one 2-D product when a's rows merge,
 * else a batched product against a shared b (a 3-D) or a copy (reshape) of a. */
static dc_tensor *matmul_fold(dc_tensor *a, dc_tensor *b) {
  int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], rows = 1, rs;
  for (int d = 0; d < a->ndim - 1; d++) rows *= a->shape[d];
  dc_shape os = dc_shape_of(a);
  os.ndim--;
  if (b->ndim == 2)
    os.d[os.ndim++] = b->shape[1];
  else
    os.d[os.ndim - 1] = m;
  dc_tensor *b2 = b->ndim == 1 ? dc_unsqueeze(b, 1) : b;
  dc_tensor *a2, *r;
  if (a->ndim == 3 && !rows_fold(a, &rs)) {
    a2 = NULL;
    r = mm_core(a, b2);
  } else {
    a2 = dc_reshape(a, DC_SHAPE(rows, k));
    r = mm_core(a2, b2);
  }
  dc_tensor *out = r ? dc_reshape(r, os) : NULL;
  dc_free(r);
  dc_free(a2);
  if (b2 != b) dc_free(b2);
  return out;
}

/* x [batch..., R, C] as [prod(batch), R, C] after broadcasting its batch dims to bc (2-D when
 * x has a single batch, which the core product broadcasts); a new tensor or NULL. */
static dc_tensor *as_batched(dc_tensor *x, dc_shape bc, int64_t nb) {
  int64_t r = x->shape[x->ndim - 2], c = x->shape[x->ndim - 1], xb = 1;
  for (int d = 0; d < x->ndim - 2; d++) xb *= x->shape[d];
  if (xb == 1 && nb != 1) return dc_reshape(x, DC_SHAPE(r, c));
  bool full = x->ndim - 2 == bc.ndim;
  for (int d = 0; full && d < bc.ndim; d++) full = x->shape[d] == bc.d[d];
  if (full) return dc_reshape(x, DC_SHAPE(nb, r, c));
  dc_shape es = bc;
  es.d[es.ndim++] = r;
  es.d[es.ndim++] = c;
  dc_tensor *e = dc_expand(x, es);
  dc_tensor *out = e ? dc_reshape(e, DC_SHAPE(nb, r, c)) : NULL;
  dc_free(e);
  return out;
}

/* a [..., M, K] . b [..., K, N] with broadcast batch dims, at least one of them 3+ dims */
static dc_tensor *matmul_batched(dc_tensor *a, dc_tensor *b) {
  dc_shape ba = {.ndim = a->ndim - 2}, bb = {.ndim = b->ndim - 2}, bc;
  memcpy(ba.d, a->shape, sizeof(int64_t) * (size_t)ba.ndim);
  memcpy(bb.d, b->shape, sizeof(int64_t) * (size_t)bb.ndim);
  if (!dc__broadcast_shapes("matmul (batch dims)", ba, bb, &bc)) return NULL;
  if (bc.ndim + 2 > DC_MAX_DIMS) return dc__err(DC_ERR_ARG, "matmul: too many dims");
  int64_t nb = dc__shape_numel(&bc);
  dc_tensor *a3 = as_batched(a, bc, nb), *b3 = as_batched(b, bc, nb);
  dc_tensor *r = a3 && b3 ? mm_core(a3, b3) : NULL;
  dc_shape os = bc;
  os.d[os.ndim++] = a->shape[a->ndim - 2];
  os.d[os.ndim++] = b->shape[b->ndim - 1];
  dc_tensor *out = r ? dc_reshape(r, os) : NULL;
  dc_free(r);
  dc_free(a3);
  dc_free(b3);
  return out;
}

dc_tensor *dc_matmul(dc_tensor *a, dc_tensor *b) {
  if (!dc__check_nonnull("matmul", 2, a, b)) return NULL;
  if (a->ndim == 0 || b->ndim == 0) {
    char sa[128], sb[128];
    return dc__err(DC_ERR_ARG,
                   "matmul: both operands need at least 1 dim, got shapes %s and %s; "
                   "use dc_mul to multiply by a scalar",
                   dc_shape_str(dc_shape_of(a), sa, sizeof sa),
                   dc_shape_str(dc_shape_of(b), sb, sizeof sb));
  }
  dc_tensor *in[2] = {a, b}, *c[2];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_LOWER, GEMM_BF16, 2, in, c);
  if (am != DC__AMP_NONE) return dc__amp_leave(am, true, dc_matmul(c[0], c[1]), 2, in, c);
  if (!check_operands("matmul", a, b)) return NULL;
  int64_t ka = a->shape[a->ndim - 1], kb = b->shape[b->ndim == 1 ? 0 : b->ndim - 2];
  if (ka != kb) return inner_mismatch("matmul", a, b, ka, kb);
  dc_tensor *a2 = NULL, *b2 = NULL, *r = NULL, *out = NULL;
  if (a->ndim <= 2 && b->ndim <= 2) {
    a2 = a->ndim == 1 ? dc_unsqueeze(a, 0) : a; /* [1, K] */
    b2 = b->ndim == 1 ? dc_unsqueeze(b, 1) : b; /* [K, 1] */
    r = mm_core(a2, b2);
    if (a->ndim == 2 && b->ndim == 2) return r;
    dc_shape os = {0};
    if (a->ndim == 2) os = DC_SHAPE(a->shape[0]);
    if (b->ndim == 2) os = DC_SHAPE(b->shape[1]);
    out = r ? dc_reshape(r, os) : NULL;
  } else if (b->ndim <= 2) {
    return matmul_fold(a, b);
  } else if (a->ndim == 1) { /* [K] . [..., K, N] = ([1, K] . [..., K, N]) without the 1 */
    a2 = dc_unsqueeze(a, 0);
    r = a2 ? matmul_batched(a2, b) : NULL;
    out = r ? dc_squeeze(r, -2) : NULL;
  } else {
    return matmul_batched(a, b);
  }
  if (a2 != a) dc_free(a2);
  if (b2 != b) dc_free(b2);
  dc_free(r);
  return out;
}

dc_tensor *dc_bmm(dc_tensor *a, dc_tensor *b) {
  if (!dc__check_nonnull("bmm", 2, a, b)) return NULL;
  dc_tensor *in[2] = {a, b}, *c[2];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_LOWER, GEMM_BF16, 2, in, c);
  if (am != DC__AMP_NONE) return dc__amp_leave(am, true, dc_bmm(c[0], c[1]), 2, in, c);
  char sa[128], sb[128];
  if (a->ndim != 3 || b->ndim != 3)
    return dc__err(DC_ERR_ARG,
                   "bmm: both operands must be 3-D [B, M, K] and [B, K, N], got %s "
                   "and %s; use dc_matmul for other ranks",
                   dc_shape_str(dc_shape_of(a), sa, sizeof sa),
                   dc_shape_str(dc_shape_of(b), sb, sizeof sb));
  if (!check_operands("bmm", a, b)) return NULL;
  if (a->shape[0] != b->shape[0])
    return dc__err(DC_ERR_ARG,
                   "bmm: batch sizes differ (%s and %s); bmm does not broadcast, use "
                   "dc_matmul",
                   dc_shape_str(dc_shape_of(a), sa, sizeof sa),
                   dc_shape_str(dc_shape_of(b), sb, sizeof sb));
  if (a->shape[2] != b->shape[1]) return inner_mismatch("bmm", a, b, a->shape[2], b->shape[1]);
  return mm_core(a, b);
}

/* ---- linear ---- */

/* out [..., N] = x [..., K] . w [N, K]^T + bias [N]: gin[0] = gout . w, gin[1] = gout^T . x,
 * gin[2] = gout summed over all but the last dim (x taken as [M, K], M = rows of x) */
static int linear_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  dc_tensor *x = n->inputs[0], *w = n->inputs[1];
  int64_t k = w->shape[1], nout = w->shape[0], m = 1;
  for (int d = 0; d < x->ndim - 1; d++) m *= x->shape[d];
  dc_tensor *g2 = dc_reshape(gout, DC_SHAPE(m, nout));
  if (!g2) return dc_last_status();
  if (dc__needs_grad(n, 0)) {
    dc_tensor *gx = mm_core(g2, w);
    gin[0] = gx ? dc_reshape(gx, dc_shape_of(x)) : NULL;
    if (!gin[0]) return dc_last_status();
  }
  if (dc__needs_grad(n, 1)) {
    dc_tensor *x2 = dc_reshape(x, DC_SHAPE(m, k));
    gin[1] = x2 ? mm_core(dc_transpose(g2, 0, 1), x2) : NULL;
    if (!gin[1]) return dc_last_status();
  }
  if (n->ninputs > 2 && dc__needs_grad(n, 2)) {
    gin[2] = dc_sum(g2, DC_DIMS(0), false);
    if (!gin[2]) return dc_last_status();
  }
  return DC_OK;
}
DC__OPDEF(LINEAR, linear_backward);

static bool check_linear(dc_tensor *x, dc_tensor *w, dc_tensor *bias) {
  char sx[128], sw[128], sb[128];
  if (w->ndim != 2) {
    dc__err(DC_ERR_ARG, "linear: weight must be 2-D [out_features, in_features], got %s",
            dc_shape_str(dc_shape_of(w), sw, sizeof sw));
    return false;
  }
  if (x->ndim == 0) {
    dc__err(DC_ERR_ARG,
            "linear: input must have at least 1 dim [..., in_features], got a 0-d tensor");
    return false;
  }
  if (!check_operands("linear", x, w)) return false;
  if (x->shape[x->ndim - 1] != w->shape[1]) {
    dc__err(DC_ERR_ARG,
            "linear: input %s has %lld features in its last dim but weight %s expects "
            "%lld (weight is [out_features, in_features]); reshape/flatten the input or fix "
            "in_features",
            dc_shape_str(dc_shape_of(x), sx, sizeof sx), (long long)x->shape[x->ndim - 1],
            dc_shape_str(dc_shape_of(w), sw, sizeof sw), (long long)w->shape[1]);
    return false;
  }
  if (bias && (bias->ndim != 1 || bias->shape[0] != w->shape[0])) {
    dc__err(DC_ERR_ARG, "linear: bias must be 1-D [%lld] to match weight %s, got %s",
            (long long)w->shape[0], dc_shape_str(dc_shape_of(w), sw, sizeof sw),
            dc_shape_str(dc_shape_of(bias), sb, sizeof sb));
    return false;
  }
  return !bias || check_operands("linear (bias)", x, bias);
}

dc_tensor *dc_linear(dc_tensor *x, dc_tensor *w, dc_tensor *bias) {
  if (!dc__check_nonnull("linear", 2, x, w)) return NULL;
  dc_tensor *in[3] = {x, w, bias}, *c[3];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_LOWER, GEMM_BF16, 3, in, c);
  if (am != DC__AMP_NONE) return dc__amp_leave(am, true, dc_linear(c[0], c[1], c[2]), 3, in, c);
  if (!check_linear(x, w, bias)) return NULL;
  const dc_backend *be = dc__backend(x->device);
  if (!be) return NULL;
  int64_t k = w->shape[1], nout = w->shape[0], m = 1;
  for (int d = 0; d < x->ndim - 1; d++) m *= x->shape[d];
  dc_shape os = dc_shape_of(x);
  os.d[os.ndim - 1] = nout;
  dc_tensor *out = dc__new(os, x->dtype, x->device);
  if (!out) return NULL;
  /* x as [M, K] and out as [M, N] without autograd: a view when x's rows merge, else a copy */
  int64_t x2s[2] = {m, k}, o2s[2] = {m, nout}, ost[2] = {nout, 1},
          xst[2] = {0, x->stride[x->ndim - 1]};
  dc_tensor *x2 = NULL;
  if (rows_fold(x, &xst[0])) {
    x2 = dc__alias(x, 2, x2s, xst, x->offset);
  } else {
    dc_tensor *xc = dc__new(dc_shape_of(x), x->dtype, x->device);
    xst[0] = k;
    xst[1] = 1;
    if (xc && be->ew->copy(xc, x) == DC_OK) x2 = dc__alias(xc, 2, x2s, xst, 0);
    dc_free(xc);
  }
  dc_tensor *o2 = dc__alias(out, 2, o2s, ost, out->offset);
  int rc = x2 && o2 ? DC_OK : dc_last_status();
  if (rc == DC_OK && be->linalg->linear) { /* fused bias */
    rc = be->linalg->linear(o2, x2, w, bias);
  } else if (rc == DC_OK) {
    if (bias) rc = be->ew->copy(o2, bias);
    if (rc == DC_OK)
      rc = be->linalg->gemm_batched(o2, x2, w, false, true, 1.0f, bias ? 1.0f : 0.0f);
  }
  dc_free(x2);
  dc_free(o2);
  dc_node *node;
  if (rc != DC_OK ||
      !dc__record(&dc__op_LINEAR, out, bias ? 3 : 2, (dc_tensor *[]){x, w, bias}, &node)) {
    dc_free(out);
    return NULL;
  }
  return out;
}
