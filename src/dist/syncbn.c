/* Synchronised batch norm (PyTorch's SyncBatchNorm): in training mode the per-channel mean and
 * biased variance come from the samples of every rank, through a differentiable all-reduce of
 * per-channel sums (its backward all-reduces the gradient), so R ranks with batch B normalise
 * like one process with batch R*B. Eval mode, and a job of one rank, use BatchNorm's own path.
 * Shapes: N batch, C channels, L length, H/W height/width; "*" the spatial dims. */
#include "../nn/nn-impl.h"
#include "dist-impl.h"

#include <string.h>

/* ---- y = sum over ranks of x ---- */

/* gin = sum over ranks of gout (the loss is the sum of every rank's loss) */
static int all_reduce_backward(dc_node *n, dc_tensor *gout, dc_tensor **gin) {
  (void)n;
  gin[0] = dc_dist_all_reduce_sum(gout);
  return gin[0] ? DC_OK : dc_last_status();
}
DC__OPDEF(DIST_ALL_REDUCE, all_reduce_backward);

dc_tensor *dc_dist_all_reduce_sum(dc_tensor *x) {
  if (!dc__check_nonnull("dist_all_reduce", 1, x)) return NULL;
  dc_tensor *out = dc__new(dc_shape_of(x), x->dtype, x->device);
  if (!out) return NULL;
  if (dc_copy_(out, x) != DC_OK || dc_dist_all_reduce_(out, DC_DIST_SUM) != DC_OK) {
    dc_free(out);
    return NULL;
  }
  dc_node *n;
  if (!dc__record(&dc__op_DIST_ALL_REDUCE, out, 1, (dc_tensor *[]){x}, &n)) {
    dc_free(out);
    return NULL;
  }
  return out;
}

/* ---- the module ---- */

static dc_module_type g_sync_type; /* filled from BatchNorm's type at the first conversion */

/* t [C] seen as [1, C, 1, ...] to broadcast against x of ndim dims. */
static dc_tensor *per_channel(dc_tensor *t, int ndim) {
  dc_shape s = {.ndim = ndim};
  for (int d = 0; d < ndim; d++) s.d[d] = 1;
  s.d[1] = dc_numel(t);
  return dc_view(t, s);
}

/* running = (1 - f) * running + f * value, outside autograd. */
static int update_running(dc_tensor *running, dc_tensor *value, double f) {
  dc_tensor *v = dc_add_scaled(dc_mul_scalar(running, 1.0 - f), value, f);
  return v ? dc_copy_(running, v) : (int)dc_last_status();
}

static dc_tensor *sync_forward(dc_module *m, dc_tensor *x) {
  const dc__bn_state *s = m->state;
  bool batch_stats = m->training || !s->track;
  bool shape_ok =
      x && (s->dims == 2 ? x->ndim == 4 : (x->ndim == 2 || x->ndim == 3)) && x->shape[1] == s->c;
  if (!batch_stats || dc__dist.size == 1 || !shape_ok) /* BatchNorm's path, checks, messages */
    return (s->dims == 2 ? dc__type_batchnorm2d : dc__type_batchnorm1d).forward(m, x);
  int dims[DC_MAX_DIMS], nd = 0;
  for (int d = 0; d < x->ndim; d++)
    if (d != 1) dims[nd++] = d;
  double count = (double)(dc_numel(x) / s->c);
  if (dc_dist_all_reduce_buffer(&count, 1, DC_F64, DC_DIST_SUM) != DC_OK) return NULL;
  if (count <= 1) {
    char a[128];
    return dc__err(DC_ERR_ARG,
                   "expected more than 1 value per channel over all ranks when "
                   "training, got input %s per rank",
                   dc_shape_str(dc_shape_of(x), a, sizeof a));
  }
  /* mean = sum_ranks(sum x) / count; var = sum_ranks(sum (x - mean)^2) / count (biased) */
  dc_tensor *mean = dc_div_scalar(dc_dist_all_reduce_sum(dc_sum(x, dims, nd, false)), count);
  dc_tensor *xc = dc_sub(x, per_channel(mean, x->ndim));
  dc_tensor *var =
      dc_div_scalar(dc_dist_all_reduce_sum(dc_sum(dc_square(xc), dims, nd, false)), count);
  dc_tensor *y = dc_mul(xc, per_channel(dc_rsqrt(dc_add_scalar(var, s->eps)), x->ndim));
  dc_tensor *w = dc__own_param(m, "weight"), *b = dc__own_param(m, "bias");
  if (w && b) y = dc_add(dc_mul(y, per_channel(w, x->ndim)), per_channel(b, x->ndim));
  if (!y) return NULL;
  if (m->training && s->track) {
    /* the counter advances by an op on its device; momentum None reads it (synchronising) */
    dc_tensor *nbt = dc__own_buffer(m, "num_batches_tracked");
    if (dc__bn_count(nbt) != DC_OK) return NULL;
    double f = s->cumulative ? 1.0 / dc_item(nbt) : s->momentum;
    bool prev = dc_set_grad_enabled(false);
    int rc = update_running(dc__own_buffer(m, "running_mean"), mean, f);
    if (rc == DC_OK)
      rc = update_running(dc__own_buffer(m, "running_var"), dc_mul_scalar(var, count / (count - 1)),
                          f);
    dc_set_grad_enabled(prev);
    if (rc != DC_OK) return NULL;
  }
  return y;
}

static int convert_one(dc_module *m, const char *path, void *ud) {
  (void)path;
  int *count = ud;
  if (m->type == &dc__type_batchnorm1d || m->type == &dc__type_batchnorm2d) {
    m->type = &g_sync_type;
    (*count)++;
  }
  return DC_OK;
}

int dc_dist_convert_sync_batchnorm(dc_module *m) {
  if (!m) return dc__errs(DC_ERR_ARG, "dist convert_sync_batchnorm: module is NULL");
  if (!g_sync_type.forward) {
    g_sync_type = dc__type_batchnorm2d;
    g_sync_type.name = "SyncBatchNorm";
    g_sync_type.forward = sync_forward;
  }
  int count = 0;
  return dc_module_apply(m, convert_one, &count);
}
