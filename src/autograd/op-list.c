/* The tables generated from the op list (op-list.h): each op's name and argument type by
 * dc_op_kind (an argument type missing from DC_OP_ARGS_LIST does not compile). The op entries
 * themselves (dc__op_<id>) live in the ops' files. */
#include "autograd-impl.h"

const char *const dc__op_names[DC_OP_COUNT] = {
#define DC_X(id, name, args) [DC_OP_##id] = name,
    DC_OP_LIST(DC_X)
#undef DC_X
};

const dc__args_kind dc__op_args_kinds[DC_OP_COUNT] = {
#define DC_X(id, name, args) [DC_OP_##id] = DC__ARGS_##args,
    DC_OP_LIST(DC_X)
#undef DC_X
};
