/* The one pickle VM (src/io/pickle.c) under its two rule sets: NumPy datasets (dc_pickle_loads)
 * and .pth state dicts (dc_weights_parse). One depth limit for both, Python's dict semantics
 * (a key set twice is one key), memo indices with gaps, a nesting built through the memo that
 * the depth counters cannot see (refused when the tree is walked, not by a stack overflow), and
 * a rule set without hooks refusing GLOBAL, REDUCE and BINPERSID by name and offset. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/pickle-vm.h"
#include "io/weights-impl.h"

typedef struct bytes {
  uint8_t b[1 << 16];
  size_t n;
} bytes;

static void op(bytes *p, uint8_t c) { p->b[p->n++] = c; }
static void u32(bytes *p, uint32_t v) {
  for (int i = 0; i < 4; i++) op(p, (uint8_t)(v >> (8 * i)));
}
static void str(bytes *p, const char *s) {
  op(p, 'X');
  u32(p, (uint32_t)strlen(s));
  for (; *s; s++) op(p, (uint8_t)*s);
}

/* Lists nested d levels deep (d + 1 lists: ] ] ... a a ...). */
static void nested(bytes *p, int d) {
  p->n = 0;
  op(p, 0x80);
  op(p, 2);
  for (int i = 0; i <= d; i++) op(p, ']');
  for (int i = 0; i < d; i++) op(p, 'a');
  op(p, '.');
}

static const char *loads_error(const bytes *p) {
  dc_clear_error();
  dc_pickle *pk = dc_pickle_loads(p->b, p->n);
  if (pk) {
    dc_pickle_free(pk);
    return NULL;
  }
  return dc_last_error();
}

/* The pickle as a .pth's data.pkl (one float storage "0" of 4 elements). */
static dc_weights *as_pth(const bytes *p) {
  static const float S[4] = {1, 2, 3, 4};
  char *zip = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&zip, &n);
  dc__zipw z = {.f = f, .what = "test"};
  cr_assert_eq(dc__zipw_add(&z, "archive/data.pkl", p->b, p->n), DC_OK);
  cr_assert_eq(dc__zipw_add(&z, "archive/data/0", S, sizeof S), DC_OK);
  cr_assert_eq(dc__zipw_finish(&z), DC_OK);
  fclose(f);
  dc_clear_error();
  dc_weights *w = dc_weights_parse((const uint8_t *)zip, n, "t.pth");
  free(zip);
  return w;
}

Test(pickle_vm, one_depth_limit_for_both_rule_sets) {
  static bytes p;
  nested(&p, DC__PICKLE_MAX_DEPTH);
  cr_assert_null(loads_error(&p), "%s", dc_last_error());
  cr_assert_null(as_pth(&p));
  cr_assert(!strstr(dc_last_error(), "nested deeper"), "%s", dc_last_error());
  nested(&p, DC__PICKLE_MAX_DEPTH + 1);
  const char *e = loads_error(&p);
  cr_assert(e && strstr(e, "nested deeper than 100 levels") && strstr(e, "pickle: offset"), "%s",
            e ? e : "accepted");
  cr_assert_null(as_pth(&p));
  cr_assert(strstr(dc_last_error(), "t.pth: archive/data.pkl: offset") &&
                strstr(dc_last_error(), "nested deeper than 100 levels"),
            "%s", dc_last_error());
}

/* {'a': 1, 'b': 2, 'a': 3}: two keys, 'a' first with 3, as Python's dict */
Test(pickle_vm, a_key_set_twice_is_one_key) {
  static bytes p;
  op(&p, 0x80);
  op(&p, 2);
  op(&p, '}');
  op(&p, '(');
  str(&p, "a");
  op(&p, 'K'), op(&p, 1);
  str(&p, "b");
  op(&p, 'K'), op(&p, 2);
  str(&p, "a");
  op(&p, 'K'), op(&p, 3);
  op(&p, 'u');
  op(&p, '.');
  dc_pickle *pk = dc_pickle_loads(p.b, p.n);
  cr_assert_not_null(pk, "%s", dc_last_error());
  const dc_pyobj *r = dc_pickle_root(pk);
  cr_assert_eq(r->n, 2);
  cr_assert_str_eq(r->items[0]->str, "a");
  cr_assert_eq(r->items[1]->i, 3);
  cr_assert_eq(dc_pyobj_get(r, "b")->i, 2);
  dc_pickle_free(pk);
}

/* PUT 7 / GET 7 with nothing at 0..6 (pickletools.optimize leaves such gaps) */
Test(pickle_vm, memo_with_gaps) {
  static bytes p;
  op(&p, 0x80);
  op(&p, 2);
  op(&p, ']');
  op(&p, 'q'), op(&p, 7);
  op(&p, '0');
  op(&p, 'h'), op(&p, 7);
  op(&p, '.');
  dc_pickle *pk = dc_pickle_loads(p.b, p.n);
  cr_assert_not_null(pk, "%s", dc_last_error());
  cr_assert_eq(dc_pickle_root(pk)->kind, DC_PY_LIST);
  dc_pickle_free(pk);
  p.b[p.n - 2] = 6; /* GET 6: never stored */
  const char *e = loads_error(&p);
  cr_assert(e && strstr(e, "offset 6: memo index 6 out of range"), "%s", e ? e : "accepted");
}

/* L0 holds L1 holds L2 ... 1000 deep, each appended while still empty (so every depth counter
 * says 1), through the memo: refused while the tree is walked, by name, not by the C stack. */
Test(pickle_vm, nesting_hidden_from_the_depth_counters) {
  static bytes p;
  op(&p, 0x80);
  op(&p, 2);
  op(&p, ']');
  op(&p, 'r'), u32(&p, 0);
  for (uint32_t k = 1; k <= 1000; k++) {
    op(&p, 'j'), u32(&p, k - 1);
    op(&p, ']');
    op(&p, 'r'), u32(&p, k);
    op(&p, 'a');
    op(&p, '0');
  }
  op(&p, '.');
  const char *e = loads_error(&p);
  cr_assert(e && strstr(e, "nested deeper than 100"), "%s", e ? e : "accepted");
}

Test(pickle_vm, numpy_rules_refuse_persistent_ids) {
  static bytes p;
  op(&p, 0x80);
  op(&p, 2);
  str(&p, "x");
  op(&p, 'Q');
  op(&p, '.');
  const char *e = loads_error(&p);
  cr_assert(e && strstr(e, "offset 8: opcode BINPERSID is not allowed"), "%s", e ? e : "accepted");
}

static int no_globals(void *ud, const char *module, const char *name) { return -1; }

Test(pickle_vm, rules_without_hooks) {
  static const dc__pickle_rules NONE = {.allowed = "nothing", .global = no_globals};
  static const struct {
    const char *pkl, *want;
  } cases[] = {
      {"\x80\x02K\x01.", NULL},
      {"\x80\x02"
       "cos\nsystem\n.",
       "x.pkl: offset 2: refusing global 'os.system'"},
      {"\x80\x02K\x01)R.", "offset 5: REDUCE calls a int"},
      {"\x80\x02}}b.", "offset 4: opcode BUILD is not allowed"},
      {"\x80\x02Q.", "offset 2: opcode BINPERSID is not allowed"},
      {"\x80\x02\x81.", "offset 2: opcode 0x81 '?' (NEWOBJ) is not allowed"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    dc__pv *root;
    dc_clear_error();
    dc__pickle_vm *vm = dc__pickle_run((const uint8_t *)cases[i].pkl, strlen(cases[i].pkl), "x.pkl",
                                       &NONE, NULL, &root);
    if (!cases[i].want) {
      cr_assert_not_null(vm, "%s", dc_last_error());
      cr_assert_eq(root->kind, DC__PV_INT);
      cr_assert_eq(root->i, 1);
    } else {
      cr_assert_null(vm, "case %zu accepted", i);
      cr_assert(strstr(dc_last_error(), cases[i].want), "case %zu: %s", i, dc_last_error());
    }
    dc__pickle_free(vm);
  }
}

/* 300,000 distinct str keys (SETITEMS of 1000 pairs, as Python writes them) load in linear
 * time: a scan of the dict for each key (the old NumPy reader) took minutes. */
Test(pickle_vm, many_keys_in_linear_time, .timeout = 20) {
  enum { KEYS = 300000 };
  size_t cap = (size_t)KEYS * 12 + 4096, n = 0;
  uint8_t *b = malloc(cap);
  b[n++] = 0x80, b[n++] = 2, b[n++] = '}';
  for (int k = 0; k < KEYS; k++) {
    if (k % 1000 == 0) b[n++] = '(';
    n += (size_t)sprintf((char *)b + n, "\x8c\x07k%06d", k); /* SHORT_BINUNICODE, 7 bytes */
    b[n++] = 'K', b[n++] = (uint8_t)k;
    if (k % 1000 == 999) b[n++] = 'u';
  }
  b[n++] = '.';
  dc_pickle *pk = dc_pickle_loads(b, n);
  cr_assert_not_null(pk, "%s", dc_last_error());
  cr_assert_eq(dc_pickle_root(pk)->n, KEYS);
  cr_assert_eq(dc_pyobj_get(dc_pickle_root(pk), "k123456")->i, 123456 % 256);
  dc_pickle_free(pk);
  free(b);
}
