/* Every reader on a small valid file cut at every offset and with every byte flipped: each call
 * returns a value or an error with a message, never crashes (this suite also runs under ASan and
 * UBSan) and leaks nothing. Covers IDX (plain and gzip), .npy, .npz (stored and deflated),
 * pickles (protocols 2 and 5), JPEG, PNG and PPM. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include "data/data-impl.h"

#include <jpeglib.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zip.h>
#include <zlib.h>

typedef void (*parse_fn)(const uint8_t *b, size_t n);

static void parse_idx(const uint8_t *b, size_t n) { dc_free(dc__idx_parse(b, n, "f.idx")); }
static void parse_npy(const uint8_t *b, size_t n) { dc_free(dc__npy_parse(b, n, "f.npy")); }
static void parse_npz(const uint8_t *b, size_t n) { dc_npz_free(dc__npz_parse(b, n, "f.npz")); }
static void parse_pickle(const uint8_t *b, size_t n) { dc_pickle_free(dc_pickle_loads(b, n)); }
static void parse_image(const uint8_t *b, size_t n) {
  dc__arr out = {0};
  dc__image_decode(b, n, false, 1 << 20, &out, "f.img");
  dc__image_decode(b, n, true, 1 << 20, &out, "f.img");
  dc__arr_free(&out);
}

/* Runs parse on every prefix and on every single-byte corruption; checks errors carry a
 * message and that nothing stays allocated. Returns how many inputs failed. */
static int torture(const char *name, const uint8_t *good, size_t n, parse_fn parse) {
  int64_t live = dc_alloc_get_stats().live_blocks, tensors = dc_live_tensors();
  uint8_t *buf = malloc(n ? n : 1);
  int failures = 0;
  for (size_t cut = 0; cut <= n; cut++) {
    memcpy(buf, good, cut);
    dc_clear_error();
    parse(buf, cut);
    failures += dc_last_status() != DC_OK;
    if (dc_last_status() != DC_OK)
      cr_assert(dc_last_error()[0], "%s cut at %zu: error without a message", name, cut);
  }
  for (size_t i = 0; i < n; i++) {
    memcpy(buf, good, n);
    buf[i] ^= (uint8_t)(0x5A + i);
    dc_clear_error();
    parse(buf, n);
  }
  free(buf);
  cr_assert_eq(dc_alloc_get_stats().live_blocks, live, "%s: leaked %lld blocks", name,
               (long long)(dc_alloc_get_stats().live_blocks - live));
  cr_assert_eq(dc_live_tensors(), tensors, "%s: leaked tensors", name);
  return failures;
}

static size_t idx_bytes(uint8_t *b) {
  const uint8_t h[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 4};
  memcpy(b, h, sizeof h);
  for (int i = 0; i < 40; i++) b[16 + i] = (uint8_t)(i * 9);
  return 56;
}

static size_t gzip_bytes(const uint8_t *in, size_t n, uint8_t *out, size_t cap) {
  z_stream z = {0};
  cr_assert_eq(deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  z.next_in = (Bytef *)(uintptr_t)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  cr_assert_eq(deflate(&z, Z_FINISH), Z_STREAM_END);
  size_t len = cap - z.avail_out;
  deflateEnd(&z);
  return len;
}

Test(truncation, idx_plain_and_gzip) {
  uint8_t b[64], z[256];
  size_t n = idx_bytes(b);
  cr_assert_eq(torture("idx", b, n, parse_idx), (int)n); /* every strict prefix fails */
  size_t zn = gzip_bytes(b, n, z, sizeof z);
  torture("idx.gz", z, zn, parse_idx);
}

static size_t npy_bytes(uint8_t *b) {
  const char *h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  size_t hl = strlen(h);
  memcpy(b, "\x93NUMPY\x01\x00", 8);
  b[8] = (uint8_t)hl;
  b[9] = 0;
  memcpy(b + 10, h, hl);
  for (int i = 0; i < 24; i++) b[10 + hl + (size_t)i] = (uint8_t)(i * 3);
  return 10 + hl + 24;
}

Test(truncation, npy) {
  uint8_t b[128];
  size_t n = npy_bytes(b);
  cr_assert_eq(torture("npy", b, n, parse_npy), (int)n);
}

static size_t npz_bytes(uint8_t *out, size_t cap, bool deflate) {
  uint8_t npy[128];
  size_t n = npy_bytes(npy);
  char path[] = "/tmp/dc_npz_XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  int err;
  zip_t *z = zip_open(path, ZIP_TRUNCATE | ZIP_CREATE, &err);
  cr_assert_not_null(z);
  zip_source_t *src = zip_source_buffer(z, npy, n, 0);
  zip_int64_t idx = zip_file_add(z, "x.npy", src, ZIP_FL_OVERWRITE);
  cr_assert_geq(idx, 0);
  zip_set_file_compression(z, (zip_uint64_t)idx, deflate ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  cr_assert_eq(zip_close(z), 0);
  FILE *f = fopen(path, "rb");
  size_t got = fread(out, 1, cap, f);
  fclose(f);
  remove(path);
  return got;
}

Test(truncation, npz_stored_and_deflated) {
  uint8_t b[1024];
  for (int d = 0; d < 2; d++) {
    size_t n = npz_bytes(b, sizeof b, d == 1);
    dc_npz *z = dc__npz_parse(b, n, "ok.npz");
    cr_assert_not_null(z, "%s", dc_last_error());
    cr_assert(z->n == 1 && strcmp(z->names[0], "x") == 0 && z->arrays[0]->shape[1] == 3);
    dc_npz_free(z);
    torture(d ? "npz deflated" : "npz stored", b, n, parse_npz);
  }
}

Test(truncation, pickles) {
  /* (np.arange(3, dtype=float32) as protocol 5, then a protocol 2 dict) from Python */
  static const char p5[] =
      "\x80\x05\x95\x7f\x00\x00\x00\x00\x00\x00\x00\x8c\x12numpy.core.numeric\x94\x8c\x0b_"
      "frombuffer"
      "\x94\x93\x94(\x96\x0c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80?\x00\x00\x00@"
      "\x94\x8c\x05numpy\x94\x8c\x05"
      "dtype\x94\x93\x94\x8c\x02"
      "f4\x94\x89\x88\x87\x94R\x94(K\x03"
      "\x8c\x01<\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t\x94"
      "bK\x03\x85\x94\x8c\x01"
      "C\x94t"
      "\x94R\x94.";
  dc_pickle *pk = dc_pickle_loads(p5, sizeof p5 - 1);
  cr_assert_not_null(pk, "%s", dc_last_error());
  const dc_pyobj *r = dc_pickle_root(pk);
  cr_assert(r->kind == DC_PY_ARRAY && r->array->shape[0] == 3);
  cr_assert_eq(((float *)dc_data(r->array))[2], 2.0f);
  dc_pickle_free(pk);
  torture("pickle5", (const uint8_t *)p5, sizeof p5 - 1, parse_pickle);
  static const char p2[] = "\x80\x02}q\x00(X\x01\x00\x00\x00"
                           "aq\x01K\x01X\x01\x00\x00\x00"
                           "bq\x02]q\x03(G?\xf8\x00\x00\x00\x00\x00\x00N\x88"
                           "eu.";
  torture("pickle2", (const uint8_t *)p2, sizeof p2 - 1, parse_pickle);
}

static size_t jpeg_bytes(uint8_t **out) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr e;
  c.err = jpeg_std_error(&e);
  jpeg_create_compress(&c);
  unsigned long n = 0;
  *out = NULL;
  jpeg_mem_dest(&c, out, &n);
  c.image_width = 9;
  c.image_height = 7;
  c.input_components = 3;
  c.in_color_space = JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_start_compress(&c, TRUE);
  uint8_t row[27];
  for (int y = 0; y < 7; y++) {
    for (int x = 0; x < 27; x++) row[x] = (uint8_t)(x * 9 + y * 30);
    JSAMPROW r = row;
    jpeg_write_scanlines(&c, &r, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  return n;
}

typedef struct png_buf {
  uint8_t b[4096];
  size_t n;
} png_buf;

static void png_write_mem(png_structp p, png_bytep d, png_size_t n) {
  png_buf *o = png_get_io_ptr(p);
  cr_assert_leq(o->n + n, sizeof o->b);
  memcpy(o->b + o->n, d, n);
  o->n += n;
}
static void png_flush_mem(png_structp p) { (void)p; }

static void png_bytes(png_buf *o, int color_type) {
  o->n = 0;
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(p);
  png_set_write_fn(p, o, png_write_mem, png_flush_mem);
  int ch = color_type == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : color_type == PNG_COLOR_TYPE_RGB ? 3 : 1;
  png_set_IHDR(p, info, 6, 5, 8, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
    png_set_PLTE(p, info, pal, 4);
  }
  png_write_info(p, info);
  uint8_t row[24];
  for (int y = 0; y < 5; y++) {
    for (int x = 0; x < 6 * ch; x++)
      row[x] = (uint8_t)(color_type == PNG_COLOR_TYPE_PALETTE ? (x + y) % 4 : x * 11 + y);
    png_write_row(p, row);
  }
  png_write_end(p, NULL);
  png_destroy_write_struct(&p, &info);
}

Test(truncation, images) {
  uint8_t *j;
  size_t n = jpeg_bytes(&j);
  torture("jpeg", j, n, parse_image);
  free(j);
  int types[] = {PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_PALETTE,
                 PNG_COLOR_TYPE_RGB_ALPHA};
  for (int k = 0; k < 4; k++) {
    png_buf o;
    png_bytes(&o, types[k]);
    dc__arr out = {0};
    cr_assert_eq(dc__image_decode(o.b, o.n, false, 0, &out, "ok.png"), DC_OK, "%s",
                 dc_last_error());
    cr_assert(out.shape[0] == 5 && out.shape[1] == 6 && out.shape[2] == 3);
    dc__arr_free(&out);
    torture("png", o.b, o.n, parse_image);
  }
  const char ppm[] = "P6\n3 2\n255\nabcdefghijklmnopqr";
  torture("ppm", (const uint8_t *)ppm, sizeof ppm - 1, parse_image);
}
