/* ResNet (He et al.) with torchvision's layout and names: conv1/bn1/relu/maxpool stem, four
 * stages layer1..layer4 of BasicBlock (18, 34) or Bottleneck (50) blocks with a downsample branch
 * (1x1 conv + BN) where the shape changes, avgpool and fc; stride on the 3x3 conv (v1.5).
 * Options: zero_init_residual, a narrower width, a 3x3 stem for small images.
 * Shapes: N batch, C channels, H/W height/width, K classes. */
#include "zoo-impl.h"

/* out = relu(branch(x) + (downsample ? downsample(x) : x)); the branch is the named children,
 * conv, bn pairs with relu between them, run through the fusion planner (fuse.c): each pair
 * with its relu as one conv block where the backend fuses it. */
static dc_tensor *residual(dc_module *m, dc_tensor *x, const char *const *branch, int nb) {
  dc_module *mods[8];
  int n = 0;
  for (int i = 0; i + 1 < nb; i += 2) {
    mods[n++] = dc_module_child(m, branch[i]);
    mods[n++] = dc_module_child(m, branch[i + 1]);
    if (i + 2 < nb) mods[n++] = dc_module_child(m, "relu");
  }
  unsigned fusion = dc__fuse_allowed(m, x->device);
  dc__layers l = {.n = n, .mods = mods};
  dc_tensor *h = dc__fuse_run(&l, fusion, x);
  dc_module *ds = dc_module_child(m, "downsample");
  dc_tensor *id = ds ? dc_module_forward(ds, x) : x;
  dc_module *relu = dc_module_child(m, "relu");
  if (h && id && dc__fuse_add_relu(fusion, relu)) {
    dc_tensor *y = dc__add_relu(h, id); /* one op */
    dc_free(h);
    if (id != x) dc_free(id);
    return y;
  }
  dc_tensor *s = h && id ? dc_add(h, id) : NULL;
  dc_free(h);
  if (id != x) dc_free(id);
  dc_tensor *y = dc_module_forward(relu, s);
  dc_free(s);
  return y;
}

static dc_tensor *basic_forward(dc_module *m, dc_tensor *x) {
  static const char *const B[] = {"conv1", "bn1", "conv2", "bn2"};
  return residual(m, x, B, 4);
}

static dc_tensor *bottleneck_forward(dc_module *m, dc_tensor *x) {
  static const char *const B[] = {"conv1", "bn1", "conv2", "bn2", "conv3", "bn3"};
  return residual(m, x, B, 6);
}

/* x [N, C, H, W] -> stem -> layer1..4 -> avgpool -> flatten -> fc -> [N, K]; the children
 * present run through the fusion planner (the stem's conv1, bn1, relu as one conv block) */
static dc_tensor *resnet_forward(dc_module *m, dc_tensor *x) {
  static const char *const STAGES[] = {"conv1",  "bn1",    "relu",   "maxpool", "layer1",
                                       "layer2", "layer3", "layer4", "avgpool"};
  enum { NSTAGES = sizeof STAGES / sizeof STAGES[0] };
  dc_module *mods[NSTAGES];
  int n = 0;
  for (int i = 0; i < NSTAGES; i++)
    if ((mods[n] = dc_module_child(m, STAGES[i]))) n++;
  dc__layers l = {.n = n, .mods = mods};
  dc_tensor *h = dc__fuse_run(&l, dc__fuse_allowed(m, x->device), x);
  dc_tensor *f = h ? dc_flatten(h, 1, -1) : NULL;
  if (h != x) dc_free(h);
  dc_tensor *y = dc_module_forward(dc_module_child(m, "fc"), f);
  dc_free(f);
  return y;
}

static const dc_module_type TYPE_BASIC = {.name = "BasicBlock", .forward = basic_forward};
static const dc_module_type TYPE_BOTTLENECK = {.name = "Bottleneck", .forward = bottleneck_forward};
static const dc_module_type TYPE_RESNET = {.name = "ResNet", .forward = resnet_forward};

static dc_module *conv_bn(int64_t cin, int64_t cout, int k, int stride) {
  return dc_nn_conv2d(cin, cout, k, .stride = stride, .padding = k / 2, .no_bias = true);
}

/* One block: inplanes -> planes * expansion, stride on the 3x3 conv. */
static dc_module *block(bool bottleneck, int64_t inplanes, int64_t planes, int stride) {
  int64_t out = bottleneck ? planes * 4 : planes;
  dc_module *b = dc_module_new(bottleneck ? &TYPE_BOTTLENECK : &TYPE_BASIC, 0);
  if (!b) return NULL;
  if (bottleneck) {
    dc_module_add(b, "conv1", conv_bn(inplanes, planes, 1, 1));
    dc_module_add(b, "bn1", dc_nn_batchnorm2d(planes));
    dc_module_add(b, "conv2", conv_bn(planes, planes, 3, stride));
    dc_module_add(b, "bn2", dc_nn_batchnorm2d(planes));
    dc_module_add(b, "conv3", conv_bn(planes, out, 1, 1));
    dc_module_add(b, "bn3", dc_nn_batchnorm2d(out));
    dc_module_add(b, "relu", dc_nn_relu());
  } else {
    dc_module_add(b, "conv1", conv_bn(inplanes, planes, 3, stride));
    dc_module_add(b, "bn1", dc_nn_batchnorm2d(planes));
    dc_module_add(b, "relu", dc_nn_relu());
    dc_module_add(b, "conv2", conv_bn(planes, planes, 3, 1));
    dc_module_add(b, "bn2", dc_nn_batchnorm2d(planes));
  }
  if (stride != 1 || inplanes != out)
    dc_module_add(b, "downsample",
                  dc_nn_sequential(conv_bn(inplanes, out, 1, stride), dc_nn_batchnorm2d(out)));
  return dc_module_ok(b);
}

static dc_module *stage(bool bottleneck, int64_t *inplanes, int64_t planes, int nblocks,
                        int stride) {
  dc_module *seq = dc_nn_sequential_of(NULL, 0);
  for (int i = 0; seq && i < nblocks; i++) {
    seq = dc_nn_sequential_append(seq, block(bottleneck, *inplanes, planes, i == 0 ? stride : 1));
    *inplanes = bottleneck ? planes * 4 : planes;
  }
  return seq;
}

/* zero_init_residual: the last BN of every block starts at 0, so each block starts as identity. */
static int zero_last_bn(dc_module *m, const char *path, void *ud) {
  const dc_module_type *t = dc_module_get_type(m);
  const char *bn = t == &TYPE_BASIC ? "bn2" : t == &TYPE_BOTTLENECK ? "bn3" : NULL;
  return bn ? dc_init_zeros_(dc_module_get_parameter(dc_module_child(m, bn), "weight")) : DC_OK;
}

dc_module *dc_zoo_resnet(int depth, dc_zoo_opts o) {
  static const int BLOCKS18[] = {2, 2, 2, 2}, BLOCKS34[] = {3, 4, 6, 3};
  const int *blocks = depth == 18 ? BLOCKS18 : depth == 34 || depth == 50 ? BLOCKS34 : NULL;
  if (!blocks) return dc__err(DC_ERR_ARG, "zoo resnet: depth %d is not one of 18, 34, 50", depth);
  bool bottleneck = depth == 50;
  int64_t w = o.width ? o.width : 64, cin = o.in_channels ? o.in_channels : 3, inplanes = w;
  dc_module *m = dc_module_new(&TYPE_RESNET, 0);
  if (!m) return NULL;
  if (o.small_input)
    dc_module_add(m, "conv1", conv_bn(cin, w, 3, 1));
  else
    dc_module_add(m, "conv1", dc_nn_conv2d(cin, w, 7, .stride = 2, .padding = 3, .no_bias = true));
  dc_module_add(m, "bn1", dc_nn_batchnorm2d(w));
  dc_module_add(m, "relu", dc_nn_relu());
  if (!o.small_input) dc_module_add(m, "maxpool", dc_nn_maxpool2d(3, .stride = 2, .padding = 1));
  static const char *const NAMES[] = {"layer1", "layer2", "layer3", "layer4"};
  for (int s = 0; s < 4; s++)
    dc_module_add(m, NAMES[s], stage(bottleneck, &inplanes, w << s, blocks[s], s ? 2 : 1));
  dc_module_add(m, "avgpool", dc_nn_adaptive_avgpool2d(1, 1));
  dc_module_add(m, "fc", dc_nn_linear(inplanes, dc__zoo_classes(o, 1000)));
  m = dc_module_ok(m);
  if (!m) return NULL;
  int rc = o.no_init ? DC_OK : dc__zoo_init_torchvision(m, 0);
  if (rc == DC_OK && o.zero_init_residual) rc = dc_module_apply(m, zero_last_bn, NULL);
  if (rc != DC_OK) {
    dc_module_free(m);
    return NULL;
  }
  return m;
}
