/* placeholder */
#include "onnx-impl.h"
dc_module *dc_onnx_load(const char *path) {
  (void)path;
  return dc__err(DC_ERR_UNSUPPORTED, "todo");
}
dc_module *dc_onnx_load_buffer(const void *data, size_t size, const char *what) {
  (void)data;
  (void)size;
  (void)what;
  return dc__err(DC_ERR_UNSUPPORTED, "todo");
}
dc_shape dc_onnx_input_shape(const dc_module *m) {
  (void)m;
  return (dc_shape){0};
}
