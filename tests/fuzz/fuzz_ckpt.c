/* Fuzz target: a deepc checkpoint (safetensors layout) through dc_ckpt_load, every tensor and
 * metadata value read back. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dc_ckpt *c = dc_ckpt_load(dc_fuzz_file(data, size, "fuzz.ckpt"));
  for (int i = 0; c && i < dc_ckpt_num_tensors(c); i++) {
    dc_ckpt_name_at(c, i);
    dc_fuzz_touch(dc_ckpt_tensor_at(c, i));
  }
  dc_ckpt_meta(c, "format");
  dc_state_dict *sd = c ? dc_ckpt_get_state_dict(c, "model.") : NULL;
  dc_state_dict_free(sd);
  dc_ckpt_free(c);
  dc_clear_error();
  dc_fuzz_check_live("ckpt");
  return 0;
}
