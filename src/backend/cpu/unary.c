/* CPU unary elementwise kernels (placeholder until the family lands). */
#include "cpu-impl.h"

int dc__cpu_unary(dc_unary_op op, dc_tensor *out, const dc_tensor *x, const double *p) {
  return dc__errs(DC_ERR_UNSUPPORTED, "unary kernel missing");
}
