/* ONNX export and import: a module tree written as an ONNX model (opset 17 by default, a dynamic
 * batch dimension, node and initializer names that follow the module tree, class names in the
 * metadata), and an .onnx graph of the same ops loaded back as a trainable module. The protobuf
 * layer is protobuf-c on the official onnx.proto; docs/onnx.md has the op table.
 * Shapes: N batch (dynamic in the file), C channels, H/W height/width, K outputs. */
#ifndef DEEPC_ONNX_H
#define DEEPC_ONNX_H

#include "nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Options of dc_onnx_export: zero fields take the defaults. */
typedef struct dc_onnx_export_opts {
  dc_shape input;                 /* one example without the batch: [C, H, W] or [F] (required) */
  int opset;                      /* ONNX opset of the default domain (0: 17; 13..21) */
  const char *const *class_names; /* K names written to metadata_props "classes" (NULL: none) */
  int64_t num_class_names;
  const char *model_name; /* metadata_props "deepc.model" and the graph's name (NULL: type) */
} dc_onnx_export_opts;

/* Writes m (evaluated in eval mode, float32) to path atomically (path.tmp in the same folder,
 * fsync, rename). The graph's input "input" is [N, ...input], its output "output" [N, ...].
 * DC_OK, or a status whose message names the module path and type that cannot be exported. */
DC_API int dc_onnx_export(dc_module *m, const char *path, const dc_onnx_export_opts *o);

/* Reads an .onnx file as a module (type "OnnxGraph") that runs its nodes in order on deepc ops
 * with autograd, its initializers as parameters (names with '.' -> '_'). NULL + an error naming
 * the file and the field (or the node and op it does not support) on failure. */
DC_API dc_module *dc_onnx_load(const char *path);
/* Same from bytes in memory; `what` names them in messages. */
DC_API dc_module *dc_onnx_load_buffer(const void *data, size_t size, const char *what);
/* Fine-tuning for another number of classes: the graph's last Gemm with a weight initializer
 * (the head) gets fresh weights [num_classes, F] (PyTorch's Linear initialisation). */
DC_API int dc_onnx_replace_head(dc_module *m, int64_t num_classes);
/* The shape of one input without the batch that an imported graph declares ({0} when it is not
 * an OnnxGraph or the input has dynamic sizes besides the batch). */
DC_API dc_shape dc_onnx_input_shape(const dc_module *m);

#ifdef __cplusplus
}
#endif
#endif
