/* The one restricted pickle VM (pickle-vm.h): a stack machine over the binary opcodes of
 * protocols 2-5 that builds plain values only; globals, calls (REDUCE), BUILD and persistent ids
 * go to the format's rules (.pth state dicts, NumPy datasets). Objects live in an arena freed in
 * one go. Every count, index, length and depth read from the file is checked before use. */
#include "pickle-vm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define ARENA_CHUNK 1024 /* objects per arena block */

struct dc__pickle_vm {
  const uint8_t *b;
  size_t n, pos, op_at; /* input, read position, offset of the current opcode */
  const char *what;
  const dc__pickle_rules *rules;
  void *ud;
  dc__pv **chunks; /* arena blocks of ARENA_CHUNK objects */
  int64_t nchunks, capchunks, nobjs;
  dc__pv **stack;
  int64_t sp, capstack;
  int64_t *marks; /* stack heights at each MARK */
  int64_t nmarks, capmarks;
  dc__pv **memo;          /* [capmemo] slots, NULL where nothing was stored */
  int64_t nmemo, capmemo; /* entries set (MEMOIZE's next index), slots */
  struct key_slot *keys;  /* [capkeys] (power of 2): the str keys of every dict, hashed */
  int64_t nkeys, capkeys;
};

/* Where str key `key` of dict `dict` sits (items[2 * at]). */
typedef struct key_slot {
  const dc__pv *dict, *key;
  int64_t at;
} key_slot;

/* ---- errors ---- */
void *dc__pickle_fail(dc__pickle_vm *vm, dc_status st, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return dc__err(st, "%s: offset %zu: %s", vm->what, vm->op_at, msg);
}

static const char *op_name(uint8_t op) {
  switch (op) {
  case 'c':
    return "GLOBAL";
  case 'i':
    return "INST";
  case 'o':
    return "OBJ";
  case 0x81:
    return "NEWOBJ";
  case 0x92:
    return "NEWOBJ_EX";
  case 'P':
    return "PERSID";
  case 0x82:
    return "EXT1";
  case 0x83:
    return "EXT2";
  case 0x84:
    return "EXT4";
  case 'I':
    return "INT";
  case 'L':
    return "LONG";
  case 'F':
    return "FLOAT";
  case 'S':
    return "STRING";
  case 'V':
    return "UNICODE";
  case 'p':
    return "PUT";
  case 'g':
    return "GET";
  case 0x8f:
    return "EMPTY_SET";
  case 0x90:
    return "ADDITEMS";
  case 0x91:
    return "FROZENSET";
  case 0x97:
    return "NEXT_BUFFER";
  case 0x98:
    return "READONLY_BUFFER";
  default:
    return "unknown opcode";
  }
}

const char *dc__pv_kind_name(dc__pv_kind k) {
  switch (k) {
  case DC__PV_NONE:
    return "None";
  case DC__PV_BOOL:
    return "bool";
  case DC__PV_INT:
    return "int";
  case DC__PV_FLOAT:
    return "float";
  case DC__PV_STR:
    return "str";
  case DC__PV_BYTES:
    return "bytes";
  case DC__PV_TUPLE:
    return "tuple";
  case DC__PV_LIST:
    return "list";
  case DC__PV_DICT:
    return "dict";
  case DC__PV_GLOBAL:
    return "global";
  case DC__PV_OBJ:
    return "object";
  }
  return "object";
}

/* ---- objects ---- */
dc__pv *dc__pv_new(dc__pickle_vm *vm, dc__pv_kind kind) {
  if (vm->nobjs >= DC__PICKLE_MAX_OBJECTS)
    return dc__pickle_fail(vm, DC_ERR_FORMAT,
                           "more than %d objects (datasets store large data as NumPy arrays, "
                           "state dicts as tensor storages)",
                           DC__PICKLE_MAX_OBJECTS);
  int64_t slot = vm->nobjs % ARENA_CHUNK;
  if (slot == 0) {
    if (vm->nchunks == vm->capchunks) {
      int64_t cap = vm->capchunks ? 2 * vm->capchunks : 16;
      dc__pv **c =
          dc__realloc(vm->chunks, sizeof *c * (size_t)vm->capchunks, sizeof *c * (size_t)cap);
      if (!c) return NULL;
      vm->chunks = c;
      vm->capchunks = cap;
    }
    dc__pv *blk = dc__calloc(ARENA_CHUNK, sizeof *blk);
    if (!blk) return NULL;
    vm->chunks[vm->nchunks++] = blk;
  }
  dc__pv *x = &vm->chunks[vm->nchunks - 1][slot];
  vm->nobjs++;
  x->kind = kind;
  x->at = vm->op_at;
  return x;
}

void dc__pickle_free(dc__pickle_vm *vm) {
  if (!vm) return;
  for (int64_t i = 0; i < vm->nobjs; i++) {
    dc__pv *x = &vm->chunks[i / ARENA_CHUNK][i % ARENA_CHUNK];
    dc__free(x->s);
    dc__free(x->items);
  }
  for (int64_t c = 0; c < vm->nchunks; c++) dc__free(vm->chunks[c]);
  dc__free(vm->chunks);
  dc__free(vm->stack);
  dc__free(vm->marks);
  dc__free(vm->memo);
  dc__free(vm->keys);
  dc__free(vm);
}

static bool items_reserve(dc__pv *x, int64_t n) {
  if (n <= x->cap) return true;
  int64_t cap = x->cap ? x->cap : 4;
  while (cap < n) cap *= 2;
  dc__pv **it = dc__realloc(x->items, sizeof *it * (size_t)x->cap, sizeof *it * (size_t)cap);
  if (!it) return false;
  x->items = it;
  x->cap = cap;
  return true;
}

/* Raises x's nesting depth to hold an item of depth d; false past the limit. */
static bool deepen(dc__pickle_vm *vm, dc__pv *x, int d) {
  if (d + 1 > x->depth) x->depth = d + 1;
  if (x->depth > DC__PICKLE_MAX_DEPTH) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "containers nested deeper than %d levels",
                    DC__PICKLE_MAX_DEPTH);
    return false;
  }
  return true;
}

static dc__pv *make_seq(dc__pickle_vm *vm, dc__pv_kind kind, dc__pv *const *items, int64_t n) {
  dc__pv *x = dc__pv_new(vm, kind);
  if (!x || !items_reserve(x, n)) return NULL;
  for (int64_t i = 0; i < n; i++) {
    if (!deepen(vm, x, items[i]->depth)) return NULL;
    x->items[i] = items[i];
  }
  x->n = n;
  return x;
}

static dc__pv *make_str(dc__pickle_vm *vm, dc__pv_kind kind, const uint8_t *d, size_t len) {
  dc__pv *x = dc__pv_new(vm, kind);
  if (!x) return NULL;
  if (!(x->s = dc__malloc(len + 1))) return NULL;
  if (len) memcpy(x->s, d, len);
  x->s[len] = '\0';
  x->len = len;
  return x;
}

dc__pv *dc__pv_get(const dc__pv *dict, const char *key) {
  if (!dict || dict->kind != DC__PV_DICT || !key) return NULL;
  size_t kl = strlen(key);
  for (int64_t i = dict->n - 1; i >= 0; i--) { /* the last assignment wins */
    const dc__pv *k = dict->items[2 * i];
    if (k->kind == DC__PV_STR && k->len == kl && memcmp(k->s, key, kl) == 0)
      return dict->items[2 * i + 1];
  }
  return NULL;
}

/* ---- the byte stream ---- */
static bool take(dc__pickle_vm *vm, size_t k, const uint8_t **out) {
  if (k > vm->n - vm->pos) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "truncated: the opcode needs %zu more bytes, %zu left", k,
                    vm->n - vm->pos);
    return false;
  }
  *out = vm->b + vm->pos;
  vm->pos += k;
  return true;
}

static bool take_uint(dc__pickle_vm *vm, int k, uint64_t *v) {
  const uint8_t *d;
  if (!take(vm, (size_t)k, &d)) return false;
  *v = 0;
  for (int i = k - 1; i >= 0; i--) *v = *v << 8 | d[i];
  return true;
}

/* Well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static bool utf8_ok(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    int k = c < 0x80             ? 0
            : (c & 0xE0) == 0xC0 ? 1
            : (c & 0xF0) == 0xE0 ? 2
            : (c & 0xF8) == 0xF0 ? 3
                                 : -1;
    if (k < 0 || (k == 1 && c < 0xC2) || (k == 3 && c > 0xF4) || n - i <= (size_t)k) return false;
    for (int j = 1; j <= k; j++)
      if ((s[i + j] & 0xC0) != 0x80) return false;
    if (k == 2 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] >= 0xA0))) return false;
    if (k == 3 && ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] >= 0x90))) return false;
    i += (size_t)k + 1;
  }
  return true;
}

/* ---- the stack ---- */
/* &stack[i] (NULL while nothing was ever pushed: no offset may be added to a null pointer) */
static dc__pv **stack_at(dc__pickle_vm *vm, int64_t i) { return vm->stack ? vm->stack + i : NULL; }

static bool push(dc__pickle_vm *vm, dc__pv *x) {
  if (!x) return false;
  if (vm->sp == vm->capstack) {
    int64_t cap = vm->capstack ? vm->capstack * 2 : 64;
    dc__pv **s = dc__realloc(vm->stack, sizeof *s * (size_t)vm->capstack, sizeof *s * (size_t)cap);
    if (!s) return false;
    vm->stack = s;
    vm->capstack = cap;
  }
  vm->stack[vm->sp++] = x;
  return true;
}

static int64_t floor_of(const dc__pickle_vm *vm) {
  return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0;
}

static dc__pv *pop(dc__pickle_vm *vm) {
  if (vm->sp <= floor_of(vm))
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "stack underflow (the pickle is corrupt)");
  return vm->stack[--vm->sp];
}

static dc__pv *top(dc__pickle_vm *vm) {
  if (vm->sp <= floor_of(vm))
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "empty stack (the pickle is corrupt)");
  return vm->stack[vm->sp - 1];
}

static bool push_mark(dc__pickle_vm *vm) {
  if (vm->nmarks >= DC__PICKLE_MAX_DEPTH) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "MARKs nested deeper than %d levels", DC__PICKLE_MAX_DEPTH);
    return false;
  }
  if (vm->nmarks == vm->capmarks) {
    int64_t cap = vm->capmarks ? vm->capmarks * 2 : 16;
    int64_t *m = dc__realloc(vm->marks, sizeof *m * (size_t)vm->capmarks, sizeof *m * (size_t)cap);
    if (!m) return false;
    vm->marks = m;
    vm->capmarks = cap;
  }
  vm->marks[vm->nmarks++] = vm->sp;
  return true;
}

/* Pops everything above the last MARK and the MARK; the items are stack[*from, sp). */
static bool pop_mark(dc__pickle_vm *vm, int64_t *from) {
  if (!vm->nmarks) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "no MARK before this opcode (the pickle is corrupt)");
    return false;
  }
  *from = vm->marks[--vm->nmarks];
  return true;
}

/* ---- containers ---- */
static bool list_append(dc__pickle_vm *vm, dc__pv *list, dc__pv *const *items, int64_t n) {
  if (list->kind != DC__PV_LIST) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "APPEND to a %s (only lists)", dc__pv_kind_name(list->kind));
    return false;
  }
  if (!items_reserve(list, list->n + n)) return false;
  for (int64_t i = 0; i < n; i++) {
    if (!deepen(vm, list, items[i]->depth)) return false;
    list->items[list->n++] = items[i];
  }
  return true;
}

/* ---- dict keys: one hash table per VM, so a dict of n str keys costs O(n), not O(n^2) ---- */
static uint64_t key_hash(const dc__pv *d, const dc__pv *k) {
  uint64_t h = 14695981039346656037ull ^ ((uint64_t)(uintptr_t)d * 0x9E3779B97F4A7C15ull);
  for (size_t i = 0; i < k->len; i++) h = (h ^ (uint8_t)k->s[i]) * 1099511628211ull; /* FNV-1a */
  return h ^ (h >> 29);
}

/* The slot holding (d, k), or the empty slot where it goes. */
static key_slot *key_slot_of(const dc__pickle_vm *vm, const dc__pv *d, const dc__pv *k) {
  uint64_t mask = (uint64_t)vm->capkeys - 1;
  for (uint64_t i = key_hash(d, k) & mask;; i = (i + 1) & mask) {
    key_slot *s = &vm->keys[i];
    if (!s->dict || (s->dict == d && s->key->len == k->len && !memcmp(s->key->s, k->s, k->len)))
      return s;
  }
}

/* Room for one more key (the table at most half full). */
static bool keys_reserve(dc__pickle_vm *vm) {
  if (2 * (vm->nkeys + 1) <= vm->capkeys) return true;
  int64_t cap = vm->capkeys ? 2 * vm->capkeys : 256;
  key_slot *old = vm->keys, *nk = dc__calloc((size_t)cap, sizeof *nk);
  if (!nk) return false;
  int64_t oldcap = vm->capkeys;
  vm->keys = nk;
  vm->capkeys = cap;
  for (int64_t i = 0; i < oldcap; i++)
    if (old[i].dict) *key_slot_of(vm, old[i].dict, old[i].key) = old[i];
  dc__free(old);
  return true;
}

/* Where key k goes in d: the place of the same str key set before, or a new one at the end. */
static bool dict_place(dc__pickle_vm *vm, dc__pv *d, const dc__pv *k, int64_t *at) {
  if (k->kind != DC__PV_STR) {
    *at = d->n++;
    return true;
  }
  if (!keys_reserve(vm)) return false;
  key_slot *s = key_slot_of(vm, d, k);
  if (!s->dict) {
    *s = (key_slot){.dict = d, .key = k, .at = d->n++};
    vm->nkeys++;
  }
  *at = s->at;
  return true;
}

/* Sets key/value pairs: a str key set again keeps its place and takes the new value, as in
 * Python; keys Python could not hash (lists, dicts, objects of the rules) are refused. */
static bool dict_set(dc__pickle_vm *vm, dc__pv *d, dc__pv *const *kv, int64_t n) {
  if (d->kind != DC__PV_DICT) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "SETITEM on a %s (only dicts)", dc__pv_kind_name(d->kind));
    return false;
  }
  if (n % 2) {
    dc__pickle_fail(vm, DC_ERR_FORMAT, "SETITEMS with an odd number of items");
    return false;
  }
  if (!items_reserve(d, 2 * d->n + n)) return false;
  for (int64_t k = 0; k < n; k += 2) {
    dc__pv_kind kk = kv[k]->kind;
    if (kk == DC__PV_LIST || kk == DC__PV_DICT || kk == DC__PV_OBJ) {
      dc__pickle_fail(vm, DC_ERR_FORMAT, "a dict key is a %s (unhashable, or not plain data)",
                      dc__pv_kind_name(kk));
      return false;
    }
    if (!deepen(vm, d, kv[k]->depth) || !deepen(vm, d, kv[k + 1]->depth)) return false;
    int64_t at;
    if (!dict_place(vm, d, kv[k], &at)) return false;
    d->items[2 * at] = kv[k];
    d->items[2 * at + 1] = kv[k + 1];
  }
  return true;
}

/* ---- memo: any index a pickle of this length could define (pickletools.optimize leaves gaps),
 * so the slots never outgrow the input ---- */
static bool memo_put(dc__pickle_vm *vm, uint64_t idx, dc__pv *x) {
  if (idx > (uint64_t)vm->n) {
    dc__pickle_fail(vm, DC_ERR_FORMAT,
                    "memo index %llu out of range (beyond anything a %zu-byte pickle defines)",
                    (unsigned long long)idx, vm->n);
    return false;
  }
  if ((int64_t)idx >= vm->capmemo) {
    int64_t cap = vm->capmemo ? vm->capmemo : 64;
    while (cap <= (int64_t)idx) cap *= 2;
    dc__pv **m = dc__realloc(vm->memo, sizeof *m * (size_t)vm->capmemo, sizeof *m * (size_t)cap);
    if (!m) return false;
    memset(m + vm->capmemo, 0, sizeof *m * (size_t)(cap - vm->capmemo));
    vm->memo = m;
    vm->capmemo = cap;
  }
  if (!vm->memo[idx]) vm->nmemo++;
  vm->memo[idx] = x;
  return true;
}

static dc__pv *memo_get(dc__pickle_vm *vm, uint64_t idx) {
  if (idx >= (uint64_t)vm->capmemo || !vm->memo[idx])
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "memo index %llu out of range (never stored)",
                           (unsigned long long)idx);
  return vm->memo[idx];
}

/* ---- globals and calls ---- */
static void printable(const char *s, char *out, size_t n) {
  size_t k = 0;
  for (; *s && k + 1 < n; s++) out[k++] = (*s >= 32 && *s < 127) ? *s : '?';
  out[k] = '\0';
}

static dc__pv *global(dc__pickle_vm *vm, const char *module, const char *name) {
  int tag = vm->rules->global ? vm->rules->global(vm->ud, module, name) : -1;
  if (tag >= 0) {
    dc__pv *x = dc__pv_new(vm, DC__PV_GLOBAL);
    if (x) x->tag = tag;
    return x;
  }
  char m[160], nm[160];
  printable(module, m, sizeof m);
  printable(name, nm, sizeof nm);
  return dc__pickle_fail(vm, DC_ERR_FORMAT,
                         "refusing global '%s.%s' (a pickle naming other globals can run code "
                         "when Python loads it; this reader allows only %s)",
                         m, nm, vm->rules->allowed);
}

/* GLOBAL's "module\nname\n" */
static bool read_line(dc__pickle_vm *vm, char *dst, size_t cap) {
  size_t k = 0;
  for (;;) {
    const uint8_t *ch;
    if (!take(vm, 1, &ch)) return false;
    if (*ch == '\n') break;
    if (k + 1 >= cap || *ch == 0) {
      dc__pickle_fail(vm, DC_ERR_FORMAT, "GLOBAL name too long or not text");
      return false;
    }
    dst[k++] = (char)*ch;
  }
  dst[k] = '\0';
  return true;
}

static dc__pv *hook(dc__pickle_vm *vm, uint8_t op, dc__pv *a, dc__pv *b) {
  const dc__pickle_rules *r = vm->rules;
  switch (op) {
  case 'R':
    if (a->kind != DC__PV_GLOBAL)
      return dc__pickle_fail(vm, DC_ERR_FORMAT,
                             "REDUCE calls a %s; only allowed globals can be "
                             "called",
                             dc__pv_kind_name(a->kind));
    if (b->kind != DC__PV_TUPLE)
      return dc__pickle_fail(vm, DC_ERR_FORMAT, "REDUCE arguments are a %s, not a tuple",
                             dc__pv_kind_name(b->kind));
    return r->reduce ? r->reduce(vm, vm->ud, a, b)
                     : dc__pickle_fail(vm, DC_ERR_FORMAT, "opcode REDUCE is not allowed");
  case 'b':
    return r->build ? r->build(vm, vm->ud, a, b)
                    : dc__pickle_fail(vm, DC_ERR_FORMAT, "opcode BUILD is not allowed");
  default:
    return r->persistent_load
               ? r->persistent_load(vm, vm->ud, a)
               : dc__pickle_fail(vm, DC_ERR_FORMAT, "opcode BINPERSID is not allowed");
  }
}

/* ---- one opcode ---- */
static dc__pv *op_int(dc__pickle_vm *vm, uint8_t op) {
  uint64_t v = 0;
  if (op == 'J' || op == 'K' || op == 'M') {
    if (!take_uint(vm, op == 'J' ? 4 : op == 'K' ? 1 : 2, &v)) return NULL;
    dc__pv *x = dc__pv_new(vm, DC__PV_INT);
    if (x) x->i = op == 'J' ? (int32_t)(uint32_t)v : (int64_t)v;
    return x;
  }
  /* LONG1 / LONG4: little-endian two's complement of n bytes */
  if (!take_uint(vm, op == 0x8a ? 1 : 4, &v)) return NULL;
  if (v > 8)
    return dc__pickle_fail(vm, DC_ERR_UNSUPPORTED, "integer of %llu bytes (more than 64 bits)",
                           (unsigned long long)v);
  int k = (int)v;
  uint64_t u = 0;
  if (k && !take_uint(vm, k, &u)) return NULL;
  if (k && k < 8 && (u >> (8 * k - 1)) & 1) u |= ~(uint64_t)0 << (8 * k);
  dc__pv *x = dc__pv_new(vm, DC__PV_INT);
  if (x) x->i = (int64_t)u;
  return x;
}

/* BINUNICODE(8), SHORT_BINUNICODE: text; (SHORT_)BINBYTES(8), BYTEARRAY8, (SHORT_)BINSTRING:
 * bytes (Python 2 str) */
static dc__pv *op_string(dc__pickle_vm *vm, uint8_t op) {
  int w = (op == 0x8c || op == 'C' || op == 'U')  ? 1
          : (op == 'X' || op == 'B' || op == 'T') ? 4
                                                  : 8;
  uint64_t v;
  const uint8_t *s;
  if (!take_uint(vm, w, &v)) return NULL;
  if (op == 'T' && v > INT32_MAX)
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "negative string length");
  if (!take(vm, v > SIZE_MAX ? SIZE_MAX : (size_t)v, &s)) return NULL;
  bool text = op == 'X' || op == 0x8c || op == 0x8d;
  if (text && !utf8_ok(s, (size_t)v))
    return dc__pickle_fail(vm, DC_ERR_FORMAT, "text that is not valid UTF-8");
  return make_str(vm, text ? DC__PV_STR : DC__PV_BYTES, s, (size_t)v);
}

/* The opcodes, in four groups: control (PROTO, FRAME, STOP, MARK, POP, POP_MARK), in-place
 * changes of a container or the memo, opcodes that push a plain value, and those that push a
 * built one (tuples, lists, dicts, memo reads, globals, the rules' hooks). Each group returns
 * OP_OK, OP_FAIL (message set) or OP_NOT_MINE. */
enum { OP_FAIL = 0, OP_OK = 1, OP_NOT_MINE = 2 };

static int op_control(dc__pickle_vm *vm, uint8_t op, bool *done, dc__pv **root) {
  uint64_t v;
  int64_t from;
  switch (op) {
  case 0x80: /* PROTO */
    if (!take_uint(vm, 1, &v)) return OP_FAIL;
    if (v < 2 || v > 5) {
      dc__pickle_fail(vm, DC_ERR_UNSUPPORTED, "pickle protocol %llu (2 to 5 are read)",
                      (unsigned long long)v);
      return OP_FAIL;
    }
    return OP_OK;
  case 0x95: /* FRAME: a length hint */
    if (!take_uint(vm, 8, &v)) return OP_FAIL;
    if (v > vm->n - vm->pos) {
      dc__pickle_fail(vm, DC_ERR_FORMAT, "FRAME longer than the rest of the data (truncated)");
      return OP_FAIL;
    }
    return OP_OK;
  case '.': /* STOP */
    if (!(*root = pop(vm))) return OP_FAIL;
    *done = true;
    return OP_OK;
  case '(':
    return push_mark(vm);
  case '0':
    return pop(vm) != NULL;
  case '1':
    if (!pop_mark(vm, &from)) return OP_FAIL;
    vm->sp = from;
    return OP_OK;
  default:
    return OP_NOT_MINE;
  }
}

static int op_mutate(dc__pickle_vm *vm, uint8_t op) {
  uint64_t v;
  int64_t from;
  dc__pv *x, *y;
  switch (op) {
  case 'a':
    return (y = pop(vm)) && (x = top(vm)) && list_append(vm, x, &y, 1);
  case 'e':
  case 'u':
    if (!pop_mark(vm, &from)) return OP_FAIL;
    if (from <= floor_of(vm)) {
      dc__pickle_fail(vm, DC_ERR_FORMAT, "%s without a %s below the MARK",
                      op == 'e' ? "APPENDS" : "SETITEMS", op == 'e' ? "list" : "dict");
      return OP_FAIL;
    }
    if (op == 'e' ? !list_append(vm, vm->stack[from - 1], stack_at(vm, from), vm->sp - from)
                  : !dict_set(vm, vm->stack[from - 1], stack_at(vm, from), vm->sp - from))
      return OP_FAIL;
    vm->sp = from;
    return OP_OK;
  case 's':
    if (vm->sp - floor_of(vm) < 3) {
      dc__pickle_fail(vm, DC_ERR_FORMAT, "SETITEM with too few items on the stack");
      return OP_FAIL;
    }
    if (!dict_set(vm, vm->stack[vm->sp - 3], stack_at(vm, vm->sp - 2), 2)) return OP_FAIL;
    vm->sp -= 2;
    return OP_OK;
  case 'q':
  case 'r':
    return take_uint(vm, op == 'q' ? 1 : 4, &v) && (x = top(vm)) && memo_put(vm, v, x);
  case 0x94: /* MEMOIZE */
    return (x = top(vm)) && memo_put(vm, (uint64_t)vm->nmemo, x);
  default:
    return OP_NOT_MINE;
  }
}

/* A plain value: None, bools, ints, floats, text and bytes, empty containers, DUP. */
static int op_plain(dc__pickle_vm *vm, uint8_t op, dc__pv **x) {
  const uint8_t *d;
  switch (op) {
  case '2':
    *x = top(vm);
    return OP_OK;
  case 'N':
    *x = dc__pv_new(vm, DC__PV_NONE);
    return OP_OK;
  case 0x88:
  case 0x89:
    if ((*x = dc__pv_new(vm, DC__PV_BOOL))) (*x)->i = op == 0x88;
    return OP_OK;
  case 'J':
  case 'K':
  case 'M':
  case 0x8a:
  case 0x8b:
    *x = op_int(vm, op);
    return OP_OK;
  case 'G': { /* BINFLOAT, big-endian IEEE double */
    if (!take(vm, 8, &d)) return OP_FAIL;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u = u << 8 | d[i];
    if ((*x = dc__pv_new(vm, DC__PV_FLOAT))) memcpy(&(*x)->f, &u, 8);
    return OP_OK;
  }
  case 'X':
  case 0x8c:
  case 0x8d:
  case 'B':
  case 'C':
  case 0x8e:
  case 'T':
  case 'U':
  case 0x96:
    *x = op_string(vm, op);
    return OP_OK;
  case ')':
  case ']':
  case '}':
    *x = dc__pv_new(vm, op == ')' ? DC__PV_TUPLE : op == ']' ? DC__PV_LIST : DC__PV_DICT);
    return OP_OK;
  default:
    return OP_NOT_MINE;
  }
}

/* TUPLE1..3, TUPLE, LIST, DICT: containers of what is on the stack. */
static int op_seq(dc__pickle_vm *vm, uint8_t op, dc__pv **x) {
  int64_t from;
  switch (op) {
  case 0x85:
  case 0x86:
  case 0x87: {
    int k = op - 0x84;
    if (vm->sp - floor_of(vm) < k) {
      dc__pickle_fail(vm, DC_ERR_FORMAT, "TUPLE%d with %lld items on the stack", k,
                      (long long)(vm->sp - floor_of(vm)));
      return OP_FAIL;
    }
    vm->sp -= k;
    *x = make_seq(vm, DC__PV_TUPLE, stack_at(vm, vm->sp), k);
    return OP_OK;
  }
  case 't':
  case 'l':
    if (!pop_mark(vm, &from)) return OP_FAIL;
    *x = make_seq(vm, op == 't' ? DC__PV_TUPLE : DC__PV_LIST, stack_at(vm, from), vm->sp - from);
    vm->sp = from;
    return OP_OK;
  case 'd':
    if (!pop_mark(vm, &from)) return OP_FAIL;
    if (!(*x = dc__pv_new(vm, DC__PV_DICT)) || !dict_set(vm, *x, stack_at(vm, from), vm->sp - from))
      return OP_FAIL;
    vm->sp = from;
    return OP_OK;
  default:
    return OP_NOT_MINE;
  }
}

/* Memo reads, globals, and what the rules build: REDUCE, BUILD, BINPERSID. */
static int op_built(dc__pickle_vm *vm, uint8_t op, dc__pv **x) {
  uint64_t v;
  dc__pv *y, *z;
  char mod[256], name[256];
  switch (op) {
  case 'h':
  case 'j':
    if (!take_uint(vm, op == 'h' ? 1 : 4, &v)) return OP_FAIL;
    *x = memo_get(vm, v);
    return OP_OK;
  case 'c':
    if (!read_line(vm, mod, sizeof mod) || !read_line(vm, name, sizeof name)) return OP_FAIL;
    *x = global(vm, mod, name);
    return OP_OK;
  case 0x93: /* STACK_GLOBAL */
    if (!(y = pop(vm)) || !(z = pop(vm))) return OP_FAIL;
    if (y->kind != DC__PV_STR || z->kind != DC__PV_STR || strlen(y->s) != y->len ||
        strlen(z->s) != z->len) {
      dc__pickle_fail(vm, DC_ERR_FORMAT, "STACK_GLOBAL needs two strings");
      return OP_FAIL;
    }
    *x = global(vm, z->s, y->s);
    return OP_OK;
  case 'R':
  case 'b':
    if (!(y = pop(vm)) || !(z = pop(vm))) return OP_FAIL;
    *x = hook(vm, op, z, y);
    return OP_OK;
  case 'Q':
    if (!vm->rules->persistent_load) /* refused as such, whatever the stack holds */
      return hook(vm, op, NULL, NULL) != NULL;
    if (!(y = pop(vm))) return OP_FAIL;
    *x = hook(vm, op, y, NULL);
    return OP_OK;
  default:
    return OP_NOT_MINE;
  }
}

/* Runs one opcode; *done at STOP. Returns false on error. */
static bool step(dc__pickle_vm *vm, bool *done, dc__pv **root) {
  vm->op_at = vm->pos;
  const uint8_t *d;
  if (!take(vm, 1, &d)) return false;
  uint8_t op = d[0];
  int r = op_control(vm, op, done, root);
  if (r == OP_NOT_MINE) r = op_mutate(vm, op);
  if (r != OP_NOT_MINE) return r == OP_OK;
  dc__pv *x = NULL;
  r = op_plain(vm, op, &x);
  if (r == OP_NOT_MINE) r = op_seq(vm, op, &x);
  if (r == OP_NOT_MINE) r = op_built(vm, op, &x);
  if (r == OP_NOT_MINE) {
    dc__pickle_fail(vm, DC_ERR_FORMAT,
                    "opcode 0x%02x '%c' (%s) is not allowed: this reader builds plain data only "
                    "and never creates objects or runs code",
                    op, op >= 32 && op < 127 ? op : '?', op_name(op));
    return false;
  }
  return r == OP_OK && push(vm, x);
}

dc__pickle_vm *dc__pickle_run(const uint8_t *b, size_t n, const char *what,
                              const dc__pickle_rules *rules, void *ud, dc__pv **root) {
  if ((!b && n) || !rules || !root) return dc__err(DC_ERR_ARG, "pickle: NULL argument");
  dc__pickle_vm *vm = dc__calloc(1, sizeof *vm);
  if (!vm) return NULL;
  *vm = (dc__pickle_vm){.b = b, .n = n, .what = what ? what : "pickle", .rules = rules, .ud = ud};
  bool done = false;
  *root = NULL;
  while (!done)
    if (!step(vm, &done, root)) {
      if (!dc_last_status()) dc__err(DC_ERR_NOMEM, "%s: out of memory", vm->what);
      dc__pickle_free(vm);
      *root = NULL;
      return NULL;
    }
  /* bytes after STOP are ignored, as Python does */
  dc__free(vm->stack);
  dc__free(vm->marks);
  dc__free(vm->memo);
  dc__free(vm->keys);
  vm->stack = NULL, vm->marks = NULL, vm->memo = NULL, vm->keys = NULL;
  return vm;
}

/* ---- repr ---- */
static void put(char *buf, size_t n, size_t *k, const char *s) {
  while (*s && *k + 1 < n) buf[(*k)++] = *s++;
  buf[*k < n ? *k : n - 1] = '\0';
}

static void repr_rec(const dc__pv *v, char *buf, size_t n, size_t *k, int depth) {
  char tmp[64];
  if (*k + 8 >= n || depth > 8) {
    put(buf, n, k, "...");
    return;
  }
  switch (v->kind) {
  case DC__PV_NONE:
    put(buf, n, k, "None");
    return;
  case DC__PV_BOOL:
    put(buf, n, k, v->i ? "True" : "False");
    return;
  case DC__PV_INT:
    snprintf(tmp, sizeof tmp, "%lld", (long long)v->i);
    put(buf, n, k, tmp);
    return;
  case DC__PV_FLOAT:
    for (int prec = 15; prec <= 17; prec++) { /* Python's shortest round-trip repr */
      snprintf(tmp, sizeof tmp, "%.*g", prec, v->f);
      if (strtod(tmp, NULL) == v->f || isnan(v->f)) break;
    }
    if (isfinite(v->f) && !strpbrk(tmp, ".en")) strcat(tmp, ".0");
    put(buf, n, k, isnan(v->f) ? "nan" : isinf(v->f) ? (v->f > 0 ? "inf" : "-inf") : tmp);
    return;
  case DC__PV_STR:
    put(buf, n, k, "'");
    put(buf, n, k, v->s);
    put(buf, n, k, "'");
    return;
  case DC__PV_BYTES:
    snprintf(tmp, sizeof tmp, "<%zu bytes>", v->len);
    put(buf, n, k, tmp);
    return;
  case DC__PV_TUPLE:
  case DC__PV_LIST:
  case DC__PV_DICT: {
    bool dict = v->kind == DC__PV_DICT;
    put(buf, n, k, dict ? "{" : v->kind == DC__PV_LIST ? "[" : "(");
    for (int64_t i = 0; i < v->n && *k + 8 < n; i++) {
      if (i) put(buf, n, k, ", ");
      if (dict) {
        repr_rec(v->items[2 * i], buf, n, k, depth + 1);
        put(buf, n, k, ": ");
        repr_rec(v->items[2 * i + 1], buf, n, k, depth + 1);
      } else {
        repr_rec(v->items[i], buf, n, k, depth + 1);
      }
    }
    if (*k + 8 >= n) put(buf, n, k, "...");
    if (v->kind == DC__PV_TUPLE && v->n == 1) put(buf, n, k, ",");
    put(buf, n, k, dict ? "}" : v->kind == DC__PV_LIST ? "]" : ")");
    return;
  }
  case DC__PV_GLOBAL:
  case DC__PV_OBJ:
    put(buf, n, k, "<object>");
    return;
  }
}

char *dc__pv_repr(const dc__pv *v, char *buf, size_t n) {
  size_t k = 0;
  if (!n) return buf;
  buf[0] = '\0';
  repr_rec(v, buf, n, &k, 0);
  return buf;
}
