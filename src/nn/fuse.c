/* The fusion planner: which runs of a container's layers (a Sequential's children, a ResNet
 * block's branch and stem) execute as one fused op, and the executor of its plan. It decides
 * from the layers' types and settings, the container's fusion mask and the backend's
 * capabilities; the ops (src/ops/nn_conv_block.c, nn_batchnorm.c) keep the last word on shapes
 * and dtypes, and a fused step they decline runs its layers one by one. */
#include "nn-impl.h"

#include "../backend/backend.h"
#include "../backend/nn-kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* $DEEPC_CONV_BLOCK=0 turns the conv block off for the process (measurements, docs/nn.md) */
static unsigned g_env_mask = DC_FUSE_ALL;
static pthread_once_t g_env_once = PTHREAD_ONCE_INIT;
static void env_read(void) {
  const char *e = getenv("DEEPC_CONV_BLOCK");
  if (e && strcmp(e, "0") == 0) g_env_mask &= ~(unsigned)DC_FUSE_CONV_BLOCK;
}

uint32_t dc__fuse_caps(dc_device dev) {
  uint32_t caps = 0;
  for (int c = 0; c < DC_CAP_COUNT; c++)
    if (dc__backend_supports(dev, (dc_backend_cap)c)) caps |= DC_CAP_BIT(c);
  return caps;
}

unsigned dc__fuse_mask(unsigned fusion, uint32_t caps) {
  if (!(caps & DC_CAP_BIT(DC_CAP_CONV_BLOCK))) fusion &= ~(unsigned)DC_FUSE_CONV_BLOCK;
  if (!(caps & DC_CAP_BIT(DC_CAP_BATCH_NORM_RELU))) fusion &= ~(unsigned)DC_FUSE_BN_RELU;
  return fusion; /* add_relu is a mandatory binary kernel: every backend has it */
}

unsigned dc__fuse_allowed(const dc_module *owner, dc_device dev) {
  pthread_once(&g_env_once, env_read);
  unsigned f = owner->fusion & g_env_mask;
  if (f == DC_FUSE_NONE) return f;
  uint32_t caps = 0;
  if ((f & DC_FUSE_CONV_BLOCK) && dc__backend_supports(dev, DC_CAP_CONV_BLOCK))
    caps |= DC_CAP_BIT(DC_CAP_CONV_BLOCK);
  if ((f & DC_FUSE_BN_RELU) && dc__backend_supports(dev, DC_CAP_BATCH_NORM_RELU))
    caps |= DC_CAP_BIT(DC_CAP_BATCH_NORM_RELU);
  return dc__fuse_mask(f, caps);
}

dc__layers dc__layers_children(const dc_module *m) {
  return (dc__layers){.n = m->children.n, .entries = m->children.items};
}

static dc_module *layer(const dc__layers *l, int i) {
  return l->mods ? l->mods[i] : l->entries[i].ptr;
}

static bool is_type(const dc_module *m, const dc_module_type *t) { return m && m->type == t; }

/* a MaxPool2d(2): window 2x2, stride 2, no padding, dilation 1, floor mode */
static bool is_pool2(const dc_module *m) {
  if (!is_type(m, &dc__type_maxpool2d)) return false;
  const dc__pool_state *ps = m->state;
  for (int i = 0; i < 2; i++)
    if (ps->kernel.v[i] != 2 || ps->stride.v[i] != 2 || ps->padding.v[i] != 0 ||
        ps->dilation.v[i] != 1)
      return false;
  return !ps->ceil_mode;
}

static bool is_bn(const dc_module *m) {
  return is_type(m, &dc__type_batchnorm1d) || is_type(m, &dc__type_batchnorm2d);
}

dc__step dc__fuse_step(const dc__layers *l, int i, unsigned fusion) {
  int avail = l->n - i;
  dc_module *a = layer(l, i), *b = avail > 1 ? layer(l, i + 1) : NULL;
  if ((fusion & DC_FUSE_CONV_BLOCK) && is_type(a, &dc__type_conv2d) &&
      is_type(b, &dc__type_batchnorm2d) &&
      ((const dc__bn_state *)b->state)->c == ((const dc__conv_state *)a->state)->cout) {
    dc__step s = {DC__STEP_CONV_BLOCK, i, 2, 0};
    if (avail > 2 && is_type(layer(l, i + 2), &dc__type_relu)) {
      s.mode = DC_CONV_BLOCK_RELU, s.count = 3;
      if (avail > 3 && is_pool2(layer(l, i + 3))) s.mode |= DC_CONV_BLOCK_POOL, s.count = 4;
    }
    return s;
  }
  if ((fusion & DC_FUSE_BN_RELU) && is_bn(a) && is_type(b, &dc__type_relu))
    return (dc__step){DC__STEP_BN_RELU, i, 2, 0};
  return (dc__step){DC__STEP_LAYER, i, 1, 0};
}

int dc__fuse_plan(const dc__layers *l, unsigned fusion, dc__step *steps, int max) {
  int n = 0;
  for (int i = 0; i < l->n && n < max; i += steps[n++].count)
    steps[n] = dc__fuse_step(l, i, fusion);
  return n;
}

bool dc__fuse_add_relu(unsigned fusion, const dc_module *relu) {
  return (fusion & DC_FUSE_ADD_RELU) && is_type(relu, &dc__type_relu);
}

/* The conv block on x, or its layers one by one when the op declines (an input of another rank
 * or channels, which the conv then reports; a layer the backend's plan does not fuse). */
static dc_tensor *conv_block_run(const dc__layers *l, dc__step s, unsigned fusion, dc_tensor *x) {
  dc_module *conv = layer(l, s.first), *bn = layer(l, s.first + 1);
  const dc__conv_state *cs = conv->state;
  if (x->ndim == 4 && x->shape[1] == cs->cin) {
    dc__bn_call c = dc__bn_call_of(bn); /* num_batches_tracked counts only when the block runs */
    bool fused;
    dc_tensor *y = dc__conv_block(x, dc__own_param(conv, "weight"), dc__own_param(conv, "bias"),
                                  dc__conv_opts(conv), c.running_mean, c.running_var, c.weight,
                                  c.bias, c.batch_stats, c.momentum, c.eps, s.mode, &fused);
    if (fused) {
      if (y && c.nbt && dc__bn_count(c.nbt) != DC_OK) {
        dc_free(y);
        return NULL;
      }
      return y;
    }
  }
  dc__layers sub = l->mods ? (dc__layers){.n = s.count, .mods = l->mods + s.first}
                           : (dc__layers){.n = s.count, .entries = l->entries + s.first};
  return dc__fuse_run(&sub, fusion & ~(unsigned)DC_FUSE_CONV_BLOCK, x);
}

dc_tensor *dc__fuse_run(const dc__layers *l, unsigned fusion, dc_tensor *x) {
  dc_tensor *h = x;
  for (int i = 0; i < l->n && h;) {
    dc__step s = dc__fuse_step(l, i, fusion);
    dc_tensor *next = NULL;
    switch (s.kind) {
    case DC__STEP_LAYER:
      next = dc_module_forward(layer(l, i), h);
      break;
    case DC__STEP_CONV_BLOCK:
      next = conv_block_run(l, s, fusion, h);
      break;
    case DC__STEP_BN_RELU:
      next = dc__bn_relu_forward(layer(l, i), h);
      break;
    }
    if (h != x && next != h) dc_free(h); /* the graph keeps what backward needs */
    h = next;
    i += s.count;
  }
  return h;
}
