/* Fuzz target: the NumPy pickle reader of src/data (dc_pickle_loads: the one pickle VM of src/io
 * with NumPy's rules, then the dc_pyobj tree), then the (features, targets) pick of
 * dc_pickle_dataset for inputs it accepts (CIFAR's Python batches go that way). */
#define _GNU_SOURCE
#include "fuzz.h"

#include <deepc/deepc.h>

/* Visits at most *budget nodes: memo'd containers make the tree a DAG that can be 2^depth
 * nodes when expanded (a billion laughs); the reader itself visits each object once. A container
 * stops at the budget too, or a memo'd list of a million items inside itself costs budget x 10^6.
 */
static void walk(const dc_pyobj *o, int depth, long *budget) {
  if (!o || depth > 64 || --*budget < 0) return;
  if (o->kind == DC_PY_ARRAY) dc_fuzz_touch(o->array);
  if (o->kind == DC_PY_TUPLE || o->kind == DC_PY_LIST || o->kind == DC_PY_DICT)
    for (int64_t i = 0; i < (o->kind == DC_PY_DICT ? 2 * o->n : o->n) && *budget >= 0; i++)
      walk(o->items[i], depth + 1, budget);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dc_pickle *p = dc_pickle_loads(data, size);
  if (p) {
    long budget = 100000;
    walk(dc_pickle_root(p), 0, &budget);
    dc_pyobj_get(dc_pickle_root(p), "data");
    dc_pickle_free(p);
    dc_dataset *ds = dc_pickle_dataset(dc_fuzz_file(data, size, "fuzz.pkl"));
    dc_dataset_free(ds);
  }
  dc_clear_error();
  dc_fuzz_check_live("pydata");
  return 0;
}
