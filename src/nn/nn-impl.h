/* Internals of the module layer shared by the files of src/nn: the module struct, the layers' state
 * blocks (read by the spec parser, the summary and the reprs) and small helpers.
 * Shapes: N batch, C channels, H/W height/width, F features. */
#ifndef DC_NN_IMPL_H
#define DC_NN_IMPL_H

#include <deepc/nn.h>
#include <deepc/nn_functional.h>
#include <deepc/ops.h>
#include "../autograd/autograd-impl.h"

typedef struct dc__entry {
  char *name;
  void *ptr;       /* dc_tensor* (parameters, buffers) or dc_module* (children) */
  bool persistent; /* buffers: part of the state dict */
} dc__entry;

typedef struct dc__entries {
  int n, cap;
  dc__entry *items;
} dc__entries;

struct dc_module {
  const dc_module_type *type;
  int32_t refcount;
  bool training;
  bool failed;          /* a registration failed; dc_module_ok frees the module */
  dc_module *parent;    /* weak: the container this module was first added to (error paths) */
  const char *name;     /* weak: its name there (the parent's entry owns the string) */
  dc__entries params;   /* dc_tensor*, registration order */
  dc__entries buffers;  /* dc_tensor* */
  dc__entries children; /* dc_module* */
  void *state;          /* type-specific configuration block, zeroed at creation */
};

/* An int or an (h, w) pair as the user gave it (reprs print it back the same way). */
typedef struct dc__pair {
  int v[2];
  bool is_pair;
} dc__pair;

typedef struct dc__linear_state {
  int64_t in, out; /* F_in, F_out */
  bool bias;
} dc__linear_state;

typedef struct dc__conv_state {
  int64_t cin, cout;
  dc__pair kernel, stride, padding, dilation;
  int groups;
  bool same; /* padding="same" */
  bool bias;
} dc__conv_state;

typedef struct dc__pool_state {
  dc__pair kernel, stride, padding, dilation;
  bool ceil_mode;
  bool exclude_pad;     /* avg: count_include_pad=False */
  int divisor_override; /* avg: 0 = None */
} dc__pool_state;

typedef struct dc__adaptive_state {
  int64_t out[2]; /* 0 = keep the input size (None) */
  bool is_pair;
} dc__adaptive_state;

typedef struct dc__bn_state {
  int64_t c; /* C */
  int dims;  /* 1 or 2 (BatchNorm1d / BatchNorm2d) */
  double eps, momentum;
  bool cumulative; /* momentum=None */
  bool affine, track;
} dc__bn_state;

/* Activations, dropout and flatten: two scalar arguments and an int. */
typedef struct dc__act_state {
  double a, b;             /* negative_slope / alpha / beta,threshold / min,max / p */
  int dim, dim2;           /* softmax dim / flatten start,end */
  bool flag;               /* gelu tanh approximation */
  bool a_is_int, b_is_int; /* repr: print as ints (Softplus(beta=1, threshold=20)) */
} dc__act_state;

/* ---- shared helpers (module.c, conv.c) ---- */
/* A pair from a square value and an (h, w) override (used when nonzero); 0 gives dflt. */
dc__pair dc__nn_pair(int square, const int hw[2], int dflt);
/* Python's repr of a float ("1e-05", "0.1", "1.0"). */
char *dc__fmt_float(double v, char *buf, size_t n);
/* "(3, 3)" or "3" for a pair as given. */
char *dc__fmt_pair(dc__pair p, char *buf, size_t n);
/* Appends formatted text at the end of buf (bounded). */
void dc__appendf(char *buf, size_t n, const char *fmt, ...) DC__PRINTF(3, 4);
/* Lists of a module tree (full dotted names), in PyTorch's order. */
typedef enum dc__list_kind {
  DC__LIST_PARAMS,    /* parameters, each shared tensor once */
  DC__LIST_TRAINABLE, /* parameters with requires_grad */
  DC__LIST_BUFFERS,   /* all buffers */
  DC__LIST_STATE      /* state dict: parameters then persistent buffers, per module */
} dc__list_kind;
dc_named_tensor *dc__module_list(const dc_module *m, dc__list_kind kind, int *n);
/* Own parameter / buffer by name, or NULL. */
dc_tensor *dc__own_param(const dc_module *m, const char *name);
dc_tensor *dc__own_buffer(const dc_module *m, const char *name);
/* A new unscoped tensor (for parameters/buffers), NULL + error on failure. */
dc_tensor *dc__nn_tensor(dc_shape s, dc_dtype dt);
/* The module's dotted path within its first parents ("features.3"), into buf. */
char *dc__module_path(const dc_module *m, char *buf, size_t n);
/* Edit distance between two names, ignoring case and '_' (used for suggestions). */
int dc__name_distance(const char *a, const char *b);
/* Default PyTorch initialisation of a weight with fan_in and its bias: U(+-1/sqrt(fan_in)). */
int dc__init_default_weight_bias(dc_tensor *w, dc_tensor *b);

/* Summary hooks (summary.c): called by dc_module_forward around every call. */
typedef struct dc__summary_rec dc__summary_rec;
extern _Thread_local dc__summary_rec *dc__summary_active;
int dc__summary_enter(dc_module *m, dc_tensor *x);
void dc__summary_leave(int row, dc_module *m, dc_tensor *x, dc_tensor *y);

/* ---- BatchNorm + ReLU fusion (norm.c) ----
 * dc__bn_relu_forward(bn, relu, x): when bn is a BatchNorm1d/2d module, relu a ReLU module and
 * no summary is recording, runs both as one op (dc__batch_norm_relu, src/ops/nn_batchnorm.c:
 * the same values and gradients, one pass and one tensor less) and sets *fused; else returns
 * dc_module_forward(bn, x) and leaves *fused false (the caller then runs relu itself). Errors
 * name bn's path as dc_module_forward does. */
dc_tensor *dc__bn_relu_forward(dc_module *bn, dc_module *relu, dc_tensor *x, bool *fused);
dc_tensor *dc__batch_norm_relu(dc_tensor *x, dc_tensor *running_mean, dc_tensor *running_var,
                               dc_tensor *weight, dc_tensor *bias, bool training, double momentum,
                               double eps);

/* What a BatchNorm1d/2d module passes to its batch-norm op on this call (norm.c): running stats
 * (NULL untracked), affine parameters (NULL without), batch statistics or running ones, the
 * momentum (1 / (num_batches_tracked + 1) for momentum=None) and eps. nbt: the counter the
 * caller increments once the call is made (NULL when it does not count: eval or untracked). */
typedef struct dc__bn_call {
  dc_tensor *running_mean, *running_var, *weight, *bias;
  bool batch_stats;
  double momentum, eps;
  int64_t *nbt;
} dc__bn_call;
dc__bn_call dc__bn_call_of(dc_module *m);

/* relu(a + b) as one op (src/ops/unary.c): ResNet's residual join */
dc_tensor *dc__add_relu(dc_tensor *a, dc_tensor *b);

/* ---- Conv2d + BatchNorm2d [+ ReLU [+ MaxPool2d(2)]] fusion (conv.c) ----
 * dc__conv_block_forward(mods, n, x, &used): when mods[0..1] (n available) are a Conv2d and a
 * BatchNorm2d of its channels, no summary is recording and the backend fuses the layer
 * (dc__conv_block, src/ops/nn_conv_block.c), runs them as one op together with a ReLU in mods[2]
 * and then a MaxPool2d(2) (2x2, stride 2, no padding, dilation 1, floor mode) in mods[3], and sets
 * *used to the number of layers that ran (2, 3 or 4; the caller skips them); else returns NULL
 * with *used 0 and no error, and the caller runs mods[0] alone. Errors (used > 0, NULL) name the
 * conv's path. dc__conv_block_off turns the fusion off (tests compare both). */
extern bool dc__conv_block_off;
dc_tensor *dc__conv_block_forward(dc_module *const *mods, int n, dc_tensor *x, int *used);
/* mode: DC_CONV_BLOCK_RELU, | DC_CONV_BLOCK_POOL (src/backend/nn-kernels.h) */
dc_tensor *dc__conv_block(dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_conv2d_opts o,
                          dc_tensor *running_mean, dc_tensor *running_var, dc_tensor *bn_w,
                          dc_tensor *bn_b, bool training, double momentum, double eps, int mode,
                          bool *fused);

/* Layer type objects (the spec parser and the summary compare against them). */
extern const dc_module_type dc__type_sequential, dc__type_linear, dc__type_conv2d,
    dc__type_maxpool2d, dc__type_avgpool2d, dc__type_adaptive_avgpool2d,
    dc__type_adaptive_maxpool2d, dc__type_batchnorm1d, dc__type_batchnorm2d, dc__type_relu;

#endif
