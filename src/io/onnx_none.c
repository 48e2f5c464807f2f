/* ONNX calls of a build without protobuf-c (cmake/onnx.cmake compiles this file instead of
 * onnx_*.c): each one says what to install. */
#include <deepc/onnx.h>

#include "../core/core-impl.h"

#define NO_ONNX                                                                                    \
  "ONNX support is not in this build of deepc: install protoc-c and libprotobuf-c "                \
  "(scripts/install-deps.sh) and configure again"

int dc_onnx_export(dc_module *m, const char *path, const dc_onnx_export_opts *o) {
  (void)m, (void)path, (void)o;
  return dc__errs(DC_ERR_UNSUPPORTED, NO_ONNX);
}

dc_module *dc_onnx_load(const char *path) {
  (void)path;
  return dc__err(DC_ERR_UNSUPPORTED, NO_ONNX);
}

dc_module *dc_onnx_load_buffer(const void *data, size_t size, const char *what) {
  (void)data, (void)size, (void)what;
  return dc__err(DC_ERR_UNSUPPORTED, NO_ONNX);
}

dc_shape dc_onnx_input_shape(const dc_module *m) {
  (void)m;
  return (dc_shape){0};
}

int dc_onnx_replace_head(dc_module *m, int64_t num_classes) {
  (void)m, (void)num_classes;
  return dc__errs(DC_ERR_UNSUPPORTED, NO_ONNX);
}
