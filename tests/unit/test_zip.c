/* The one zip codec (src/io/zip.c) that .npz datasets and .pth weight files both read through:
 * a round trip of the stored writer, the entry checks every caller gets (a size field the
 * archive cannot hold, a compression method deepc does not read), the name rule, and that both
 * formats report the same refusal naming the file and the entry. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <deepc/deepc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data-impl.h"
#include "io/weights-impl.h"

typedef struct bytes {
  uint8_t *b;
  size_t n;
} bytes;

/* One stored entry per name, data = the name's bytes repeated to len. */
static bytes zip_of(const char *const *names, int n, size_t len) {
  bytes out = {0};
  FILE *f = open_memstream((char **)&out.b, &out.n);
  dc__zipw z = {.f = f, .what = "test"};
  uint8_t *data = malloc(len + 1);
  for (int i = 0; i < n; i++) {
    for (size_t k = 0; k < len; k++) data[k] = (uint8_t)names[i][k % strlen(names[i])];
    cr_assert_eq(dc__zipw_add(&z, names[i], data, len), DC_OK);
  }
  cr_assert_eq(dc__zipw_finish(&z), DC_OK);
  fclose(f);
  free(data);
  return out;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Sets the field at `at` of the first local header and the first central record to v. */
static void lie(bytes *z, size_t local_at, size_t central_at, uint32_t v) {
  uint8_t *cd = memmem(z->b, z->n, "PK\x01\x02", 4);
  cr_assert_not_null(cd);
  put32(z->b + local_at, v);
  put32(cd + central_at, v);
}

Test(zip, round_trip) {
  const char *names[] = {"archive/data.pkl", "archive/data/0", "x.npy"};
  bytes z = zip_of(names, 3, 100);
  dc__zipr *r = dc__zipr_open(z.b, z.n, "rt.zip", "zip");
  cr_assert_not_null(r, "%s", dc_last_error());
  cr_assert_eq(dc__zipr_count(r), 3);
  for (int i = 0; i < 3; i++) {
    cr_assert_str_eq(dc__zipr_name(r, i), names[i]);
    cr_assert_eq(dc__zipr_find(r, names[i]), i);
    dc__zip_entry e;
    cr_assert_eq(dc__zipr_entry(r, i, &e), DC_OK, "%s", dc_last_error());
    cr_assert_eq(e.size, 100);
    cr_assert_eq(e.comp_size, 100);
    cr_assert_eq(e.method, DC__ZIP_STORED);
    uint8_t buf[100];
    cr_assert_eq(dc__zipr_read(r, i, buf, 100), DC_OK, "%s", dc_last_error());
    cr_assert_eq(buf[99], (uint8_t)names[i][99 % strlen(names[i])]);
    cr_assert_neq(dc__zipr_read(r, i, buf, 99), DC_OK); /* not its recorded size */
  }
  cr_assert_eq(dc__zipr_find(r, "absent"), -1);
  dc__zip_entry e;
  cr_assert_neq(dc__zipr_entry(r, 3, &e), DC_OK);
  cr_assert(strstr(dc_last_error(), "rt.zip: zip entry 3"), "%s", dc_last_error());
  dc__zipr_close(r);
  free(z.b);
}

/* A stored entry whose records (local and central alike) claim 1 GiB from 100 bytes. */
Test(zip, size_field_the_archive_cannot_hold) {
  const char *names[] = {"x.npy"};
  bytes z = zip_of(names, 1, 100);
  lie(&z, 22, 24, 1u << 30);
  dc__zipr *r = dc__zipr_open(z.b, z.n, "lie.zip", "zip");
  if (r) { /* libzip may already refuse it at open; otherwise the entry check must */
    dc__zip_entry e;
    cr_assert_eq(dc__zipr_entry(r, 0, &e), DC_ERR_FORMAT);
    cr_assert(strstr(dc_last_error(), "lie.zip: entry x.npy: size field declares 1073741824"), "%s",
              dc_last_error());
    dc__zipr_close(r);
  }
  /* the .npz reader refuses before allocating, naming the file and the member */
  cr_assert_null(dc__npz_parse(z.b, z.n, "lie.npz"));
  cr_assert(strstr(dc_last_error(), "lie.npz") && strstr(dc_last_error(), "x.npy"), "%s",
            dc_last_error());
  free(z.b);
}

/* Method 12 (bzip2) in both records: refused by name for .npz and .pth alike. */
Test(zip, unsupported_method) {
  const char *names[] = {"archive/data.pkl"};
  bytes z = zip_of(names, 1, 100);
  uint8_t *cd = memmem(z.b, z.n, "PK\x01\x02", 4);
  z.b[8] = 12;
  cd[10] = 12;
  cr_assert_null(dc__npz_parse(z.b, z.n, "m.npz"));
  cr_assert(strstr(dc_last_error(), "m.npz") && strstr(dc_last_error(), "compression method 12"),
            "%s", dc_last_error());
  cr_assert_null(dc_weights_parse(z.b, z.n, "m.pth"));
  cr_assert(strstr(dc_last_error(), "m.pth") && strstr(dc_last_error(), "compression method 12"),
            "%s", dc_last_error());
  free(z.b);
}

Test(zip, not_a_zip_names_the_format) {
  static const uint8_t junk[64] = "PK\x03\x04 not really";
  cr_assert_null(dc__npz_parse(junk, sizeof junk, "j.npz"));
  cr_assert(strstr(dc_last_error(), "j.npz: not a readable .npz (zip) archive"), "%s",
            dc_last_error());
  cr_assert_null(dc_weights_parse(junk, sizeof junk, "j.pth"));
  cr_assert(strstr(dc_last_error(), "j.pth"), "%s", dc_last_error());
}

Test(zip, name_rule) {
  const char *ok[] = {"x.npy", "archive/data/0", "a/b/c", "..x", "x.."};
  const char *bad[] = {"", "/x", "../x", "a/../x", "a/..", "./x", "a//x", "a\\x"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    cr_assert(dc__zip_name_safe(ok[i]), "refused %s", ok[i]);
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert(!dc__zip_name_safe(bad[i]), "accepted '%s'", bad[i]);
}
