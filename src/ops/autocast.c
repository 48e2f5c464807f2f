/* The autocast state (a per-thread stack of regions, each for one device) and the casts the ops
 * make under it (autocast-impl.h). The lists themselves are where the ops are: each op of
 * PyTorch's lower-precision or float32 list calls dc__autocast_cast with its list. */
#include "autocast-impl.h"

#include "../autograd/autograd-impl.h"

typedef struct region {
  dc_device dev;
  bool enabled;
  dc_dtype dtype;
} region;

static _Thread_local region g_regions[DC_AUTOCAST_MAX_DEPTH];
static _Thread_local int g_depth;
/* > 0 while an op runs its float32 path for bfloat16 inputs (DC__AMP_F32): that path is the
 * op's own arithmetic, which autocast must not cast again (else float32 -> bfloat16 -> float32
 * without end) */
static _Thread_local int g_suspended;

dc_status dc_autocast_push(dc_device dev, dc_dtype dt, bool enabled) {
  if ((int)dev < 0 || dev >= DC_DEVICE_COUNT) {
    dc__err(DC_ERR_ARG, "autocast_push: unknown device %d", (int)dev);
    return DC_ERR_ARG;
  }
  if (dt != DC_BF16) {
    dc__err(DC_ERR_ARG,
            "autocast_push: autocast supports only bfloat16 as the lower dtype, got %s "
            "(torch.autocast on the cpu refuses float16 too); pass DC_BF16",
            (int)dt >= 0 && dt < DC_DTYPE_COUNT ? dc_dtype_name(dt) : "an invalid dtype");
    return DC_ERR_ARG;
  }
  if (g_depth == DC_AUTOCAST_MAX_DEPTH) {
    dc__err(DC_ERR_STATE,
            "autocast_push: %d regions are already open on this thread; pop one with "
            "dc_autocast_pop (a push without its pop?)",
            DC_AUTOCAST_MAX_DEPTH);
    return DC_ERR_STATE;
  }
  g_regions[g_depth++] = (region){dev, enabled, dt};
  return DC_OK;
}

dc_status dc_autocast_pop(void) {
  if (g_depth == 0) {
    dc__err(DC_ERR_STATE, "autocast_pop: no autocast region is open on this thread");
    return DC_ERR_STATE;
  }
  g_depth--;
  return DC_OK;
}

static const region *innermost(dc_device dev) {
  for (int i = g_depth - 1; i >= 0; i--)
    if (g_regions[i].dev == dev) return &g_regions[i];
  return NULL;
}

bool dc_autocast_enabled(dc_device dev) {
  if (g_suspended) return false;
  const region *r = innermost(dev);
  return r && r->enabled;
}

dc_dtype dc_autocast_dtype(dc_device dev) {
  if (g_suspended) return DC_F32;
  const region *r = innermost(dev);
  return r && r->enabled ? r->dtype : DC_F32;
}

/* The dtype list l casts a tensor of dtype dt to under a region of lower dtype low, or dt. */
static dc_dtype cast_to(dc__autocast_list l, dc_dtype dt, dc_dtype low) {
  switch (l) {
  case DC__AUTOCAST_LOWER:
    return dt == DC_F32 ? low : dt;
  case DC__AUTOCAST_FP32:
    return dt == DC_BF16 ? DC_F32 : dt;
  case DC__AUTOCAST_PROMOTE:
    return dt;
  }
  return dt;
}

static void release(int n, dc_tensor *const *in, dc_tensor **c) {
  for (int i = 0; i < n; i++)
    if (c[i] != in[i]) dc_free(c[i]);
}

/* c[i] = in[i] converted to to[i] (in[i] itself where it has that dtype); all NULL on failure */
static void cast_all(int n, dc_tensor *const *in, dc_tensor **c, const dc_dtype *to) {
  for (int i = 0; i < n; i++) {
    c[i] = !in[i] || to[i] == in[i]->dtype ? in[i] : dc_to_dtype(in[i], to[i]);
    if (in[i] && !c[i]) {
      release(i, in, c);
      for (int j = 0; j < n; j++) c[j] = NULL;
      return;
    }
  }
}

static bool bf16_native(dc_device dev, uint32_t entries) {
  entries &= ~DC__AMP_SAME_DTYPE;
  const dc_backend *be = entries ? dc__backend(dev) : NULL;
  return be && (be->bf16 & entries) == entries;
}

static bool mixed(int n, dc_tensor *const *in) {
  const dc_tensor *f = NULL;
  for (int i = 0; i < n; i++) {
    if (!in[i] || !dc_dtype_is_float(in[i]->dtype)) continue;
    if (f && f->dtype != in[i]->dtype) return true;
    f = in[i];
  }
  return false;
}

dc__amp_mode dc__amp_enter(dc__autocast_list l, uint32_t native, int n, dc_tensor *const *in,
                           dc_tensor **c) {
  if (n > DC__AMP_MAX_OPERANDS)
    dc__invariant_broken("dc__amp_enter: at most DC__AMP_MAX_OPERANDS operands", __FILE__,
                         __LINE__);
  const dc_tensor *first = NULL;
  for (int i = 0; i < n && !first; i++) first = in[i];
  if (!first) return DC__AMP_NONE;
  dc_dtype to[DC__AMP_MAX_OPERANDS];
  bool cast = false, bf16 = false;
  if (g_depth > 0 && dc_autocast_enabled(first->device)) {
    dc_dtype low = dc_autocast_dtype(first->device);
    for (int i = 0; i < n; i++) {
      to[i] = in[i] ? cast_to(l, in[i]->dtype, low) : DC_F32;
      cast = cast || (in[i] && to[i] != in[i]->dtype);
    }
  }
  if (!cast) {
    for (int i = 0; i < n; i++) {
      bool b = in[i] && in[i]->dtype == DC_BF16;
      to[i] = b ? DC_F32 : in[i] ? in[i]->dtype : DC_F32;
      bf16 = bf16 || b;
    }
    if (!bf16 || bf16_native(first->device, native)) return DC__AMP_NONE;
    if ((native & DC__AMP_SAME_DTYPE) && mixed(n, in)) return DC__AMP_NONE;
  }
  cast_all(n, in, c, to);
  if (cast) return DC__AMP_CAST;
  g_suspended++; /* until dc__amp_leave */
  return DC__AMP_F32;
}

dc_tensor *dc__amp_leave(dc__amp_mode m, bool round, dc_tensor *r, int n, dc_tensor *const *in,
                         dc_tensor **c) {
  if (m == DC__AMP_F32) g_suspended--;
  if (m == DC__AMP_F32 && round && r) {
    dc_tensor *d = dc_to_dtype(r, DC_BF16);
    dc_free(r);
    r = d;
  }
  release(n, in, c);
  return r;
}
