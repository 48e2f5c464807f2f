/* The op list (src/ops/op-list.h): every listed op has its table entry (this file takes the
 * address of each, so a missing entry fails to link), each entry carries its own kind, and the
 * names users see are unique, non-empty and spelt in lowercase with underscores. */
#include <criterion/criterion.h>
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
