/* CPU gather / scatter_add / index_select / index_add (placeholder until the family lands). */
#include "cpu-impl.h"

const dc_index_kernels dc__cpu_index = {0};
