/* The op list (src/autograd/op-list.h): every listed op has its table entry (this file takes the
 * address of each, so a missing entry fails to link), each entry carries its own kind, and the
 * names users see are unique, non-empty and spelt in lowercase with underscores; each op has an
 * argument type, and DC__ARGS reads a node's arguments typed and refuses another type. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <string.h>

#include "autograd/autograd-impl.h"

static const dc_opdef *const ENTRIES[DC_OP_COUNT] = {
#define DC_X(id, name, args) [DC_OP_##id] = &dc__op_##id,
    DC_OP_LIST(DC_X)
#undef DC_X
};

Test(op_list, every_entry_has_its_kind) {
  for (int k = 0; k < DC_OP_COUNT; k++) {
    cr_assert_not_null(ENTRIES[k], "op %d has no entry", k);
    cr_assert_eq((int)ENTRIES[k]->kind, k, "entry of %s has kind %d, not %d", dc__op_names[k],
                 (int)ENTRIES[k]->kind, k);
    cr_assert_not_null(ENTRIES[k]->backward, "%s has no backward rule", dc__op_names[k]);
    cr_assert_str_eq(dc__op_name(ENTRIES[k]), dc__op_names[k]);
  }
}

Test(op_list, names_are_unique_and_well_formed) {
  for (int k = 0; k < DC_OP_COUNT; k++) {
    const char *a = dc__op_names[k];
    cr_assert(a && a[0], "op %d has no name", k);
    cr_assert(strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789_") == strlen(a),
              "op name '%s' is not lowercase with underscores", a);
    for (int j = 0; j < k; j++)
      cr_assert(strcmp(a, dc__op_names[j]) != 0, "ops %d and %d are both named '%s'", j, k, a);
  }
}

/* the names tests and docs rely on (DOT labels, dc_grad_fn_name) */
Test(op_list, known_names) {
  cr_assert_str_eq(dc__op_names[DC_OP_ADD], "add");
  cr_assert_str_eq(dc__op_names[DC_OP_MUL], "mul");
  cr_assert_str_eq(dc__op_names[DC_OP_SIGMOID], "sigmoid");
  cr_assert_str_eq(dc__op_names[DC_OP_CONV_BN_RELU_POOL], "conv_bn_relu_pool");
  cr_assert_str_eq(dc__op_names[DC_OP_DIST_ALL_REDUCE], "dist_all_reduce");
}

Test(op_list, every_op_has_an_argument_type) {
  for (int k = 0; k < DC_OP_COUNT; k++)
    cr_assert((int)dc__op_args_kinds[k] >= 0 && dc__op_args_kinds[k] < DC__ARGS_COUNT,
              "%s has argument type %d", dc__op_names[k], (int)dc__op_args_kinds[k]);
}

/* a node keeps its op's arguments typed; asking for another op's type is a broken invariant */
Test(op_list, typed_arguments) {
  dc_scope_begin();
  dc_tensor *x = dc_requires_grad_(dc_scalar(-2.0, DC_F64), true);
  dc_tensor *y = dc_leaky_relu(x, 0.25); /* [] */
  cr_assert_not_null(y, "%s", dc_last_error());
  cr_assert_str_eq(dc_grad_fn_name(y), "leaky_relu");
  cr_assert_eq(DC__ARGS(y->grad_fn, leaky_relu)->slope, 0.25);
  dc_tensor *z = dc_mul_scalar(y, 3.0); /* [] */
  cr_assert_str_eq(dc_grad_fn_name(z), "mul_scalar");
  cr_assert_eq(DC__ARGS(z->grad_fn, scalar)->s, 3.0);
  cr_assert_eq(dc_backward(z), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc_item(x->grad), 0.75);
  (void)DC__ARGS(y->grad_fn, clamp);
  cr_assert_eq(dc_last_status(), DC_ERR_STATE);
  cr_assert(strstr(dc_last_error(), "DC__ARGS"), "%s", dc_last_error());
  dc_scope_end();
}
