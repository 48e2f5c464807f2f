/* conv2d: argument checks and geometry (stride, padding incl. "same", dilation, groups, bias),
 * output allocation, dispatch to the backend's nn kernels and the backward rule (input, weight
 * and bias gradients in one fused call). Also dc_conv_out_size, the output-size rule shared with
 * pooling. Shapes: x [N, C, H, W], w [K, C/G, kH, kW], b [K], y [N, K, OH, OW]. */
#include "nn_ops.h"
#include "autocast-impl.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- algorithm choice (dc_set_conv_algo) ---- */
static const char *const ALGO_NAMES[] = {"auto", "direct", "winograd"}; /* by dc_conv_algo */
static int g_algo;                                                      /* a dc_conv_algo */
static pthread_once_t g_algo_once = PTHREAD_ONCE_INIT;

int dc_conv_algo_parse(const char *name) {
  for (int a = 0; name && a < (int)(sizeof ALGO_NAMES / sizeof *ALGO_NAMES); a++)
    if (strcmp(name, ALGO_NAMES[a]) == 0) return a;
  return -1;
}

const char *dc_conv_algo_name(dc_conv_algo a) {
  return a >= DC_CONV_ALGO_AUTO && a <= DC_CONV_ALGO_WINOGRAD ? ALGO_NAMES[a] : NULL;
}

/* an unknown $DEEPC_CONV_ALGO is ignored (auto): a library never fails on the environment */
static void algo_from_env(void) {
  int a = dc_conv_algo_parse(getenv("DEEPC_CONV_ALGO"));
  __atomic_store_n(&g_algo, a < 0 ? DC_CONV_ALGO_AUTO : a, __ATOMIC_RELAXED);
}

dc_conv_algo dc_get_conv_algo(void) {
  pthread_once(&g_algo_once, algo_from_env);
  return (dc_conv_algo)__atomic_load_n(&g_algo, __ATOMIC_RELAXED);
}

dc_conv_algo dc_set_conv_algo(dc_conv_algo a) {
  pthread_once(&g_algo_once, algo_from_env);
  if (!dc_conv_algo_name(a)) a = DC_CONV_ALGO_AUTO;
  return (dc_conv_algo)__atomic_exchange_n(&g_algo, (int)a, __ATOMIC_RELAXED);
}

/* floor(a / b) for b > 0 */
static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

int64_t dc_conv_out_size(int64_t in, int k, int stride, int pad, int dilation, bool ceil_mode) {
  if (in < 0 || k <= 0 || stride <= 0 || pad < 0 || dilation <= 0) return -1;
  int64_t num =
      in + 2 * (int64_t)pad - (int64_t)dilation * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = floor_div(num, stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) out--; /* the last window must start inside */
  return out >= 1 ? out : -1;
}

/* grads: gin[0] = conv_backward_data(gy, w), gin[1] = conv_backward_weights(gy, x),
 * gin[2] = sum of gy over N, OH, OW (all in one kernel call) */
static int conv2d_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  if (!dc__nn_no_double_backward("conv2d")) return DC_ERR_UNSUPPORTED;
  dc_conv2d_geom g = DC__ARGS(n, conv2d)->geom;
  dc_tensor *x = n->inputs[0], *w = n->inputs[1];
  bool has_b = n->ninputs == 3;
  dc_tensor *gy = dc_contiguous(gout);
  dc_tensor *gx = dc__needs_grad(n, 0) ? dc__new(dc_shape_of(x), x->dtype, x->device) : NULL;
  dc_tensor *gw = dc__needs_grad(n, 1) ? dc__new(dc_shape_of(w), w->dtype, w->device) : NULL;
  dc_tensor *gb =
      has_b && dc__needs_grad(n, 2) ? dc__new(DC_SHAPE(g.k), w->dtype, w->device) : NULL;
  if (!gy || (dc__needs_grad(n, 0) && !gx) || (dc__needs_grad(n, 1) && !gw) ||
      (has_b && dc__needs_grad(n, 2) && !gb))
    return dc__nn_status();
  const struct dc_nn_kernels *k = dc__nn_kernels("conv2d", x);
  int rc = k ? k->conv2d_backward(gx, gw, gb, gy, x, w, &g) : dc__nn_status();
  if (rc != DC_OK) return rc;
  gin[0] = gx;
  gin[1] = gw;
  if (has_b) gin[2] = gb;
  return DC_OK;
}
DC__OPDEF(CONV2D, conv2d_backward);

/* 0 means the default d; a 0 second entry repeats the first (".stride = {2}") */
static int64_t pick(const int *v, int i, int64_t d) {
  int64_t a = v[i] ? v[i] : (i == 1 && v[0] ? v[0] : d);
  return a;
}

static bool resolve_geom(dc_conv2d_geom *g, const dc_tensor *x, const dc_tensor *w,
                         dc_conv2d_opts o) {
  char xs[128], ws[128];
  dc_shape_str(dc_shape_of(x), xs, sizeof xs);
  dc_shape_str(dc_shape_of(w), ws, sizeof ws);
  for (int i = 0; i < 2; i++)
    if (o.stride[i] < 0 || o.padding[i] < 0 || o.dilation[i] < 0) {
      dc__err(DC_ERR_ARG,
              "conv2d: stride, padding and dilation must be >= 0, got stride (%d, %d), "
              "padding (%d, %d), dilation (%d, %d)",
              o.stride[0], o.stride[1], o.padding[0], o.padding[1], o.dilation[0], o.dilation[1]);
      return false;
    }
  if (o.groups < 0) {
    dc__err(DC_ERR_ARG, "conv2d: groups must be >= 1, got %d", o.groups);
    return false;
  }
  memset(g, 0, sizeof *g);
  g->n = x->shape[0];
  g->c = x->shape[1];
  g->h = x->shape[2];
  g->w = x->shape[3];
  g->k = w->shape[0];
  g->kh = w->shape[2];
  g->kw = w->shape[3];
  g->groups = o.groups ? o.groups : 1;
  for (int i = 0; i < 2; i++) {
    g->stride[i] = pick(o.stride, i, 1);
    g->dilation[i] = pick(o.dilation, i, 1);
  }
  if (g->k == 0 || g->kh == 0 || g->kw == 0) {
    dc__err(DC_ERR_ARG,
            "conv2d: weight %s has a zero-sized dim; expected [Cout, Cin/groups, kH, kW] "
            "with every size >= 1",
            ws);
    return false;
  }
  if (g->c % g->groups || g->k % g->groups) {
    dc__err(DC_ERR_ARG,
            "conv2d: groups=%lld must divide both the input channels (%lld, input %s) "
            "and the output channels (%lld, weight %s)",
            (long long)g->groups, (long long)g->c, xs, (long long)g->k, ws);
    return false;
  }
  if (w->shape[1] * g->groups != g->c) {
    dc__err(DC_ERR_ARG,
            "conv2d: weight %s expects input of shape [N, %lld, H, W] (%lld channels%s), "
            "but got input %s with %lld channels; check the layer's in_channels against the "
            "previous layer's out_channels",
            ws, (long long)(w->shape[1] * g->groups), (long long)(w->shape[1] * g->groups),
            g->groups > 1 ? " = Cin/groups * groups" : "", xs, (long long)g->c);
    return false;
  }
  int64_t eff[2] = {g->dilation[0] * (g->kh - 1) + 1, g->dilation[1] * (g->kw - 1) + 1};
  for (int i = 0; i < 2; i++) {
    if (o.same_padding) {
      if (g->stride[0] != 1 || g->stride[1] != 1) {
        dc__err(DC_ERR_ARG,
                "conv2d: padding=\"same\" needs stride 1, got stride (%lld, %lld); "
                "give explicit padding for strided convolutions",
                (long long)g->stride[0], (long long)g->stride[1]);
        return false;
      }
      int64_t total = eff[i] - 1;
      g->pad_l[i] = total / 2;
      g->pad_r[i] = total - total / 2;
    } else {
      g->pad_l[i] = g->pad_r[i] = o.padding[i];
    }
  }
  int64_t ph = g->h + g->pad_l[0] + g->pad_r[0], pw = g->w + g->pad_l[1] + g->pad_r[1];
  if (ph < eff[0] || pw < eff[1]) {
    dc__err(DC_ERR_ARG,
            "conv2d: kernel %lldx%lld (%lldx%lld with dilation) is larger than the padded "
            "input %lldx%lld (input %s, padding (%lld, %lld)); use a smaller kernel, more padding "
            "or a larger input",
            (long long)g->kh, (long long)g->kw, (long long)eff[0], (long long)eff[1], (long long)ph,
            (long long)pw, xs, (long long)g->pad_l[0], (long long)g->pad_l[1]);
    return false;
  }
  g->oh = (ph - eff[0]) / g->stride[0] + 1;
  g->ow = (pw - eff[1]) / g->stride[1] + 1;
  return true;
}

bool dc__conv_geom(dc_conv2d_geom *g, const dc_tensor *x, const dc_tensor *w, dc_conv2d_opts o) {
  if (!resolve_geom(g, x, w, o)) return false;
  g->algo = dc_get_conv_algo();
  return true;
}

static dc_tensor *conv2d_batched(dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_conv2d_opts o) {
  dc_conv2d_geom g;
  if (!dc__conv_geom(&g, x, w, o)) return NULL;
  if (b && !dc__nn_check_vector("conv2d", "bias", b, g.k)) return NULL;
  const struct dc_nn_kernels *k = dc__nn_kernels("conv2d", x);
  if (!k) return NULL;
  dc_tensor *xc = dc__nn_prepare(x, x->dtype), *wc = dc__nn_prepare(w, x->dtype);
  dc_tensor *bc = b ? dc__nn_prepare(b, x->dtype) : NULL;
  dc_tensor *y =
      xc && wc && (bc || !b) ? dc__new(DC_SHAPE(g.n, g.k, g.oh, g.ow), x->dtype, x->device) : NULL;
  dc_node *n = NULL;
  bool ok = y && k->conv2d_forward(y, xc, wc, bc, &g) == DC_OK &&
            dc__record(&dc__op_CONV2D, y, b ? 3 : 2, (dc_tensor *[]){xc, wc, bc}, &n);
  if (ok && n) DC__ARGS(n, conv2d)->geom = g;
  dc__unref(xc);
  dc__unref(wc);
  dc__unref(bc);
  if (!ok) {
    dc_free(y);
    return NULL;
  }
  return y;
}

dc_tensor *dc_conv2d_opt(dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_conv2d_opts o) {
  if (!dc__check_nonnull("conv2d", 2, x, w)) return NULL;
  /* autocast: float32 operands cast to bfloat16; bfloat16 ones go straight to a backend whose
   * convolution declares bfloat16 (bias then bfloat16 too), else run in float32, rounded once */
  dc_tensor *in[3] = {x, w, b}, *c[3];
  dc__amp_mode am =
      dc__amp_enter(DC__AUTOCAST_LOWER, DC_BF16_BIT(DC_BF16_CONV) | DC__AMP_SAME_DTYPE, 3, in, c);
  if (am != DC__AMP_NONE)
    return dc__amp_leave(am, true, dc_conv2d_opt(c[0], c[1], c[2], o), 3, in, c);
  if ((x->dtype != DC_BF16 && !dc__nn_check_float("conv2d", "input", x)) ||
      !dc__nn_check_same_dtype("conv2d", "input", x, "weight", w) ||
      (b && !dc__nn_check_same_dtype("conv2d", "input", x, "bias", b)))
    return NULL;
  char xs[128], ws[128];
  if (w->ndim != 4)
    return dc__err(DC_ERR_ARG, "conv2d: weight must be 4-D [Cout, Cin/groups, kH, kW], got %s",
                   dc_shape_str(dc_shape_of(w), ws, sizeof ws));
  if (x->ndim != 4 && x->ndim != 3)
    return dc__err(DC_ERR_ARG,
                   "conv2d: expected input [N, %lld, H, W] (4-D) or [%lld, H, W] "
                   "(unbatched), got %s (%d-D); reshape flat input with dc_view(x, DC_SHAPE(N, C, "
                   "H, W))",
                   (long long)(w->shape[1] * (o.groups > 0 ? o.groups : 1)),
                   (long long)(w->shape[1] * (o.groups > 0 ? o.groups : 1)),
                   dc_shape_str(dc_shape_of(x), xs, sizeof xs), x->ndim);
  if (x->ndim == 4) return conv2d_batched(x, w, b, o);
  dc_tensor *xb = dc_unsqueeze(x, 0);
  dc_tensor *yb = xb ? conv2d_batched(xb, w, b, o) : NULL;
  dc_tensor *y = yb ? dc_squeeze(yb, 0) : NULL;
  dc_free(xb);
  dc_free(yb);
  return y;
}
