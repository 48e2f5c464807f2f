/* Fuzz target: an ONNX model (protobuf ModelProto) through the importer (dc_onnx_load_buffer),
 * then, when it loads and declares a small input, one forward of a zero sample. */
#include "fuzz.h"

#include <deepc/deepc.h>
#include <deepc/onnx.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dc_module *m = dc_onnx_load_buffer(data, size, "fuzz.onnx");
  dc_shape one = dc_onnx_input_shape(m);
  int64_t n = 1;
  for (int i = 0; i < one.ndim; i++) n *= one.d[i] < (1 << 16) ? one.d[i] : (1 << 16);
  if (m && one.ndim && n <= (1 << 16)) {
    dc_shape s = {.ndim = one.ndim + 1, .d = {1}};
    for (int i = 0; i < one.ndim; i++) s.d[i + 1] = one.d[i];
    dc_scope_begin();
    dc_tensor *y = dc_module_forward(m, dc_zeros(s, DC_F32));
    if (y) dc_fuzz_touch(y);
    dc_scope_end();
  }
  dc_module_free(m);
  dc_clear_error();
  dc_fuzz_check_live("onnx");
  return 0;
}
