/* Device-side helpers shared by the CUDA kernel families (.cu files only): element loads and
 * stores of every dtype with the CPU's conversions (core's dc__load / dc__store), strided
 * iteration over up to four broadcast operands (from core's dc__loop), and launch sizes.
 * Dimension letters: D the coalesced dims of an iteration, K its operands (K <= 4). */
#ifndef DC_CUDA_KERN_CUH
#define DC_CUDA_KERN_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <type_traits>

#include "cuda-impl.h"

#define DC__CU_THREADS 256

/* Blocks for n elements with a grid-stride loop (at most 2^20 blocks). */
static inline unsigned dc__cu_blocks(int64_t n) {
  int64_t b = (n + DC__CU_THREADS - 1) / DC__CU_THREADS;
  if (b < 1) b = 1;
  return (unsigned)(b > (1 << 20) ? (1 << 20) : b);
}

#define DC__CU_FOR(i, n)                                                                           \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                        \
       i += (int64_t)gridDim.x * blockDim.x)

/* ---- element access: p points at the element ---- */

template <typename T> __device__ inline T dc__cu_load(const char *p, int dt) {
  switch (dt) {
  case DC_F32:
    return (T) * (const float *)p;
  case DC_F64:
    return (T) * (const double *)p;
  case DC_I64:
    return (T) * (const int64_t *)p;
  case DC_I32:
    return (T) * (const int32_t *)p;
  case DC_U8:
    return (T) * (const uint8_t *)p;
  case DC_BOOL:
    return (T)(*(const uint8_t *)p ? 1 : 0);
  case DC_BF16:
    return (T)__bfloat162float(*(const __nv_bfloat16 *)p);
  case DC_F16:
    return (T)__half2float(*(const __half *)p);
  }
  return (T)0;
}

/* Floating values take the CPU's route (dc__store: through double; bf16/f16 through float);
 * integer values (T = int64_t) are truncated to the width, as the CPU's integer kernels wrap. */
template <typename T> __device__ inline void dc__cu_store(char *p, int dt, T v) {
  if constexpr (std::is_integral<T>::value) {
    switch (dt) {
    case DC_I64:
      *(int64_t *)p = (int64_t)v;
      return;
    case DC_I32:
      *(int32_t *)p = (int32_t)(uint32_t)(uint64_t)v;
      return;
    case DC_U8:
      *(uint8_t *)p = (uint8_t)(uint64_t)v;
      return;
    case DC_BOOL:
      *(uint8_t *)p = v != 0;
      return;
    default:
      dc__cu_store<double>(p, dt, (double)v);
      return;
    }
  } else {
    switch (dt) {
    case DC_F32:
      *(float *)p = (float)v;
      return;
    case DC_F64:
      *(double *)p = (double)v;
      return;
    case DC_I64:
      *(int64_t *)p = (int64_t)v;
      return;
    case DC_I32:
      *(int32_t *)p = (int32_t)v;
      return;
    case DC_U8:
      *(uint8_t *)p = (uint8_t)(int64_t)v;
      return;
    case DC_BOOL:
      *(uint8_t *)p = v != 0;
      return;
    case DC_BF16:
      *(__nv_bfloat16 *)p = __float2bfloat16_rn((float)v);
      return;
    case DC_F16:
      *(__half *)p = __float2half_rn((float)v);
      return;
    }
  }
}

/* ---- strided iteration ---- */

/* Operand k's byte pointer and dtype, with its strides over the coalesced shape. */
typedef struct dc__cu_iter {
  int ndim, nops;
  int64_t numel;
  int64_t shape[DC_MAX_DIMS];                    /* [D] */
  int64_t stride[DC__LOOP_MAX_OPS][DC_MAX_DIMS]; /* [K][D] elements */
  char *data[DC__LOOP_MAX_OPS];                  /* [K] element 0 (base offset included) */
  int dt[DC__LOOP_MAX_OPS];                      /* [K] */
  int esize[DC__LOOP_MAX_OPS];                   /* [K] bytes per element */
} dc__cu_iter;

/* ops[0] (the output) gives the shape; the others broadcast to it. */
static inline void dc__cu_iter_setup(dc__cu_iter *it, int nops, const dc_tensor *const *ops) {
  dc__loop L;
  dc__loop_setup(&L, dc_shape_of(ops[0]), nops, ops);
  it->ndim = L.ndim;
  it->nops = nops;
  it->numel = dc_numel(ops[0]);
  for (int d = 0; d < L.ndim; d++) it->shape[d] = L.shape[d];
  for (int k = 0; k < nops; k++) {
    for (int d = 0; d < L.ndim; d++) it->stride[k][d] = L.stride[k][d];
    it->esize[k] = (int)dc_dtype_size(ops[k]->dtype);
    it->dt[k] = (int)ops[k]->dtype;
    it->data[k] = (char *)ops[k]->storage->data + (size_t)L.base[k] * (size_t)it->esize[k];
  }
}

/* Byte pointers of every operand at linear element i of the iteration. */
__device__ inline void dc__cu_iter_at(const dc__cu_iter &it, int64_t i, char **p) {
  int64_t off[DC__LOOP_MAX_OPS] = {0, 0, 0, 0};
  for (int d = it.ndim - 1; d >= 0; d--) {
    int64_t c = i % it.shape[d];
    i /= it.shape[d];
    for (int k = 0; k < it.nops; k++) off[k] += c * it.stride[k][d];
  }
  for (int k = 0; k < it.nops; k++) p[k] = it.data[k] + off[k] * it.esize[k];
}

/* *dst = *src for one element of z bytes, bit for bit */
__device__ inline void dc__cu_copy_raw(char *dst, const char *src, int z) {
  switch (z) {
  case 8:
    *(uint64_t *)dst = *(const uint64_t *)src;
    break;
  case 4:
    *(uint32_t *)dst = *(const uint32_t *)src;
    break;
  case 2:
    *(uint16_t *)dst = *(const uint16_t *)src;
    break;
  default:
    *dst = *src;
    break;
  }
}

#endif
