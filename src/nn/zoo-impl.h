/* Internals shared by the model-zoo files (zoo.c, zoo_vgg.c, zoo_resnet.c, zoo_transfer.c):
 * defaults and torchvision's initialisation. */
#ifndef DC_ZOO_IMPL_H
#define DC_ZOO_IMPL_H

#include "nn-impl.h"

#include <deepc/zoo.h>

/* o.num_classes, or dflt when it is 0. */
int64_t dc__zoo_classes(dc_zoo_opts o, int64_t dflt);
/* torchvision's weight init over a tree: conv kaiming_normal_(fan_out, relu), zero conv bias,
 * BN weight 1 / bias 0, Linear N(0, linear_std) / bias 0 (linear_std 0: Linear keeps PyTorch's
 * default init). */
int dc__zoo_init_torchvision(dc_module *m, double linear_std);

#endif
