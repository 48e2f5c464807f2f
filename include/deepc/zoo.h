/* Model zoo: ready-made networks with torchvision's module and parameter names (so torchvision
 * state dicts load as they are), the course's own small networks, and the helpers of transfer
 * learning (load a checkpoint, replace the head, freeze a sub-tree, parameter groups).
 * Reading the weight files themselves is io.h's business (dc_weights_*). */
#ifndef DEEPC_ZOO_H
#define DEEPC_ZOO_H

#include "nn.h"
#include "optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of dc_zoo_create: zero fields take the model's defaults. */
typedef struct dc_zoo_opts {
  int64_t num_classes;   /* outputs of the last layer (0: 1000 for ImageNet models, else 10) */
  int64_t in_channels;   /* input channels (0: 3 for VGG/ResNet, 1 for LeNet/CNN) */
  int64_t in_features;   /* MLP: inputs per sample (0: 784) */
  const int64_t *hidden; /* MLP: hidden widths (NULL: 256, 128, 64) */
  int nhidden;
  bool zero_init_residual; /* ResNet: last BN of each block starts at 0 (torchvision's option) */
  int64_t width;           /* ResNet: channels of the stem and layer1 (0: 64); the stages use
                              width, 2*width, 4*width, 8*width (x4 after Bottleneck) */
  bool small_input;        /* ResNet: 3x3 stride-1 stem without max pooling (CIFAR/MNIST-size
                              images); conv1 keeps its name, its kernel is 3x3 */
  double dropout;          /* VGG classifier / CNN dropout (0: 0.5 / 0.3); < 0: none */
  bool no_init;            /* skip torchvision's re-initialisation (layers keep PyTorch's
                              default init): faster when pretrained weights come next */
} dc_zoo_opts;

/* A model by name (ignoring case, '-' and '_': "ResNet-18" is resnet18):
 *   mlp                      Flatten, Linear+ReLU per hidden width, Linear(classes)
 *   lenet5                   LeNet-5 for 1x28x28: conv(6,5,pad 2) tanh avgpool conv(16,5) tanh
 *                            avgpool, 400-120-84-classes with tanh
 *   cnn_fashion              the course's baseline CNN (1x28x28): 3 x (conv5 BN ReLU maxpool2),
 *                            dropout, Linear(576, 64) BN ReLU, Linear(64, classes)
 *   vgg11 vgg13 vgg16 vgg19  torchvision's VGG (features, avgpool 7x7, classifier); *_bn with
 *                            batch norm. *_cifar: the 32x32 version (one Sequential: the conv
 *                            layers then Flatten and Linear(512, classes)), e.g. vgg11_bn_cifar
 *   resnet18 resnet34 resnet50  torchvision's ResNet (BasicBlock / Bottleneck, downsample)
 * Weights are initialised as torchvision does (from the deepc RNG: dc_manual_seed). NULL + error
 * naming the closest known name for an unknown one. */
DC_API dc_module *dc_zoo_create_opt(const char *name, dc_zoo_opts o);
#define dc_zoo_create(name, ...) dc_zoo_create_opt((name), (dc_zoo_opts){__VA_ARGS__})
/* True when name is a zoo model (then dc_zoo_create knows it). */
DC_API bool dc_zoo_has(const char *name);
/* The canonical names, NULL-terminated. */
DC_API const char *const *dc_zoo_names(void);
/* The input one sample of the model expects with the given options ([C, H, W] or [F]): the
 * fixed size of the small models, 3x224x224 for ImageNet models, 3x32x32 for *_cifar. */
DC_API dc_shape dc_zoo_input_shape(const char *name, dc_zoo_opts o);

/* The individual builders (same options). depth: 11, 13, 16, 19 / 18, 34, 50. */
DC_API dc_module *dc_zoo_mlp(dc_zoo_opts o);
DC_API dc_module *dc_zoo_lenet5(dc_zoo_opts o);
DC_API dc_module *dc_zoo_cnn_fashion(dc_zoo_opts o);
DC_API dc_module *dc_zoo_vgg(int depth, bool batch_norm, bool cifar, dc_zoo_opts o);
DC_API dc_module *dc_zoo_resnet(int depth, dc_zoo_opts o);

/* ---- transfer learning ---- */
/* The dotted path of the model's final classification layer: "fc" (ResNet), "classifier.6"
 * (VGG), the last Linear of a Sequential ("29"); NULL + error when there is none. */
DC_API const char *dc_zoo_head_name(const dc_module *m, char *buf, size_t n);
/* Replaces the final layer by a freshly initialised Linear(in, num_classes) (PyTorch's
 * model.fc = nn.Linear(512, num_classes)). */
DC_API int dc_zoo_replace_head(dc_module *m, int64_t num_classes);

typedef struct dc_pretrained_opts {
  const char *prefix; /* take the entries under this prefix (NULL: found automatically: none,
                         "model.", "state_dict.", "model_state_dict.", "module.") */
  bool keep_head;     /* load the final layer too even if its shape differs: an error then
                         (default: a head of another shape is skipped and stays as it is) */
  bool non_strict;    /* missing / unexpected keys are reported instead of refused */
  FILE *log;          /* NULL: silent; else one line on what was loaded and skipped */
} dc_pretrained_opts;
/* Loads a weight file (.pth/.pt, .safetensors, deepc .ckpt; dc_weights_load) into m. All keys
 * must match except the head: when the file's head has another shape (a 1000-class ImageNet
 * checkpoint into a 2-class model) it is left out and the model's head keeps its fresh weights,
 * as with torchvision's model.fc = nn.Linear(512, 2) after loading. Mis-shaped keys elsewhere
 * are errors naming the key and both shapes; nothing changes on error. */
DC_API int dc_zoo_load_pretrained_opt(dc_module *m, const char *path, dc_pretrained_opts o);
/* Same from a weight file already read (dc_weights_load in io.h); what names it in messages. */
typedef struct dc_weights dc_weights;
DC_API int dc_zoo_load_weights(dc_module *m, const dc_weights *w, const char *what,
                               dc_pretrained_opts o);
#define dc_zoo_load_pretrained(m, path, ...)                                                       \
  dc_zoo_load_pretrained_opt((m), (path), (dc_pretrained_opts){__VA_ARGS__})

/* Freezes part of a model (requires_grad = false). what is a comma-separated list of module
 * paths ("conv1, bn1, layer1") or the word "backbone" (everything but the head), "all" or
 * "none" (unfreezes everything). Batch-norm layers of frozen parts keep updating their running
 * statistics in training mode, as in PyTorch. Unknown paths are errors naming them. */
DC_API int dc_zoo_freeze(dc_module *m, const char *what);

/* Splits the trainable parameters into parameter groups for dc_optim_new (frozen ones are
 * left out): groups[0] the head with hp.lr, groups[1] the rest (the backbone) with learning rate
 * backbone_lr; other hyper-parameters from hp. *ngroups is 1 when only the head trains. Free
 * with dc_zoo_param_groups_free. */
DC_API int dc_zoo_param_groups(const dc_module *m, dc_optim_hparams hp, double backbone_lr,
                               dc_param_group groups[2], int *ngroups);
DC_API void dc_zoo_param_groups_free(dc_param_group *groups, int ngroups);

#ifdef __cplusplus
}
#endif
#endif
