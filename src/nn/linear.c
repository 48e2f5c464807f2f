/* Linear, Flatten and Identity as modules. Linear's maths is dc_linear (ops.h); this file holds
 * its parameters (weight [F_out, F_in], bias [F_out]), PyTorch's default initialisation and the
 * input check that names the expected feature count. */
#include "nn-impl.h"

#include <stdio.h>

/* ---- Linear ---- */
static dc_tensor *linear_forward(dc_module *m, dc_tensor *x) {
  const dc__linear_state *s = m->state;
  if (x->ndim < 1 || x->shape[x->ndim - 1] != s->in) {
    char a[128];
    dc_shape_str(dc_shape_of(x), a, sizeof a);
    if (x->ndim >= 1)
      return dc__err(DC_ERR_ARG,
                     "expected input [*, %lld] (in_features=%lld), got %s: the layer "
                     "before gives %lld features, so use Linear(%lld, %lld) or fix the "
                     "layers before",
                     (long long)s->in, (long long)s->in, a, (long long)x->shape[x->ndim - 1],
                     (long long)x->shape[x->ndim - 1], (long long)s->out);
    return dc__err(DC_ERR_ARG, "expected input [*, %lld], got a 0-d tensor", (long long)s->in);
  }
  return dc_linear(x, dc__own_param(m, "weight"), dc__own_param(m, "bias"));
}

static void linear_repr(const dc_module *m, char *buf, size_t n) {
  const dc__linear_state *s = m->state;
  snprintf(buf, n, "in_features=%lld, out_features=%lld, bias=%s", (long long)s->in,
           (long long)s->out, s->bias ? "True" : "False");
}

/* out [*, F_out]: F_in * F_out per output row */
static int64_t linear_macs(const dc_module *m, dc_shape in, dc_shape out) {
  const dc__linear_state *s = m->state;
  (void)in;
  return s->out ? dc__shape_numel(&out) / s->out * s->in * s->out : 0;
}

static int linear_reset(dc_module *m) {
  return dc__init_default_weight_bias(dc__own_param(m, "weight"), dc__own_param(m, "bias"));
}

const dc_module_type dc__type_linear = {.name = "Linear",
                                        .forward = linear_forward,
                                        .extra_repr = linear_repr,
                                        .macs = linear_macs,
                                        .reset = linear_reset};

dc_module *dc_nn_linear_opt(int64_t in_features, int64_t out_features, dc_nn_linear_opts o) {
  if (in_features < 0 || out_features < 0)
    return dc__err(DC_ERR_ARG,
                   "Linear: in_features and out_features must be >= 0, got %lld and "
                   "%lld",
                   (long long)in_features, (long long)out_features);
  dc_module *m = dc_module_new(&dc__type_linear, sizeof(dc__linear_state));
  if (!m) return NULL;
  dc__linear_state *s = m->state;
  *s = (dc__linear_state){in_features, out_features, !o.no_bias};
  dc_module_add_parameter(m, "weight", dc__nn_tensor(DC_SHAPE(out_features, in_features), DC_F32));
  if (s->bias) dc_module_add_parameter(m, "bias", dc__nn_tensor(DC_SHAPE(out_features), DC_F32));
  m = dc_module_ok(m);
  if (m && linear_reset(m) != DC_OK) {
    dc_module_free(m);
    return NULL;
  }
  return m;
}

/* ---- Flatten ---- */
static dc_tensor *flatten_forward(dc_module *m, dc_tensor *x) {
  const dc__act_state *s = m->state;
  return dc_flatten(x, s->dim, s->dim2);
}

static void flatten_repr(const dc_module *m, char *buf, size_t n) {
  const dc__act_state *s = m->state;
  snprintf(buf, n, "start_dim=%d, end_dim=%d", s->dim, s->dim2);
}

static const dc_module_type type_flatten = {
    .name = "Flatten", .forward = flatten_forward, .extra_repr = flatten_repr};

dc_module *dc_nn_flatten(int start_dim, int end_dim) {
  dc_module *m = dc_module_new(&type_flatten, sizeof(dc__act_state));
  if (!m) return NULL;
  dc__act_state *s = m->state;
  s->dim = start_dim;
  s->dim2 = end_dim;
  return m;
}

/* ---- Identity: a view of x (a new tensor, so the caller may free it like any output) ---- */
static dc_tensor *identity_forward(dc_module *m, dc_tensor *x) {
  (void)m;
  return dc_reshape(x, dc_shape_of(x));
}

static const dc_module_type type_identity = {.name = "Identity", .forward = identity_forward};

dc_module *dc_nn_identity(void) { return dc_module_new(&type_identity, 0); }
