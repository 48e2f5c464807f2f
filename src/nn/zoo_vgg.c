/* VGG (Simonyan & Zisserman) with torchvision's layout and names: features (3x3 convs, optional
 * batch norm, ReLU, 2x2 max pools), avgpool (AdaptiveAvgPool2d(7, 7)) and classifier (4096-4096-K
 * with dropout), plus the 32x32 CIFAR version: the same conv layers then Flatten and
 * Linear(512, K) in one Sequential, as the course's training code builds it.
 * Shapes: N batch, C channels, H/W height/width, K classes. */
#include "zoo-impl.h"

#define M_POOL 0 /* a max pool in a configuration list */

/* torchvision's configurations "A", "B", "D", "E"; -1 ends a list. */
static const int CFG11[] = {64,  M_POOL, 128,    M_POOL, 256, 256,    M_POOL,
                            512, 512,    M_POOL, 512,    512, M_POOL, -1};
static const int CFG13[] = {64,     64,  M_POOL, 128,    128, M_POOL, 256,    256,
                            M_POOL, 512, 512,    M_POOL, 512, 512,    M_POOL, -1};
static const int CFG16[] = {64,  64,  M_POOL, 128,    128, M_POOL, 256, 256,    256, M_POOL,
                            512, 512, 512,    M_POOL, 512, 512,    512, M_POOL, -1};
static const int CFG19[] = {64,  64,  M_POOL, 128, 128,    M_POOL, 256, 256, 256, 256,    M_POOL,
                            512, 512, 512,    512, M_POOL, 512,    512, 512, 512, M_POOL, -1};

/* x [N, C, H, W] -> features -> avgpool -> flatten -> classifier -> [N, K] */
static dc_tensor *vgg_forward(dc_module *m, dc_tensor *x) {
  dc_tensor *h = dc_module_forward(dc_module_child(m, "features"), x);
  dc_tensor *p = dc_module_forward(dc_module_child(m, "avgpool"), h);
  dc_free(h);
  dc_tensor *f = p ? dc_flatten(p, 1, -1) : NULL;
  dc_free(p);
  dc_tensor *y = dc_module_forward(dc_module_child(m, "classifier"), f);
  dc_free(f);
  return y;
}

static const dc_module_type TYPE_VGG = {.name = "VGG", .forward = vgg_forward};

/* Appends the conv layers of a configuration (cin input channels) to seq. */
static dc_module *make_features(dc_module *seq, const int *cfg, int64_t cin, bool bn) {
  for (int i = 0; seq && cfg[i] >= 0; i++) {
    if (cfg[i] == M_POOL) {
      seq = dc_nn_sequential_append(seq, dc_nn_maxpool2d(2, .stride = 2));
      continue;
    }
    seq = dc_nn_sequential_append(seq, dc_nn_conv2d(cin, cfg[i], 3, .padding = 1));
    if (seq && bn) seq = dc_nn_sequential_append(seq, dc_nn_batchnorm2d(cfg[i]));
    if (seq) seq = dc_nn_sequential_append(seq, dc_nn_relu());
    cin = cfg[i];
  }
  return seq;
}

dc_module *dc_zoo_vgg(int depth, bool batch_norm, bool cifar, dc_zoo_opts o) {
  const int *cfg = depth == 11   ? CFG11
                   : depth == 13 ? CFG13
                   : depth == 16 ? CFG16
                   : depth == 19 ? CFG19
                                 : NULL;
  if (!cfg) return dc__err(DC_ERR_ARG, "zoo vgg: depth %d is not one of 11, 13, 16, 19", depth);
  int64_t cin = o.in_channels ? o.in_channels : 3;
  if (cifar) {
    dc_module *seq = make_features(dc_nn_sequential_of(NULL, 0), cfg, cin, batch_norm);
    if (seq) seq = dc_nn_sequential_append(seq, dc_nn_flatten(1, -1));
    if (seq) seq = dc_nn_sequential_append(seq, dc_nn_linear(512, dc__zoo_classes(o, 10)));
    return seq;
  }
  double p = o.dropout == 0 ? 0.5 : o.dropout < 0 ? 0 : o.dropout;
  dc_module *m = dc_module_new(&TYPE_VGG, 0);
  if (!m) return NULL;
  dc_module_add(m, "features", make_features(dc_nn_sequential_of(NULL, 0), cfg, cin, batch_norm));
  dc_module_add(m, "avgpool", dc_nn_adaptive_avgpool2d(7, 7));
  dc_module_add(m, "classifier",
                dc_nn_sequential(dc_nn_linear(512 * 7 * 7, 4096), dc_nn_relu(), dc_nn_dropout(p),
                                 dc_nn_linear(4096, 4096), dc_nn_relu(), dc_nn_dropout(p),
                                 dc_nn_linear(4096, dc__zoo_classes(o, 1000))));
  m = dc_module_ok(m);
  if (m && !o.no_init && dc__zoo_init_torchvision(m, 0.01) != DC_OK) {
    dc_module_free(m);
    return NULL;
  }
  return m;
}
