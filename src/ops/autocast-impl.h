/* How the ops follow autocast (autocast.c) and compute bfloat16 where their kernels have no
 * bfloat16 entry. An op calls dc__autocast_cast at its top: when a region is open for its
 * inputs' device and an input needs a cast, the op calls itself again with the cast inputs and
 * releases them. An op whose backend entry lacks bfloat16 (dc__bf16_native) calls dc__bf16_up,
 * runs its float32 path on the upcast inputs and rounds the result once with dc__bf16_down.
 * All casts are dc_to_dtype (recorded), so gradients come back in each input's dtype. */
#ifndef DC_AUTOCAST_IMPL_H
#define DC_AUTOCAST_IMPL_H

#include <deepc/autocast.h>

#include "../backend/backend.h"

/* PyTorch's autocast lists: LOWER casts float32 inputs to the region's dtype (bfloat16), FP32
 * casts bfloat16 inputs to float32, PROMOTE (every other op) casts nothing. float64, integer and
 * bool inputs are never cast. */
typedef enum dc__autocast_list {
  DC__AUTOCAST_LOWER,
  DC__AUTOCAST_FP32,
  DC__AUTOCAST_PROMOTE
} dc__autocast_list;

/* How an op runs, decided at its top by dc__amp_enter. */
typedef enum dc__amp_mode {
  DC__AMP_NONE, /* as called */
  DC__AMP_CAST, /* autocast cast some inputs: call the op again with c[] */
  DC__AMP_F32   /* a bfloat16 input and no native entry: call the op again with c[] (bfloat16
                 * inputs upcast to float32) and round its result to bfloat16 once */
} dc__amp_mode;

/* In dc__amp_enter's `native`: the op needs its floating operands in one dtype, so operands of
 * mixed dtypes take no F32 mode (the op's own check refuses them, as PyTorch does). */
#define DC__AMP_SAME_DTYPE (1u << 31)
/* The most operands dc__amp_enter takes. */
#define DC__AMP_MAX_OPERANDS 8

/* For an op of list l with operands in[n] (NULL entries allowed; the first non-NULL one gives
 * the device) whose backend entries `native` (DC_BF16_BIT bits, 0: none; | DC__AMP_SAME_DTYPE)
 * may take bfloat16:
 * CAST when autocast is on for the device and list l casts an input, else F32 when an input is
 * bfloat16 and the backend lacks an entry of `native` (or native is 0), else NONE. In CAST and
 * F32 modes c[i] is the cast input or in[i] itself, and on a failed cast every c[i] is NULL, so
 * the op called again returns NULL with the cast's error. In F32 mode autocast is off until
 * dc__amp_leave (the float32 path is the op's own arithmetic); every enter that returns CAST or
 * F32 must be followed by its leave. */
dc__amp_mode dc__amp_enter(dc__autocast_list l, uint32_t native, int n, dc_tensor *const *in,
                           dc_tensor **c);
/* Finishes a CAST or F32 call: r (the op's result on c[]) rounded to bfloat16 in F32 mode when
 * round is true (r freed), then the casts c[i] that are not in[i] freed. */
dc_tensor *dc__amp_leave(dc__amp_mode m, bool round, dc_tensor *r, int n, dc_tensor *const *in,
                         dc_tensor **c);

#endif
