/* Internal to the test device (src/backend/testdev): how its pointers are encoded, the shadow
 * frames its wrappers use to run the CPU kernels on its memory, and the kernel tables table.c
 * collects. Device pointers are host pointers (from dc__malloc) with bit 63 flipped: a
 * non-canonical address, so any host load or store through one faults, while byte offsets added
 * to it (storage->data + offset) still decode to the right host address. */
#ifndef DC_TESTDEV_IMPL_H
#define DC_TESTDEV_IMPL_H

#include "../backend.h"

#include <stdint.h>

#define DC__TDEV_BIT ((uintptr_t)1 << 63)

/* host -> device pointer (NULL stays NULL: an encoded pointer is never NULL) */
static inline void *dc__tdev_encode(void *host) {
  return host ? (void *)((uintptr_t)host ^ DC__TDEV_BIT) : NULL;
}
/* device -> host pointer (NULL stays NULL) */
static inline void *dc__tdev_decode(const void *dev) {
  return dev ? (void *)((uintptr_t)dev ^ DC__TDEV_BIT) : NULL;
}

/* The memory entries (memory.c). */
extern const dc_device_mem dc__testdev_mem;
/* For tests: pinned host buffers live now, asynchronous copies queued so far. */
int64_t dc__testdev_pinned_live(void);
int64_t dc__testdev_async_copies(void);

/* ---- shadow frames (shadow.c) ----
 * A wrapper opens a frame on its stack, asks dc__tdev_host() for the host view ("shadow") of
 * each tensor argument, calls the CPU kernel with the shadows and closes the frame with
 * dc__tdev_end(). A shadow is a copy of the tensor's header with device DC_CPU, grad and grad_fn
 * cleared (no kernel may reach other tensors through them) and storage pointing to a shadow
 * storage: a copy of the dc_storage with data decoded and device DC_CPU. The same tensor asked
 * twice gives the same shadow (kernels test out == x), and tensors sharing a dc_storage share
 * one shadow storage (kernels test a->storage == out->storage to detect in-place work). NULL
 * stays NULL. dc__tdev_end writes back what a kernel may change (storage->version, bumped on
 * running statistics) and checks that no kernel changed a header. */
#define DC__TDEV_MAX_SHADOWS 16 /* the most tensors a kernel takes is 13 (conv_block_backward) */
typedef struct dc__tdev_frame {
  int ntensors, nstorages;
  const char *broken; /* the first misuse seen (too many tensors, a tensor not on testdev) */
  const dc_tensor *dev_t[DC__TDEV_MAX_SHADOWS];
  dc_tensor host_t[DC__TDEV_MAX_SHADOWS];
  dc_storage *dev_s[DC__TDEV_MAX_SHADOWS];
  dc_storage host_s[DC__TDEV_MAX_SHADOWS];
} dc__tdev_frame;

/* Start a frame (an empty one). */
void dc__tdev_begin(dc__tdev_frame *f);
/* The shadow of t in frame f (NULL for NULL, and on misuse: f->broken says which). */
dc_tensor *dc__tdev_host(dc__tdev_frame *f, const dc_tensor *t);
/* Closes f after the kernel returned rc: writes back storage versions; returns rc, or
 * DC_ERR_STATE with a message when the frame was misused or a kernel changed a header. */
int dc__tdev_end(dc__tdev_frame *f, int rc);
/* Whether the frame is still sound (no misuse yet): wrappers call the kernel only then. */
static inline bool dc__tdev_ok(const dc__tdev_frame *f) { return f->broken == NULL; }

/* ---- the kernel tables: wrappers over the CPU's (wrap_*.c) ---- */
extern const dc_elementwise_kernels dc__testdev_ew;
extern const dc_reduce_kernels dc__testdev_red;
extern const dc_linalg_kernels dc__testdev_linalg;
extern const dc_index_kernels dc__testdev_index;
extern const dc_random_kernels dc__testdev_rand;
extern const struct dc_nn_kernels dc__testdev_nn;
extern const struct dc_optim_kernels dc__testdev_optim;

#endif
