/* 2-D pooling ops: max and avg pooling (kernel, stride, padding, dilation, ceil_mode,
 * count_include_pad, divisor_override) and adaptive avg/max pooling, with their backward rules.
 * Max pooling saves the int32 argmax of each window; its backward scatters to it.
 * Shapes: x [N, C, H, W] or [C, H, W] (P = N*C planes), y [N, C, OH, OW] or [C, OH, OW]. */
#include "nn_ops.h"
#include "autocast-impl.h"

#include <assert.h>
#include <string.h>

enum { POOL_MAX, POOL_AVG, POOL_ADAPTIVE_AVG, POOL_ADAPTIVE_MAX };
static const char *const POOL_NAMES[] = {"max_pool2d", "avg_pool2d", "adaptive_avg_pool2d",
                                         "adaptive_max_pool2d"};

/* grads: max (plain and adaptive): gx = gy scattered to the saved argmax; avg: gy spread evenly
 * over each window (divided by its divisor) */
static int pool_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  const dc__pool_args *a = DC__ARGS(n, pool);
  int kind = a->kind;
  if (!dc__nn_no_double_backward(POOL_NAMES[kind])) return DC_ERR_UNSUPPORTED;
  dc_pool2d_geom g = a->geom;
  dc_tensor *x = n->inputs[0];
  dc_tensor *gy = dc_contiguous(gout), *gx = dc__new(dc_shape_of(x), x->dtype, x->device);
  const struct dc_nn_kernels *k = gy && gx ? dc__nn_kernels(POOL_NAMES[kind], x) : NULL;
  if (!k) return dc__nn_status();
  int rc = DC_ERR_ARG;
  switch (kind) {
  case POOL_MAX:
  case POOL_ADAPTIVE_MAX:
    rc = k->max_pool2d_backward(gx, gy, n->saved[0], &g);
    break;
  case POOL_AVG:
    rc = k->avg_pool2d_backward(gx, gy, &g);
    break;
  case POOL_ADAPTIVE_AVG:
    rc = k->adaptive_avg_pool2d_backward(gx, gy, &g);
    break;
  }
  if (rc != DC_OK) return rc;
  gin[0] = gx;
  return DC_OK;
}
DC__OPDEF(MAX_POOL2D, pool_backward);
DC__OPDEF(AVG_POOL2D, pool_backward);
DC__OPDEF(ADAPTIVE_AVG_POOL2D, pool_backward);
DC__OPDEF(ADAPTIVE_MAX_POOL2D, pool_backward);
static const dc_opdef *const POOL_OPS[] = {&dc__op_MAX_POOL2D, &dc__op_AVG_POOL2D,
                                           &dc__op_ADAPTIVE_AVG_POOL2D,
                                           &dc__op_ADAPTIVE_MAX_POOL2D};

/* Checks rank, dtype and non-empty C, H, W; fills planes, h, w. */
static bool check_input(const char *op, const dc_tensor *x, dc_pool2d_geom *g) {
  if (!dc__check_nonnull(op, 1, x) || !dc__nn_check_float(op, "input", x)) return false;
  char xs[128];
  dc_shape_str(dc_shape_of(x), xs, sizeof xs);
  if (x->ndim != 3 && x->ndim != 4) {
    dc__err(DC_ERR_ARG,
            "%s: expected input [N, C, H, W] (4-D) or [C, H, W] (3-D), got %s (%d-D); "
            "reshape flat input with dc_view(x, DC_SHAPE(N, C, H, W))",
            op, xs, x->ndim);
    return false;
  }
  int d = x->ndim - 3;
  if (x->shape[d] == 0 || x->shape[d + 1] == 0 || x->shape[d + 2] == 0) {
    dc__err(DC_ERR_ARG, "%s: input %s has an empty channel or spatial dim; C, H and W must be >= 1",
            op, xs);
    return false;
  }
  memset(g, 0, sizeof *g);
  g->planes = (d ? x->shape[0] : 1) * x->shape[d];
  g->h = x->shape[d + 1];
  g->w = x->shape[d + 2];
  return true;
}

static int pick(const int *v, int i, int dflt) {
  return v[i] ? v[i] : (i == 1 && v[0] ? v[0] : dflt);
}

static bool resolve_window(const char *op, const dc_tensor *x, dc_pool2d_opts o, dc_pool2d_geom *g,
                           bool is_max) {
  int k[2] = {pick(o.kernel, 0, 0), pick(o.kernel, 1, 0)};
  for (int i = 0; i < 2; i++)
    if (o.kernel[i] < 0 || o.stride[i] < 0 || o.padding[i] < 0 || o.dilation[i] < 0) {
      dc__err(DC_ERR_ARG,
              "%s: kernel, stride, padding and dilation must not be negative, got "
              "kernel (%d, %d), stride (%d, %d), padding (%d, %d), dilation (%d, %d)",
              op, o.kernel[0], o.kernel[1], o.stride[0], o.stride[1], o.padding[0], o.padding[1],
              o.dilation[0], o.dilation[1]);
      return false;
    }
  if (k[0] <= 0 || k[1] <= 0) {
    dc__err(DC_ERR_ARG, "%s: kernel size must be > 0, got (%d, %d); set .kernel = {kH, kW}", op,
            k[0], k[1]);
    return false;
  }
  if (!is_max && (o.dilation[0] > 1 || o.dilation[1] > 1)) {
    dc__err(DC_ERR_ARG, "%s: dilation is only supported by max pooling", op);
    return false;
  }
  if (o.divisor_override < 0 || (is_max && o.divisor_override)) {
    dc__err(DC_ERR_ARG, "%s: divisor_override must be >= 1 and is for avg pooling only, got %d", op,
            o.divisor_override);
    return false;
  }
  for (int i = 0; i < 2; i++) {
    g->kernel[i] = k[i];
    g->stride[i] = pick(o.stride, i, k[i]);
    g->pad[i] = o.padding[i];
    g->dilation[i] = pick(o.dilation, i, 1);
    if (2 * g->pad[i] > g->kernel[i]) {
      dc__err(DC_ERR_ARG, "%s: padding (%d, %d) must be at most half the kernel size (%d, %d)", op,
              o.padding[0], o.padding[1], k[0], k[1]);
      return false;
    }
  }
  g->count_include_pad = !o.exclude_pad;
  g->divisor = o.divisor_override;
  g->oh = dc_conv_out_size(g->h, k[0], (int)g->stride[0], (int)g->pad[0], (int)g->dilation[0],
                           o.ceil_mode);
  g->ow = dc_conv_out_size(g->w, k[1], (int)g->stride[1], (int)g->pad[1], (int)g->dilation[1],
                           o.ceil_mode);
  if (g->oh < 1 || g->ow < 1) {
    char xs[128];
    dc__err(
        DC_ERR_ARG,
        "%s: kernel (%d, %d) with dilation (%lld, %lld) is larger than the padded "
        "input %lldx%lld (input %s, padding (%d, %d)); the output would be empty. Use a smaller "
        "kernel or a larger input",
        op, k[0], k[1], (long long)g->dilation[0], (long long)g->dilation[1],
        (long long)(g->h + 2 * g->pad[0]), (long long)(g->w + 2 * g->pad[1]),
        dc_shape_str(dc_shape_of(x), xs, sizeof xs), o.padding[0], o.padding[1]);
    return false;
  }
  return true;
}

/* Allocates y (and idx for max kinds), runs the forward kernel, records the node. */
static dc_tensor *pool_run(int kind, dc_tensor *x, const dc_pool2d_geom *g) {
  const char *op = POOL_NAMES[kind];
  const struct dc_nn_kernels *k = dc__nn_kernels(op, x);
  if (!k) return NULL;
  dc_shape ys = dc_shape_of(x);
  ys.d[ys.ndim - 2] = g->oh;
  ys.d[ys.ndim - 1] = g->ow;
  bool is_max = kind == POOL_MAX || kind == POOL_ADAPTIVE_MAX;
  if (is_max && g->h * g->w > INT32_MAX)
    return dc__err(DC_ERR_ARG, "%s: planes of more than 2^31 elements are not supported", op);
  dc_tensor *xc = dc__nn_prepare(x, x->dtype), *y = xc ? dc__new(ys, x->dtype, x->device) : NULL;
  dc_tensor *idx =
      y && is_max ? dc__new(DC_SHAPE(g->planes, g->oh, g->ow), DC_I32, x->device) : NULL;
  int rc = DC_ERR_NOMEM;
  if (y && (idx || !is_max)) {
    switch (kind) {
    case POOL_MAX:
      rc = k->max_pool2d_forward(y, idx, xc, g);
      break;
    case POOL_AVG:
      rc = k->avg_pool2d_forward(y, xc, g);
      break;
    case POOL_ADAPTIVE_AVG:
      rc = k->adaptive_avg_pool2d_forward(y, xc, g);
      break;
    case POOL_ADAPTIVE_MAX:
      rc = k->adaptive_max_pool2d_forward(y, idx, xc, g);
      break;
    }
  }
  dc_node *n = NULL;
  bool ok = rc == DC_OK && dc__record(POOL_OPS[kind], y, 1, &xc, &n);
  if (ok && n) {
    *DC__ARGS(n, pool) = (dc__pool_args){*g, kind};
    if (idx) dc__save(n, 0, idx);
  }
  dc__unref(xc);
  dc_free(idx);
  if (!ok) {
    dc_free(y);
    return NULL;
  }
  return y;
}

dc_tensor *dc_max_pool2d_opt(dc_tensor *x, dc_pool2d_opts o) {
  dc_tensor *c[1];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 1, &x, c);
  if (am != DC__AMP_NONE) return dc__amp_leave(am, true, dc_max_pool2d_opt(c[0], o), 1, &x, c);
  dc_pool2d_geom g;
  if (!check_input("max_pool2d", x, &g) || !resolve_window("max_pool2d", x, o, &g, true))
    return NULL;
  return pool_run(POOL_MAX, x, &g);
}

dc_tensor *dc_avg_pool2d_opt(dc_tensor *x, dc_pool2d_opts o) {
  dc_tensor *c[1];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 1, &x, c);
  if (am != DC__AMP_NONE) return dc__amp_leave(am, true, dc_avg_pool2d_opt(c[0], o), 1, &x, c);
  dc_pool2d_geom g;
  if (!check_input("avg_pool2d", x, &g) || !resolve_window("avg_pool2d", x, o, &g, false))
    return NULL;
  return pool_run(POOL_AVG, x, &g);
}

static dc_tensor *adaptive(int kind, dc_tensor *x, int64_t out_h, int64_t out_w) {
  const char *op = POOL_NAMES[kind];
  dc_tensor *c[1];
  dc__amp_mode am = dc__amp_enter(DC__AUTOCAST_PROMOTE, 0, 1, &x, c);
  if (am != DC__AMP_NONE)
    return dc__amp_leave(am, true, adaptive(kind, c[0], out_h, out_w), 1, &x, c);
  dc_pool2d_geom g;
  if (!check_input(op, x, &g)) return NULL;
  if (out_h < 0 || out_w < 0)
    return dc__err(DC_ERR_ARG,
                   "%s: output size must be >= 1 (0 keeps the input size), got (%lld, "
                   "%lld)",
                   op, (long long)out_h, (long long)out_w);
  g.oh = out_h ? out_h : g.h;
  g.ow = out_w ? out_w : g.w;
  return pool_run(kind, x, &g);
}

dc_tensor *dc_adaptive_avg_pool2d(dc_tensor *x, int64_t out_h, int64_t out_w) {
  return adaptive(POOL_ADAPTIVE_AVG, x, out_h, out_w);
}

dc_tensor *dc_adaptive_max_pool2d(dc_tensor *x, int64_t out_h, int64_t out_w) {
  return adaptive(POOL_ADAPTIVE_MAX, x, out_h, out_w);
}
