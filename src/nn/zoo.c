/* Model zoo: the registry of names (dc_zoo_create), the course's small networks (MLP, LeNet-5,
 * the baseline Fashion-MNIST CNN) and the 32x32 CIFAR VGGs, all flat Sequentials with PyTorch's
 * keys ("0.weight", ...). torchvision's VGG and ResNet live in zoo_vgg.c and zoo_resnet.c.
 * Names match ignoring case, '-' and '_'. Shapes: N batch, C channels, H/W height/width,
 * F features, K classes. */
#include "zoo-impl.h"

#include <ctype.h>
#include <string.h>

/* ---- small models ---- */
dc_module *dc_zoo_mlp(dc_zoo_opts o) {
  static const int64_t DEFAULT_HIDDEN[] = {256, 128, 64};
  const int64_t *hid = o.hidden ? o.hidden : DEFAULT_HIDDEN;
  int nh = o.hidden ? o.nhidden : 3;
  if (nh < 0 || (nh > 0 && !hid)) return dc__err(DC_ERR_ARG, "zoo mlp: bad hidden width list");
  int64_t in = o.in_features ? o.in_features : 784, k = dc__zoo_classes(o, 10);
  dc_module *seq = dc_nn_sequential(dc_nn_flatten(1, -1));
  for (int i = 0; seq && i < nh; i++) {
    if (hid[i] < 1) {
      dc_module_free(seq);
      return dc__err(DC_ERR_ARG, "zoo mlp: hidden width %d is %lld; widths must be >= 1", i,
                     (long long)hid[i]);
    }
    seq = dc_nn_sequential_append(seq, dc_nn_linear(in, hid[i]));
    if (seq) seq = dc_nn_sequential_append(seq, dc_nn_relu());
    in = hid[i];
  }
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_linear(in, k));
  return seq;
}

dc_module *dc_zoo_lenet5(dc_zoo_opts o) {
  int64_t c = o.in_channels ? o.in_channels : 1, k = dc__zoo_classes(o, 10);
  return dc_nn_sequential(dc_nn_conv2d(c, 6, 5, .padding = 2), dc_nn_tanh(), dc_nn_avgpool2d(2),
                          dc_nn_conv2d(6, 16, 5), dc_nn_tanh(), dc_nn_avgpool2d(2),
                          dc_nn_flatten(1, -1), dc_nn_linear(400, 120), dc_nn_tanh(),
                          dc_nn_linear(120, 84), dc_nn_tanh(), dc_nn_linear(84, k));
}

/* One conv block of the baseline CNN: conv5 (same size), BN, ReLU, maxpool 2. */
static dc_module *cnn_block(dc_module *seq, int64_t cin, int64_t cout) {
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_conv2d(cin, cout, 5, .padding = 2));
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_batchnorm2d(cout));
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_relu());
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_maxpool2d(2));
  return seq;
}

dc_module *dc_zoo_cnn_fashion(dc_zoo_opts o) {
  int64_t c = o.in_channels ? o.in_channels : 1, k = dc__zoo_classes(o, 10);
  double p = o.dropout == 0 ? 0.3 : o.dropout < 0 ? 0 : o.dropout;
  dc_module *seq = dc_nn_sequential_of(NULL, 0);
  seq = cnn_block(seq, c, 32);
  seq = cnn_block(seq, 32, 32);
  seq = cnn_block(seq, 32, 64);
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_flatten(1, -1));
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_dropout(p));
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_linear(64 * 3 * 3, 64));
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_batchnorm1d(64));
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_relu());
  if (seq) seq = dc_nn_sequential_append(seq, dc_nn_linear(64, k));
  return seq;
}

/* ---- the registry ---- */
typedef enum zoo_kind { Z_MLP, Z_LENET, Z_CNN, Z_VGG, Z_RESNET } zoo_kind;

typedef struct zoo_entry {
  const char *name;
  zoo_kind kind;
  int depth;
  bool bn, cifar;
} zoo_entry;

static const zoo_entry ZOO[] = {
    {"mlp", Z_MLP, 0, false, false},           {"lenet5", Z_LENET, 0, false, false},
    {"cnn_fashion", Z_CNN, 0, false, false},   {"vgg11", Z_VGG, 11, false, false},
    {"vgg11_bn", Z_VGG, 11, true, false},      {"vgg13", Z_VGG, 13, false, false},
    {"vgg13_bn", Z_VGG, 13, true, false},      {"vgg16", Z_VGG, 16, false, false},
    {"vgg16_bn", Z_VGG, 16, true, false},      {"vgg19", Z_VGG, 19, false, false},
    {"vgg19_bn", Z_VGG, 19, true, false},      {"vgg11_cifar", Z_VGG, 11, false, true},
    {"vgg11_bn_cifar", Z_VGG, 11, true, true}, {"vgg13_cifar", Z_VGG, 13, false, true},
    {"vgg13_bn_cifar", Z_VGG, 13, true, true}, {"vgg16_cifar", Z_VGG, 16, false, true},
    {"vgg16_bn_cifar", Z_VGG, 16, true, true}, {"vgg19_cifar", Z_VGG, 19, false, true},
    {"vgg19_bn_cifar", Z_VGG, 19, true, true}, {"resnet18", Z_RESNET, 18, false, false},
    {"resnet34", Z_RESNET, 34, false, false},  {"resnet50", Z_RESNET, 50, false, false},
};
enum { NZOO = (int)(sizeof ZOO / sizeof ZOO[0]) };

static const struct {
  const char *alias, *name;
} ALIASES[] = {{"lenet", "lenet5"}, {"fashion_cnn", "cnn_fashion"}};

/* Lower case without '-' and '_' into buf ("ResNet-18" and "resnet18" alike); false when too
 * long. */
static bool canonical(const char *name, char *buf, size_t n) {
  size_t k = 0;
  for (; *name; name++) {
    if (*name == '-' || *name == '_') continue;
    if (k + 1 >= n) return false;
    buf[k++] = (char)tolower((unsigned char)*name);
  }
  buf[k] = '\0';
  return true;
}

static const zoo_entry *find(const char *name) {
  char c[64], z[64];
  if (!name || !canonical(name, c, sizeof c)) return NULL;
  for (size_t a = 0; a < sizeof ALIASES / sizeof ALIASES[0]; a++)
    if (canonical(ALIASES[a].alias, z, sizeof z) && strcmp(c, z) == 0)
      canonical(ALIASES[a].name, c, sizeof c);
  for (int i = 0; i < NZOO; i++)
    if (canonical(ZOO[i].name, z, sizeof z) && strcmp(z, c) == 0) return &ZOO[i];
  return NULL;
}

bool dc_zoo_has(const char *name) { return find(name) != NULL; }

const char *const *dc_zoo_names(void) {
  static const char *names[NZOO + 1];
  for (int i = 0; i < NZOO; i++) names[i] = ZOO[i].name;
  names[NZOO] = NULL;
  return names;
}

dc_module *dc_zoo_create_opt(const char *name, dc_zoo_opts o) {
  const zoo_entry *e = find(name);
  if (!e) {
    int best = 1 << 30;
    const char *bn = NULL;
    for (int i = 0; name && i < NZOO; i++) {
      int d = dc__name_distance(name, ZOO[i].name);
      if (d < best) best = d, bn = ZOO[i].name;
    }
    char hint[96] = "";
    if (bn && best <= 3) snprintf(hint, sizeof hint, " (did you mean '%s'?)", bn);
    return dc__err(DC_ERR_ARG,
                   "zoo: unknown model '%s'%s; known: mlp, lenet5, cnn_fashion, vgg11/13/16/19 "
                   "with _bn and/or _cifar, resnet18, resnet34, resnet50",
                   name ? name : "(null)", hint);
  }
  if (o.num_classes < 0 || o.in_channels < 0 || o.in_features < 0 || o.width < 0)
    return dc__err(DC_ERR_ARG,
                   "zoo %s: num_classes, in_channels, in_features and width must be "
                   ">= 0 (0: default)",
                   e->name);
  switch (e->kind) {
  case Z_MLP:
    return dc_zoo_mlp(o);
  case Z_LENET:
    return dc_zoo_lenet5(o);
  case Z_CNN:
    return dc_zoo_cnn_fashion(o);
  case Z_VGG:
    return dc_zoo_vgg(e->depth, e->bn, e->cifar, o);
  case Z_RESNET:
    return dc_zoo_resnet(e->depth, o);
  }
  return dc__err(DC_ERR_ARG, "zoo: unknown model kind");
}

dc_shape dc_zoo_input_shape(const char *name, dc_zoo_opts o) {
  const zoo_entry *e = find(name);
  if (!e) return (dc_shape){0};
  int64_t c3 = o.in_channels ? o.in_channels : 3, c1 = o.in_channels ? o.in_channels : 1;
  switch (e->kind) {
  case Z_MLP:
    return DC_SHAPE(o.in_features ? o.in_features : 784);
  case Z_LENET:
  case Z_CNN:
    return DC_SHAPE(c1, 28, 28);
  case Z_VGG:
    return e->cifar ? DC_SHAPE(c3, 32, 32) : DC_SHAPE(c3, 224, 224);
  case Z_RESNET:
    return o.small_input ? DC_SHAPE(c3, 32, 32) : DC_SHAPE(c3, 224, 224);
  }
  return (dc_shape){0};
}

/* ---- helpers shared by the zoo files ---- */
int64_t dc__zoo_classes(dc_zoo_opts o, int64_t dflt) {
  return o.num_classes ? o.num_classes : dflt;
}

/* torchvision's init: conv kaiming_normal_(fan_out, relu) with zero bias, BN weight 1 and bias 0,
 * Linear N(0, linear_std) with zero bias (linear_std 0: keep PyTorch's default Linear init). */
static int init_one(dc_module *m, const char *path, void *ud) {
  double linear_std = *(const double *)ud;
  const dc_module_type *t = dc_module_get_type(m);
  dc_tensor *w = dc__own_param(m, "weight"), *b = dc__own_param(m, "bias");
  int rc = DC_OK;
  if (t == &dc__type_conv2d) {
    rc = dc_init_kaiming_normal_(w, 0, DC_FAN_OUT, "relu");
    if (rc == DC_OK && b) rc = dc_init_zeros_(b);
  } else if (t == &dc__type_batchnorm2d || t == &dc__type_batchnorm1d) {
    if (w) rc = dc_init_ones_(w);
    if (rc == DC_OK && b) rc = dc_init_zeros_(b);
  } else if (t == &dc__type_linear && linear_std > 0) {
    rc = dc_init_normal_(w, 0, linear_std);
    if (rc == DC_OK && b) rc = dc_init_zeros_(b);
  }
  return rc;
}

int dc__zoo_init_torchvision(dc_module *m, double linear_std) {
  if (!m) return DC_ERR_ARG;
  return dc_module_apply(m, init_one, &linear_std);
}
