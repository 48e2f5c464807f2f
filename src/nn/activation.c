/* Parameter-free layers as modules: activations (ReLU, LeakyReLU, ELU, SELU, GELU, Sigmoid, Tanh,
 * Softmax, LogSoftmax, Softplus, Hardtanh) and dropout (Dropout, Dropout2d). Each holds its
 * PyTorch arguments and calls the op from ops.h / nn_functional.h. */
#include "nn-impl.h"

#include <math.h>
#include <stdio.h>

#define ACT(m) ((const dc__act_state *)(m)->state)

static dc_tensor *relu_fw(dc_module *m, dc_tensor *x) {
  (void)m;
  return dc_relu(x);
}
static dc_tensor *selu_fw(dc_module *m, dc_tensor *x) {
  (void)m;
  return dc_selu(x);
}
static dc_tensor *sigmoid_fw(dc_module *m, dc_tensor *x) {
  (void)m;
  return dc_sigmoid(x);
}
static dc_tensor *tanh_fw(dc_module *m, dc_tensor *x) {
  (void)m;
  return dc_tanh(x);
}
static dc_tensor *leaky_fw(dc_module *m, dc_tensor *x) { return dc_leaky_relu(x, ACT(m)->a); }
static dc_tensor *elu_fw(dc_module *m, dc_tensor *x) { return dc_elu(x, ACT(m)->a); }
static dc_tensor *gelu_fw(dc_module *m, dc_tensor *x) { return dc_gelu(x, ACT(m)->flag); }
static dc_tensor *softplus_fw(dc_module *m, dc_tensor *x) {
  return dc_softplus(x, ACT(m)->a, ACT(m)->b);
}
static dc_tensor *hardtanh_fw(dc_module *m, dc_tensor *x) {
  return dc_hardtanh(x, ACT(m)->a, ACT(m)->b);
}
static dc_tensor *dropout_fw(dc_module *m, dc_tensor *x) {
  return dc_dropout(x, ACT(m)->a, m->training);
}
static dc_tensor *dropout2d_fw(dc_module *m, dc_tensor *x) {
  return dc_dropout2d(x, ACT(m)->a, m->training);
}

/* PyTorch's implicit softmax dim for dim=None (_get_softmax_dim). */
static int softmax_dim(const dc_module *m, const dc_tensor *x) {
  int d = ACT(m)->dim;
  if (d != DC_NN_DIM_NONE) return d;
  return x->ndim == 0 || x->ndim == 1 || x->ndim == 3 ? 0 : 1;
}
static dc_tensor *softmax_fw(dc_module *m, dc_tensor *x) {
  return dc_softmax(x, softmax_dim(m, x));
}
static dc_tensor *log_softmax_fw(dc_module *m, dc_tensor *x) {
  return dc_log_softmax(x, softmax_dim(m, x));
}

/* A scalar as PyTorch prints it: an int if given as one, else Python's float repr. */
static char *fmt_num(double v, bool is_int, char *buf, size_t n) {
  if (is_int)
    snprintf(buf, n, "%lld", (long long)v);
  else
    dc__fmt_float(v, buf, n);
  return buf;
}

static void leaky_repr(const dc_module *m, char *buf, size_t n) {
  char a[32];
  snprintf(buf, n, "negative_slope=%s", fmt_num(ACT(m)->a, ACT(m)->a_is_int, a, sizeof a));
}
static void elu_repr(const dc_module *m, char *buf, size_t n) {
  char a[32];
  snprintf(buf, n, "alpha=%s", fmt_num(ACT(m)->a, ACT(m)->a_is_int, a, sizeof a));
}
static void gelu_repr(const dc_module *m, char *buf, size_t n) {
  snprintf(buf, n, "approximate='%s'", ACT(m)->flag ? "tanh" : "none");
}
static void softmax_repr(const dc_module *m, char *buf, size_t n) {
  if (ACT(m)->dim == DC_NN_DIM_NONE)
    snprintf(buf, n, "dim=None");
  else
    snprintf(buf, n, "dim=%d", ACT(m)->dim);
}
static void softplus_repr(const dc_module *m, char *buf, size_t n) {
  char a[32], b[32];
  snprintf(buf, n, "beta=%s, threshold=%s", fmt_num(ACT(m)->a, ACT(m)->a_is_int, a, sizeof a),
           fmt_num(ACT(m)->b, ACT(m)->b_is_int, b, sizeof b));
}
static void hardtanh_repr(const dc_module *m, char *buf, size_t n) {
  char a[32], b[32];
  snprintf(buf, n, "min_val=%s, max_val=%s", fmt_num(ACT(m)->a, ACT(m)->a_is_int, a, sizeof a),
           fmt_num(ACT(m)->b, ACT(m)->b_is_int, b, sizeof b));
}
static void dropout_repr(const dc_module *m, char *buf, size_t n) {
  char a[32];
  snprintf(buf, n, "p=%s, inplace=False", fmt_num(ACT(m)->a, ACT(m)->a_is_int, a, sizeof a));
}

const dc_module_type dc__type_relu = {.name = "ReLU", .forward = relu_fw};
static const dc_module_type type_selu = {.name = "SELU", .forward = selu_fw};
static const dc_module_type type_sigmoid = {.name = "Sigmoid", .forward = sigmoid_fw};
static const dc_module_type type_tanh = {.name = "Tanh", .forward = tanh_fw};
static const dc_module_type type_leaky = {
    .name = "LeakyReLU", .forward = leaky_fw, .extra_repr = leaky_repr};
static const dc_module_type type_elu = {.name = "ELU", .forward = elu_fw, .extra_repr = elu_repr};
static const dc_module_type type_gelu = {
    .name = "GELU", .forward = gelu_fw, .extra_repr = gelu_repr};
static const dc_module_type type_softmax = {
    .name = "Softmax", .forward = softmax_fw, .extra_repr = softmax_repr};
static const dc_module_type type_log_softmax = {
    .name = "LogSoftmax", .forward = log_softmax_fw, .extra_repr = softmax_repr};
static const dc_module_type type_softplus = {
    .name = "Softplus", .forward = softplus_fw, .extra_repr = softplus_repr};
static const dc_module_type type_hardtanh = {
    .name = "Hardtanh", .forward = hardtanh_fw, .extra_repr = hardtanh_repr};
static const dc_module_type type_dropout = {
    .name = "Dropout", .forward = dropout_fw, .extra_repr = dropout_repr};
static const dc_module_type type_dropout2d = {
    .name = "Dropout2d", .forward = dropout2d_fw, .extra_repr = dropout_repr};

static dc_module *act_new(const dc_module_type *type, dc__act_state s) {
  dc_module *m = dc_module_new(type, sizeof s);
  if (m) *(dc__act_state *)m->state = s;
  return m;
}

static bool integral(double v) { return v == floor(v) && fabs(v) < 1e15; }

dc_module *dc_nn_relu(void) { return act_new(&dc__type_relu, (dc__act_state){0}); }
dc_module *dc_nn_selu(void) { return act_new(&type_selu, (dc__act_state){0}); }
dc_module *dc_nn_sigmoid(void) { return act_new(&type_sigmoid, (dc__act_state){0}); }
dc_module *dc_nn_tanh(void) { return act_new(&type_tanh, (dc__act_state){0}); }
dc_module *dc_nn_leaky_relu(double negative_slope) {
  return act_new(&type_leaky, (dc__act_state){.a = negative_slope});
}
dc_module *dc_nn_elu(double alpha) { return act_new(&type_elu, (dc__act_state){.a = alpha}); }
dc_module *dc_nn_gelu(bool tanh_approximation) {
  return act_new(&type_gelu, (dc__act_state){.flag = tanh_approximation});
}
dc_module *dc_nn_softmax(int dim) { return act_new(&type_softmax, (dc__act_state){.dim = dim}); }
dc_module *dc_nn_log_softmax(int dim) {
  return act_new(&type_log_softmax, (dc__act_state){.dim = dim});
}
dc_module *dc_nn_softplus(double beta, double threshold) {
  return act_new(&type_softplus, (dc__act_state){.a = beta,
                                                 .b = threshold,
                                                 .a_is_int = integral(beta),
                                                 .b_is_int = integral(threshold)});
}
dc_module *dc_nn_hardtanh(double min_val, double max_val) {
  if (!(min_val < max_val))
    return dc__err(DC_ERR_ARG, "Hardtanh: min_val (%g) must be less than max_val (%g)", min_val,
                   max_val);
  return act_new(&type_hardtanh, (dc__act_state){.a = min_val, .b = max_val});
}

static dc_module *dropout_new(const dc_module_type *type, double p) {
  if (!(p >= 0 && p <= 1))
    return dc__err(DC_ERR_ARG, "%s: dropout probability has to be between 0 and 1, but got %g",
                   type->name, p);
  return act_new(type, (dc__act_state){.a = p});
}

dc_module *dc_nn_dropout(double p) { return dropout_new(&type_dropout, p); }
dc_module *dc_nn_dropout2d(double p) { return dropout_new(&type_dropout2d, p); }

/* ---- Sequential ---- */
/* The children in order, runs of them fused as the planner decides (fuse.c). */
static dc_tensor *sequential_forward(dc_module *m, dc_tensor *x) {
  dc__layers l = dc__layers_children(m);
  dc_tensor *h = dc__fuse_run(&l, dc__fuse_allowed(m, x->device), x);
  return h == x ? dc_reshape(x, dc_shape_of(x)) : h;
}

const dc_module_type dc__type_sequential = {.name = "Sequential", .forward = sequential_forward};

dc_module *dc_nn_sequential_append(dc_module *seq, dc_module *layer) {
  if (!seq) {
    dc_module_free(layer);
    return dc__err(DC_ERR_ARG, "sequential_append: sequential is NULL");
  }
  char name[24];
  snprintf(name, sizeof name, "%d", seq->children.n);
  bool failed = seq->failed;
  dc_module *r = dc_module_add(seq, name, layer);
  seq->failed = failed;
  return r ? seq : NULL;
}

dc_module *dc_nn_sequential_of(dc_module *const *mods, int n) {
  if (n < 0 || (n > 0 && !mods))
    return dc__err(DC_ERR_ARG, "sequential: bad module list (n = %d)", n);
  bool bad = false;
  for (int i = 0; i < n; i++) bad = bad || !mods[i];
  dc_module *seq = bad ? NULL : dc_module_new(&dc__type_sequential, 0);
  if (!seq) { /* a failed constructor: its message stays */
    for (int i = 0; i < n; i++) dc_module_free(mods[i]);
    return NULL;
  }
  for (int i = 0; i < n; i++)
    if (!dc_nn_sequential_append(seq, mods[i])) {
      for (int k = i + 1; k < n; k++) dc_module_free(mods[k]);
      dc_module_free(seq);
      return NULL;
    }
  return seq;
}
