/* Internals of the ONNX reader and writer shared by src/io/onnx_*.c: the protobuf-c messages of
 * the vendored onnx.proto (generated into the build folder), an allocator through deepc's hook,
 * the graph builder of the exporter and the limits the reader enforces.
 * Shapes: N batch, C channels, H/W height/width, F features, K outputs. */
#ifndef DC_IO_ONNX_IMPL_H
#define DC_IO_ONNX_IMPL_H

#include <deepc/onnx.h>
#include <deepc/ops.h>

#include "../core/core-impl.h"
#include "onnx.pb-c.h"

/* ---- allocation and small helpers (onnx_proto.c) ---- */
/* protobuf-c allocations through dc__malloc/dc__free (so allocation failures can be injected). */
extern ProtobufCAllocator dc__onnx_alloc;
/* A message from dc__onnx_alloc, initialised by its init function; NULL + DC_ERR_NOMEM. */
void *dc__onnx_new(size_t size, void (*init)(void *));
#define DC__ONNX_NEW(type, init) ((type *)dc__onnx_new(sizeof(type), (void (*)(void *))(init)))
/* Appends p to the pointer array *arr of *n entries (grown by one); false on no memory. */
bool dc__onnx_push(void ***arr, size_t *n, void *p);
/* The model in data, unpacked under a memory budget (freed with free_unpacked and
 * dc__onnx_alloc); NULL + an error naming `what` when malformed or too big. */
Onnx__ModelProto *dc__onnx_unpack(const void *data, size_t size, const char *what);
/* Writes size bytes to path atomically (dc__write_atomic: a temp file, fsync, rename). */
int dc__onnx_write_file(const char *path, const void *data, size_t size);

enum {
  DC__ONNX_MAX_INPUTS = 16, /* inputs of one node */
  DC__ONNX_MAX_NAME = 4096  /* bytes of a value / node name */
};

/* ---- the graph builder (onnx_graph.c) ---- */
typedef struct dc__onnx_builder {
  Onnx__ModelProto *model; /* owns everything below; freed with free_unpacked */
  Onnx__GraphProto *graph;
  int opset;
  Onnx__NodeProto *last; /* the node that made the latest value (renamed "output" at the end) */
} dc__onnx_builder;

int dc__onnx_builder_init(dc__onnx_builder *b, const char *graph_name, int opset);
void dc__onnx_builder_free(dc__onnx_builder *b);
/* A node op(inputs) named after base (made unique: "layer1.0.relu", "layer1.0.relu_1"), whose
 * one output has the node's name. NULL + error on no memory. */
Onnx__NodeProto *dc__onnx_node(dc__onnx_builder *b, const char *op, const char *base, int nin,
                               const char *const *inputs);
/* The name of a node's output (the value later nodes read). */
static inline const char *dc__onnx_out(const Onnx__NodeProto *n) { return n ? n->output[0] : NULL; }
/* Attributes of a node; false on no memory. */
bool dc__onnx_attr_int(Onnx__NodeProto *n, const char *name, int64_t v);
bool dc__onnx_attr_float(Onnx__NodeProto *n, const char *name, float v);
bool dc__onnx_attr_ints(Onnx__NodeProto *n, const char *name, int k, const int64_t *v);
/* An initializer: t's values as float32 raw data (any float dtype, any device), named name. */
const char *dc__onnx_init_tensor(dc__onnx_builder *b, const char *name, dc_tensor *t);
/* An initializer of k int64 values (dims [k]) or of a float32 constant filled with v (dims). */
const char *dc__onnx_init_i64(dc__onnx_builder *b, const char *name, int k, const int64_t *v);
const char *dc__onnx_init_fill(dc__onnx_builder *b, const char *name, dc_shape dims, float v);
/* Graph input/output of float32 [N, ...one] with N the symbolic "batch". */
bool dc__onnx_io(dc__onnx_builder *b, bool output, const char *name, dc_shape one);
/* metadata_props key = value. */
bool dc__onnx_meta(dc__onnx_builder *b, const char *key, const char *value);
/* Packs the model and writes it to path atomically. */
int dc__onnx_builder_write(dc__onnx_builder *b, const char *path);

/* ---- the exporter's per-layer emitters (onnx_emit.c) ----
 * Each adds the nodes of one leaf module reading value x (whose example tensor is xt, used for
 * ranks and sizes) and returns the output value's name, NULL + error when the layer (or its
 * setting) has no ONNX form. path is the module's dotted path (names of nodes, initializers). */
const char *dc__onnx_emit_leaf(dc__onnx_builder *b, dc_module *m, const char *path, const char *x,
                               const dc_tensor *xt);

/* ---- the imported graph (onnx_import.c reads it, onnx_ops.c runs it) ---- */
/* The ops the reader knows: X(enum suffix, ONNX op_type, min inputs, max inputs). */
#define DC__ONNX_OPS(X)                                                                            \
  X(CONV, "Conv", 2, 3)                                                                            \
  X(GEMM, "Gemm", 2, 3)                                                                            \
  X(MATMUL, "MatMul", 2, 2)                                                                        \
  X(BATCHNORM, "BatchNormalization", 5, 5)                                                         \
  X(MAXPOOL, "MaxPool", 1, 1)                                                                      \
  X(AVGPOOL, "AveragePool", 1, 1)                                                                  \
  X(GLOBAL_AVGPOOL, "GlobalAveragePool", 1, 1)                                                     \
  X(GLOBAL_MAXPOOL, "GlobalMaxPool", 1, 1)                                                         \
  X(ADD, "Add", 2, 2)                                                                              \
  X(SUB, "Sub", 2, 2)                                                                              \
  X(MUL, "Mul", 2, 2)                                                                              \
  X(DIV, "Div", 2, 2)                                                                              \
  X(POW, "Pow", 2, 2)                                                                              \
  X(RELU, "Relu", 1, 1)                                                                            \
  X(LEAKY_RELU, "LeakyRelu", 1, 1)                                                                 \
  X(ELU, "Elu", 1, 1)                                                                              \
  X(SELU, "Selu", 1, 1)                                                                            \
  X(SIGMOID, "Sigmoid", 1, 1)                                                                      \
  X(TANH, "Tanh", 1, 1)                                                                            \
  X(ERF, "Erf", 1, 1)                                                                              \
  X(SOFTPLUS, "Softplus", 1, 1)                                                                    \
  X(SOFTMAX, "Softmax", 1, 1)                                                                      \
  X(LOG_SOFTMAX, "LogSoftmax", 1, 1)                                                               \
  X(CLIP, "Clip", 1, 3)                                                                            \
  X(FLATTEN, "Flatten", 1, 1)                                                                      \
  X(RESHAPE, "Reshape", 2, 2)                                                                      \
  X(DROPOUT, "Dropout", 1, 3)                                                                      \
  X(IDENTITY, "Identity", 1, 1)
#define DC__ONNX_ENUM(e, name, lo, hi) DC__ONNX_##e,
typedef enum dc__onnx_op { DC__ONNX_OPS(DC__ONNX_ENUM) DC__ONNX_OP_COUNT } dc__onnx_op;
#undef DC__ONNX_ENUM

/* One node as the reader checked it: its op, value indices and the attributes its op reads. */
typedef struct dc__onnx_gnode {
  dc__onnx_op op;
  char *name; /* the node's name, or "#<index> (<op>)" when it has none (messages) */
  int nin;
  int in[DC__ONNX_MAX_INPUTS]; /* value indices; -1: an optional input left out */
  int out;                     /* value index of its (first) output */
  int64_t kernel[2], strides[2], pads[4], dilations[2], group, axis;
  int64_t ceil_mode, count_include_pad, trans_a, trans_b;
  bool coerce_2d; /* Softmax / LogSoftmax before opset 13: over the dims from axis on */
  double alpha, beta, epsilon, lo, hi, ratio;
  int nshape;
  int64_t shape[DC_MAX_DIMS]; /* Reshape's target (constant) */
} dc__onnx_gnode;

/* The state block of an "OnnxGraph" module (onnx_module.c). */
typedef struct dc__onnx_graph {
  int nvalues;
  char **names;       /* [nvalues] value names (owned) */
  dc_tensor **consts; /* [nvalues] initializers (the module's parameters/buffers), else NULL */
  int input, output;  /* value indices */
  int nnodes;
  dc__onnx_gnode *nodes; /* in topological order (checked) */
  dc_shape input_one;    /* one input without the batch ({0}: dynamic sizes) */
  char *file;            /* what it was read from (messages) */
} dc__onnx_graph;

extern const dc_module_type dc__type_onnx_graph;
/* The ONNX name of an op; the op of a name (-1: not one deepc reads) with its input counts. */
const char *dc__onnx_op_name(dc__onnx_op op);
int dc__onnx_op_find(const char *name, int *min_in, int *max_in);
void dc__onnx_graph_free(void *state);
/* Reads the attributes of node n (op already set) into g, checking them; DC_OK or an error
 * naming file, node and attribute. consts: the values known at load time (Reshape's shape,
 * Clip's bounds, Dropout's ratio). */
int dc__onnx_node_attrs(dc__onnx_gnode *g, const Onnx__NodeProto *n, int opset,
                        dc_tensor *const *consts, const char *file);
/* Runs one node on its input tensors; the new output tensor, or NULL + error. training: the
 * module's mode (batch norm statistics, dropout). */
dc_tensor *dc__onnx_run_node(const dc__onnx_gnode *g, dc_tensor *const *in, bool training);

/* A tensor message as a new tensor (float32 or int64), every size checked first; external
 * data is read from dir (the model's folder) and may not leave it (onnx_tensor.c). */
dc_tensor *dc__onnx_tensor(const Onnx__TensorProto *t, const char *file, const char *dir);

/* ---- limits of the reader (onnx_import.c) ---- */
enum {
  DC__ONNX_MAX_NODES = 100000, /* nodes in a graph */
  DC__ONNX_MAX_INITS = 100000  /* initializers */
};
#define DC__ONNX_MAX_BYTES ((size_t)2 << 30)  /* a model file (protobuf's own 2 GiB limit) */
#define DC__ONNX_MAX_ELEMS ((int64_t)1 << 31) /* elements of one tensor */

#endif
