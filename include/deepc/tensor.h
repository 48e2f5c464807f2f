/* Tensors: dtype, device, shape/strides over refcounted storage, creation, views and scopes.
 * Ops on tensors live in ops.h, gradients in autograd.h.
 * Ownership: a tensor created inside dc_scope_begin()/dc_scope_end() is freed by dc_scope_end()
 * unless passed to dc_keep(); a tensor created outside any scope is the caller's (dc_free). */
#ifndef DEEPC_TENSOR_H
#define DEEPC_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "export.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DC_MAX_DIMS 8

/* X-macro list of dtypes: name, C type size, printable name (PyTorch's). */
/* clang-format off */
#define DC_DTYPE_LIST(X)    \
  X(DC_F32, 4, "float32")   \
  X(DC_F64, 8, "float64")   \
  X(DC_I64, 8, "int64")     \
  X(DC_I32, 4, "int32")     \
  X(DC_U8, 1, "uint8")      \
  X(DC_BOOL, 1, "bool")     \
  X(DC_BF16, 2, "bfloat16") \
  X(DC_F16, 2, "float16")

typedef enum dc_dtype {
#define DC_X(name, size, str) name,
  DC_DTYPE_LIST(DC_X)
#undef DC_X
  DC_DTYPE_COUNT
} dc_dtype;

/* X-macro list of device kinds: enum name, the name users write ("cpu", "cuda", "testdev").
 * A build has the devices whose backend registered (dc_device_available): always cpu; cuda
 * once its backend lands; testdev, a device whose memory the host cannot read, run by the CPU
 * kernels, for tests (docs/internals.md). */
#define DC_DEVICE_LIST(X) \
  X(DC_CPU, "cpu")        \
  X(DC_CUDA, "cuda")      \
  X(DC_TESTDEV, "testdev")

typedef enum dc_device {
#define DC_X(name, str) name,
  DC_DEVICE_LIST(DC_X)
#undef DC_X
  DC_DEVICE_COUNT
} dc_device;
/* clang-format on */

/* A shape by value: dc_zeros(DC_SHAPE(64, 10), DC_F32). */
typedef struct dc_shape {
  int ndim;
  int64_t d[DC_MAX_DIMS];
} dc_shape;

#define DC__NARG(...) DC__NARG_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define DC__NARG_(a1, a2, a3, a4, a5, a6, a7, a8, n, ...) n
#define DC_SHAPE(...) ((dc_shape){.ndim = DC__NARG(__VA_ARGS__), .d = {__VA_ARGS__}})
#define DC_SCALAR_SHAPE ((dc_shape){.ndim = 0})

typedef struct dc_storage dc_storage; /* refcounted buffer on one device */
typedef struct dc_node dc_node;       /* autograd graph node (autograd.h) */

/* Fields are readable by users; change them only through the API. */
typedef struct dc_tensor {
  dc_storage *storage;
  int64_t offset; /* in elements, into storage */
  int ndim;
  int64_t shape[DC_MAX_DIMS];
  int64_t stride[DC_MAX_DIMS]; /* in elements */
  dc_dtype dtype;
  dc_device device;
  bool requires_grad;
  bool retains_grad;      /* keep .grad of a non-leaf after backward */
  struct dc_tensor *grad; /* accumulated gradient (same shape), owned by this tensor */
  dc_node *grad_fn;       /* node that produced this tensor; NULL for leaves */
  const char *name;       /* optional label for graph export (not owned) */
  int32_t refcount;       /* internal */
  int32_t scope_level;    /* internal: owning scope (1 = outermost), 0 when unscoped */
  int32_t scope_slot;     /* internal: index in the owning scope's list */
} dc_tensor;

/* ---- dtypes ---- */
DC_API size_t dc_dtype_size(dc_dtype dt);
DC_API const char *dc_dtype_name(dc_dtype dt);
DC_API bool dc_dtype_is_float(dc_dtype dt);

/* ---- devices ---- */
/* "cpu", "cuda", "testdev"; "unknown" for a value outside the enum. */
DC_API const char *dc_device_name(dc_device dev);
/* True when this build has a backend for dev (the cpu always). */
DC_API bool dc_device_available(dc_device dev);
/* Parses a device name ("cpu", "cuda", "cuda:0", "testdev") into *dev. An unknown name, or a
 * device this build lacks, is DC_ERR_ARG with a message naming the devices the build has. */
DC_API int dc_device_parse(const char *name, dc_device *dev);
/* The devices this build has, comma-separated ("cpu, testdev"), into buf; returns buf. */
DC_API char *dc_devices_available(char *buf, size_t n);
/* Waits until every kernel and transfer queued on dev has finished (a no-op on the cpu).
 * Reading values to the host (dc_item, dc_item_at, dc_copy_to_buffer, dc_to_device to the cpu)
 * synchronises by itself. */
DC_API int dc_synchronize(dc_device dev);
/* Bytes of tensor storage on dev now and at most since the start (or the last reset); either
 * pointer may be NULL. */
DC_API int dc_device_memory(dc_device dev, int64_t *live_bytes, int64_t *peak_bytes);
/* Restarts both peaks of dev (allocated and reserved) at their current values, like
 * torch.cuda.reset_peak_memory_stats. */
DC_API void dc_device_memory_reset_peak(dc_device dev);
/* A device's memory counters, torch.cuda's names in the comments. A device without a caching
 * allocator (cpu, testdev) reserves what its tensors hold: reserved = allocated. */
typedef struct dc_memory_stats {
  int64_t allocated_bytes;      /* tensor storage now (memory_allocated) */
  int64_t peak_allocated_bytes; /* at most since the start or reset (max_memory_allocated) */
  int64_t reserved_bytes;       /* held from the driver, cached blocks included (memory_reserved) */
  int64_t peak_reserved_bytes;  /* max_memory_reserved */
  int64_t device_mallocs;       /* driver allocations so far (cudaMalloc; storages made where
                                   there is no cache): constant over a steady training step */
} dc_memory_stats;
DC_API int dc_device_memory_stats(dc_device dev, dc_memory_stats *s);
/* Gives dev's cached free blocks back to the driver (torch.cuda.empty_cache); waits for dev
 * first. Tensors stay valid; a no-op on devices without a cache. */
DC_API int dc_device_empty_cache(dc_device dev);
/* TF32 tensor cores for float32 matrix products and convolutions on cuda
 * (torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32 in one): off by
 * default, as PyTorch's matmul, unless DEEPC_ALLOW_TF32=1 is in the environment; a call wins
 * over the variable. Results then round inputs to 10 mantissa bits. No effect on other
 * devices. */
DC_API void dc_set_allow_tf32(bool on);
DC_API bool dc_allow_tf32(void);

/* ---- creation (NULL + dc_last_error() on failure) ----
 * The functions without a device make cpu tensors; each has an _on variant that makes the
 * tensor on a device, with the same values (random ones included: the same generator stream
 * feeds every device). */
DC_API dc_tensor *dc_empty(dc_shape s, dc_dtype dt);
DC_API dc_tensor *dc_zeros(dc_shape s, dc_dtype dt);
DC_API dc_tensor *dc_ones(dc_shape s, dc_dtype dt);
DC_API dc_tensor *dc_full(dc_shape s, double value, dc_dtype dt);
DC_API dc_tensor *dc_scalar(double value, dc_dtype dt); /* 0-d tensor */
DC_API dc_tensor *dc_arange(double start, double end, double step, dc_dtype dt);
DC_API dc_tensor *dc_linspace(double start, double end, int64_t steps, dc_dtype dt);
DC_API dc_tensor *dc_eye(int64_t n, int64_t m, dc_dtype dt);
/* Copies n = numel(s) elements of type dt from data. */
DC_API dc_tensor *dc_from_data(const void *data, dc_shape s, dc_dtype dt);
DC_API dc_tensor *dc_empty_on(dc_shape s, dc_dtype dt, dc_device dev);
DC_API dc_tensor *dc_zeros_on(dc_shape s, dc_dtype dt, dc_device dev);
DC_API dc_tensor *dc_ones_on(dc_shape s, dc_dtype dt, dc_device dev);
DC_API dc_tensor *dc_full_on(dc_shape s, double value, dc_dtype dt, dc_device dev);
DC_API dc_tensor *dc_scalar_on(double value, dc_dtype dt, dc_device dev);
DC_API dc_tensor *dc_arange_on(double start, double end, double step, dc_dtype dt, dc_device dev);
DC_API dc_tensor *dc_linspace_on(double start, double end, int64_t steps, dc_dtype dt,
                                 dc_device dev);
DC_API dc_tensor *dc_eye_on(int64_t n, int64_t m, dc_dtype dt, dc_device dev);
/* data is host memory; the tensor is made on dev (one transfer). */
DC_API dc_tensor *dc_from_data_on(const void *data, dc_shape s, dc_dtype dt, dc_device dev);
/* Same shape, dtype and device as t. */
DC_API dc_tensor *dc_empty_like(const dc_tensor *t);
DC_API dc_tensor *dc_zeros_like(const dc_tensor *t);
DC_API dc_tensor *dc_ones_like(const dc_tensor *t);

/* ---- random numbers: one seeded counter-based generator (Philox4x32-10); the values
 * depend only on the seed and the draw order, never on the thread count ---- */
DC_API void dc_manual_seed(uint64_t seed);
DC_API uint64_t dc_rng_get_state(uint64_t *counter); /* returns seed, writes counter */
DC_API void dc_rng_set_state(uint64_t seed, uint64_t counter);
DC_API dc_tensor *dc_rand(dc_shape s, dc_dtype dt);                               /* U[0,1) */
DC_API dc_tensor *dc_randn(dc_shape s, dc_dtype dt);                              /* N(0,1) */
DC_API dc_tensor *dc_randint(int64_t low, int64_t high, dc_shape s, dc_dtype dt); /* [low,high) */
DC_API dc_tensor *dc_bernoulli(const dc_tensor *p); /* 0/1 with probability p, dtype of p */
DC_API dc_tensor *dc_randperm(int64_t n);           /* int64 permutation of 0..n-1 */
DC_API dc_tensor *dc_rand_on(dc_shape s, dc_dtype dt, dc_device dev);
DC_API dc_tensor *dc_randn_on(dc_shape s, dc_dtype dt, dc_device dev);
DC_API dc_tensor *dc_randint_on(int64_t low, int64_t high, dc_shape s, dc_dtype dt, dc_device dev);
DC_API dc_tensor *dc_randperm_on(int64_t n, dc_device dev);
DC_API dc_tensor *dc_rand_like(const dc_tensor *t);
DC_API dc_tensor *dc_randn_like(const dc_tensor *t);
/* In place: fill with U[a,b) or N(mean,std) (used by initialisers). */
DC_API int dc_uniform_(dc_tensor *t, double a, double b);
DC_API int dc_normal_(dc_tensor *t, double mean, double std);

/* ---- inspection ---- */
DC_API int64_t dc_numel(const dc_tensor *t);
DC_API dc_shape dc_shape_of(const dc_tensor *t);
DC_API bool dc_is_contiguous(const dc_tensor *t);
DC_API bool dc_shape_equal(dc_shape a, dc_shape b);
/* Formats a shape as "[64, 10]" into buf (always NUL-terminated); returns buf. */
DC_API char *dc_shape_str(dc_shape s, char *buf, size_t n);
/* Pointer to the first element of a cpu tensor; NULL for other devices (their memory is not
 * the host's: read it with the calls below, or move the tensor with dc_to_device). */
DC_API void *dc_data(const dc_tensor *t);
/* Element at a flat index of the logical (row-major) order, as double. On a device this copies
 * the element to the host and so waits for the device (like PyTorch's .item()). */
DC_API double dc_item_at(const dc_tensor *t, int64_t flat_index);
/* Value of a one-element tensor (synchronises like dc_item_at). */
DC_API double dc_item(const dc_tensor *t);
/* Copies all elements in row-major order to out (numel elements of t->dtype), host memory, from
 * any device (synchronises). */
DC_API int dc_copy_to_buffer(const dc_tensor *t, void *out, size_t out_bytes);

/* Prints like PyTorch: tensor([[...]], device='testdev', dtype=..., grad_fn=<...>) with elision
 * past 1000 items (a tensor on a device is copied to the host once: it synchronises). */
DC_API int dc_print(const dc_tensor *t);
DC_API int dc_fprint(FILE *f, const dc_tensor *t);
/* Same text into a malloc'ed string (free with free()). */
DC_API char *dc_to_string(const dc_tensor *t);

/* ---- views: share storage, no copy; differentiable ---- */
DC_API dc_tensor *dc_view(dc_tensor *t, dc_shape s);    /* contiguous only; one dim may be -1 */
DC_API dc_tensor *dc_reshape(dc_tensor *t, dc_shape s); /* view if possible, else copy */
DC_API dc_tensor *dc_permute(dc_tensor *t, const int *dims, int ndims);
DC_API dc_tensor *dc_transpose(dc_tensor *t, int d0, int d1);
DC_API dc_tensor *dc_narrow(dc_tensor *t, int dim, int64_t start, int64_t length);
/* Python-style slice t[start:end:step] along dim (negative indices allowed, step > 0). */
DC_API dc_tensor *dc_slice(dc_tensor *t, int dim, int64_t start, int64_t end, int64_t step);
DC_API dc_tensor *dc_select(dc_tensor *t, int dim, int64_t index); /* drops dim */
DC_API dc_tensor *dc_expand(dc_tensor *t, dc_shape s);             /* -1 keeps a size */
DC_API dc_tensor *dc_squeeze(dc_tensor *t, int dim);               /* dim = DC_ALL_DIMS: all */
DC_API dc_tensor *dc_unsqueeze(dc_tensor *t, int dim);
DC_API dc_tensor *dc_flatten(dc_tensor *t, int start_dim, int end_dim);
DC_API dc_tensor *dc_contiguous(dc_tensor *t); /* t itself (a new reference) if contiguous */
DC_API dc_tensor *dc_clone(dc_tensor *t);      /* always a copy, differentiable */
DC_API dc_tensor *dc_to_dtype(dc_tensor *t, dc_dtype dt); /* differentiable between floats */
/* A contiguous copy of t on dev (a copy also when t is on dev already); differentiable: the
 * gradient goes back to t's device. Waits for the transfer to finish when dev is the cpu. A
 * device this build lacks is DC_ERR_ARG naming the devices it has. */
DC_API dc_tensor *dc_to_device(dc_tensor *t, dc_device dev);
/* Copies src into dst (broadcasting src, converting dtype, from any device to any device); not
 * recorded by autograd. */
DC_API int dc_copy_(dc_tensor *dst, const dc_tensor *src);
DC_API int dc_fill_(dc_tensor *t, double value);
/* Moves t to dev in place (PyTorch's param.data = param.data.to(dev)): t gets a new storage on
 * dev holding its old storage's bytes; its shape, strides and offset keep their meaning, other
 * tensors viewing the old storage keep it, t->grad is not moved. A no-op when t is on dev. */
DC_API int dc_move_to_device_(dc_tensor *t, dc_device dev);

#define DC_ALL_DIMS 127

/* ---- ownership ---- */
/* Drops the caller's ownership of t (the scope's, if t belongs to one); the tensor and its
 * storage go when nothing else (a graph node, a view) still refers to them. NULL is ignored. */
DC_API void dc_free(dc_tensor *t);
/* Scopes: dc_scope_end frees every tensor created since the matching dc_scope_begin except
 * those passed to dc_keep, which move to the enclosing scope (or to the caller outside all). */
DC_API int dc_scope_begin(void);
DC_API void dc_scope_end(void);
DC_API dc_tensor *dc_keep(dc_tensor *t);
/* Number of tensors alive (all scopes and unscoped), for leak checks in tests. */
DC_API int64_t dc_live_tensors(void);

/* Marks a leaf as needing gradients (returns t). Errors for non-float dtypes. */
DC_API dc_tensor *dc_requires_grad_(dc_tensor *t, bool on);

#ifdef __cplusplus
}
#endif
#endif
