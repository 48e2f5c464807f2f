/* Pooling layers as modules: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d.
 * They hold PyTorch's arguments (and print them back as given); the pooling itself is in
 * nn_functional.h. Shapes: N batch, C channels, H/W input size. */
#include "nn-impl.h"

#include <stdio.h>

static dc_pool2d_opts pool_opts(const dc__pool_state *s) {
  dc_pool2d_opts o = {.ceil_mode = s->ceil_mode,
                      .exclude_pad = s->exclude_pad,
                      .divisor_override = s->divisor_override};
  for (int i = 0; i < 2; i++) {
    o.kernel[i] = s->kernel.v[i];
    o.stride[i] = s->stride.v[i];
    o.padding[i] = s->padding.v[i];
    o.dilation[i] = s->dilation.v[i];
  }
  return o;
}

static bool check_rank(const dc_tensor *x) {
  if (x->ndim == 3 || x->ndim == 4) return true;
  char a[128];
  dc__err(DC_ERR_ARG, "expected a 4-d input [N, C, H, W] (or 3-d [C, H, W]), got %s",
          dc_shape_str(dc_shape_of(x), a, sizeof a));
  return false;
}

static dc_tensor *maxpool_forward(dc_module *m, dc_tensor *x) {
  return check_rank(x) ? dc_max_pool2d_opt(x, pool_opts(m->state)) : NULL;
}

static dc_tensor *avgpool_forward(dc_module *m, dc_tensor *x) {
  return check_rank(x) ? dc_avg_pool2d_opt(x, pool_opts(m->state)) : NULL;
}

static void maxpool_repr(const dc_module *m, char *buf, size_t n) {
  const dc__pool_state *s = m->state;
  char k[32], st[32], p[32], d[32];
  snprintf(buf, n, "kernel_size=%s, stride=%s, padding=%s, dilation=%s, ceil_mode=%s",
           dc__fmt_pair(s->kernel, k, sizeof k), dc__fmt_pair(s->stride, st, sizeof st),
           dc__fmt_pair(s->padding, p, sizeof p), dc__fmt_pair(s->dilation, d, sizeof d),
           s->ceil_mode ? "True" : "False");
}

static void avgpool_repr(const dc_module *m, char *buf, size_t n) {
  const dc__pool_state *s = m->state;
  char k[32], st[32], p[32];
  snprintf(buf, n, "kernel_size=%s, stride=%s, padding=%s", dc__fmt_pair(s->kernel, k, sizeof k),
           dc__fmt_pair(s->stride, st, sizeof st), dc__fmt_pair(s->padding, p, sizeof p));
}

const dc_module_type dc__type_maxpool2d = {
    .name = "MaxPool2d", .forward = maxpool_forward, .extra_repr = maxpool_repr};
const dc_module_type dc__type_avgpool2d = {
    .name = "AvgPool2d", .forward = avgpool_forward, .extra_repr = avgpool_repr};

static dc_module *pool_new(const dc_module_type *type, int kernel_size, dc_nn_pool2d_opts o) {
  dc__pool_state s = {.kernel = dc__nn_pair(kernel_size, o.kernel_hw, 0),
                      .padding = dc__nn_pair(o.padding, o.padding_hw, 0),
                      .dilation = dc__nn_pair(o.dilation, o.dilation_hw, 1),
                      .ceil_mode = o.ceil_mode,
                      .exclude_pad = o.exclude_pad,
                      .divisor_override = o.divisor_override};
  s.stride = o.stride || o.stride_hw[0] || o.stride_hw[1] ? dc__nn_pair(o.stride, o.stride_hw, 1)
                                                          : s.kernel;
  if (o.divisor_override < 0)
    return dc__err(DC_ERR_ARG, "%s: divisor_override must be positive, got %d", type->name,
                   o.divisor_override);
  for (int i = 0; i < 2; i++) {
    if (s.kernel.v[i] < 1 || s.stride.v[i] < 1 || s.dilation.v[i] < 1 || s.padding.v[i] < 0)
      return dc__err(DC_ERR_ARG,
                     "%s: kernel_size, stride and dilation must be positive and "
                     "padding non-negative, got kernel (%d, %d), stride (%d, %d), "
                     "padding (%d, %d), dilation (%d, %d)",
                     type->name, s.kernel.v[0], s.kernel.v[1], s.stride.v[0], s.stride.v[1],
                     s.padding.v[0], s.padding.v[1], s.dilation.v[0], s.dilation.v[1]);
    int keff =
        type == &dc__type_maxpool2d ? (s.kernel.v[i] - 1) * s.dilation.v[i] + 1 : s.kernel.v[i];
    if (s.padding.v[i] > keff / 2)
      return dc__err(DC_ERR_ARG,
                     "%s: padding should be at most half of the (dilated) kernel size, got "
                     "padding (%d, %d) for kernel (%d, %d)",
                     type->name, s.padding.v[0], s.padding.v[1], s.kernel.v[0], s.kernel.v[1]);
  }
  dc_module *m = dc_module_new(type, sizeof s);
  if (m) *(dc__pool_state *)m->state = s;
  return m;
}

dc_module *dc_nn_maxpool2d_opt(int kernel_size, dc_nn_pool2d_opts o) {
  return pool_new(&dc__type_maxpool2d, kernel_size, o);
}

dc_module *dc_nn_avgpool2d_opt(int kernel_size, dc_nn_pool2d_opts o) {
  return pool_new(&dc__type_avgpool2d, kernel_size, o);
}

/* ---- adaptive pooling: output size fixed, windows computed from the input ---- */
static dc_tensor *adaptive_forward(dc_module *m, dc_tensor *x) {
  const dc__adaptive_state *s = m->state;
  if (!check_rank(x)) return NULL;
  int64_t oh = s->out[0] ? s->out[0] : x->shape[x->ndim - 2];
  int64_t ow = s->out[1] ? s->out[1] : x->shape[x->ndim - 1];
  return m->type == &dc__type_adaptive_avgpool2d ? dc_adaptive_avg_pool2d(x, oh, ow)
                                                 : dc_adaptive_max_pool2d(x, oh, ow);
}

static void adaptive_repr(const dc_module *m, char *buf, size_t n) {
  const dc__adaptive_state *s = m->state;
  if (!s->is_pair) {
    snprintf(buf, n, "output_size=%lld", (long long)s->out[0]);
    return;
  }
  snprintf(buf, n, "output_size=(");
  for (int i = 0; i < 2; i++) {
    if (s->out[i])
      dc__appendf(buf, n, "%lld", (long long)s->out[i]);
    else
      dc__appendf(buf, n, "None");
    dc__appendf(buf, n, "%s", i ? ")" : ", ");
  }
}

const dc_module_type dc__type_adaptive_avgpool2d = {
    .name = "AdaptiveAvgPool2d", .forward = adaptive_forward, .extra_repr = adaptive_repr};
const dc_module_type dc__type_adaptive_maxpool2d = {
    .name = "AdaptiveMaxPool2d", .forward = adaptive_forward, .extra_repr = adaptive_repr};

static dc_module *adaptive_new(const dc_module_type *type, int64_t oh, int64_t ow) {
  if (oh < 0 || ow < 0)
    return dc__err(DC_ERR_ARG,
                   "%s: output_size must be positive (or 0 for None), got (%lld, "
                   "%lld)",
                   type->name, (long long)oh, (long long)ow);
  dc_module *m = dc_module_new(type, sizeof(dc__adaptive_state));
  if (m) *(dc__adaptive_state *)m->state = (dc__adaptive_state){{oh, ow}, oh != ow || oh == 0};
  return m;
}

dc_module *dc_nn_adaptive_avgpool2d(int64_t out_h, int64_t out_w) {
  return adaptive_new(&dc__type_adaptive_avgpool2d, out_h, out_w);
}

dc_module *dc_nn_adaptive_maxpool2d(int64_t out_h, int64_t out_w) {
  return adaptive_new(&dc__type_adaptive_maxpool2d, out_h, out_w);
}
