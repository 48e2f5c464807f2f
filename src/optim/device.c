/* Moving an optimizer's state between devices (dc_optimizer_to), as PyTorch users move the
 * state tensors after load_state_dict. The parameters are the model's to move (dc_module_to);
 * a step checks that both sit on one device. */
#include "optim-impl.h"

int dc_optimizer_to(dc_optim *opt, dc_device dev) {
  if (!opt) return dc__errs(DC_ERR_ARG, "optimizer_to: optimizer is NULL");
  if (!dc_device_available(dev)) {
    char has[128];
    return dc__errs(DC_ERR_ARG,
                    "optimizer_to: device %s is not in this build of deepc, which has: %s",
                    dc_device_name(dev), dc_devices_available(has, sizeof has));
  }
  /* every copy is made before any buffer is replaced: on failure nothing changes */
  int n = opt->nparams, rc = DC_OK;
  dc_tensor *(*moved)[DC__OPTIM_NBUF] = dc__calloc((size_t)(n > 0 ? n : 1), sizeof *moved);
  if (!moved) return DC_ERR_NOMEM;
  for (int i = 0; i < n && rc == DC_OK; i++)
    for (int k = 0; k < DC__OPTIM_NBUF && rc == DC_OK; k++) {
      const dc_tensor *b = opt->state[i].buf[k];
      if (!b || b->device == dev) continue;
      dc_tensor *c = dc__new(dc_shape_of(b), b->dtype, dev);
      if (c) dc__unscope(c);
      rc = c ? dc_copy_(c, b) : dc__optim_failed();
      moved[i][k] = c;
    }
  for (int i = 0; i < n; i++)
    for (int k = 0; k < DC__OPTIM_NBUF; k++) {
      if (!moved[i][k]) continue;
      if (rc == DC_OK) {
        dc__unref(opt->state[i].buf[k]);
        opt->state[i].buf[k] = moved[i][k];
      } else {
        dc__unref(moved[i][k]);
      }
    }
  dc__free(moved);
  return rc;
}
