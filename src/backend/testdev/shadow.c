/* Shadow frames: the host views of a kernel call's tensor arguments that let the test device run
 * the CPU kernels unchanged on its encoded memory (contract in testdev-impl.h). Each wrapper's
 * frame lives on its stack for one call; nothing here is shared between threads. */
#include "testdev-impl.h"

#include <string.h>

void dc__tdev_begin(dc__tdev_frame *f) {
  f->ntensors = 0;
  f->nstorages = 0;
  f->broken = NULL;
}

static void *misuse(dc__tdev_frame *f, const char *what) {
  if (!f->broken) f->broken = what;
  return NULL;
}

/* The shadow of storage s (shared by every tensor of the call that views s). */
static dc_storage *host_storage(dc__tdev_frame *f, const dc_tensor *t) {
  dc_storage *s = t->storage;
  for (int i = 0; i < f->nstorages; i++)
    if (f->dev_s[i] == s) return &f->host_s[i];
  if (f->nstorages == DC__TDEV_MAX_SHADOWS) return misuse(f, "more storages than a frame holds");
  if (t->device != DC_TESTDEV || s->device != DC_TESTDEV)
    misuse(f, "an operand is not on testdev (the op must move every operand to the kernel's "
              "device first)");
  int i = f->nstorages++;
  f->dev_s[i] = s;
  f->host_s[i] = *s;
  if (s->device == DC_TESTDEV) f->host_s[i].data = dc__tdev_decode(s->data);
  f->host_s[i].device = DC_CPU;
  return &f->host_s[i];
}

dc_tensor *dc__tdev_host(dc__tdev_frame *f, const dc_tensor *t) {
  if (!t) return NULL;
  for (int i = 0; i < f->ntensors; i++)
    if (f->dev_t[i] == t) return &f->host_t[i];
  if (f->ntensors == DC__TDEV_MAX_SHADOWS) return misuse(f, "more tensors than a frame holds");
  dc_storage *hs = host_storage(f, t);
  if (!hs) return NULL;
  int i = f->ntensors++;
  dc_tensor *h = &f->host_t[i];
  f->dev_t[i] = t;
  memcpy(h, t, sizeof *h); /* padding included, for the check in dc__tdev_end */
  h->storage = hs;
  h->device = DC_CPU;
  h->grad = NULL;
  h->grad_fn = NULL;
  return h;
}

/* Whether the kernel left shadow i's header as the caller's tensor has it. */
static bool header_kept(const dc__tdev_frame *f, int i) {
  const dc_tensor *t = f->dev_t[i];
  dc_tensor h;
  memcpy(&h, &f->host_t[i], sizeof h);
  h.storage = t->storage;
  h.device = t->device;
  h.grad = t->grad;
  h.grad_fn = t->grad_fn;
  return memcmp(&h, t, sizeof h) == 0;
}

int dc__tdev_end(dc__tdev_frame *f, int rc) {
  for (int i = 0; i < f->nstorages; i++)
    if (f->dev_s[i]->version != f->host_s[i].version) f->dev_s[i]->version = f->host_s[i].version;
  for (int i = 0; i < f->ntensors; i++)
    if (!header_kept(f, i)) misuse(f, "a CPU kernel changed a tensor header (shape, strides...)");
  if (f->broken) return dc__errs(DC_ERR_STATE, "testdev kernel: %s", f->broken);
  return rc;
}
