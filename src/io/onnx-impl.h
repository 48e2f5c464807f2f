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
/* Writes size bytes to path atomically: path.tmp in the same folder, fflush, fsync, rename. */
int dc__onnx_write_file(const char *path, const void *data, size_t size);

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

/* ---- limits of the reader (onnx_import.c) ---- */
enum {
  DC__ONNX_MAX_NODES = 100000, /* nodes in a graph */
  DC__ONNX_MAX_INPUTS = 16,    /* inputs or outputs of one node */
  DC__ONNX_MAX_NAME = 4096,    /* bytes of a value / node name */
  DC__ONNX_MAX_INITS = 100000  /* initializers */
};
#define DC__ONNX_MAX_BYTES ((size_t)2 << 30) /* a model file (protobuf's own 2 GiB limit) */

#endif
