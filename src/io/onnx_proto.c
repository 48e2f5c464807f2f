/* The protobuf-c side of the ONNX code: an allocator through deepc's allocation hook, making
 * and growing messages, and the atomic write of a packed model. Building graphs is onnx_graph.c,
 * reading them onnx_import.c. */
#include "onnx-impl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void *onnx_alloc(void *ud, size_t size) {
  (void)ud;
  return dc__malloc(size ? size : 1);
}

static void onnx_free(void *ud, void *p) {
  (void)ud;
  dc__free(p);
}

ProtobufCAllocator dc__onnx_alloc = {onnx_alloc, onnx_free, NULL};

/* Unpacking under a memory budget: protobuf-c's messages of a hostile file (a million tiny
 * nodes) take many times the file's size; past the budget the allocator refuses. */
typedef struct budget {
  size_t used, limit;
  bool over, nomem; /* past the budget / the allocator itself failed */
} budget;

static void *budget_alloc(void *ud, size_t size) {
  budget *b = ud;
  size_t need = (size + 63) / 64 * 64 + 64; /* dc__malloc rounds to 64-byte blocks */
  if (b->used + need > b->limit) {
    b->over = true;
    return NULL;
  }
  void *p = dc__malloc(size ? size : 1);
  if (p) b->used += need;
  b->nomem = b->nomem || !p;
  return p;
}

Onnx__ModelProto *dc__onnx_unpack(const void *data, size_t size, const char *what) {
  budget b = {.limit = 4 * size + ((size_t)32 << 20)};
  ProtobufCAllocator a = {budget_alloc, onnx_free, &b};
  Onnx__ModelProto *mp = onnx__model_proto__unpack(&a, size, data);
  if (mp) return mp;
  if (b.nomem) return dc__err(DC_ERR_NOMEM, "%s: out of memory unpacking the model", what);
  if (b.over)
    return dc__err(DC_ERR_FORMAT,
                   "%s: the protobuf message needs more than %zu MiB to unpack (4 times the "
                   "file plus 32 MiB): too many nodes, values or attributes for deepc",
                   what, b.limit >> 20);
  return dc__err(DC_ERR_FORMAT,
                 "%s: not a valid ONNX model: the protobuf message is truncated or malformed "
                 "(protobuf-c gives no offset)",
                 what);
}

void *dc__onnx_new(size_t size, void (*init)(void *)) {
  void *p = dc__malloc(size);
  if (p) init(p);
  return p;
}

bool dc__onnx_push(void ***arr, size_t *n, void *p) {
  if (!p) return false;
  void **a = dc__realloc(*arr, sizeof *a * *n, sizeof *a * (*n + 1));
  if (!a) return false;
  a[(*n)++] = p;
  *arr = a;
  return true;
}

typedef struct {
  const void *data; /* the serialized model */
  size_t size;
} onnx_bytes;

static int onnx_fill(FILE *f, const char *tmp, void *ctx) {
  (void)tmp;
  const onnx_bytes *b = ctx;
  return fwrite(b->data, 1, b->size, f) == b->size ? DC_OK : DC__WRITE_FAILED;
}

int dc__onnx_write_file(const char *path, const void *data, size_t size) {
  onnx_bytes b = {data, size};
  return dc__write_atomic(path, "the ONNX model", onnx_fill, &b);
}
