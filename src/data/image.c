/* Image decoding for ImageFolder: JPEG (libjpeg-turbo), PNG (libpng) and binary PPM/PGM, into
 * uint8 [H, W, C] with PIL's conversions (convert("RGB") / convert("L")), so pixels match what
 * torchvision's default loader sees. Sizes are checked before any pixel buffer exists. */
#include "data-impl.h"

#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#ifdef DC_HAVE_JPEG
#include <jerror.h>
#include <jpeglib.h>
#endif
#ifdef DC_HAVE_PNG
#include <png.h>
#endif

void dc__rgb_to_l_u8(const uint8_t *rgb, uint8_t *l, int64_t npix) {
  for (int64_t i = 0; i < npix; i++)
    l[i] = (uint8_t)((rgb[3 * i] * 19595u + rgb[3 * i + 1] * 38470u + rgb[3 * i + 2] * 7471u +
                      0x8000u) >>
                     16);
}

/* PIL's convert("RGB") of an L image, in place: [npix] -> [npix, 3]. */
static void l_to_rgb_inplace(uint8_t *p, int64_t npix) {
  for (int64_t i = npix - 1; i >= 0; i--) p[3 * i] = p[3 * i + 1] = p[3 * i + 2] = p[i];
}

const char *dc__image_kind(const uint8_t *buf, size_t n) {
  if (n >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF) return "JPEG";
  if (n >= 8 && memcmp(buf, "\x89PNG\r\n\x1a\n", 8) == 0) return "PNG";
  if (n >= 2 && buf[0] == 'P' && (buf[1] == '5' || buf[1] == '6')) return "PNM";
  return NULL;
}

static int check_pixels(int64_t w, int64_t h, int64_t max_pixels, const char *kind,
                        const char *what) {
  if (w <= 0 || h <= 0)
    return dc__errs(DC_ERR_FORMAT, "%s: %s header declares an empty %lldx%lld image", what, kind,
                    (long long)w, (long long)h);
  if (w > max_pixels / h)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: %s header declares %lldx%lld pixels, over the limit of "
                    "%lld (a decompression bomb, or raise max_pixels)",
                    what, kind, (long long)w, (long long)h, (long long)max_pixels);
  return DC_OK;
}

static bool out_reserve(dc__arr *out, int64_t h, int64_t w, int c) {
  /* room for 3 channels even when decoding gray first (gray -> RGB expands in place) */
  if (!dc__arr_reserve(out, (size_t)(h * w) * 4)) return false;
  out->dtype = DC_U8;
  out->ndim = 3;
  out->shape[0] = h;
  out->shape[1] = w;
  out->shape[2] = c;
  return true;
}

/* ---- JPEG ---- */
#ifdef DC_HAVE_JPEG
typedef struct jpeg_err {
  struct jpeg_error_mgr pub;
  jmp_buf jb;
  char msg[JMSG_LENGTH_MAX];
  bool truncated;
  uint8_t *row; /* CMYK row buffer, freed on any exit */
} jpeg_err;

static void jpeg_on_error(j_common_ptr c) {
  jpeg_err *e = (jpeg_err *)c->err;
  (*c->err->format_message)(c, e->msg);
  longjmp(e->jb, 1);
}

static void jpeg_on_message(j_common_ptr c, int level) {
  jpeg_err *e = (jpeg_err *)c->err;
  if (level >= 0) return;                  /* trace messages */
  if (c->err->msg_code == JWRN_JPEG_EOF) { /* stop now: libjpeg would decode the rest as gray */
    e->truncated = true;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
  }
  c->err->num_warnings++;
}

/* Huffman coding spends at least one bit on every 8x8 block of a component (its DC difference;
 * a 1-bit code at the least), so a complete file of n bytes holds at most 8n blocks of its
 * smallest component. Checked before the pixels are allocated: a 200-byte file that claims
 * 10000x10000 is refused rather than decoded into 300 MB of gray. (Arithmetic coding has no such
 * bound; those files rely on max_pixels, and stop at the end of their data.) */
static int check_jpeg_size(const struct jpeg_decompress_struct *ci, size_t n, const char *what) {
  if (ci->arith_code || ci->num_components < 1) return DC_OK;
  uint64_t least = UINT64_MAX;
  for (int k = 0; k < ci->num_components; k++) {
    uint64_t b = (uint64_t)ci->comp_info[k].width_in_blocks * ci->comp_info[k].height_in_blocks;
    if (b < least) least = b;
  }
  if (least <= (uint64_t)n * 8) return DC_OK;
  return dc__errs(DC_ERR_FORMAT,
                  "%s: JPEG header declares %ux%u pixels (%llu 8x8 blocks in each component at "
                  "least) but the file has %zu bytes, too few to code them (one bit per block at "
                  "least): truncated, or a decompression bomb",
                  what, ci->image_width, ci->image_height, (unsigned long long)least, n);
}

static int decode_jpeg(const uint8_t *buf, size_t n, bool gray, int64_t max_pixels, dc__arr *out,
                       const char *what) {
  struct jpeg_decompress_struct ci;
  jpeg_err e;
  memset(&e, 0, sizeof e);
  ci.err = jpeg_std_error(&e.pub);
  e.pub.error_exit = jpeg_on_error;
  e.pub.emit_message = jpeg_on_message;
  if (setjmp(e.jb)) {
    jpeg_destroy_decompress(&ci);
    dc__free(e.row);
    if (e.truncated) return dc__errs(DC_ERR_FORMAT, "%s: truncated JPEG (%s)", what, e.msg);
    return dc__errs(DC_ERR_FORMAT, "%s: corrupt JPEG: %s", what, e.msg);
  }
  jpeg_create_decompress(&ci);
  jpeg_mem_src(&ci, buf, (unsigned long)n);
  jpeg_read_header(&ci, TRUE);
  int rc = check_pixels(ci.image_width, ci.image_height, max_pixels, "JPEG", what);
  if (!rc) rc = check_jpeg_size(&ci, n, what);
  if (rc) {
    jpeg_destroy_decompress(&ci);
    return rc;
  }
  bool src_gray = ci.jpeg_color_space == JCS_GRAYSCALE;
  bool cmyk = ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK;
  ci.out_color_space = src_gray ? JCS_GRAYSCALE : cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&ci);
  int64_t w = ci.output_width, h = ci.output_height;
  int oc = ci.output_components;
  if (!out_reserve(out, h, w, gray ? 1 : 3)) {
    jpeg_destroy_decompress(&ci);
    return DC_ERR_NOMEM;
  }
  uint8_t *px = out->data;
  if (cmyk && !(e.row = dc__malloc((size_t)w * 4))) {
    jpeg_destroy_decompress(&ci);
    return DC_ERR_NOMEM;
  }
  bool inverted = ci.saw_Adobe_marker; /* Adobe CMYK is stored inverted (PIL's "CMYK;I") */
  while (ci.output_scanline < ci.output_height) {
    int64_t y = ci.output_scanline;
    JSAMPROW row = cmyk ? e.row : px + (size_t)(y * w * oc);
    jpeg_read_scanlines(&ci, &row, 1);
    if (!cmyk) continue;
    uint8_t *o = px + (size_t)(y * w * 3);
    for (int64_t x = 0; x < w; x++) { /* PIL's cmyk2rgb */
      int c[4];
      for (int k = 0; k < 4; k++) c[k] = inverted ? 255 - e.row[4 * x + k] : e.row[4 * x + k];
      int nk = 255 - c[3];
      for (int k = 0; k < 3; k++) {
        int t = c[k] * nk + 128;
        int v = nk - (((t >> 8) + t) >> 8);
        o[3 * x + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
      }
    }
  }
  jpeg_finish_decompress(&ci);
  jpeg_destroy_decompress(&ci);
  dc__free(e.row);
  e.row = NULL;
  if (gray && oc != 1) dc__rgb_to_l_u8(px, px, h * w);
  if (!gray && oc == 1) l_to_rgb_inplace(px, h * w);
  return DC_OK;
}
#endif

/* ---- PNG ---- */
#ifdef DC_HAVE_PNG
typedef struct png_ctx {
  const uint8_t *buf;
  size_t n, pos;
  char msg[256];
  png_bytep *rows; /* row pointers, freed on any exit */
} png_ctx;

static void png_on_error(png_structp p, png_const_charp msg) {
  png_ctx *c = png_get_error_ptr(p);
  snprintf(c->msg, sizeof c->msg, "%s", msg);
  png_longjmp(p, 1);
}

static void png_on_warning(png_structp p, png_const_charp msg) {
  (void)p;
  (void)msg;
}

static void png_read_mem(png_structp p, png_bytep data, png_size_t len) {
  png_ctx *c = png_get_io_ptr(p);
  if (len > c->n - c->pos) png_error(p, "file ends early (truncated)");
  memcpy(data, c->buf + c->pos, len);
  c->pos += len;
}

static int decode_png(const uint8_t *buf, size_t n, bool gray, int64_t max_pixels, dc__arr *out,
                      const char *what) {
  if (n >= 24 && memcmp(buf + 12, "IHDR", 4) == 0) { /* the size, before libpng allocates */
    int64_t w = (int64_t)((uint32_t)buf[16] << 24 | (uint32_t)buf[17] << 16 |
                          (uint32_t)buf[18] << 8 | buf[19]);
    int64_t h = (int64_t)((uint32_t)buf[20] << 24 | (uint32_t)buf[21] << 16 |
                          (uint32_t)buf[22] << 8 | buf[23]);
    int rc = check_pixels(w, h, max_pixels, "PNG", what);
    if (rc) return rc;
  }
  png_ctx c = {buf, n, 0, "", NULL};
  png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
  if (!p) return dc__errs(DC_ERR_NOMEM, "%s: cannot start the PNG decoder", what);
  png_infop info = png_create_info_struct(p);
  if (!info) {
    png_destroy_read_struct(&p, NULL, NULL);
    return dc__errs(DC_ERR_NOMEM, "%s: cannot start the PNG decoder", what);
  }
  if (setjmp(png_jmpbuf(p))) {
    png_destroy_read_struct(&p, &info, NULL);
    dc__free(c.rows);
    return dc__errs(DC_ERR_FORMAT, "%s: corrupt PNG: %s (near offset %zu)", what, c.msg, c.pos);
  }
  png_set_read_fn(p, &c, png_read_mem);
  png_read_info(p, info);
  png_uint_32 w, h;
  int depth, ctype;
  png_get_IHDR(p, info, &w, &h, &depth, &ctype, NULL, NULL, NULL);
  int rc = check_pixels(w, h, max_pixels, "PNG", what);
  if (rc) {
    png_destroy_read_struct(&p, &info, NULL);
    return rc;
  }
  /* deflate expands at most 1032:1: IDAT chunks too small for the declared rows are refused
   * before the pixel buffer exists (a 10000x10000 header over a few bytes of data) */
  uint64_t idat = 0;
  for (size_t at = 8; at + 8 <= n;) {
    uint64_t len = (uint64_t)buf[at] << 24 | (uint64_t)buf[at + 1] << 16 |
                   (uint64_t)buf[at + 2] << 8 | buf[at + 3];
    if (memcmp(buf + at + 4, "IDAT", 4) == 0) idat += len < n - at - 8 ? len : n - at - 8;
    if (len > n - at - 8) break;
    at += 12 + (size_t)len;
  }
  int src_ch = ctype == PNG_COLOR_TYPE_RGB          ? 3
               : ctype == PNG_COLOR_TYPE_RGB_ALPHA  ? 4
               : ctype == PNG_COLOR_TYPE_GRAY_ALPHA ? 2
                                                    : 1;
  uint64_t raw = (uint64_t)h * (1 + ((uint64_t)w * (uint64_t)src_ch * (uint64_t)depth + 7) / 8);
  if (raw > idat * 1032u + 1024u) {
    png_destroy_read_struct(&p, &info, NULL);
    return dc__errs(DC_ERR_FORMAT,
                    "%s: PNG IDAT chunks hold %llu bytes, too few to inflate to the %llu bytes of "
                    "the %ux%u image the IHDR declares (truncated, or a decompression bomb)",
                    what, (unsigned long long)idat, (unsigned long long)raw, (unsigned)w,
                    (unsigned)h);
  }
  bool src_gray = !(ctype & PNG_COLOR_MASK_COLOR);
  if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
  if (src_gray && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
  if (depth == 16) png_set_strip_16(p);
  if (ctype & PNG_COLOR_MASK_ALPHA) png_set_strip_alpha(p); /* convert("RGB") drops alpha */
  png_set_interlace_handling(p);
  png_read_update_info(p, info);
  int oc = png_get_channels(p, info);
  if (png_get_rowbytes(p, info) != (size_t)w * (size_t)oc || (oc != 1 && oc != 3))
    png_error(p, "unexpected row layout after conversion");
  if (!out_reserve(out, h, w, gray ? 1 : 3) || !(c.rows = dc__malloc(sizeof *c.rows * (size_t)h))) {
    png_destroy_read_struct(&p, &info, NULL);
    return DC_ERR_NOMEM;
  }
  uint8_t *px = out->data;
  for (png_uint_32 y = 0; y < h; y++) c.rows[y] = px + (size_t)y * w * (size_t)oc;
  png_read_image(p, c.rows);
  png_destroy_read_struct(&p, &info, NULL);
  dc__free(c.rows);
  int64_t npix = (int64_t)w * h;
  if (gray && oc == 3) dc__rgb_to_l_u8(px, px, npix);
  if (!gray && oc == 1) l_to_rgb_inplace(px, npix);
  return DC_OK;
}
#endif

/* ---- binary PPM / PGM ---- */

/* Next header number after whitespace and # comments; false at the end or on junk. */
static bool pnm_number(const uint8_t *b, size_t n, size_t *pos, int64_t *v) {
  size_t i = *pos;
  for (;;) {
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
    if (i < n && b[i] == '#') {
      while (i < n && b[i] != '\n') i++;
      continue;
    }
    break;
  }
  if (i >= n || b[i] < '0' || b[i] > '9') return false;
  int64_t x = 0;
  while (i < n && b[i] >= '0' && b[i] <= '9') {
    if (x > ((int64_t)1 << 40)) return false;
    x = x * 10 + (b[i++] - '0');
  }
  *pos = i;
  *v = x;
  return true;
}

static int decode_pnm(const uint8_t *buf, size_t n, bool gray, int64_t max_pixels, dc__arr *out,
                      const char *what) {
  int c = buf[1] == '5' ? 1 : 3;
  size_t pos = 2;
  int64_t w, h, maxval;
  if (!pnm_number(buf, n, &pos, &w) || !pnm_number(buf, n, &pos, &h) ||
      !pnm_number(buf, n, &pos, &maxval) || pos >= n)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: offset %zu: bad or truncated P%c header (width, height, "
                    "maxval)",
                    what, pos, buf[1]);
  pos++; /* the single whitespace before the raster */
  int rc = check_pixels(w, h, max_pixels, "PNM", what);
  if (rc) return rc;
  if (maxval < 1 || maxval > 255)
    return dc__errs(DC_ERR_UNSUPPORTED,
                    "%s: P%c header: maxval %lld: deepc reads 8-bit PPM/PGM only", what, buf[1],
                    (long long)maxval);
  size_t need = (size_t)(w * h * c);
  if (n - pos < need)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: truncated: %lldx%lld P%c needs %zu pixel bytes from "
                    "offset %zu, the file has %zu",
                    what, (long long)w, (long long)h, buf[1], need, pos, n - pos);
  if (!out_reserve(out, h, w, gray ? 1 : 3)) return DC_ERR_NOMEM;
  uint8_t *px = out->data;
  for (size_t i = 0; i < need; i++)
    px[i] = maxval == 255 ? buf[pos + i] : (uint8_t)((buf[pos + i] * 255 + maxval / 2) / maxval);
  if (gray && c == 3) dc__rgb_to_l_u8(px, px, w * h);
  if (!gray && c == 1) l_to_rgb_inplace(px, w * h);
  return DC_OK;
}

int dc__image_decode(const uint8_t *buf, size_t n, bool gray, int64_t max_pixels, dc__arr *out,
                     const char *what) {
  const char *kind = dc__image_kind(buf, n);
  if (max_pixels <= 0) max_pixels = DC_MAX_IMAGE_PIXELS;
  if (!kind)
    return dc__errs(DC_ERR_FORMAT,
                    "%s: offset 0: not a JPEG, PNG or binary PPM/PGM image "
                    "(first bytes %02x %02x %02x)",
                    what, n > 0 ? buf[0] : 0, n > 1 ? buf[1] : 0, n > 2 ? buf[2] : 0);
  if (kind[0] == 'J') {
#ifdef DC_HAVE_JPEG
    return decode_jpeg(buf, n, gray, max_pixels, out, what);
#else
    return dc__errs(DC_ERR_UNSUPPORTED, "%s: JPEG, but deepc was built without libjpeg", what);
#endif
  }
  if (strcmp(kind, "PNG") == 0) {
#ifdef DC_HAVE_PNG
    return decode_png(buf, n, gray, max_pixels, out, what);
#else
    return dc__errs(DC_ERR_UNSUPPORTED, "%s: PNG, but deepc was built without libpng", what);
#endif
  }
  return decode_pnm(buf, n, gray, max_pixels, out, what);
}
