/* Internals of the weight-file layer (weights.c, pth.c, safetensors.c, zip.c): the element types
 * files can hold (more than deepc computes with), the in-memory list of named raw tensors, and
 * the zip codec (zip-impl.h) the .pth format reads and writes through. Not installed. */
#ifndef DC_IO_WEIGHTS_IMPL_H
#define DC_IO_WEIGHTS_IMPL_H

#include "../core/core-impl.h"
#include "zip-impl.h"

#include <deepc/io.h>

#include <stdio.h>

/* Element types of weight files: name in PyTorch, safetensors code, torch storage class, bytes,
 * and the deepc dtype it becomes (-1: none; int8/int16/uint16 widen to int32, uint32/uint64
 * to int64 as for NumPy files). */
#define DC__WDT_LIST(X)                                                                            \
  X(DC__W_F64, "float64", "F64", "DoubleStorage", 8, DC_F64)                                       \
  X(DC__W_F32, "float32", "F32", "FloatStorage", 4, DC_F32)                                        \
  X(DC__W_F16, "float16", "F16", "HalfStorage", 2, DC_F16)                                         \
  X(DC__W_BF16, "bfloat16", "BF16", "BFloat16Storage", 2, DC_BF16)                                 \
  X(DC__W_I64, "int64", "I64", "LongStorage", 8, DC_I64)                                           \
  X(DC__W_I32, "int32", "I32", "IntStorage", 4, DC_I32)                                            \
  X(DC__W_I16, "int16", "I16", "ShortStorage", 2, DC_I32)                                          \
  X(DC__W_I8, "int8", "I8", "CharStorage", 1, DC_I32)                                              \
  X(DC__W_U8, "uint8", "U8", "ByteStorage", 1, DC_U8)                                              \
  X(DC__W_BOOL, "bool", "BOOL", "BoolStorage", 1, DC_BOOL)                                         \
  X(DC__W_U16, "uint16", "U16", "UInt16Storage", 2, DC_I32)                                        \
  X(DC__W_U32, "uint32", "U32", "UInt32Storage", 4, DC_I64)                                        \
  X(DC__W_U64, "uint64", "U64", "UInt64Storage", 8, DC_I64)                                        \
  X(DC__W_C64, "complex64", "C64", "ComplexFloatStorage", 8, -1)                                   \
  X(DC__W_C128, "complex128", "C128", "ComplexDoubleStorage", 16, -1)                              \
  X(DC__W_F8E4M3, "float8_e4m3fn", "F8_E4M3", "Float8_e4m3fnStorage", 1, -1)                       \
  X(DC__W_F8E5M2, "float8_e5m2", "F8_E5M2", "Float8_e5m2Storage", 1, -1)

typedef enum dc__wdt {
#define DC__X(e, t, s, st, sz, dc) e,
  DC__WDT_LIST(DC__X)
#undef DC__X
      DC__W_COUNT
} dc__wdt;

typedef struct dc__wdt_info {
  const char *torch;   /* "float32" */
  const char *st;      /* "F32" */
  const char *storage; /* "FloatStorage" */
  int size;            /* bytes per element */
  int dc;              /* dc_dtype, or -1 */
} dc__wdt_info;
extern const dc__wdt_info dc__wdt_table[DC__W_COUNT];
bool dc__wdt_from_st(const char *code, dc__wdt *out);
bool dc__wdt_from_storage(const char *storage_class, dc__wdt *out);
dc__wdt dc__wdt_from_dc(dc_dtype dt);

/* One named tensor of a file: shape and contiguous little-endian row-major bytes. */
typedef struct dc__wentry {
  char *name;
  dc__wdt dt;
  int ndim;
  int64_t shape[DC_MAX_DIMS];
  uint8_t *data;   /* dc__malloc'ed, nbytes (NULL when empty) */
  uint64_t nbytes; /* numel * element size */
} dc__wentry;

struct dc_weights {
  dc_weights_format format; /* the file it came from (DC_WEIGHTS_AUTO when built in memory) */
  bool borrowed;            /* entry data points into the parsed bytes (dc__safetensors_view) */
  int n, cap;
  dc__wentry *e; /* [n], file order */
  int nmeta, mcap;
  char **mkeys, **mvals; /* [nmeta] */
};

/* String metadata as parallel key / value arrays (of weight files and checkpoints): the value
 * of key (NULL when absent); set copies both strings and replaces an existing key's value. */
const char *dc__meta_get(char *const *keys, char *const *vals, int n, const char *key);
int dc__meta_set(char ***keys, char ***vals, int *n, int *cap, const char *key, const char *value);
void dc__meta_free(char **keys, char **vals, int n);

/* Appends an entry; takes over data (freed on failure too). Names must be unique. */
int dc__weights_push(dc_weights *w, const char *name, dc__wdt dt, int ndim, const int64_t *shape,
                     uint8_t *data, uint64_t nbytes);
/* Refuses duplicate names (naming one); what names the file. */
int dc__weights_check_unique(const dc_weights *w, const char *what);

/* Maps path read-only (*mem NULL for an empty file); kind names it in messages ("the
 * checkpoint"). Undo with dc__unmap_file. */
int dc__map_file(const char *path, const char *kind, const uint8_t **mem, size_t *n);
void dc__unmap_file(const uint8_t *mem, size_t n);

/* ---- formats (what names the source in messages) ---- */
dc_weights *dc__pth_parse(const uint8_t *mem, size_t n, const char *what);
int dc__pth_write(const dc_weights *w, FILE *f, const char *folder, const char *what);
dc_weights *dc__safetensors_parse(const uint8_t *mem, size_t n, const char *what);
/* The same checks, but the entries' data point into mem (valid while mem is; nothing copied). */
dc_weights *dc__safetensors_view(const uint8_t *mem, size_t n, const char *what);
int dc__safetensors_write(const dc_weights *w, FILE *f, const char *what);
/* One tensor of a safetensors header, in data order. */
typedef struct dc__st_entry {
  const char *name, *dtype; /* dtype: "F32", "I64", ... */
  int ndim;
  const int64_t *shape; /* [ndim] */
  uint64_t nbytes;
} dc__st_entry;
/* The JSON header (unpadded, free() it) of n entries and nmeta metadata pairs; every cJSON node
 * is checked, so an allocation failure gives NULL (DC_ERR_NOMEM recorded, naming what), never a
 * header with a field left out. *data_len: the sum of the entries' bytes. */
char *dc__st_header_json(const dc__st_entry *e, int n, char *const *mkeys, char *const *mvals,
                         int nmeta, uint64_t *data_len, const char *what);
/* The 8-byte header length, json and the spaces padding it to 8 bytes: DC_OK or
 * DC__WRITE_FAILED (errno says why). The data follows. */
int dc__st_write_header(FILE *f, const char *json);

#endif
