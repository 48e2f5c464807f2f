/* The one restricted Python unpickler of deepc, with pluggable rules: the VM builds plain values
 * (None, bools, ints, floats, str, bytes, tuples, lists, dicts) from the binary opcodes of
 * protocols 2-5 and hands every GLOBAL, REDUCE, BUILD and BINPERSID to the caller's rules, which
 * accept what their file format needs and refuse the rest. Opcodes that can run code or build
 * arbitrary objects (INST, OBJ, NEWOBJ, EXT*, text PERSID, ...) and unknown opcodes are refused
 * with their name and byte offset. Nothing is ever imported or called. Two rule sets use it:
 * state dicts of .pth files (src/io/pth.c) and NumPy arrays of pickled datasets
 * (src/data/pickle.c, which also turns the values into the public dc_pyobj tree). */
#ifndef DC_IO_PICKLE_VM_H
#define DC_IO_PICKLE_VM_H

#include "../core/core-impl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum dc__pv_kind {
  DC__PV_NONE = 0,
  DC__PV_BOOL,
  DC__PV_INT,
  DC__PV_FLOAT,
  DC__PV_STR, /* UTF-8 text */
  DC__PV_BYTES,
  DC__PV_TUPLE,
  DC__PV_LIST,
  DC__PV_DICT,   /* dict or OrderedDict: key items[2k], value items[2k+1], insertion order */
  DC__PV_GLOBAL, /* an allowed global: tag is what the rules' global() returned */
  DC__PV_OBJ     /* an object made by the rules: tag and i are theirs */
} dc__pv_kind;

typedef struct dc__pv {
  dc__pv_kind kind;
  int tag;               /* GLOBAL / OBJ: the rules' tag */
  int depth;             /* containers: 1 + depth of the deepest item (nesting limit) */
  int64_t i;             /* BOOL / INT value; OBJ: the rules' index */
  double f;              /* FLOAT */
  char *s;               /* STR / BYTES: NUL-terminated copy */
  size_t len;            /* STR / BYTES length */
  struct dc__pv **items; /* TUPLE / LIST: n items; DICT: 2n (key, value) */
  int64_t n, cap;
  struct dc__pv *attrs; /* DICT: state set by an accepted BUILD (OrderedDict's __dict__) */
  size_t at;            /* offset of the opcode that made it */
  void *user;           /* free for the caller once the run is over (a view made from it) */
} dc__pv;

typedef struct dc__pickle_vm dc__pickle_vm;

/* The rules of one file format. A hook returns the new object or NULL after dc__pickle_fail
 * (or another error). A NULL hook refuses the opcode. */
typedef struct dc__pickle_rules {
  const char *allowed; /* for messages: "collections.OrderedDict, torch._utils..." */
  /* module.name -> tag >= 0, or -1 to refuse the global */
  int (*global)(void *ud, const char *module, const char *name);
  dc__pv *(*reduce)(dc__pickle_vm *vm, void *ud, dc__pv *fn, dc__pv *args);
  dc__pv *(*build)(dc__pickle_vm *vm, void *ud, dc__pv *obj, dc__pv *state);
  dc__pv *(*persistent_load)(dc__pickle_vm *vm, void *ud, dc__pv *pid);
} dc__pickle_rules;

/* Limits every run applies, whatever the rules. */
#define DC__PICKLE_MAX_DEPTH 100         /* nesting of containers and MARKs */
#define DC__PICKLE_MAX_OBJECTS (1 << 21) /* objects made by one pickle (~200 MB) */

/* Runs the pickle in b[0, n) (what names it in messages: "model.pth:data.pkl"). On success
 * *root is the object STOP returned and the VM (which owns every object) is returned; free it
 * with dc__pickle_free after use. NULL + error otherwise. */
dc__pickle_vm *dc__pickle_run(const uint8_t *b, size_t n, const char *what,
                              const dc__pickle_rules *rules, void *ud, dc__pv **root);
void dc__pickle_free(dc__pickle_vm *vm);

/* For the hooks: a new object owned by the VM (NULL + error past the object limit). */
dc__pv *dc__pv_new(dc__pickle_vm *vm, dc__pv_kind kind);
/* Sets the error "<what>: offset <opcode offset>: <message>"; returns NULL. */
void *dc__pickle_fail(dc__pickle_vm *vm, dc_status st, const char *fmt, ...) DC__PRINTF(3, 4);
/* The value under a str key of a dict, or NULL. (A dict holds each str key once: a key set
 * again keeps its place and takes the new value, as in Python.) */
dc__pv *dc__pv_get(const dc__pv *dict, const char *key);
/* Python's name of a kind ("tuple", "OrderedDict or dict", ...). */
const char *dc__pv_kind_name(dc__pv_kind k);
/* A short Python-like repr of a plain value (numbers, strings, None, lists of them) into buf;
 * containers longer than fits are cut with "...". Returns buf. */
char *dc__pv_repr(const dc__pv *v, char *buf, size_t n);

#endif
