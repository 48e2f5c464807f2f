/* The tables generated from the op list (op-list.h): each op's name by dc_op_kind. The op
 * entries themselves (dc__op_<id>) live in the ops' files. */
#include "../autograd/autograd-impl.h"

const char *const dc__op_names[DC_OP_COUNT] = {
#define DC_X(id, name, args) [DC_OP_##id] = name,
    DC_OP_LIST(DC_X)
#undef DC_X
};
