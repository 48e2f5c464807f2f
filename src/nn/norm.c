/* BatchNorm1d / BatchNorm2d as modules: weight/bias [C], buffers running_mean/running_var [C]
 * and num_batches_tracked (int64 0-d), momentum (None = cumulative average), eps, affine and
 * track_running_stats as PyTorch. The normalisation itself is dc_batch_norm (nn_functional.h).
 * Shapes: N batch, C channels (features), L length, H/W height/width. */
#include "nn-impl.h"

#include <stdio.h>

/* y = bn(x), then relu(y) in the same op when relu */
static dc_tensor *bn_run(dc_module *m, dc_tensor *x, bool relu) {
  const dc__bn_state *s = m->state;
  char a[128];
  dc_shape_str(dc_shape_of(x), a, sizeof a);
  bool rank_ok = s->dims == 2 ? x->ndim == 4 : (x->ndim == 2 || x->ndim == 3);
  if (!rank_ok)
    return dc__err(DC_ERR_ARG, "expected %s input, got %s",
                   s->dims == 2 ? "a 4-d [N, C, H, W]" : "a 2-d [N, C] or 3-d [N, C, L]", a);
  if (x->shape[1] != s->c)
    return dc__err(DC_ERR_ARG, "expected input with %lld channels (num_features=%lld), got %s",
                   (long long)s->c, (long long)s->c, a);
  bool batch_stats = m->training || !s->track;
  if (batch_stats && s->c > 0 && dc_numel(x) / s->c <= 1)
    return dc__err(DC_ERR_ARG,
                   "expected more than 1 value per channel when training, got input "
                   "%s; use a batch of 2 or more, or eval mode",
                   a);
  dc__bn_call c = dc__bn_call_of(m);
  if (c.nbt && dc__bn_count(c.nbt) != DC_OK) return NULL;
  return (relu ? dc__batch_norm_relu : dc_batch_norm)(x, c.running_mean, c.running_var, c.weight,
                                                      c.bias, c.batch_stats, c.momentum, c.eps);
}

static dc_tensor *bn_forward(dc_module *m, dc_tensor *x) { return bn_run(m, x, false); }

static dc_tensor *bn_relu_fw(dc_module *m, dc_tensor *x, const void *arg) {
  (void)arg;
  return bn_run(m, x, true);
}

dc_tensor *dc__bn_relu_forward(dc_module *bn, dc_tensor *x) {
  return dc__module_call(bn, x, bn_relu_fw, NULL);
}

dc__bn_call dc__bn_call_of(dc_module *m) {
  const dc__bn_state *s = m->state;
  dc__bn_call c = {.running_mean = s->track ? dc__own_buffer(m, "running_mean") : NULL,
                   .running_var = s->track ? dc__own_buffer(m, "running_var") : NULL,
                   .weight = dc__own_param(m, "weight"),
                   .bias = dc__own_param(m, "bias"),
                   .batch_stats = m->training || !s->track,
                   .momentum = s->momentum,
                   .eps = s->eps};
  if (m->training && s->track) {
    c.nbt = dc__own_buffer(m, "num_batches_tracked");
    /* PyTorch's 1 / float(num_batches_tracked) after the increment: a synchronising read */
    if (s->cumulative) c.momentum = 1.0 / (dc_item(c.nbt) + 1.0);
  }
  return c;
}

int dc__bn_count(dc_tensor *nbt) {
  bool prev = dc_set_grad_enabled(false);
  dc_tensor *next = dc_add_scalar(nbt, 1.0);
  int rc = next ? dc_copy_(nbt, next) : (int)dc_last_status();
  dc_set_grad_enabled(prev);
  dc_free(next);
  return rc;
}

static void bn_repr(const dc_module *m, char *buf, size_t n) {
  const dc__bn_state *s = m->state;
  char e[32], mo[32];
  snprintf(buf, n, "%lld, eps=%s, momentum=%s, affine=%s, track_running_stats=%s", (long long)s->c,
           dc__fmt_float(s->eps, e, sizeof e),
           s->cumulative ? "None" : dc__fmt_float(s->momentum, mo, sizeof mo),
           s->affine ? "True" : "False", s->track ? "True" : "False");
}

static int bn_reset(dc_module *m) {
  int rc = DC_OK;
  dc_tensor *t;
  if ((t = dc__own_buffer(m, "running_mean"))) rc = dc_fill_(t, 0.0);
  if (rc == DC_OK && (t = dc__own_buffer(m, "running_var"))) rc = dc_fill_(t, 1.0);
  if (rc == DC_OK && (t = dc__own_buffer(m, "num_batches_tracked"))) rc = dc_fill_(t, 0.0);
  if (rc == DC_OK && (t = dc__own_param(m, "weight"))) rc = dc_fill_(t, 1.0);
  if (rc == DC_OK && (t = dc__own_param(m, "bias"))) rc = dc_fill_(t, 0.0);
  return rc;
}

const dc_module_type dc__type_batchnorm1d = {
    .name = "BatchNorm1d", .forward = bn_forward, .extra_repr = bn_repr, .reset = bn_reset};
const dc_module_type dc__type_batchnorm2d = {
    .name = "BatchNorm2d", .forward = bn_forward, .extra_repr = bn_repr, .reset = bn_reset};

static dc_module *bn_new(const dc_module_type *type, int dims, int64_t c, dc_nn_batchnorm_opts o) {
  if (c <= 0)
    return dc__err(DC_ERR_ARG, "%s: num_features must be positive, got %lld", type->name,
                   (long long)c);
  dc__bn_state s = {.c = c,
                    .dims = dims,
                    .eps = o.eps != 0 ? o.eps : 1e-5,
                    .momentum = o.momentum != 0 ? o.momentum : 0.1,
                    .cumulative = o.cumulative,
                    .affine = !o.no_affine,
                    .track = !o.no_running_stats};
  if (s.eps < 0 || s.momentum < 0 || s.momentum > 1)
    return dc__err(DC_ERR_ARG,
                   "%s: eps must be >= 0 and momentum in [0, 1], got eps=%g "
                   "momentum=%g",
                   type->name, s.eps, s.momentum);
  dc_module *m = dc_module_new(type, sizeof s);
  if (!m) return NULL;
  *(dc__bn_state *)m->state = s;
  if (s.affine) {
    dc_module_add_parameter(m, "weight", dc__nn_tensor(DC_SHAPE(c), DC_F32));
    dc_module_add_parameter(m, "bias", dc__nn_tensor(DC_SHAPE(c), DC_F32));
  }
  if (s.track) {
    dc_module_add_buffer(m, "running_mean", dc__nn_tensor(DC_SHAPE(c), DC_F32), true);
    dc_module_add_buffer(m, "running_var", dc__nn_tensor(DC_SHAPE(c), DC_F32), true);
    dc_module_add_buffer(m, "num_batches_tracked", dc__nn_tensor(DC_SCALAR_SHAPE, DC_I64), true);
  }
  m = dc_module_ok(m);
  if (m && bn_reset(m) != DC_OK) {
    dc_module_free(m);
    return NULL;
  }
  return m;
}

dc_module *dc_nn_batchnorm1d_opt(int64_t num_features, dc_nn_batchnorm_opts o) {
  return bn_new(&dc__type_batchnorm1d, 1, num_features, o);
}

dc_module *dc_nn_batchnorm2d_opt(int64_t num_features, dc_nn_batchnorm_opts o) {
  return bn_new(&dc__type_batchnorm2d, 2, num_features, o);
}
