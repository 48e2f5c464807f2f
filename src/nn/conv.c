/* Conv2d as a module: weight [Cout, Cin/groups, kH, kW] and bias [Cout] with PyTorch's default
 * initialisation, argument checks with PyTorch's messages, and input checks that name the
 * expected channels. The convolution itself is dc_conv2d_opt (nn_functional.h).
 * Shapes: N batch, Cin/Cout channels, H/W input size, Ho/Wo output size, kH/kW kernel. */
#include "nn-impl.h"

#include <stdio.h>

dc__pair dc__nn_pair(int square, const int hw[2], int dflt) {
  if (hw[0] || hw[1]) return (dc__pair){{hw[0], hw[1]}, true};
  int v = square ? square : dflt;
  return (dc__pair){{v, v}, false};
}

static dc_conv2d_opts conv_opts(const dc__conv_state *s) {
  dc_conv2d_opts o = {.groups = s->groups, .same_padding = s->same};
  for (int i = 0; i < 2; i++) {
    o.stride[i] = s->stride.v[i];
    o.padding[i] = s->same ? 0 : s->padding.v[i];
    o.dilation[i] = s->dilation.v[i];
  }
  return o;
}

dc_conv2d_opts dc__conv_opts(const dc_module *conv) { return conv_opts(conv->state); }

/* Output size of one spatial dim; < 1 when the kernel does not fit. */
static int64_t out_size(int64_t in, int k, int stride, int pad, int dil, bool same) {
  if (same) return in;
  return (in + 2 * pad - (int64_t)dil * (k - 1) - 1) / stride + 1;
}

static dc_tensor *conv_forward(dc_module *m, dc_tensor *x) {
  const dc__conv_state *s = m->state;
  char a[128];
  dc_shape_str(dc_shape_of(x), a, sizeof a);
  if (x->ndim != 4 && x->ndim != 3)
    return dc__err(DC_ERR_ARG,
                   "expected a 4-d input [N, %lld, H, W] (or 3-d [%lld, H, W]), got "
                   "%s",
                   (long long)s->cin, (long long)s->cin, a);
  int cd = x->ndim - 3; /* channel dim */
  if (x->shape[cd] != s->cin)
    return dc__err(DC_ERR_ARG,
                   "expected input with %lld channels (in_channels=%lld), got %s with "
                   "%lld channels",
                   (long long)s->cin, (long long)s->cin, a, (long long)x->shape[cd]);
  for (int i = 0; i < 2; i++) {
    int64_t in = x->shape[cd + 1 + i];
    if (out_size(in, s->kernel.v[i], s->stride.v[i], s->padding.v[i], s->dilation.v[i], s->same) <
        1)
      return dc__err(DC_ERR_ARG,
                     "kernel size %dx%d (dilation %d, %d) is larger than the padded "
                     "input %lldx%lld (input %s, padding %d, %d); use a smaller "
                     "kernel, more padding or a larger input",
                     s->kernel.v[0], s->kernel.v[1], s->dilation.v[0], s->dilation.v[1],
                     (long long)(x->shape[cd + 1] + 2 * s->padding.v[0]),
                     (long long)(x->shape[cd + 2] + 2 * s->padding.v[1]), a, s->padding.v[0],
                     s->padding.v[1]);
  }
  dc_tensor *w = dc__own_param(m, "weight"), *b = dc__own_param(m, "bias");
  if (x->ndim == 4) return dc_conv2d_opt(x, w, b, conv_opts(s));
  dc_tensor *x4 = dc_unsqueeze(x, 0); /* unbatched [Cin, H, W], as PyTorch accepts */
  dc_tensor *y4 = dc_conv2d_opt(x4, w, b, conv_opts(s));
  dc_tensor *y = dc_squeeze(y4, 0);
  dc_free(x4);
  dc_free(y4);
  return y;
}

static void conv_repr(const dc_module *m, char *buf, size_t n) {
  const dc__conv_state *s = m->state;
  snprintf(buf, n, "%lld, %lld, kernel_size=(%d, %d), stride=(%d, %d)", (long long)s->cin,
           (long long)s->cout, s->kernel.v[0], s->kernel.v[1], s->stride.v[0], s->stride.v[1]);
  if (s->same)
    dc__appendf(buf, n, ", padding=same");
  else if (s->padding.v[0] || s->padding.v[1])
    dc__appendf(buf, n, ", padding=(%d, %d)", s->padding.v[0], s->padding.v[1]);
  if (s->dilation.v[0] != 1 || s->dilation.v[1] != 1)
    dc__appendf(buf, n, ", dilation=(%d, %d)", s->dilation.v[0], s->dilation.v[1]);
  if (s->groups != 1) dc__appendf(buf, n, ", groups=%d", s->groups);
  if (!s->bias) dc__appendf(buf, n, ", bias=False");
}

/* out [N, Cout, Ho, Wo]: each output element takes Cin/groups * kH * kW multiply-adds */
static int64_t conv_macs(const dc_module *m, dc_shape in, dc_shape out) {
  const dc__conv_state *s = m->state;
  (void)in;
  return dc__shape_numel(&out) * (s->cin / s->groups) * s->kernel.v[0] * s->kernel.v[1];
}

static int conv_reset(dc_module *m) {
  return dc__init_default_weight_bias(dc__own_param(m, "weight"), dc__own_param(m, "bias"));
}

const dc_module_type dc__type_conv2d = {.name = "Conv2d",
                                        .forward = conv_forward,
                                        .extra_repr = conv_repr,
                                        .macs = conv_macs,
                                        .reset = conv_reset};

static void *conv_arg_error(const char *what, int v0, int v1, const char *need) {
  return dc__err(DC_ERR_ARG, "Conv2d: %s must be %s, got (%d, %d)", what, need, v0, v1);
}

dc_module *dc_nn_conv2d_opt(int64_t in_channels, int64_t out_channels, int kernel_size,
                            dc_nn_conv2d_opts o) {
  dc__conv_state s = {.cin = in_channels,
                      .cout = out_channels,
                      .groups = o.groups ? o.groups : 1,
                      .same = o.padding_same,
                      .bias = !o.no_bias,
                      .kernel = dc__nn_pair(kernel_size, o.kernel_hw, 0),
                      .stride = dc__nn_pair(o.stride, o.stride_hw, 1),
                      .padding = dc__nn_pair(o.padding, o.padding_hw, 0),
                      .dilation = dc__nn_pair(o.dilation, o.dilation_hw, 1)};
  if (in_channels <= 0 || out_channels <= 0)
    return dc__err(DC_ERR_ARG,
                   "Conv2d: in_channels and out_channels must be positive, got %lld "
                   "and %lld",
                   (long long)in_channels, (long long)out_channels);
  if (s.groups < 1 || in_channels % s.groups || out_channels % s.groups)
    return dc__err(DC_ERR_ARG,
                   "Conv2d: in_channels (%lld) and out_channels (%lld) must both be "
                   "divisible by groups (%d)",
                   (long long)in_channels, (long long)out_channels, s.groups);
  if (s.kernel.v[0] < 1 || s.kernel.v[1] < 1)
    return conv_arg_error("kernel_size", s.kernel.v[0], s.kernel.v[1], "positive");
  if (s.stride.v[0] < 1 || s.stride.v[1] < 1)
    return conv_arg_error("stride", s.stride.v[0], s.stride.v[1], "positive");
  if (s.padding.v[0] < 0 || s.padding.v[1] < 0)
    return conv_arg_error("padding", s.padding.v[0], s.padding.v[1], "non-negative");
  if (s.dilation.v[0] < 1 || s.dilation.v[1] < 1)
    return conv_arg_error("dilation", s.dilation.v[0], s.dilation.v[1], "positive");
  if (s.same && (s.stride.v[0] != 1 || s.stride.v[1] != 1))
    return dc__err(DC_ERR_ARG,
                   "Conv2d: padding='same' is not supported for strided "
                   "convolutions (stride (%d, %d)); give the padding as a number",
                   s.stride.v[0], s.stride.v[1]);
  if (s.same) /* PyTorch keeps the total padding d*(k-1); the repr shows "same" */
    for (int i = 0; i < 2; i++) s.padding.v[i] = s.dilation.v[i] * (s.kernel.v[i] - 1) / 2;
  dc_module *m = dc_module_new(&dc__type_conv2d, sizeof s);
  if (!m) return NULL;
  *(dc__conv_state *)m->state = s;
  dc_module_add_parameter(
      m, "weight",
      dc__nn_tensor(DC_SHAPE(out_channels, in_channels / s.groups, s.kernel.v[0], s.kernel.v[1]),
                    DC_F32));
  if (s.bias) dc_module_add_parameter(m, "bias", dc__nn_tensor(DC_SHAPE(out_channels), DC_F32));
  m = dc_module_ok(m);
  if (m && conv_reset(m) != DC_OK) {
    dc_module_free(m);
    return NULL;
  }
  return m;
}
