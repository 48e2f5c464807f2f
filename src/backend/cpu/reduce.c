/* CPU reductions (placeholder). */
#include "cpu-impl.h"
const dc_reduce_kernels dc__cpu_red = {0};
