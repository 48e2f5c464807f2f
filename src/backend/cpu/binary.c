/* CPU binary elementwise kernels (placeholder until the family lands). */
#include "cpu-impl.h"

int dc__cpu_binary(dc_binary_op op, dc_tensor *out, const dc_tensor *a, const dc_tensor *b) {
  return dc__errs(DC_ERR_UNSUPPORTED, "binary kernel missing");
}
int dc__cpu_where(dc_tensor *out, const dc_tensor *c, const dc_tensor *a, const dc_tensor *b) {
  return dc__errs(DC_ERR_UNSUPPORTED, "where kernel missing");
}
int dc__cpu_axpy(dc_tensor *out, const dc_tensor *a, double alpha, const dc_tensor *b) {
  return dc__errs(DC_ERR_UNSUPPORTED, "axpy kernel missing");
}
