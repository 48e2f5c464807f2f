/* The test device's optimizer kernels: the slots and buffers src/optim hands over carry raw
 * device pointers (storage data plus offset), so each entry copies them with the pointers
 * decoded and runs the CPU kernel. A pointer that is not the test device's decodes to a
 * non-canonical address and faults, as a host pointer on a real device would. */
#include "testdev-impl.h"

#include "../optim-kernels.h"

#include <string.h>

#define OPT (dc__cpu_backend.optim)
enum { LOCAL_SLOTS = 64 }; /* a step with more parameters decodes into an allocated array */

static dc_optk_slot *decode_slots(const dc_optk_slot *slots, int n, dc_optk_slot *local) {
  dc_optk_slot *h = n <= LOCAL_SLOTS ? local : dc__malloc((size_t)n * sizeof *h);
  if (!h) return dc__err(DC_ERR_NOMEM, "testdev optim: %d slots", n);
  for (int i = 0; i < n; i++) {
    h[i] = slots[i];
    h[i].param = dc__tdev_decode(slots[i].param);
    h[i].grad = dc__tdev_decode(slots[i].grad);
    for (int k = 0; k < 3; k++) h[i].buf[k] = dc__tdev_decode(slots[i].buf[k]);
  }
  return h;
}

static int run_step(bool ref, dc_optk_rule rule, const dc_optk_slot *slots, int nslots) {
  dc_optk_slot local[LOCAL_SLOTS] = {0};
  dc_optk_slot *h = decode_slots(slots, nslots, local);
  if (!h) return DC_ERR_NOMEM;
  int rc = ref ? OPT->step_ref(rule, h, nslots) : OPT->step(rule, h, nslots);
  if (h != local) dc__free(h);
  return rc;
}

static int step(dc_optk_rule rule, const dc_optk_slot *slots, int nslots) {
  return run_step(false, rule, slots, nslots);
}

static int step_ref(dc_optk_rule rule, const dc_optk_slot *slots, int nslots) {
  return run_step(true, rule, slots, nslots);
}

static dc_optk_buf *decode_bufs(const dc_optk_buf *bufs, int n, dc_optk_buf *local) {
  dc_optk_buf *h = n <= LOCAL_SLOTS ? local : dc__malloc((size_t)n * sizeof *h);
  if (!h) return dc__err(DC_ERR_NOMEM, "testdev optim: %d buffers", n);
  for (int i = 0; i < n; i++) {
    h[i] = bufs[i];
    h[i].data = dc__tdev_decode(bufs[i].data);
  }
  return h;
}

static int norms(const dc_optk_buf *bufs, int nbufs, double p, double *out) {
  dc_optk_buf local[LOCAL_SLOTS] = {0}; /* (zeroed: GCC cannot see n <= 0 reads none) */
  dc_optk_buf *h = decode_bufs(bufs, nbufs, local);
  if (!h) return DC_ERR_NOMEM;
  int rc = OPT->norms(h, nbufs, p, out); /* out is host memory: the norms come back to the host */
  if (h != local) dc__free(h);
  return rc;
}

static int scale(const dc_optk_buf *bufs, int nbufs, double coef) {
  dc_optk_buf local[LOCAL_SLOTS] = {0}; /* (zeroed: GCC cannot see n <= 0 reads none) */
  dc_optk_buf *h = decode_bufs(bufs, nbufs, local);
  if (!h) return DC_ERR_NOMEM;
  int rc = OPT->scale(h, nbufs, coef);
  if (h != local) dc__free(h);
  return rc;
}

static int clamp(const dc_optk_buf *bufs, int nbufs, double lo, double hi) {
  dc_optk_buf local[LOCAL_SLOTS] = {0}; /* (zeroed: GCC cannot see n <= 0 reads none) */
  dc_optk_buf *h = decode_bufs(bufs, nbufs, local);
  if (!h) return DC_ERR_NOMEM;
  int rc = OPT->clamp(h, nbufs, lo, hi);
  if (h != local) dc__free(h);
  return rc;
}

const struct dc_optim_kernels dc__testdev_optim = {
    .version = DC_OPTIM_KERNELS_VERSION,
    .step = step,
    .step_ref = step_ref,
    .norms = norms,
    .scale = scale,
    .clamp = clamp,
};
