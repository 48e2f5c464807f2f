/* Fuzz target: `deepc train` configuration text (INI sections, continuation lines, ${vars})
 * through dc_config_parse, and the same text as a layer spec through dc_nn_from_spec. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = '\0';
  dc_config *c = dc_config_parse(text, "fuzz.ini");
  if (c) {
    free(dc_config_to_string(c, false));
    dc_config_get(c, "model.layers");
    dc_config_free(c);
  }
  /* layers up to 2^20 parameters: a legal 50-million-parameter Linear takes over 10 s to
   * initialise under ASan, a timeout that finds nothing (the 2^31 limit has its own bad files) */
  dc_module *m = dc_nn_from_spec(text, .classes = 10, .max_params = 1 << 20);
  dc_module_free(m);
  free(text);
  dc_clear_error();
  dc_fuzz_check_live("config");
  return 0;
}
