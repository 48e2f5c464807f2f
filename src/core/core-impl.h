/* Internal core API shared by every subsystem: errors, allocation, tensor construction,
 * shape/broadcast helpers and strided loops. Not installed; symbols carry the dc__ prefix. */
#ifndef DC_CORE_IMPL_H
#define DC_CORE_IMPL_H

#include <deepc/alloc.h>
#include <deepc/error.h>
#include <deepc/tensor.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define DC__PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DC__LIKELY(x) __builtin_expect(!!(x), 1)
#define DC__UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define DC__PRINTF(a, b)
#define DC__LIKELY(x) (x)
#define DC__UNLIKELY(x) (x)
#endif

/* Always-on check of an invariant (a programmer error, not bad input): when it is broken the
 * library records a DC_ERR_STATE error naming the condition and its place, and the function
 * returns `ret` (leave it empty in a void function). It never exits or aborts. */
#define DC__CHECK(cond, ret)                                                                       \
  do {                                                                                             \
    if (DC__UNLIKELY(!(cond))) {                                                                   \
      dc__invariant_broken(#cond, __FILE__, __LINE__);                                             \
      return ret;                                                                                  \
    }                                                                                              \
  } while (0)
void dc__invariant_broken(const char *expr, const char *file, int line);

/* ---- errors: set the thread-local message; return NULL / status for tail calls ---- */
void *dc__err(dc_status s, const char *fmt, ...) DC__PRINTF(2, 3);
int dc__errs(dc_status s, const char *fmt, ...) DC__PRINTF(2, 3); /* returns s */
void dc__verr(dc_status s, const char *fmt, va_list ap);

/* ---- allocation through the hook ---- */
void *dc__malloc(size_t n); /* 64-byte aligned; sets DC_ERR_NOMEM message on failure */
void *dc__calloc(size_t n, size_t size);
void *dc__realloc(void *p, size_t old_n, size_t n);
void dc__free(void *p);
size_t dc__malloc_size(const void *p); /* the n a dc__malloc(n) block was asked with */

/* ---- file-system helpers (fs.c) ---- */
bool dc__path_exists(const char *path);
bool dc__is_dir(const char *path);
bool dc__is_file(const char *path);      /* a regular file */
int64_t dc__file_size(const char *path); /* -1 if not a regular file */
/* mkdir -p: path and every missing folder above it; an error names the folder that failed. */
int dc__mkdirs(const char *path);
/* mkdir -p of the folder that holds file (nothing for a bare name). */
int dc__mkdirs_for(const char *file);
/*
 * What a writer puts into an atomically written file: the content, written to f (tmp is its
 * name). Returns DC_OK; DC__WRITE_FAILED right after a write to f failed (errno says why); or
 * a status with its message set. A failed stdio write need not be checked at all:
 * dc__write_atomic also finds it by ferror(f) and reports its errno. */
#define DC__WRITE_FAILED (-1)
typedef int (*dc__fill_fn)(FILE *f, const char *tmp, void *ctx);
/* Writes path atomically: fill writes a new temporary file "<path>.tmp-<pid>-<k>" in path's
 * folder, which is flushed, fsynced, renamed over path, and the folder fsynced. On any failure
 * the temporary file is removed and a file already at path stays as it was; the message names
 * path and `what` (e.g. "the checkpoint"), and the error. */
int dc__write_atomic(const char *path, const char *what, dc__fill_fn fill, void *ctx);
/* Removes from dir the temporary files of writers that no longer run (a killed process's). */
void dc__remove_stale_temps(const char *dir);
char *dc__strdup(const char *s);
/* n * size with overflow check: false (and an error naming what) on overflow. */
bool dc__mul_overflow(int64_t a, int64_t b, int64_t *out);

/* ---- devices (device.c) ----
 * The memory half of a backend: how a device allocates, frees and moves bytes. Core owns this
 * contract so that storage, element reads and printing work on any device without calling up
 * into the backend layer; a backend hands its dc_device_mem to core when it registers
 * (src/backend/registry.c). Pointers are device pointers: byte offsets may be added to them, the
 * host never dereferences them (except the cpu's). Entries return DC_OK or a status with
 * dc__errs' message. */
#define DC_DEVICE_MEM_VERSION 2
/* A queued host -> device copy (from_host_async): opaque, the backend's own. */
typedef struct dc__copy_ticket dc__copy_ticket;
/* The caching allocator's counters (cache_stats): bytes held from the driver now and at most
 * since the last reset, and the driver allocations (cudaMalloc) made. */
typedef struct dc__cache_stats {
  int64_t reserved_bytes, peak_reserved_bytes, device_mallocs;
} dc__cache_stats;
typedef struct dc_device_mem {
  int version;                   /* DC_DEVICE_MEM_VERSION */
  void *(*alloc)(size_t nbytes); /* NULL on failure (no message needed) */
  void (*free)(void *p);
  /* host <- device, device <- host, device <- device (same device): n bytes, no overlap; each
   * returns once the bytes may be reused on the source side (to_host: once they have arrived) */
  int (*to_host)(void *host, const void *src, size_t n);
  int (*from_host)(void *dst, const void *host, size_t n);
  int (*copy)(void *dst, const void *src, size_t n);
  int (*synchronize)(void); /* waits for everything queued on the device */
  /* ---- optional (NULL: core falls back as said) ----
   * Page-locked host memory, which from_host_async may read while the host goes on (NULL:
   * host buffers come from dc__malloc). */
  void *(*host_alloc_pinned)(size_t nbytes); /* NULL on failure */
  void (*host_free_pinned)(void *p);
  /* Queues n bytes from host (from host_alloc_pinned) to dst on a copy stream and returns at
   * once: work queued on the device afterwards (kernels, copies, frees) sees the bytes, and
   * the copy waits for the work queued before it, so dst may be a block just freed. host must
   * stay untouched until copy_done says so; *ticket tells (free it with ticket_free). NULL:
   * core copies with from_host and gives no ticket. */
  int (*from_host_async)(void *dst, const void *host, size_t n, dc__copy_ticket **ticket);
  /* 1: the copy finished reading host, 0: not yet (only without wait), else a status. */
  int (*copy_done)(dc__copy_ticket *ticket, bool wait);
  void (*ticket_free)(dc__copy_ticket *ticket); /* NULL is a no-op; the copy need not be done */
  /* The caching allocator's counters; with reset_peak, the peak restarts at the current value
   * (NULL: no cache, reserved = the storage bytes core counts). */
  void (*cache_stats)(dc__cache_stats *s, bool reset_peak);
  /* Gives the cached free blocks back to the driver (NULL: nothing cached). */
  int (*empty_cache)(void);
  /* The native stream the device's kernels are queued on (a cudaStream_t), for libraries that
   * queue work beside them and must order it after them (NCCL in src/dist). NULL: none. */
  void *(*native_stream)(void);
} dc_device_mem;

/* The cpu's memory entries: host memory through the allocation hook (dc__malloc). */
extern const dc_device_mem dc__host_mem;
/* Why dev is not available although built in (a builtin backend that found no hardware calls
 * this instead of registering): dc_device_parse and device errors repeat it. */
void dc__device_set_absent(dc_device dev, const char *fmt, ...) DC__PRINTF(2, 3);
/* " (cuda: no CUDA device: ...)" for a device whose backend said why it is absent, else "". */
const char *dc__device_absent_note(dc_device dev);
/* Installs dev's memory entries (the registry calls this; checks the version). */
int dc__device_mem_register(dc_device dev, const dc_device_mem *mem);
/* dev's memory entries, or NULL with an error naming the devices this build has. */
const dc_device_mem *dc__device_mem(dc_device dev);
/* "device 'x' ..." errors name the registered devices: "cpu, testdev". */
const char *dc__devices_str(void);
/* What core sees of an autograd node: src/autograd's dc_node begins with this head, whose
 * entries autograd fills in, so core frees and names a tensor's grad_fn without calling up. */
typedef struct dc__node_vt {
  /* drops t's reference to n, forgetting t as n's output first when it is */
  void (*release)(dc_node *n, const dc_tensor *t);
  const char *(*name)(const dc_node *n); /* the op's name: "mul", "conv2d" */
} dc__node_vt;
typedef struct dc__node_head {
  const dc__node_vt *vt;
} dc__node_head;
/* Whether dev's memory entries are registered (no registration is triggered). */
bool dc__device_registered(dc_device dev);
/* The function that registers the builtin backends, handed down by the registry when the
 * library loads (src/backend/registry.c); dc__device_mem calls it before it looks up a device
 * other than the cpu, so that the first tensor made on any device finds its backend. */
void dc__device_set_registrar(void (*registrar)(void));
/* A cpu tensor with t's shape and strides over a host copy of the part of t's storage that t
 * reads (any device; one synchronising read), or NULL with an error: printing and the anomaly
 * check read device tensors through it without running ops. */
dc_tensor *dc__host_view(const dc_tensor *t);
/* Host copy of n bytes at byte offset off of t's storage (any device; synchronises). */
int dc__storage_read(const dc_tensor *t, size_t off, void *host, size_t n);
/* n host bytes into t's storage at byte offset off (any device). */
int dc__storage_write(dc_tensor *t, size_t off, const void *host, size_t n);
/* Copies contiguous src's elements into contiguous dst (same dtype and numel) on any two
 * devices (access.c); device to device goes through a host buffer. */
int dc__transfer(dc_tensor *dst, const dc_tensor *src);
/* (src/ops/create.c) t, made on the cpu, moved to dev (t freed; NULL on failure). */
dc_tensor *dc__host_to(dc_tensor *t, dc_device dev);
/* (src/ops/random.c) Reserves counters for n values of the global generator; *seed gets its
 * seed. */
uint64_t dc__rng_take(int64_t n, uint64_t *seed);
/* Bytes of tensor storage on dev now and at most (counted by storage.c). */
void dc__device_bytes_add(dc_device dev, int64_t nbytes);
/* n host bytes into s at byte offset off without waiting (from_host_async, for the loader's
 * pinned buffers): *ticket says when host may be reused (dc__copy_ticket_done), or is NULL when
 * the device has no asynchronous copy and the bytes were copied at once. */
int dc__storage_write_async(dc_storage *s, size_t off, const void *host, size_t n,
                            dc__copy_ticket **ticket);
/* Whether the copy behind ticket has finished with its host buffer (1), not yet (0, only
 * without wait) or failed (a status); a NULL ticket is done. */
int dc__copy_ticket_done(dc_device dev, dc__copy_ticket *ticket, bool wait);
void dc__copy_ticket_free(dc_device dev, dc__copy_ticket *ticket);
/* Page-locked host memory for copies to dev (dc__malloc's when dev has none); free it with
 * dc__host_free_pinned and the same dev. */
void *dc__host_alloc_pinned(dc_device dev, size_t nbytes);
void dc__host_free_pinned(dc_device dev, void *p);
/* Whether dev copies from page-locked host memory asynchronously (from_host_async). */
bool dc__device_async_copies(dc_device dev);

/* ---- storage ---- */
struct dc_storage {
  void *data;
  size_t nbytes;
  dc_device device;
  int32_t refcount;
  uint32_t version;                      /* bumped by in-place writes */
  void (*free_fn)(void *data, void *ud); /* NULL: data came from the device allocator */
  void *free_ud;
};
dc_storage *dc__storage_new(size_t nbytes, dc_device dev); /* uninitialised */
void dc__storage_retain(dc_storage *s);
void dc__storage_release(dc_storage *s);

/* ---- tensors ---- */
/* New contiguous tensor (uninitialised) on dev, registered in the current scope. */
dc_tensor *dc__new(dc_shape s, dc_dtype dt, dc_device dev);
/* New tensor header viewing t's storage with the given geometry (no autograd). */
dc_tensor *dc__alias(const dc_tensor *t, int ndim, const int64_t *shape, const int64_t *stride,
                     int64_t offset);
/* Same geometry and storage as t, no grad_fn: for saving outputs in nodes without cycles. */
dc_tensor *dc__alias_same(const dc_tensor *t);
/* Internal references (graph nodes, saved tensors): dc__ref adds one, dc__unref drops one
 * without touching scope ownership. dc_free = leave the scope (if any) + dc__unref. */
dc_tensor *dc__ref(dc_tensor *t);
void dc__unref(dc_tensor *t);
/* Takes an owned, unscoped reference to t: moves the innermost scope's reference if t was
 * created in the innermost scope, else adds a reference. Release with dc__unref. */
dc_tensor *dc__take(dc_tensor *t);
/* True when t was created in the innermost open scope. */
bool dc__in_current_scope(const dc_tensor *t);
/* Removes t from its scope: the caller then owns the reference. */
void dc__unscope(dc_tensor *t);
void dc__contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);
int64_t dc__shape_numel(const dc_shape *s);
/* Validates a shape (0 <= ndim <= 8, sizes >= 0, product fits): false + error naming op. */
bool dc__check_shape(const char *op, dc_shape s);
/* Wraps a possibly negative dim into [0, ndim): false + error naming op. */
bool dc__wrap_dim(const char *op, int *dim, int ndim);
/* Checks that none of the n tensors is NULL (a NULL keeps the error of the call that made it). */
bool dc__check_nonnull(const char *op, int n, ...);
/* Broadcast shapes a and b into out, or an error naming op and both shapes. */
bool dc__broadcast_shapes(const char *op, dc_shape a, dc_shape b, dc_shape *out);
/* Strides of t seen with shape s (t broadcast to s; 0 on broadcast dims). */
void dc__broadcast_strides(const dc_tensor *t, dc_shape s, int64_t *stride);
dc_dtype dc__promote(dc_dtype a, dc_dtype b);
/* Converts t to dtype dt if needed (a new reference either way; autograd recorded). */
dc_tensor *dc__as_dtype(dc_tensor *t, dc_dtype dt);
/* t as an operand of a kernel on dev in dtype dt: dc__as_dtype, after a move to dev when t is
 * elsewhere (only a 0-d cpu tensor may be: PyTorch's rule that those mix with any device). */
dc_tensor *dc__as_operand(dc_tensor *t, dc_dtype dt, dc_device dev);

/* Grad mode: true when an op with these inputs must record a node. */
bool dc__grad_mode(void);
bool dc__any_requires_grad(int n, dc_tensor *const *ts);

/* ---- strided loops ---- *
 * dc__loop describes up to 4 operands (operand 0 is the output) over a common shape, with
 * dims coalesced where memory allows. Kernels iterate outer rows and run an inner loop over the
 * last dim: for (r = 0; r < L.rows; r++) { dc__loop_row(&L, r, off); inner(L.inner, off, L.istride)
 * } */
#define DC__LOOP_MAX_OPS 4
typedef struct dc__loop {
  int nops;
  int ndim;                                      /* >= 1 after setup */
  int64_t shape[DC_MAX_DIMS];                    /* coalesced shape */
  int64_t stride[DC__LOOP_MAX_OPS][DC_MAX_DIMS]; /* elements, per operand */
  int64_t base[DC__LOOP_MAX_OPS];                /* storage offset of each operand */
  int64_t inner;                                 /* size of the last dim */
  int64_t istride[DC__LOOP_MAX_OPS];             /* stride of the last dim per operand */
  int64_t rows;                                  /* product of the other dims */
} dc__loop;
/* ops[0] defines the shape s; the others are broadcast to it. */
void dc__loop_setup(dc__loop *L, dc_shape s, int nops, const dc_tensor *const *ops);
/* Element offsets (absolute, including base) of each operand at the start of row r. */
void dc__loop_row(const dc__loop *L, int64_t r, int64_t *off);

/* ---- conversion of single elements (for generic paths) ---- */
double dc__load(const void *p, dc_dtype dt);
void dc__store(void *p, dc_dtype dt, double v);
/* float32 -> bfloat16 rounds to nearest even (NaN stays a quiet NaN), as PyTorch does; inline
 * for the conversion loops of the kernels (cpu copy.c) */
static inline uint16_t dc__f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
  return (uint16_t)(u >> 16);
}
static inline float dc__bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
uint16_t dc__f32_to_f16(float f);
float dc__f16_to_f32(uint16_t h);

#endif
