/* The public device lookups: which devices this deepc has, parsing "cuda:0", waiting for a
 * device. Each first registers the builtin backends (dc__backends_init), which core, below the
 * registry, never does itself: core only reads what has registered (src/core/device.c). */
#include "backend.h"

#include <stdio.h>
#include <string.h>

bool dc_device_available(dc_device dev) {
  dc__backends_init();
  return dc__device_registered(dev);
}

char *dc_devices_available(char *buf, size_t n) {
  if (!buf || !n) return buf;
  dc__backends_init();
  snprintf(buf, n, "%s", dc__devices_str());
  return buf;
}

int dc_device_parse(const char *name, dc_device *dev) {
  if (!name || !dev) return dc__errs(DC_ERR_ARG, "device_parse: NULL argument");
  dc__backends_init();
  size_t len = strcspn(name, ":");
  for (int d = 0; d < DC_DEVICE_COUNT; d++) {
    const char *dn = dc_device_name((dc_device)d);
    if (strlen(dn) != len || strncmp(name, dn, len) != 0) continue;
    if (name[len] && strcmp(name + len, ":0") != 0)
      return dc__errs(DC_ERR_ARG,
                      "device '%s': only index 0 is supported (each process uses one "
                      "device of a kind; run one process per GPU for more)",
                      name);
    if (!dc__device_registered((dc_device)d))
      return dc__errs(DC_ERR_ARG, "device '%s' is %s, which has: %s%s", name,
                      *dc__device_absent_note((dc_device)d) ? "not available to this deepc"
                                                            : "not in this build of deepc",
                      dc__devices_str(), dc__device_absent_note((dc_device)d));
    *dev = (dc_device)d;
    return DC_OK;
  }
  return dc__errs(DC_ERR_ARG, "unknown device '%s'; this build of deepc has: %s", name,
                  dc__devices_str());
}

int dc_synchronize(dc_device dev) {
  dc__backends_init();
  const dc_device_mem *m = dc__device_mem(dev);
  return m ? m->synchronize() : (int)dc_last_status();
}
