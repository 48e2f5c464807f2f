/* torchvision's transforms on one sample: uint8 [H, W, C] images follow the PIL code paths
 * (PIL's resampling, luma, blending and rotation arithmetic), float [..., C, H, W] images the
 * tensor paths. Random parameters come from the sample's generator, so a seed reproduces an
 * augmentation whatever thread runs it. Resampling kernels live in resample.c. */
#include "data-impl.h"
#include "deepc/autograd.h"

#include <math.h>
#include <string.h>

typedef enum tf_kind {
  TF_COMPOSE,
  TF_TO_TENSOR,
  TF_NORMALIZE,
  TF_RESIZE,
  TF_CENTER_CROP,
  TF_RANDOM_CROP,
  TF_RANDOM_RESIZED_CROP,
  TF_HFLIP,
  TF_GRAYSCALE,
  TF_JITTER,
  TF_ROTATION,
  TF_KIND_COUNT
} tf_kind;

struct dc_transform {
  tf_kind kind;
  int n; /* compose: items */
  dc_transform **items;
  int channels; /* normalize: mean/std length; grayscale: output channels */
  float mean[16], std[16];
  int64_t h, w; /* resize, crops: output size (resize w == 0: shorter side) */
  dc_antialias aa;
  dc_random_crop_opts crop;
  double scale[2], ratio[2]; /* random resized crop */
  double p;                  /* flip probability */
  bool jit_on[3];            /* brightness, contrast, saturation */
  double jit[3][2];
  double deg[2], fill; /* rotation */
};

static dc_transform *tf_new(tf_kind k) {
  dc_transform *t = dc__calloc(1, sizeof *t);
  if (t) t->kind = k;
  return t;
}

void dc_transform_free(dc_transform *tf) {
  if (!tf) return;
  for (int i = 0; i < tf->n; i++) dc_transform_free(tf->items[i]);
  dc__free(tf->items);
  dc__free(tf);
}

/* ---- constructors ---- */

dc_transform *dc_tf_to_tensor(void) { return tf_new(TF_TO_TENSOR); }

dc_transform *dc_tf_normalize(const double *mean, const double *std, int channels) {
  if (!mean || !std || channels < 1 || channels > 16)
    return dc__err(DC_ERR_ARG,
                   "tf_normalize: need mean and std arrays of 1 to 16 channels, got "
                   "%d",
                   channels);
  for (int c = 0; c < channels; c++)
    if (!(std[c] != 0) || !isfinite(mean[c]) || !isfinite(std[c]))
      return dc__err(DC_ERR_ARG,
                     "tf_normalize: std[%d] = %g, mean[%d] = %g; std must be finite "
                     "and non-zero",
                     c, std[c], c, mean[c]);
  dc_transform *t = tf_new(TF_NORMALIZE);
  if (!t) return NULL;
  t->channels = channels;
  for (int c = 0; c < channels; c++) {
    t->mean[c] = (float)mean[c];
    t->std[c] = (float)std[c];
  }
  return t;
}

static bool check_size(const char *op, int64_t h, int64_t w, bool w_zero_ok) {
  if (h >= 1 && h <= (1 << 20) && ((w >= 1 && w <= (1 << 20)) || (w_zero_ok && w == 0)))
    return true;
  dc__err(DC_ERR_ARG, "%s: size %lldx%lld must be 1..1048576 on each side%s", op, (long long)h,
          (long long)w, w_zero_ok ? " (w = 0: h is the shorter side)" : "");
  return false;
}

dc_transform *dc_tf_resize_aa(int64_t h, int64_t w, dc_antialias aa) {
  if (!check_size("tf_resize", h, w, true)) return NULL;
  dc_transform *t = tf_new(TF_RESIZE);
  if (!t) return NULL;
  t->h = h;
  t->w = w;
  t->aa = aa;
  return t;
}

dc_transform *dc_tf_center_crop(int64_t h, int64_t w) {
  if (!check_size("tf_center_crop", h, w, false)) return NULL;
  dc_transform *t = tf_new(TF_CENTER_CROP);
  if (!t) return NULL;
  t->h = h;
  t->w = w;
  return t;
}

dc_transform *dc_tf_random_crop_opt(int64_t h, int64_t w, dc_random_crop_opts o) {
  if (!check_size("tf_random_crop", h, w, false)) return NULL;
  bool ltrb = o.padding_ltrb[0] || o.padding_ltrb[1] || o.padding_ltrb[2] || o.padding_ltrb[3];
  for (int k = 0; k < 4; k++) {
    int v = ltrb ? o.padding_ltrb[k] : o.padding;
    if (v < 0 || v > (1 << 16))
      return dc__err(DC_ERR_ARG, "tf_random_crop: padding %d must be 0..65536", v);
    o.padding_ltrb[k] = v;
  }
  if ((unsigned)o.padding_mode > DC_PAD_SYMMETRIC)
    return dc__err(DC_ERR_ARG, "tf_random_crop: unknown padding mode %d", (int)o.padding_mode);
  dc_transform *t = tf_new(TF_RANDOM_CROP);
  if (!t) return NULL;
  t->h = h;
  t->w = w;
  t->crop = o;
  return t;
}

dc_transform *dc_tf_random_resized_crop_opt(int64_t h, int64_t w, dc_random_resized_crop_opts o) {
  if (!check_size("tf_random_resized_crop", h, w, false)) return NULL;
  if (o.scale[0] == 0 && o.scale[1] == 0) {
    o.scale[0] = 0.08;
    o.scale[1] = 1.0;
  }
  if (o.ratio[0] == 0 && o.ratio[1] == 0) {
    o.ratio[0] = 3.0 / 4.0;
    o.ratio[1] = 4.0 / 3.0;
  }
  if (!(o.scale[0] > 0 && o.scale[0] <= o.scale[1]) ||
      !(o.ratio[0] > 0 && o.ratio[0] <= o.ratio[1]))
    return dc__err(DC_ERR_ARG,
                   "tf_random_resized_crop: need 0 < scale lo <= hi and 0 < ratio lo "
                   "<= hi, got scale (%g, %g) ratio (%g, %g)",
                   o.scale[0], o.scale[1], o.ratio[0], o.ratio[1]);
  dc_transform *t = tf_new(TF_RANDOM_RESIZED_CROP);
  if (!t) return NULL;
  t->h = h;
  t->w = w;
  memcpy(t->scale, o.scale, sizeof t->scale);
  memcpy(t->ratio, o.ratio, sizeof t->ratio);
  t->aa = o.antialias;
  return t;
}

dc_transform *dc_tf_random_hflip(double p) {
  if (!(p >= 0 && p <= 1))
    return dc__err(DC_ERR_ARG, "tf_random_hflip: p = %g is not in [0, 1]", p);
  dc_transform *t = tf_new(TF_HFLIP);
  if (t) t->p = p;
  return t;
}

dc_transform *dc_tf_grayscale(int channels) {
  if (channels != 1 && channels != 3)
    return dc__err(DC_ERR_ARG, "tf_grayscale: output channels must be 1 or 3, got %d", channels);
  dc_transform *t = tf_new(TF_GRAYSCALE);
  if (t) t->channels = channels;
  return t;
}

dc_transform *dc_tf_color_jitter_range(const double *brightness, const double *contrast,
                                       const double *saturation) {
  const double *r[3] = {brightness, contrast, saturation};
  static const char *const names[3] = {"brightness", "contrast", "saturation"};
  dc_transform *t = tf_new(TF_JITTER);
  if (!t) return NULL;
  for (int k = 0; k < 3; k++) {
    if (!r[k]) continue;
    if (!(r[k][0] >= 0 && r[k][0] <= r[k][1] && isfinite(r[k][1]))) {
      dc__free(t);
      return dc__err(DC_ERR_ARG, "tf_color_jitter: %s range (%g, %g) must satisfy 0 <= lo <= hi",
                     names[k], r[k][0], r[k][1]);
    }
    t->jit_on[k] = !(r[k][0] == 1 && r[k][1] == 1);
    t->jit[k][0] = r[k][0];
    t->jit[k][1] = r[k][1];
  }
  return t;
}

dc_transform *dc_tf_color_jitter(double brightness, double contrast, double saturation) {
  double v[3] = {brightness, contrast, saturation}, r[3][2];
  for (int k = 0; k < 3; k++) {
    if (!(v[k] >= 0) || !isfinite(v[k]))
      return dc__err(DC_ERR_ARG, "tf_color_jitter: factors must be >= 0, got %g", v[k]);
    r[k][0] = 1 - v[k] > 0 ? 1 - v[k] : 0;
    r[k][1] = 1 + v[k];
  }
  return dc_tf_color_jitter_range(v[0] > 0 ? r[0] : NULL, v[1] > 0 ? r[1] : NULL,
                                  v[2] > 0 ? r[2] : NULL);
}

dc_transform *dc_tf_random_rotation(double min_deg, double max_deg, double fill) {
  if (!(min_deg <= max_deg) || !isfinite(min_deg) || !isfinite(max_deg))
    return dc__err(DC_ERR_ARG, "tf_random_rotation: need min <= max degrees, got %g, %g", min_deg,
                   max_deg);
  dc_transform *t = tf_new(TF_ROTATION);
  if (!t) return NULL;
  t->deg[0] = min_deg;
  t->deg[1] = max_deg;
  t->fill = fill;
  return t;
}

dc_transform *dc_tf_compose(dc_transform *const *tfs, int n) {
  bool ok = tfs && n >= 0;
  for (int i = 0; ok && i < n; i++) ok = tfs[i] != NULL;
  if (!ok) {
    for (int i = 0; tfs && i < n; i++) dc_transform_free(tfs[i]);
    if (dc_last_status() == DC_OK)
      dc__err(DC_ERR_ARG, "tf_compose: a transform is NULL (its constructor failed)");
    return NULL;
  }
  dc_transform *t = tf_new(TF_COMPOSE);
  if (t && n > 0 && !(t->items = dc__malloc(sizeof *t->items * (size_t)n))) {
    dc__free(t);
    t = NULL;
  }
  if (!t) {
    for (int i = 0; i < n; i++) dc_transform_free(tfs[i]);
    return NULL;
  }
  for (int i = 0; i < n; i++) t->items[i] = tfs[i];
  t->n = n;
  return t;
}

/* ---- image geometry ---- */

/* An image as P planes of H rows of W pixels of B bytes: uint8 [H, W, C] is P = 1, B = C;
 * [..., H, W] is P = product of the leading dims, B = element size. */
typedef struct geom {
  int64_t p, h, w, b;
} geom;

static bool geom_of(const dc__sample *s, geom *g, const char *op) {
  const dc__arr *x = &s->x;
  char buf[128];
  if (s->hwc) {
    *g = (geom){1, x->shape[0], x->shape[1], x->shape[2]};
    return true;
  }
  if (x->ndim < 2) {
    dc_shape sh = {.ndim = x->ndim};
    memcpy(sh.d, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    dc__err(DC_ERR_ARG, "%s: needs an image [..., H, W], got a sample of shape %s", op,
            dc_shape_str(sh, buf, sizeof buf));
    return false;
  }
  g->h = x->shape[x->ndim - 2];
  g->w = x->shape[x->ndim - 1];
  g->p = 1;
  for (int d = 0; d < x->ndim - 2; d++) g->p *= x->shape[d];
  g->b = (int64_t)dc_dtype_size(x->dtype);
  return true;
}

static void set_hw(dc__sample *s, int64_t h, int64_t w) {
  dc__arr *x = &s->x;
  int d = s->hwc ? 0 : x->ndim - 2;
  x->shape[d] = h;
  x->shape[d + 1] = w;
}

/* Channels of an image (hwc: last dim; tensor: dim -3, 1 for [H, W]). */
static int64_t channels_of(const dc__sample *s) {
  const dc__arr *x = &s->x;
  return s->hwc ? x->shape[2] : x->ndim >= 3 ? x->shape[x->ndim - 3] : 1;
}

static char *shape_text(const dc__sample *s, char *buf, size_t n) {
  dc_shape sh = {.ndim = s->x.ndim};
  memcpy(sh.d, s->x.shape, sizeof(int64_t) * (size_t)s->x.ndim);
  char b[96];
  snprintf(buf, n, "%s %s", dc_dtype_name(s->x.dtype), dc_shape_str(sh, b, sizeof b));
  return buf;
}

/* Exchanges the buffers of a and b, keeping each one's dtype and shape. */
static void swap_buffers(dc__arr *a, dc__arr *b) {
  void *d = a->data;
  size_t c = a->cap;
  a->data = b->data;
  a->cap = b->cap;
  b->data = d;
  b->cap = c;
}

/* One pixel (B bytes) holding the fill value in the image's type. */
static void fill_pixel(const dc__sample *s, const geom *g, double fill, uint8_t *px) {
  if (s->x.dtype == DC_U8) {
    double v = fill < 0 ? 0 : fill > 255 ? 255 : fill;
    memset(px, (int)v, (size_t)g->b);
  } else {
    dc__store(px, s->x.dtype, fill);
  }
}

/* Crop [top, top+oh) x [left, left+ow); pixels outside the image are zero (PIL's crop). */
static int crop(dc__sample *s, int64_t top, int64_t left, int64_t oh, int64_t ow) {
  geom g;
  if (!geom_of(s, &g, "crop")) return dc_last_status();
  if (top == 0 && left == 0 && oh == g.h && ow == g.w) return DC_OK;
  size_t out_bytes = (size_t)(g.p * oh * ow * g.b);
  if (!dc__arr_reserve(&s->tmp, out_bytes ? out_bytes : 1)) return DC_ERR_NOMEM;
  const uint8_t *in = s->x.data;
  uint8_t *out = s->tmp.data;
  int64_t x0 = left < 0 ? -left : 0, x1 = g.w - left < ow ? g.w - left : ow; /* in-image cols */
  for (int64_t p = 0; p < g.p; p++)
    for (int64_t y = 0; y < oh; y++) {
      uint8_t *o = out + ((p * oh + y) * ow) * g.b;
      int64_t sy = top + y;
      if (sy < 0 || sy >= g.h || x1 <= x0) {
        memset(o, 0, (size_t)(ow * g.b));
        continue;
      }
      if (x0 > 0) memset(o, 0, (size_t)(x0 * g.b));
      memcpy(o + x0 * g.b, in + ((p * g.h + sy) * g.w + left + x0) * g.b,
             (size_t)((x1 - x0) * g.b));
      if (x1 < ow) memset(o + x1 * g.b, 0, (size_t)((ow - x1) * g.b));
    }
  swap_buffers(&s->x, &s->tmp);
  set_hw(s, oh, ow);
  return DC_OK;
}

/* Index into [0, n) for a coordinate outside it under a padding mode (-1: constant). */
static int64_t pad_index(int64_t i, int64_t n, dc_pad_mode m) {
  if (i >= 0 && i < n) return i;
  switch (m) {
  case DC_PAD_CONSTANT:
    return -1;
  case DC_PAD_EDGE:
    return i < 0 ? 0 : n - 1;
  case DC_PAD_REFLECT:
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
  case DC_PAD_SYMMETRIC:
    while (i < 0 || i >= n) i = i < 0 ? -i - 1 : 2 * n - 1 - i;
    return i;
  }
  return -1;
}

/* Pads left/top/right/bottom (torchvision's F.pad). */
static int pad(dc__sample *s, int64_t l, int64_t t, int64_t r, int64_t b, double fill,
               dc_pad_mode mode) {
  if (!l && !t && !r && !b) return DC_OK;
  geom g;
  if (!geom_of(s, &g, "pad")) return dc_last_status();
  int64_t oh = g.h + t + b, ow = g.w + l + r;
  if (mode == DC_PAD_REFLECT && (l >= g.w || r >= g.w || t >= g.h || b >= g.h))
    return dc__errs(DC_ERR_ARG,
                    "pad: reflect padding (%lld, %lld, %lld, %lld) must be smaller "
                    "than the %lldx%lld image",
                    (long long)l, (long long)t, (long long)r, (long long)b, (long long)g.h,
                    (long long)g.w);
  if (!dc__arr_reserve(&s->tmp, (size_t)(g.p * oh * ow * g.b))) return DC_ERR_NOMEM;
  uint8_t px[16];
  fill_pixel(s, &g, fill, px);
  const uint8_t *in = s->x.data;
  uint8_t *out = s->tmp.data;
  for (int64_t p = 0; p < g.p; p++)
    for (int64_t y = 0; y < oh; y++) {
      int64_t sy = pad_index(y - t, g.h, mode);
      uint8_t *o = out + ((p * oh + y) * ow) * g.b;
      for (int64_t x = 0; x < ow; x++) {
        int64_t sx = pad_index(x - l, g.w, mode);
        uint8_t *dst = o + x * g.b;
        if (sy < 0 || sx < 0) {
          if (g.b <= 16)
            memcpy(dst, px, (size_t)g.b);
          else
            memset(dst, 0, (size_t)g.b);
        } else {
          memcpy(dst, in + ((p * g.h + sy) * g.w + sx) * g.b, (size_t)g.b);
        }
      }
    }
  swap_buffers(&s->x, &s->tmp);
  set_hw(s, oh, ow);
  return DC_OK;
}

static int hflip(dc__sample *s) {
  geom g;
  if (!geom_of(s, &g, "hflip")) return dc_last_status();
  uint8_t *d = s->x.data, t[64];
  if (g.b > 64) return dc__errs(DC_ERR_ARG, "hflip: %lld-byte pixels are too wide", (long long)g.b);
  for (int64_t r = 0; r < g.p * g.h; r++) {
    uint8_t *row = d + r * g.w * g.b;
    for (int64_t x = 0; x < g.w / 2; x++) {
      uint8_t *a = row + x * g.b, *b = row + (g.w - 1 - x) * g.b;
      memcpy(t, a, (size_t)g.b);
      memcpy(a, b, (size_t)g.b);
      memcpy(b, t, (size_t)g.b);
    }
  }
  return DC_OK;
}

/* ---- resize ---- */

/* torchvision's _compute_resized_output_size for an int size (shorter side). */
static void shorter_side(int64_t h, int64_t w, int64_t size, int64_t *oh, int64_t *ow) {
  if (w <= h) {
    *ow = size;
    *oh = (int64_t)((double)size * (double)h / (double)w);
  } else {
    *oh = size;
    *ow = (int64_t)((double)size * (double)w / (double)h);
  }
}

/* torchvision's tensor path for uint8 without antialias: float, interpolate, round (into tmp). */
static int resize_u8_bilinear(dc__sample *s, const geom *g, int64_t oh, int64_t ow) {
  int64_t c = g->b;
  if (!dc__arr_reserve(&s->tmp, (size_t)(oh * ow * c))) return DC_ERR_NOMEM;
  size_t fin = (size_t)(c * g->h * g->w), fout = (size_t)(c * oh * ow);
  float *buf = dc__malloc(sizeof(float) * (fin + fout));
  if (!buf) return DC_ERR_NOMEM;
  const uint8_t *in = s->x.data;
  for (int64_t ch = 0; ch < c; ch++)
    for (int64_t i = 0; i < g->h * g->w; i++) buf[ch * g->h * g->w + i] = in[i * c + ch];
  int rc = dc__resize_f32(buf, c, g->h, g->w, buf + fin, oh, ow, false, &s->aux);
  uint8_t *out = s->tmp.data;
  for (int64_t ch = 0; rc == DC_OK && ch < c; ch++)
    for (int64_t i = 0; i < oh * ow; i++) {
      float v = rintf(buf[fin + (size_t)(ch * oh * ow + i)]);
      out[i * c + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  dc__free(buf);
  return rc;
}

/* Resizes to oh x ow; with win = {y, x, h, w} the result is that crop of the resized image
 * (computed directly for uint8 images: only the pixels kept are resampled). */
static int resize_to(dc__sample *s, int64_t oh, int64_t ow, dc_antialias aa, const int64_t *win) {
  geom g;
  if (!geom_of(s, &g, "resize")) return dc_last_status();
  if (oh < 1 || ow < 1 || oh > (1 << 20) || ow > (1 << 20))
    return dc__errs(DC_ERR_ARG, "resize: output size %lldx%lld is out of range", (long long)oh,
                    (long long)ow);
  if (s->hwc && aa != DC_ANTIALIAS_OFF) {
    int64_t c = g.b, rh = win ? win[2] : oh, rw = win ? win[3] : ow;
    if (!dc__arr_reserve(&s->tmp, (size_t)(rh * rw * c))) return DC_ERR_NOMEM;
    int rc = dc__resize_pil_u8(s->x.data, g.h, g.w, c, s->tmp.data, oh, ow, win, &s->aux);
    if (rc) return rc;
    swap_buffers(&s->x, &s->tmp);
    set_hw(s, rh, rw);
    return DC_OK;
  }
  if (s->hwc) {
    int rc = resize_u8_bilinear(s, &g, oh, ow);
    if (rc) return rc;
  } else {
    if (s->x.dtype != DC_F32) {
      char b[128];
      return dc__errs(DC_ERR_ARG,
                      "resize: tensor images must be float32, got %s; use to_tensor "
                      "first",
                      shape_text(s, b, sizeof b));
    }
    if (!dc__arr_reserve(&s->tmp, sizeof(float) * (size_t)(g.p * oh * ow))) return DC_ERR_NOMEM;
    int rc = dc__resize_f32(s->x.data, g.p, g.h, g.w, s->tmp.data, oh, ow, aa == DC_ANTIALIAS_ON,
                            &s->aux);
    if (rc) return rc;
  }
  swap_buffers(&s->x, &s->tmp);
  set_hw(s, oh, ow);
  return win ? crop(s, win[0], win[1], win[2], win[3]) : DC_OK;
}

/* ---- colour ---- */

static int to_tensor(dc__sample *s) {
  dc__arr *x = &s->x;
  int64_t n = dc__arr_numel(x);
  if (x->dtype == DC_F32 && !s->hwc) return DC_OK;
  if (!dc__arr_reserve(&s->tmp, sizeof(float) * (size_t)(n ? n : 1))) return DC_ERR_NOMEM;
  float *o = s->tmp.data;
  if (s->hwc) { /* [H, W, C] -> [C, H, W] / 255 */
    int64_t h = x->shape[0], w = x->shape[1], c = x->shape[2];
    const uint8_t *in = x->data;
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t i = 0; i < h * w; i++) o[ch * h * w + i] = (float)in[i * c + ch] / 255.0f;
    s->tmp.ndim = 3;
    s->tmp.shape[0] = c;
    s->tmp.shape[1] = h;
    s->tmp.shape[2] = w;
  } else {
    for (int64_t i = 0; i < n; i++) {
      double v = dc__load((const char *)x->data + (size_t)i * dc_dtype_size(x->dtype), x->dtype);
      o[i] = x->dtype == DC_U8 ? (float)v / 255.0f : (float)v;
    }
    s->tmp.ndim = x->ndim;
    memcpy(s->tmp.shape, x->shape, sizeof x->shape);
  }
  s->tmp.dtype = DC_F32;
  dc__arr_swap(&s->x, &s->tmp);
  s->hwc = false;
  return DC_OK;
}

static int normalize(const dc_transform *t, dc__sample *s) {
  char b[128];
  if (s->hwc || s->x.dtype != DC_F32 || s->x.ndim < 3)
    return dc__errs(DC_ERR_ARG,
                    "normalize: expects a float32 tensor image [..., C, H, W], got %s; "
                    "apply to_tensor first",
                    shape_text(s, b, sizeof b));
  int64_t c = channels_of(s), hw = s->x.shape[s->x.ndim - 1] * s->x.shape[s->x.ndim - 2];
  if (t->channels != c && t->channels != 1)
    return dc__errs(DC_ERR_ARG, "normalize: mean/std have %d channels but the image %s has %lld",
                    t->channels, shape_text(s, b, sizeof b), (long long)c);
  int64_t planes = dc__arr_numel(&s->x) / (hw ? hw : 1);
  float *d = s->x.data;
  for (int64_t p = 0; p < planes; p++) {
    int ch = t->channels == 1 ? 0 : (int)(p % c);
    float m = t->mean[ch], sd = t->std[ch];
    float *q = d + p * hw;
    for (int64_t i = 0; i < hw; i++) q[i] = (q[i] - m) / sd;
  }
  return DC_OK;
}

/* Float luma of 3 planes (torchvision's rgb_to_grayscale on tensors) into l. */
static void gray_f32(const float *img, int64_t hw, float *l) {
  for (int64_t i = 0; i < hw; i++)
    l[i] = 0.2989f * img[i] + 0.587f * img[hw + i] + 0.114f * img[2 * hw + i];
}

static int grayscale(const dc_transform *t, dc__sample *s) {
  int64_t c = channels_of(s);
  char b[128];
  if (c != 1 && c != 3)
    return dc__errs(DC_ERR_ARG, "grayscale: needs 1 or 3 channels, got %s",
                    shape_text(s, b, sizeof b));
  geom g;
  if (!geom_of(s, &g, "grayscale")) return dc_last_status();
  int64_t hw = g.h * g.w;
  if (s->hwc) {
    if (!dc__arr_reserve(&s->tmp, (size_t)(hw * t->channels))) return DC_ERR_NOMEM;
    uint8_t *o = s->tmp.data;
    if (c == 3)
      dc__rgb_to_l_u8(s->x.data, o, hw);
    else
      memcpy(o, s->x.data, (size_t)hw);
    if (t->channels == 3)
      for (int64_t i = hw - 1; i >= 0; i--) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = o[i];
    s->tmp.dtype = DC_U8;
    s->tmp.ndim = 3;
    s->tmp.shape[0] = g.h;
    s->tmp.shape[1] = g.w;
    s->tmp.shape[2] = t->channels;
  } else {
    if (s->x.dtype != DC_F32 || s->x.ndim < 3)
      return dc__errs(DC_ERR_ARG, "grayscale: tensor images must be float32 [..., C, H, W], got %s",
                      shape_text(s, b, sizeof b));
    int64_t batch = dc__arr_numel(&s->x) / (c * hw);
    if (!dc__arr_reserve(&s->tmp, sizeof(float) * (size_t)(batch * hw * t->channels)))
      return DC_ERR_NOMEM;
    const float *in = s->x.data;
    float *o = s->tmp.data;
    for (int64_t k = 0; k < batch; k++) {
      float *ok = o + k * t->channels * hw;
      if (c == 3)
        gray_f32(in + k * 3 * hw, hw, ok);
      else
        memcpy(ok, in + k * hw, sizeof(float) * (size_t)hw);
      for (int ch = 1; ch < t->channels; ch++) memcpy(ok + ch * hw, ok, sizeof(float) * (size_t)hw);
    }
    s->tmp.dtype = DC_F32;
    s->tmp.ndim = s->x.ndim;
    memcpy(s->tmp.shape, s->x.shape, sizeof s->x.shape);
    s->tmp.shape[s->x.ndim - 3] = t->channels;
  }
  dc__arr_swap(&s->x, &s->tmp);
  return DC_OK;
}

/* PIL's Image.blend(im1, im2, alpha) of uint8 data, in place into im2. */
static void blend_u8(const uint8_t *im1, uint8_t *im2, int64_t n, float alpha) {
  if (alpha >= 0 && alpha <= 1.0) {
    for (int64_t i = 0; i < n; i++)
      im2[i] = (uint8_t)((float)im1[i] + alpha * (float)(im2[i] - im1[i]));
  } else {
    for (int64_t i = 0; i < n; i++) {
      float v = (float)im1[i] + alpha * (float)(im2[i] - im1[i]);
      im2[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
    }
  }
}

/* torchvision's _blend(img1, img2, ratio) for float images, img2 broadcast per plane of hw2. */
static void blend_f32(float *img1, const float *img2, int64_t n, int64_t n2, float ratio) {
  float other = (float)(1.0 - (double)ratio);
  for (int64_t i = 0; i < n; i++) {
    float v = ratio * img1[i] + other * img2[n2 == 1 ? 0 : i % n2];
    img1[i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
}

/* ColorJitter op k (0 brightness, 1 contrast, 2 saturation) with factor f. */
static int adjust(dc__sample *s, int k, double f) {
  int64_t c = channels_of(s);
  char b[128];
  if (c != 1 && c != 3)
    return dc__errs(DC_ERR_ARG, "color_jitter: needs 1 or 3 channels, got %s",
                    shape_text(s, b, sizeof b));
  geom g;
  if (!geom_of(s, &g, "color_jitter")) return dc_last_status();
  int64_t hw = g.h * g.w, n = dc__arr_numel(&s->x);
  if (hw <= 0) return DC_OK;
  if (s->hwc) {
    uint8_t *px = s->x.data;
    if (!dc__arr_reserve(&s->tmp, (size_t)n)) return DC_ERR_NOMEM;
    uint8_t *deg = s->tmp.data;
    if (k == 0) {
      memset(deg, 0, (size_t)n);
    } else {
      uint8_t *l = deg; /* L image first, expanded to C channels in place */
      if (c == 3)
        dc__rgb_to_l_u8(px, l, hw);
      else
        memcpy(l, px, (size_t)hw);
      if (k == 1) { /* mean of L rounded, as ImageStat */
        uint64_t sum = 0;
        for (int64_t i = 0; i < hw; i++) sum += l[i];
        int mean = (int)((double)sum / (double)hw + 0.5);
        memset(l, mean, (size_t)hw);
      }
      if (c == 3)
        for (int64_t i = hw - 1; i >= 0; i--) deg[3 * i] = deg[3 * i + 1] = deg[3 * i + 2] = l[i];
    }
    blend_u8(deg, px, n, (float)f);
    return DC_OK;
  }
  if (s->x.dtype != DC_F32 || s->x.ndim < 3)
    return dc__errs(DC_ERR_ARG, "color_jitter: tensor images must be float32 [C, H, W], got %s",
                    shape_text(s, b, sizeof b));
  float *img = s->x.data;
  if (k == 0) {
    float zero = 0;
    blend_f32(img, &zero, n, 1, (float)f);
    return DC_OK;
  }
  if (k == 2 && c == 1) return DC_OK; /* torchvision: saturation of a 1-channel image is itself */
  int64_t batch = n / (c * hw);
  if (!dc__arr_reserve(&s->tmp, sizeof(float) * (size_t)hw)) return DC_ERR_NOMEM;
  float *l = s->tmp.data;
  for (int64_t bi = 0; bi < batch; bi++) {
    float *im = img + bi * c * hw;
    if (c == 3)
      gray_f32(im, hw, l);
    else
      memcpy(l, im, sizeof(float) * (size_t)hw);
    if (k == 1) {
      double sum = 0;
      for (int64_t i = 0; i < hw; i++) sum += l[i];
      float mean = (float)(sum / (double)hw);
      blend_f32(im, &mean, c * hw, 1, (float)f);
    } else {
      blend_f32(im, l, c * hw, hw, (float)f);
    }
  }
  return DC_OK;
}

/* ---- rotation ---- */

static double round15(double v) { return nearbyint(v * 1e15) / 1e15; }

/* PIL's transpose for rotations by 90 (counter-clockwise), 180 and 270 degrees. */
static int transpose_pil(dc__sample *s, const geom *g, int angle) {
  if (!dc__arr_reserve(&s->tmp, (size_t)(g->h * g->w * g->b))) return DC_ERR_NOMEM;
  const uint8_t *in = s->x.data;
  uint8_t *out = s->tmp.data;
  for (int64_t y = 0; y < g->h; y++)
    for (int64_t x = 0; x < g->w; x++) {
      int64_t sy = angle == 180 ? g->h - 1 - y : angle == 90 ? x : g->h - 1 - x;
      int64_t sx = angle == 180 ? g->w - 1 - x : angle == 90 ? g->w - 1 - y : y;
      memcpy(out + (y * g->w + x) * g->b, in + (sy * g->w + sx) * g->b, (size_t)g->b);
    }
  swap_buffers(&s->x, &s->tmp);
  return DC_OK;
}

/* PIL's Image.rotate(angle, NEAREST, expand=False, fillcolor=fill) of a uint8 [H, W, C] image. */
static int rotate_pil(dc__sample *s, double angle, double fill) {
  geom g;
  if (!geom_of(s, &g, "rotate")) return dc_last_status();
  angle = fmod(angle, 360.0);
  if (angle < 0) angle += 360.0;
  if (angle == 0) return DC_OK;
  if (angle == 180 || ((angle == 90 || angle == 270) && g.w == g.h))
    return transpose_pil(s, &g, (int)angle);
  double w = (double)g.w, h = (double)g.h, a = -angle * M_PI / 180.0;
  double m[6] = {round15(cos(a)), round15(sin(a)), 0.0, round15(-sin(a)), round15(cos(a)), 0.0};
  double cx = w / 2.0, cy = h / 2.0;
  m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx;
  m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy;
  if (!dc__arr_reserve(&s->tmp, (size_t)(g.h * g.w * g.b))) return DC_ERR_NOMEM;
  uint8_t px[16];
  fill_pixel(s, &g, fill, px);
  const uint8_t *in = s->x.data;
  uint8_t *out = s->tmp.data;
  bool fixed = true; /* PIL's check_fixed at the four corners: 16.16 fixed point */
  for (int k = 0; k < 4; k++) {
    double x = (k & 1) ? w : 0, y = (k & 2) ? h : 0;
    fixed = fixed && fabs(m[0] * x + m[1] * y + m[2]) < 32768.0 &&
            fabs(m[3] * x + m[4] * y + m[5]) < 32768.0;
  }
  for (int64_t y = 0; y < g.h; y++) {
    uint8_t *o = out + y * g.w * g.b;
    if (fixed) {
      int32_t a0 = (int32_t)floor(m[0] * 65536.0 + 0.5), a1 = (int32_t)floor(m[1] * 65536.0 + 0.5);
      int32_t a3 = (int32_t)floor(m[3] * 65536.0 + 0.5), a4 = (int32_t)floor(m[4] * 65536.0 + 0.5);
      int32_t a2 = (int32_t)floor((m[2] + m[0] * 0.5 + m[1] * 0.5) * 65536.0 + 0.5);
      int32_t a5 = (int32_t)floor((m[5] + m[3] * 0.5 + m[4] * 0.5) * 65536.0 + 0.5);
      int32_t xx = a2 + a1 * (int32_t)y, yy = a5 + a4 * (int32_t)y;
      for (int64_t x = 0; x < g.w; x++, xx += a0, yy += a3) {
        int32_t xi = xx >> 16, yi = yy >> 16;
        const uint8_t *src =
            xi >= 0 && xi < g.w && yi >= 0 && yi < g.h ? in + ((int64_t)yi * g.w + xi) * g.b : px;
        memcpy(o + x * g.b, src, (size_t)g.b);
      }
    } else {
      double xo = m[2] + m[1] * 0.5 + m[0] * 0.5 + m[1] * (double)y;
      double yo = m[5] + m[4] * 0.5 + m[3] * 0.5 + m[4] * (double)y;
      for (int64_t x = 0; x < g.w; x++, xo += m[0], yo += m[3]) {
        int64_t xi = xo < 0.0 ? -1 : (int64_t)xo, yi = yo < 0.0 ? -1 : (int64_t)yo;
        const uint8_t *src =
            xi >= 0 && xi < g.w && yi >= 0 && yi < g.h ? in + (yi * g.w + xi) * g.b : px;
        memcpy(o + x * g.b, src, (size_t)g.b);
      }
    }
  }
  swap_buffers(&s->x, &s->tmp);
  return DC_OK;
}

/* torchvision's F.rotate on a tensor: inverse affine grid + grid_sample(nearest), fill outside. */
static int rotate_tensor(dc__sample *s, double angle, double fill) {
  geom g;
  if (!geom_of(s, &g, "rotate")) return dc_last_status();
  if (s->x.dtype != DC_F32) {
    char b[128];
    return dc__errs(DC_ERR_ARG, "rotate: tensor images must be float32, got %s",
                    shape_text(s, b, sizeof b));
  }
  double rot = -angle * M_PI / 180.0; /* _get_inverse_affine_matrix(angle = -angle) */
  double a = cos(rot), b = -sin(rot), c = sin(rot), d = cos(rot);
  float m[6] = {(float)d, (float)-b, 0.0f, (float)-c, (float)a, 0.0f};
  float hw2 = 0.5f * (float)g.w, hh2 = 0.5f * (float)g.h; /* theta^T / [w/2, h/2] first */
  float r[6] = {m[0] / hw2, m[1] / hw2, m[2] / hw2, m[3] / hh2, m[4] / hh2, m[5] / hh2};
  if (!dc__arr_reserve(&s->tmp, sizeof(float) * (size_t)(g.p * g.h * g.w))) return DC_ERR_NOMEM;
  const float *in = s->x.data;
  float *out = s->tmp.data;
  for (int64_t y = 0; y < g.h; y++) {
    float by = -(float)g.h * 0.5f + 0.5f + (float)y;
    for (int64_t x = 0; x < g.w; x++) {
      float bx = -(float)g.w * 0.5f + 0.5f + (float)x;
      float gx = bx * r[0] + by * r[1] + r[2], gy = bx * r[3] + by * r[4] + r[5];
      float ix = ((gx + 1.0f) * (float)g.w - 1.0f) / 2.0f,
            iy = ((gy + 1.0f) * (float)g.h - 1.0f) / 2.0f;
      int64_t xi = (int64_t)nearbyintf(ix), yi = (int64_t)nearbyintf(iy);
      bool inside = xi >= 0 && xi < g.w && yi >= 0 && yi < g.h;
      for (int64_t p = 0; p < g.p; p++)
        out[(p * g.h + y) * g.w + x] = inside ? in[(p * g.h + yi) * g.w + xi] : (float)fill;
    }
  }
  swap_buffers(&s->x, &s->tmp);
  return DC_OK;
}

/* ---- random transforms ---- */

static int random_crop(const dc_transform *t, dc__sample *s, dc__rng *r) {
  const dc_random_crop_opts *o = &t->crop;
  int rc = pad(s, o->padding_ltrb[0], o->padding_ltrb[1], o->padding_ltrb[2], o->padding_ltrb[3],
               o->fill, o->padding_mode);
  if (rc) return rc;
  geom g;
  if (!geom_of(s, &g, "random_crop")) return dc_last_status();
  if (o->pad_if_needed && g.w < t->w) {
    if ((rc = pad(s, t->w - g.w, 0, t->w - g.w, 0, o->fill, o->padding_mode))) return rc;
    geom_of(s, &g, "random_crop");
  }
  if (o->pad_if_needed && g.h < t->h) {
    if ((rc = pad(s, 0, t->h - g.h, 0, t->h - g.h, o->fill, o->padding_mode))) return rc;
    geom_of(s, &g, "random_crop");
  }
  if (g.h < t->h || g.w < t->w)
    return dc__errs(DC_ERR_ARG,
                    "random_crop: crop %lldx%lld is larger than the (padded) image "
                    "%lldx%lld; set pad_if_needed or a smaller size",
                    (long long)t->h, (long long)t->w, (long long)g.h, (long long)g.w);
  if (g.h == t->h && g.w == t->w) return DC_OK;
  int64_t i = dc__rng_randint(r, 0, g.h - t->h + 1);
  int64_t j = dc__rng_randint(r, 0, g.w - t->w + 1);
  return crop(s, i, j, t->h, t->w);
}

static int random_resized_crop(const dc_transform *t, dc__sample *s, dc__rng *r) {
  geom g;
  if (!geom_of(s, &g, "random_resized_crop")) return dc_last_status();
  double area = (double)g.h * (double)g.w;
  double lr0 = log(t->ratio[0]), lr1 = log(t->ratio[1]);
  int64_t ci = -1, cj = 0, ch = 0, cw = 0;
  for (int attempt = 0; attempt < 10 && ci < 0; attempt++) {
    double target = area * (t->scale[0] + (t->scale[1] - t->scale[0]) * dc__rng_uniform(r));
    double aspect = exp(lr0 + (lr1 - lr0) * dc__rng_uniform(r));
    int64_t w = (int64_t)nearbyint(sqrt(target * aspect));
    int64_t h = (int64_t)nearbyint(sqrt(target / aspect));
    if (w > 0 && w <= g.w && h > 0 && h <= g.h) {
      ci = dc__rng_randint(r, 0, g.h - h + 1);
      cj = dc__rng_randint(r, 0, g.w - w + 1);
      ch = h;
      cw = w;
    }
  }
  if (ci < 0) { /* central crop with the ratio clamped */
    double in_ratio = (double)g.w / (double)g.h;
    if (in_ratio < t->ratio[0]) {
      cw = g.w;
      ch = (int64_t)nearbyint((double)cw / t->ratio[0]);
    } else if (in_ratio > t->ratio[1]) {
      ch = g.h;
      cw = (int64_t)nearbyint((double)ch * t->ratio[1]);
    } else {
      cw = g.w;
      ch = g.h;
    }
    ci = (g.h - ch) / 2;
    cj = (g.w - cw) / 2;
  }
  int rc = crop(s, ci, cj, ch, cw);
  return rc ? rc : resize_to(s, t->h, t->w, t->aa, NULL);
}

static int color_jitter(const dc_transform *t, dc__sample *s, dc__rng *r) {
  int order[3] = {0, 1, 2};
  for (int i = 2; i > 0; i--) {
    int j = (int)dc__rng_randint(r, 0, i + 1);
    int tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  double f[3];
  for (int k = 0; k < 3; k++)
    f[k] = t->jit_on[k] ? t->jit[k][0] + (t->jit[k][1] - t->jit[k][0]) * dc__rng_uniform(r) : 1;
  for (int i = 0; i < 3; i++) {
    int k = order[i];
    if (!t->jit_on[k]) continue;
    int rc = adjust(s, k, f[k]);
    if (rc) return rc;
  }
  return DC_OK;
}

static int center_crop(const dc_transform *t, dc__sample *s) {
  geom g;
  if (!geom_of(s, &g, "center_crop")) return dc_last_status();
  if (t->h > g.h || t->w > g.w) { /* torchvision pads with zeros first */
    int64_t pl = t->w > g.w ? (t->w - g.w) / 2 : 0, pt = t->h > g.h ? (t->h - g.h) / 2 : 0;
    int64_t pr = t->w > g.w ? (t->w - g.w + 1) / 2 : 0, pb = t->h > g.h ? (t->h - g.h + 1) / 2 : 0;
    int rc = pad(s, pl, pt, pr, pb, 0, DC_PAD_CONSTANT);
    if (rc) return rc;
    geom_of(s, &g, "center_crop");
    if (g.h == t->h && g.w == t->w) return DC_OK;
  }
  int64_t top = (int64_t)nearbyint((double)(g.h - t->h) / 2.0);
  int64_t left = (int64_t)nearbyint((double)(g.w - t->w) / 2.0);
  return crop(s, top, left, t->h, t->w);
}

static void resize_size(const dc_transform *t, const geom *g, int64_t *oh, int64_t *ow) {
  *oh = t->h;
  *ow = t->w;
  if (t->w == 0) shorter_side(g->h, g->w, t->h, oh, ow);
}

/* Resize then CenterCrop as one step when the crop fits in the resized image: only the kept
 * window is resampled (same pixels as the two steps). Advances *i past the crop. */
static int resize_center_crop(const dc_transform *rs, const dc_transform *cc, dc__sample *s,
                              int *i) {
  geom g;
  if (!geom_of(s, &g, "resize")) return dc_last_status();
  int64_t oh, ow;
  resize_size(rs, &g, &oh, &ow);
  if (cc->h > oh || cc->w > ow || (oh == g.h && ow == g.w)) {
    int rc = oh == g.h && ow == g.w ? DC_OK : resize_to(s, oh, ow, rs->aa, NULL);
    if (rc) return rc;
    ++*i;
    return center_crop(cc, s);
  }
  int64_t win[4] = {(int64_t)nearbyint((double)(oh - cc->h) / 2.0),
                    (int64_t)nearbyint((double)(ow - cc->w) / 2.0), cc->h, cc->w};
  ++*i;
  return resize_to(s, oh, ow, rs->aa, win);
}

int dc__tf_apply(const dc_transform *t, dc__sample *s, dc__rng *r) {
  switch (t->kind) {
  case TF_COMPOSE:
    for (int i = 0; i < t->n; i++) {
      int rc =
          i + 1 < t->n && t->items[i]->kind == TF_RESIZE && t->items[i + 1]->kind == TF_CENTER_CROP
              ? resize_center_crop(t->items[i], t->items[i + 1], s, &i)
              : dc__tf_apply(t->items[i], s, r);
      if (rc) return rc;
    }
    return DC_OK;
  case TF_TO_TENSOR:
    return to_tensor(s);
  case TF_NORMALIZE:
    return normalize(t, s);
  case TF_RESIZE: {
    geom g;
    if (!geom_of(s, &g, "resize")) return dc_last_status();
    int64_t oh, ow;
    resize_size(t, &g, &oh, &ow);
    if (oh == g.h && ow == g.w) return DC_OK;
    return resize_to(s, oh, ow, t->aa, NULL);
  }
  case TF_CENTER_CROP:
    return center_crop(t, s);
  case TF_RANDOM_CROP:
    return random_crop(t, s, r);
  case TF_RANDOM_RESIZED_CROP:
    return random_resized_crop(t, s, r);
  case TF_HFLIP:
    return dc__rng_uniform(r) < t->p ? hflip(s) : DC_OK;
  case TF_GRAYSCALE:
    return grayscale(t, s);
  case TF_JITTER:
    return color_jitter(t, s, r);
  case TF_ROTATION: {
    double angle = t->deg[0] + (t->deg[1] - t->deg[0]) * dc__rng_uniform(r);
    return s->hwc ? rotate_pil(s, angle, t->fill) : rotate_tensor(s, angle, t->fill);
  }
  case TF_KIND_COUNT:
    break;
  }
  return dc__errs(DC_ERR_STATE, "transform: unknown kind %d", (int)t->kind);
}

static dc_tensor *apply_host(const dc_transform *tf, dc_tensor *img, uint64_t seed);

/* Transforms run on the host: an image on another device is copied to the host explicitly
 * (waiting for the device), transformed there and the result copied back to its device, as
 * torchvision's transforms give a tensor on the input's device. */
dc_tensor *dc_transform_apply(const dc_transform *tf, dc_tensor *img, uint64_t seed) {
  if (!tf || !img) return dc__err(DC_ERR_ARG, "transform_apply: transform or image is NULL");
  if (img->device == DC_CPU) return apply_host(tf, img, seed);
  bool prev = dc_set_grad_enabled(false);
  dc_tensor *host = dc_to_device(img, DC_CPU);
  dc_tensor *out = host ? apply_host(tf, host, seed) : NULL;
  dc_tensor *back = out ? dc_to_device(out, img->device) : NULL;
  dc_set_grad_enabled(prev);
  dc_free(out);
  dc_free(host);
  return back;
}

static dc_tensor *apply_host(const dc_transform *tf, dc_tensor *img, uint64_t seed) {
  dc__sample s = {0};
  char b[128];
  bool u8img = img->dtype == DC_U8 && (img->ndim == 2 || img->ndim == 3);
  if (!u8img && (!dc_dtype_is_float(img->dtype) || img->ndim < 2))
    return dc__err(DC_ERR_ARG,
                   "transform_apply: expects uint8 [H, W, C] / [H, W] or a float "
                   "[..., C, H, W] image, got %s %s",
                   dc_dtype_name(img->dtype), dc_shape_str(dc_shape_of(img), b, sizeof b));
  dc_tensor *src =
      img->dtype == DC_U8 || img->dtype == DC_F32 ? dc_contiguous(img) : dc_to_dtype(img, DC_F32);
  if (!src) return NULL;
  size_t bytes = (size_t)dc_numel(src) * dc_dtype_size(src->dtype);
  dc_tensor *out = NULL;
  if (!dc__arr_reserve(&s.x, bytes ? bytes : 1)) goto done;
  memcpy(s.x.data, dc_data(src), bytes);
  s.x.dtype = src->dtype;
  s.x.ndim = src->ndim;
  memcpy(s.x.shape, src->shape, sizeof(int64_t) * (size_t)src->ndim);
  s.hwc = u8img;
  if (u8img && s.x.ndim == 2) s.x.shape[s.x.ndim++] = 1;
  dc__rng r = {seed, 0};
  if (dc__tf_apply(tf, &s, &r) == DC_OK) {
    dc_shape sh = {.ndim = s.x.ndim};
    memcpy(sh.d, s.x.shape, sizeof(int64_t) * (size_t)s.x.ndim);
    out = dc_from_data(s.x.data, sh, s.x.dtype);
  }
done:
  dc_free(src);
  dc__sample_free(&s);
  return out;
}
