/* Modules (PyTorch's torch.nn): a tree of layers with named parameters, buffers and children,
 * the built-in layers, initialisation schemes (torch.nn.init), state dicts with PyTorch's keys,
 * layer specs ("conv2d(1,32,5,padding=2), relu, ...") and a torchinfo-like model summary.
 * The maths lives in ops.h and nn_functional.h; a module holds weights and configuration.
 * Ownership: a module owns its parameters, buffers and children (made outside any scope);
 * dc_module_free releases the whole tree. Forward outputs follow the scope rule of tensor.h. */
#ifndef DEEPC_NN_H
#define DEEPC_NN_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dc_module dc_module; /* opaque; use the accessors below */

/* ---- module types: how a layer (or a custom module) behaves ---- */
typedef struct dc_module_type {
  const char *name; /* PyTorch's class name, shown in reprs and summaries: "Conv2d" */
  /* y = f(x): a new tensor (scoped like any op result), or NULL + dc_last_error(). */
  dc_tensor *(*forward)(dc_module *m, dc_tensor *x);
  /* Optional: the text inside the repr's parentheses ("in_features=4, out_features=2"). */
  void (*extra_repr)(const dc_module *m, char *buf, size_t n);
  /* Optional: releases what the state block points to (not the block, params or children). */
  void (*free_state)(void *state);
  /* Optional: multiply-accumulates of one forward from input shape to output shape, for the
   * summary. NULL: torchinfo's rule, out[0] * (number of the module's own parameters). */
  int64_t (*macs)(const dc_module *m, dc_shape in, dc_shape out);
  /* Optional: re-initialises the module's own parameters and buffers (PyTorch's
   * reset_parameters / reset_running_stats). */
  int (*reset)(dc_module *m);
} dc_module_type;

typedef struct dc_named_tensor {
  char *name;        /* full dotted name ("features.0.weight"), owned by the list */
  dc_tensor *tensor; /* borrowed from the module */
} dc_named_tensor;

typedef struct dc_named_module {
  char *name;        /* dotted path ("layer1.0"); "" for the root */
  dc_module *module; /* borrowed */
} dc_named_module;

/* ---- building a module tree ---- */
/* A new module of the given type with a zeroed state block of state_size bytes (training mode). */
DC_API dc_module *dc_module_new(const dc_module_type *type, size_t state_size);
/* Releases a module (children, parameters and buffers with it). NULL is ignored. */
DC_API void dc_module_free(dc_module *m);
/* Adds a reference: a module shared by two parents is freed once both let it go. */
DC_API dc_module *dc_module_retain(dc_module *m);
/* The module's state block (the layer's configuration; a custom module's own fields). */
DC_API void *dc_module_state(const dc_module *m);
DC_API const char *dc_module_type_name(const dc_module *m);
DC_API const dc_module_type *dc_module_get_type(const dc_module *m);

/* Registers a child / parameter / buffer under a name ("conv1", "weight"). Each takes over the
 * caller's reference (do not free it afterwards) and returns it; NULL on failure. A NULL argument
 * (a failed constructor) or a duplicate name marks m as failed: finish a constructor with
 * dc_module_ok(m), which frees m and returns NULL in that case, so one check covers all adds.
 * Parameters must be floating-point leaves; they get requires_grad. Names may not contain '.'. */
DC_API dc_module *dc_module_add(dc_module *m, const char *name, dc_module *child);
DC_API dc_tensor *dc_module_add_parameter(dc_module *m, const char *name, dc_tensor *t);
/* persistent: stored in the state dict (PyTorch's register_buffer(..., persistent=True)). */
DC_API dc_tensor *dc_module_add_buffer(dc_module *m, const char *name, dc_tensor *t,
                                       bool persistent);
DC_API dc_module *dc_module_ok(dc_module *m);

/* ---- running ---- */
/* y = m(x). On failure the message names the layer by its path and type
 * ("features.3 (Conv2d): expected input with 32 channels, got [1, 16, 14, 14]"). */
DC_API dc_tensor *dc_module_forward(dc_module *m, dc_tensor *x);
/* Training mode (dropout active, batch norm on batch statistics) or eval mode, recursively. */
DC_API void dc_module_train(dc_module *m, bool on);
DC_API void dc_module_eval(dc_module *m);
DC_API bool dc_module_is_training(const dc_module *m);

/* ---- looking inside ---- */
DC_API int dc_module_num_children(const dc_module *m);
DC_API dc_module *dc_module_child_at(const dc_module *m, int i);
DC_API const char *dc_module_child_name(const dc_module *m, int i);
/* A direct child by name, or NULL (no error set: use in forward functions). */
DC_API dc_module *dc_module_child(const dc_module *m, const char *name);
/* By dotted path ("layer1.0.conv1"; "" is m itself), or NULL + error naming the missing part. */
DC_API dc_module *dc_module_get_submodule(const dc_module *m, const char *path);
/* A parameter / buffer by dotted name ("fc.weight", "bn1.running_mean"), or NULL + error. */
DC_API dc_tensor *dc_module_get_parameter(const dc_module *m, const char *name);
DC_API dc_tensor *dc_module_get_buffer(const dc_module *m, const char *name);
/* Replaces (or adds, like Python's setattr) the child at a dotted path ("fc", "classifier.6"):
 * the old child is released. Takes over child; returns it, or NULL (and frees child) on error. */
DC_API dc_module *dc_module_set_child(dc_module *m, const char *path, dc_module *child);

/* Lists in PyTorch's order (a module's own entries first, then its children's, depth first).
 * Free with dc_named_tensors_free / dc_named_modules_free. NULL + *n = 0 on failure. */
/* All parameters (each shared tensor once), as named_parameters(). */
DC_API dc_named_tensor *dc_module_parameters(const dc_module *m, int *n);
/* Only those with requires_grad (what an optimizer should update). */
DC_API dc_named_tensor *dc_module_trainable_parameters(const dc_module *m, int *n);
DC_API dc_named_tensor *dc_module_buffers(const dc_module *m, int *n);
/* Every module, the root first ("" ), as named_modules(). */
DC_API dc_named_module *dc_module_modules(const dc_module *m, int *n);
DC_API void dc_named_tensors_free(dc_named_tensor *list, int n);
DC_API void dc_named_modules_free(dc_named_module *list, int n);
/* Number of parameter elements (all, or trainable only). */
DC_API int64_t dc_module_num_parameters(const dc_module *m, bool trainable_only);

/* Freezes (false) or unfreezes (true) every parameter of the sub-tree. For one parameter use
 * dc_requires_grad_(dc_module_get_parameter(m, "fc.bias"), false). */
DC_API void dc_module_requires_grad_(dc_module *m, bool on);
/* Sets .grad of every parameter to NULL. */
DC_API void dc_module_zero_grad(dc_module *m);
/* Converts every floating-point parameter and buffer in place to dt (PyTorch's m.double() /
 * m.float()): the tensors keep their identity (optimizers and state dicts still point at them),
 * their gradients are dropped. num_batches_tracked stays int64. */
DC_API int dc_module_to_dtype(dc_module *m, dc_dtype dt);
/* Moves every parameter, gradient and buffer of the sub-tree to dev in place (PyTorch's
 * m.to(device)): the tensors keep their identity, so an optimizer and a state dict holding them
 * still work (move the optimizer's own state with dc_optimizer_to). A device this build lacks is
 * DC_ERR_ARG naming the devices it has; a failure part-way names the tensor that failed, and
 * the tensors before it stay moved. */
DC_API int dc_module_to(dc_module *m, dc_device dev);

/* ---- fusion: which layer patterns a container's forward runs as one op ----
 * A Sequential (and ResNet's blocks and stem) runs these runs of children as one fused op when
 * the module allows it and the backend of the input's device has the fused op; the fused op
 * gives the same values and gradients up to float32 rounding of the batch statistics (docs/nn.md,
 * "Fused layers"). $DEEPC_CONV_BLOCK=0 in the environment removes DC_FUSE_CONV_BLOCK for the
 * whole process. dc_summary runs with DC_FUSE_NONE, so each layer gets its row. */
typedef enum dc_fusion {
  DC_FUSE_NONE = 0,
  DC_FUSE_CONV_BLOCK = 1 << 0, /* Conv2d, BatchNorm2d[, ReLU[, MaxPool2d(2)]] */
  DC_FUSE_BN_RELU = 1 << 1,    /* BatchNorm1d/2d, ReLU */
  DC_FUSE_ADD_RELU = 1 << 2,   /* relu(branch + identity): a residual join */
  DC_FUSE_ALL = (1 << 3) - 1   /* the default */
} dc_fusion;
/* Sets the fusions (a mask of dc_fusion) m and every module below it may use; returns m's
 * previous mask. dc_module_set_fusion(m, DC_FUSE_NONE) runs every layer on its own (to compare
 * fused and unfused runs, or to see each layer in a graph). */
DC_API unsigned dc_module_set_fusion(dc_module *m, unsigned fusions);
DC_API unsigned dc_module_fusion(const dc_module *m);

/* Calls fn on every module, children before their parent (PyTorch's apply); path is the dotted
 * path from m. Stops at, and returns, the first non-zero status fn returns. */
typedef int (*dc_module_fn)(dc_module *m, const char *path, void *ud);
DC_API int dc_module_apply(dc_module *m, dc_module_fn fn, void *ud);
/* Re-runs the default initialisation of every layer (reset_parameters), with the deepc RNG. */
DC_API int dc_module_reset_parameters(dc_module *m);

/* PyTorch's repr: "Sequential(\n  (0): Linear(in_features=4, out_features=2, bias=True)\n)".
 * A malloc'ed string (free with free()), or NULL. */
DC_API char *dc_module_repr(const dc_module *m);
DC_API int dc_module_print(FILE *f, const dc_module *m);

/* ---- state dicts: ordered key -> tensor maps with PyTorch's keys ---- */
typedef struct dc_state_dict dc_state_dict;
DC_API dc_state_dict *dc_state_dict_new(void);
DC_API void dc_state_dict_free(dc_state_dict *sd);
/* Stores its own reference to t under key (replacing an existing entry); the caller keeps theirs.
 */
DC_API int dc_state_dict_set(dc_state_dict *sd, const char *key, dc_tensor *t);
DC_API dc_tensor *dc_state_dict_get(const dc_state_dict *sd, const char *key); /* NULL if absent */
DC_API int dc_state_dict_size(const dc_state_dict *sd);
DC_API const char *dc_state_dict_key_at(const dc_state_dict *sd, int i);
DC_API dc_tensor *dc_state_dict_tensor_at(const dc_state_dict *sd, int i);
/* Parameters and persistent buffers ("features.0.weight", "bn.num_batches_tracked" as int64
 * 0-d), sharing storage with the module, in PyTorch's order. */
DC_API dc_state_dict *dc_module_state_dict(const dc_module *m);

typedef struct dc_load_result {
  int nmissing, nunexpected;
  char **missing;    /* keys the module has and the dict lacks */
  char **unexpected; /* keys the dict has and the module lacks */
} dc_load_result;
/* Copies the dict's values into the module's parameters and buffers (converting dtype).
 * Mis-shaped keys are always an error; with strict, missing and unexpected keys are too. All
 * problems are listed in one message (key, expected vs given shape) and nothing is changed on
 * error. A missing num_batches_tracked is not an error (older checkpoints lack it).
 * res (may be NULL) receives the missing / unexpected keys; free with dc_load_result_free. */
DC_API int dc_module_load_state_dict(dc_module *m, const dc_state_dict *sd, bool strict,
                                     dc_load_result *res);
DC_API void dc_load_result_free(dc_load_result *res);

/* ---- layers (PyTorch's names, arguments, parameter names and default initialisation) ----
 * Options use designated initialisers: zero fields take PyTorch's defaults. A layer needing a
 * rectangular kernel/stride/padding/dilation sets the *_hw pair, which then overrides the
 * square value: dc_nn_conv2d(3, 8, 0, .kernel_hw = {3, 5}, .padding_hw = {1, 2}). */

/* Linear(in_features, out_features, bias=True): weight [out, in], bias [out]; x [*, in]. */
typedef struct dc_nn_linear_opts {
  bool no_bias; /* bias=False */
} dc_nn_linear_opts;
DC_API dc_module *dc_nn_linear_opt(int64_t in_features, int64_t out_features, dc_nn_linear_opts o);
#define dc_nn_linear(in, out, ...) dc_nn_linear_opt((in), (out), (dc_nn_linear_opts){__VA_ARGS__})

/* Conv2d(in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
 * bias=True): weight [Cout, Cin/groups, kH, kW], bias [Cout]; x [N, Cin, H, W]. */
typedef struct dc_nn_conv2d_opts {
  int stride, padding, dilation, groups;                         /* 0 = 1, 0, 1, 1 */
  int kernel_hw[2], stride_hw[2], padding_hw[2], dilation_hw[2]; /* override when nonzero */
  bool padding_same;                                             /* padding="same" (stride 1) */
  bool no_bias;                                                  /* bias=False */
} dc_nn_conv2d_opts;
DC_API dc_module *dc_nn_conv2d_opt(int64_t in_channels, int64_t out_channels, int kernel_size,
                                   dc_nn_conv2d_opts o);
#define dc_nn_conv2d(cin, cout, k, ...)                                                            \
  dc_nn_conv2d_opt((cin), (cout), (k), (dc_nn_conv2d_opts){__VA_ARGS__})

/* MaxPool2d(kernel_size, stride=kernel_size, padding=0, dilation=1, ceil_mode=False) and
 * AvgPool2d(kernel_size, stride=kernel_size, padding=0, ceil_mode=False, count_include_pad=True,
 * divisor_override=None). */
typedef struct dc_nn_pool2d_opts {
  int stride, padding, dilation; /* stride 0 = kernel size; dilation 0 = 1 (max pooling only) */
  int kernel_hw[2], stride_hw[2], padding_hw[2], dilation_hw[2]; /* override when nonzero */
  bool ceil_mode;
  bool exclude_pad;     /* average pooling: count_include_pad=False */
  int divisor_override; /* average pooling: divide by this instead (0 = None) */
} dc_nn_pool2d_opts;
DC_API dc_module *dc_nn_maxpool2d_opt(int kernel_size, dc_nn_pool2d_opts o);
DC_API dc_module *dc_nn_avgpool2d_opt(int kernel_size, dc_nn_pool2d_opts o);
#define dc_nn_maxpool2d(k, ...) dc_nn_maxpool2d_opt((k), (dc_nn_pool2d_opts){__VA_ARGS__})
#define dc_nn_avgpool2d(k, ...) dc_nn_avgpool2d_opt((k), (dc_nn_pool2d_opts){__VA_ARGS__})
/* AdaptiveAvgPool2d((out_h, out_w)) / AdaptiveMaxPool2d; 0 keeps the input size (None). */
DC_API dc_module *dc_nn_adaptive_avgpool2d(int64_t out_h, int64_t out_w);
DC_API dc_module *dc_nn_adaptive_maxpool2d(int64_t out_h, int64_t out_w);

/* BatchNorm1d / BatchNorm2d(num_features, eps=1e-5, momentum=0.1, affine=True,
 * track_running_stats=True): weight (1) and bias (0) [C]; buffers running_mean (0),
 * running_var (1) [C] and num_batches_tracked (int64 0-d). x [N, C] or [N, C, L] / [N, C, H, W]. */
typedef struct dc_nn_batchnorm_opts {
  double eps;            /* 0 = 1e-5 */
  double momentum;       /* 0 = 0.1 (to freeze the running statistics, use eval mode) */
  bool cumulative;       /* momentum=None: cumulative moving average */
  bool no_affine;        /* affine=False */
  bool no_running_stats; /* track_running_stats=False */
} dc_nn_batchnorm_opts;
DC_API dc_module *dc_nn_batchnorm1d_opt(int64_t num_features, dc_nn_batchnorm_opts o);
DC_API dc_module *dc_nn_batchnorm2d_opt(int64_t num_features, dc_nn_batchnorm_opts o);
#define dc_nn_batchnorm1d(c, ...) dc_nn_batchnorm1d_opt((c), (dc_nn_batchnorm_opts){__VA_ARGS__})
#define dc_nn_batchnorm2d(c, ...) dc_nn_batchnorm2d_opt((c), (dc_nn_batchnorm_opts){__VA_ARGS__})

/* Dropout(p) zeroes elements, Dropout2d(p) whole channels, in training mode only. */
DC_API dc_module *dc_nn_dropout(double p);
DC_API dc_module *dc_nn_dropout2d(double p);

/* Flatten(start_dim=1, end_dim=-1) and Identity(). */
DC_API dc_module *dc_nn_flatten(int start_dim, int end_dim);
DC_API dc_module *dc_nn_identity(void);

/* Activations. Softmax/LogSoftmax take DC_NN_DIM_NONE for PyTorch's dim=None (implicit dim). */
#define DC_NN_DIM_NONE (-1000)
DC_API dc_module *dc_nn_relu(void);
DC_API dc_module *dc_nn_leaky_relu(double negative_slope); /* PyTorch's default 0.01 */
DC_API dc_module *dc_nn_elu(double alpha);                 /* default 1.0 */
DC_API dc_module *dc_nn_selu(void);
DC_API dc_module *dc_nn_gelu(bool tanh_approximation); /* approximate='none' / 'tanh' */
DC_API dc_module *dc_nn_sigmoid(void);
DC_API dc_module *dc_nn_tanh(void);
DC_API dc_module *dc_nn_softmax(int dim);
DC_API dc_module *dc_nn_log_softmax(int dim);
DC_API dc_module *dc_nn_softplus(double beta, double threshold);  /* defaults 1, 20 */
DC_API dc_module *dc_nn_hardtanh(double min_val, double max_val); /* defaults -1, 1 */

/* Sequential: children named "0", "1", ... run in order. Takes over the modules; if one of
 * them is NULL (a failed constructor) all are freed and NULL is returned.
 * dc_nn_sequential(dc_nn_linear(4, 8), dc_nn_relu(), dc_nn_linear(8, 2)). */
DC_API dc_module *dc_nn_sequential_of(dc_module *const *mods, int n);
#define dc_nn_sequential(...)                                                                      \
  dc_nn_sequential_of((dc_module *const[]){__VA_ARGS__},                                           \
                      (int)(sizeof((dc_module *const[]){__VA_ARGS__}) / sizeof(dc_module *)))
/* Appends a layer named by its index; takes over it. Returns seq, or NULL on error. */
DC_API dc_module *dc_nn_sequential_append(dc_module *seq, dc_module *layer);

/* ---- initialisation (torch.nn.init): in place, no autograd, draws from the deepc RNG so
 * dc_manual_seed reproduces them. Return DC_OK or a status with dc_last_error(). ---- */
typedef enum dc_fan_mode { DC_FAN_IN = 0, DC_FAN_OUT } dc_fan_mode;
/* torch.nn.init.calculate_gain: "linear", "conv1d/2d/3d", "conv_transpose*", "sigmoid" -> 1,
 * "tanh" -> 5/3, "relu" -> sqrt(2), "leaky_relu" -> sqrt(2/(1+param^2)) (param is the negative
 * slope; pass 0.01 for PyTorch's default), "selu" -> 3/4. NAN + error for an unknown name. */
DC_API double dc_init_calculate_gain(const char *nonlinearity, double param);
/* fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (2+ dims). */
DC_API int dc_init_calculate_fans(const dc_tensor *t, int64_t *fan_in, int64_t *fan_out);
DC_API int dc_init_uniform_(dc_tensor *t, double a, double b);
DC_API int dc_init_normal_(dc_tensor *t, double mean, double std);
DC_API int dc_init_constant_(dc_tensor *t, double value);
DC_API int dc_init_zeros_(dc_tensor *t);
DC_API int dc_init_ones_(dc_tensor *t);
/* Xavier/Glorot: U(-b, b) with b = gain*sqrt(6/(fan_in+fan_out)), or N(0, gain*sqrt(2/(...))). */
DC_API int dc_init_xavier_uniform_(dc_tensor *t, double gain);
DC_API int dc_init_xavier_normal_(dc_tensor *t, double gain);
/* Kaiming/He: std = gain(nonlinearity, a) / sqrt(fan); uniform bound sqrt(3) * std.
 * nonlinearity NULL = "leaky_relu" (PyTorch's default); use "relu" for He initialisation. */
DC_API int dc_init_kaiming_uniform_(dc_tensor *t, double a, dc_fan_mode mode,
                                    const char *nonlinearity);
DC_API int dc_init_kaiming_normal_(dc_tensor *t, double a, dc_fan_mode mode,
                                   const char *nonlinearity);
/* (Semi-)orthogonal matrix from the QR decomposition of a normal draw, times gain (2+ dims;
 * trailing dims flattened). */
DC_API int dc_init_orthogonal_(dc_tensor *t, double gain);
#define dc_init_glorot_uniform_ dc_init_xavier_uniform_
#define dc_init_glorot_normal_ dc_init_xavier_normal_
#define dc_init_he_uniform_ dc_init_kaiming_uniform_
#define dc_init_he_normal_ dc_init_kaiming_normal_

/* ---- layer specs ---- */
typedef struct dc_spec_opts {
  int64_t classes;    /* value of the name `classes` / `num_classes` in a spec (0: not set) */
  int64_t max_params; /* refuse a layer with more parameters than this (0: 2^31) */
} dc_spec_opts;
/* Builds a Sequential from a comma-separated list of layers with PyTorch's constructor
 * arguments, positional or by keyword, case-insensitive names:
 * "conv2d(1,32,5,padding=2), batchnorm2d(32), relu, maxpool2d(2), flatten, linear(6272,10)".
 * Errors print the spec with a caret under the column and suggest the closest layer name. */
DC_API dc_module *dc_nn_from_spec_opt(const char *spec, dc_spec_opts o);
#define dc_nn_from_spec(spec, ...) dc_nn_from_spec_opt((spec), (dc_spec_opts){__VA_ARGS__})

/* ---- model summary (torchinfo's table) ---- */
typedef struct dc_summary_row {
  char *name;         /* dotted path ("features.0"); "" for the model itself */
  const char *type;   /* "Conv2d" */
  int depth;          /* 0 for the model, 1 for its children, ... */
  bool is_leaf;       /* no children */
  dc_shape out_shape; /* output of this call */
  int64_t params;     /* elements of the module's own parameters */
  int64_t macs;       /* multiply-accumulates of this call (leaves; 0 for containers) */
} dc_summary_row;

typedef struct dc_model_summary {
  int nrows;
  dc_summary_row *rows; /* in call order */
  dc_shape input_shape; /* with the batch of 1: [1, C, H, W] */
  dc_shape output_shape;
  int64_t total_params, trainable_params, non_trainable_params;
  int64_t total_macs;       /* sum over leaf calls */
  int64_t input_bytes;      /* the input batch */
  int64_t activation_bytes; /* outputs of the leaf layers, x2 for their gradients */
  int64_t param_bytes;      /* parameters and buffers */
} dc_model_summary;
/* Runs m (eval mode, no grad) on a zero batch of one input of shape input_shape (no batch dim,
 * e.g. [C, H, W]) and records every module call. Free with dc_summary_free. */
DC_API dc_model_summary *dc_summary(dc_module *m, dc_shape input_shape);
DC_API int dc_summary_print(FILE *f, const dc_model_summary *s);
DC_API void dc_summary_free(dc_model_summary *s);
/* Formats n with thousands separators ("1,234,567") into buf; returns buf. */
DC_API char *dc_format_count(int64_t n, char *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif
