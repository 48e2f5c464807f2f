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
  unsigned fusion;      /* dc_fusion mask its forward may use (DC_FUSE_ALL) */
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

/* Summary hooks (summary.c): called by dc_module_forward around every call to record it. Only
 * the recording reads dc__summary_active; what runs fused is the modules' fusion mask, which
 * dc_summary sets to DC_FUSE_NONE for its run. */
typedef struct dc__summary_rec dc__summary_rec;
extern _Thread_local dc__summary_rec *dc__summary_active;
int dc__summary_enter(dc_module *m, dc_tensor *x);
void dc__summary_leave(int row, dc_module *m, dc_tensor *x, dc_tensor *y);

/* A forward function with an argument, run by dc__module_call as dc_module_forward runs the
 * type's: summary row, errors naming the module's path. */
typedef dc_tensor *(*dc__forward_fn)(dc_module *m, dc_tensor *x, const void *arg);
dc_tensor *dc__module_call(dc_module *m, dc_tensor *x, dc__forward_fn fn, const void *arg);

/* What a BatchNorm1d/2d module passes to its batch-norm op on this call (norm.c): running stats
 * (NULL untracked), affine parameters (NULL without), batch statistics or running ones, the
 * momentum (1 / (num_batches_tracked + 1) for momentum=None, read from the device with dc_item)
 * and eps. nbt: the counter to advance with dc__bn_count once the call is made (NULL when it
 * does not count: eval or untracked). */
typedef struct dc__bn_call {
  dc_tensor *running_mean, *running_var, *weight, *bias;
  bool batch_stats;
  double momentum, eps;
  dc_tensor *nbt; /* int64 0-d */
} dc__bn_call;
dc__bn_call dc__bn_call_of(dc_module *m);
/* num_batches_tracked += 1 as an op on its device; DC_OK or a status. */
int dc__bn_count(dc_tensor *nbt);
/* y = relu(bn(x)) as one op (dc__batch_norm_relu), through dc__module_call(bn) (norm.c). */
dc_tensor *dc__bn_relu_forward(dc_module *bn, dc_tensor *x);
/* A Conv2d's options for dc_conv2d_opt / dc__conv_block (conv.c). */
dc_conv2d_opts dc__conv_opts(const dc_module *conv);

/* ---- the fusion planner (fuse.c) ----
 * Turns a run of layers (a Sequential's children, a ResNet block's branch) into steps: one
 * child, or several run as one fused op. The plan depends on the layers' types and settings,
 * the fusions the container allows (dc_module_fusion and $DEEPC_CONV_BLOCK) and the backend's
 * capabilities (dc__backend_supports); what the input brings (its rank and channels, the
 * backend's own plan of the conv block) is checked when the step runs, and a fused step that
 * does not apply runs its layers unfused. */
typedef struct dc__layers {
  int n;
  dc_module *const *mods;   /* the layers, or */
  const dc__entry *entries; /* a module's children (mods NULL) */
} dc__layers;
dc__layers dc__layers_children(const dc_module *m);
typedef enum dc__step_kind {
  DC__STEP_LAYER,      /* layers[first] alone */
  DC__STEP_CONV_BLOCK, /* Conv2d, BatchNorm2d[, ReLU[, MaxPool2d(2)]]: dc__conv_block */
  DC__STEP_BN_RELU     /* BatchNorm1d/2d, ReLU: dc__batch_norm_relu */
} dc__step_kind;
typedef struct dc__step {
  dc__step_kind kind;
  int first, count; /* layers first .. first + count - 1 */
  int mode;         /* conv block: DC_CONV_BLOCK_RELU | DC_CONV_BLOCK_POOL (nn-kernels.h) */
} dc__step;
/* The fusions a container allows on a device: its dc_module_fusion, less what $DEEPC_CONV_BLOCK
 * turns off and what dev's backend lacks. */
unsigned dc__fuse_allowed(const dc_module *owner, dc_device dev);
/* The caps a backend has as a mask of DC_CAP_BIT (fusions it lacks are planned unfused). */
uint32_t dc__fuse_caps(dc_device dev);
/* The fusions of a dc_fusion mask a backend with caps can run. */
unsigned dc__fuse_mask(unsigned fusion, uint32_t caps);
/* The step starting at layer i under the fusion mask (already reduced by dc__fuse_mask). */
dc__step dc__fuse_step(const dc__layers *l, int i, unsigned fusion);
/* The whole plan into steps[0 .. max - 1]; returns the number of steps (at most l->n). */
int dc__fuse_plan(const dc__layers *l, unsigned fusion, dc__step *steps, int max);
/* Runs the layers on x by the plan, freeing the intermediate results (never x): the last result,
 * x itself when there are no layers, NULL + error (naming the failing layer) on failure. */
dc_tensor *dc__fuse_run(const dc__layers *l, unsigned fusion, dc_tensor *x);
/* relu(a + b) as one op (dc__add_relu) for a residual join with this relu child? */
bool dc__fuse_add_relu(unsigned fusion, const dc_module *relu);

/* Fused ops from src/ops (nn_ops.h) */
dc_tensor *dc__batch_norm_relu(dc_tensor *x, dc_tensor *running_mean, dc_tensor *running_var,
                               dc_tensor *weight, dc_tensor *bias, bool training, double momentum,
                               double eps);
/* relu(a + b) as one op (src/ops/unary.c): ResNet's residual join */
dc_tensor *dc__add_relu(dc_tensor *a, dc_tensor *b);
/* mode: DC_CONV_BLOCK_RELU, | DC_CONV_BLOCK_POOL (src/backend/nn-kernels.h); *fused false (no
 * error) when the backend does not run this layer fused */
dc_tensor *dc__conv_block(dc_tensor *x, dc_tensor *w, dc_tensor *b, dc_conv2d_opts o,
                          dc_tensor *running_mean, dc_tensor *running_var, dc_tensor *bn_w,
                          dc_tensor *bn_b, bool training, double momentum, double eps, int mode,
                          bool *fused);

/* Layer type objects (the spec parser and the summary compare against them). */
extern const dc_module_type dc__type_sequential, dc__type_linear, dc__type_conv2d,
    dc__type_maxpool2d, dc__type_avgpool2d, dc__type_adaptive_avgpool2d,
    dc__type_adaptive_maxpool2d, dc__type_batchnorm1d, dc__type_batchnorm2d, dc__type_relu;

#endif
