/* bytes_of: a tensor's bytes on any device, copied into a new host buffer (for the tests that
 * compare devices bit for bit). */
#ifndef TENSOR_BYTES_H
#define TENSOR_BYTES_H

#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <stdlib.h>

/* The bytes of t (any device), malloc'ed; *n their count. */
static inline void *bytes_of(const dc_tensor *t, size_t *n) {
  cr_assert_not_null(t, "%s", dc_last_error());
  *n = (size_t)dc_numel(t) * dc_dtype_size(t->dtype);
  void *p = malloc(*n + 1);
  cr_assert_eq(dc_copy_to_buffer(t, p, *n), DC_OK, "%s", dc_last_error());
  return p;
}

#endif
