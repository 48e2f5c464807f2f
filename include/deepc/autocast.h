/* Automatic mixed precision: torch.autocast for deepc. Inside a region opened by
 * dc_autocast_push(dev, DC_BF16, true) the ops on dev's tensors pick their compute dtype by
 * PyTorch 1.13's CPU lists: matmul, bmm, linear and conv2d cast float32 inputs to bfloat16
 * (recorded casts, so gradients reach float32 parameters as float32: the master weights stay
 * float32) and return bfloat16; the losses cast bfloat16 inputs up to float32 and return
 * float32; every other op runs in its inputs' promoted dtype. float64 and integer tensors are
 * never cast. The state is per thread and per device; regions nest (a push with enabled = false
 * turns autocast off until its pop). docs/autocast.md has the lists and the training recipe. */
#ifndef DEEPC_AUTOCAST_H
#define DEEPC_AUTOCAST_H

#include "error.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The deepest nesting of regions (pushes without their pop) per thread. */
#define DC_AUTOCAST_MAX_DEPTH 16

/* Opens a region for device dev: `with torch.autocast(device_type=dev, dtype=dt,
 * enabled=enabled)`. dt must be DC_BF16 (the only lower dtype autocast has); enabled = false
 * opens a region where autocast is off for dev. DC_ERR_ARG for another dtype or an unknown
 * device, DC_ERR_STATE past DC_AUTOCAST_MAX_DEPTH nested regions; the state is then unchanged. */
DC_API dc_status dc_autocast_push(dc_device dev, dc_dtype dt, bool enabled);
/* Closes the innermost region (of any device) and drops the casts it cached; DC_ERR_STATE when
 * no region is open. */
DC_API dc_status dc_autocast_pop(void);
/* Whether autocast is on for dev's tensors on this thread (the innermost region for dev). */
DC_API bool dc_autocast_enabled(dc_device dev);
/* The lower dtype of dev's innermost enabled region (DC_BF16), DC_F32 when autocast is off. */
DC_API dc_dtype dc_autocast_dtype(dc_device dev);

#ifdef __cplusplus
}
#endif

#endif
