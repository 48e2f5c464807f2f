/* Unit tests of `deepc data fetch`'s pieces on local files: MD5 / SHA-256 against their standard
 * test vectors, downloads through libcurl from file:// URLs with good and bad checksums, an
 * unreachable host, gunzip, and tar extraction that refuses paths escaping the folder. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include "data/data-impl.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "tmpdir.h"

static void data_fetch_teardown(void) {
  teardown();
  unsetenv("DEEPC_DATA_MIRROR");
}

TestSuite(fetch, .init = setup, .fini = data_fetch_teardown);

/* Whether the test folder holds a temporary file of an atomic write ("*.tmp-*"). */
static bool temp_left(void) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  bool left = false;
  for (struct dirent *e; (e = readdir(d));) left = left || strstr(e->d_name, ".tmp-");
  closedir(d);
  return left;
}

static void put(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(data, 1, n, f), n);
  fclose(f);
}

static void hex(const uint8_t *d, int n, char *out) {
  for (int i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", d[i]);
}

Test(fetch, digests_match_standard_vectors) {
  static const struct {
    const char *in, *md5, *sha;
  } v[] = {
      {"", "d41d8cd98f00b204e9800998ecf8427e",
       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "900150983cd24fb0d6963f7d28e17f72",
       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "8215ef0796a20bcaaae116d3876c664a",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
       "57edf4a22be3c955ac49da2e2107b67a",
       "f371bc4a311f2b009eef952dd83ca80e2b60026c8e935592d0f9c308453c813e"},
  };
  for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
    uint8_t d[32];
    char h[65];
    dc__md5(v[i].in, strlen(v[i].in), d);
    hex(d, 16, h);
    cr_assert_str_eq(h, v[i].md5, "md5('%s')", v[i].in);
    dc__sha256(v[i].in, strlen(v[i].in), d);
    hex(d, 32, h);
    cr_assert_str_eq(h, v[i].sha, "sha256('%s')", v[i].in);
  }
  /* a file over several chunks agrees with the one-shot digest */
  size_t n = 3 * (1 << 20) + 12345;
  uint8_t *big = malloc(n);
  for (size_t i = 0; i < n; i++) big[i] = (uint8_t)(i * 2654435761u >> 13);
  put(at("big"), big, n);
  uint8_t d[32];
  char want[65], got[65];
  dc__md5(big, n, d);
  hex(d, 16, want);
  cr_assert_eq(dc__file_digest(at("big"), false, got), DC_OK);
  cr_assert_str_eq(got, want);
  dc__sha256(big, n, d);
  hex(d, 32, want);
  cr_assert_eq(dc__file_digest(at("big"), true, got), DC_OK);
  cr_assert_str_eq(got, want);
  free(big);
}

Test(fetch, download_checks_the_checksum) {
  const char *text = "pretend dataset bytes\n";
  put(at("src.bin"), text, strlen(text));
  uint8_t d[16];
  char md5[33], url[600];
  dc__md5(text, strlen(text), d);
  hex(d, 16, md5);
  snprintf(url, sizeof url, "file://%s", at("src.bin"));
  cr_assert_eq(dc__download(url, at("dest.bin"), md5, NULL), DC_OK, "%s", dc_last_error());
  cr_assert(dc__is_file(at("dest.bin")));
  cr_assert_neq(dc__download(url, at("bad.bin"), "00000000000000000000000000000000", NULL), DC_OK);
  cr_assert(strstr(dc_last_error(), "MD5 checksum") && strstr(dc_last_error(), md5), "%s",
            dc_last_error());
  cr_assert(!dc__is_file(at("bad.bin")) && !temp_left(), "a file with a wrong checksum was kept");
  cr_assert_neq(dc__download("http://127.0.0.1:9/none.gz", at("x"), NULL, NULL), DC_OK);
  cr_assert(strstr(dc_last_error(), "cannot download http://127.0.0.1:9/none.gz"), "%s",
            dc_last_error());
}

Test(fetch, fetch_from_a_mirror_without_the_real_files_fails_clearly) {
  char mirror[600];
  snprintf(mirror, sizeof mirror, "file://%s/mirror/", dir);
  setenv("DEEPC_DATA_MIRROR", mirror, 1);
  cr_assert_neq(dc_data_fetch("mnist", at("out"), NULL), DC_OK);
  const char *e = dc_last_error();
  cr_assert(strstr(e, "data fetch mnist") && strstr(e, "train-images-idx3-ubyte.gz") &&
                strstr(e, "f68b3c2dcbeaaa9fbdd348bbdeb94873") && strstr(e, "out/mnist"),
            "%s", e);
  cr_assert_neq(dc_data_fetch("imagenet", NULL, NULL), DC_OK);
  cr_assert(strstr(dc_last_error(), "unknown dataset 'imagenet'"), "%s", dc_last_error());
}

Test(fetch, gunzip_file) {
  gzFile f = gzopen(at("a.gz"), "wb");
  cr_assert_not_null(f);
  for (int i = 0; i < 1000; i++) gzprintf(f, "line %d\n", i);
  gzclose(f);
  cr_assert_eq(dc__gunzip_file(at("a.gz"), at("a")), DC_OK, "%s", dc_last_error());
  cr_assert_eq(dc__file_size(at("a")), 8890);
  put(at("plain"), "not gzip", 8);
  cr_assert_neq(dc__gunzip_file(at("plain"), at("p2")), DC_OK);
  cr_assert(strstr(dc_last_error(), "not gzip"), "%s", dc_last_error());
}

/* One ustar member into a .tar.gz being written. */
static void tar_member(gzFile f, const char *name, char type, const char *data) {
  uint8_t h[512] = {0};
  size_t n = data ? strlen(data) : 0;
  snprintf((char *)h, 100, "%s", name);
  snprintf((char *)h + 100, 8, "%07o", 0644);
  snprintf((char *)h + 124, 12, "%011o", (unsigned)n);
  snprintf((char *)h + 136, 12, "%011o", 0u);
  h[156] = (uint8_t)type;
  memcpy(h + 257,
         "ustar\0"
         "00",
         8);
  memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++) sum += h[i];
  snprintf((char *)h + 148, 8, "%06o", sum);
  gzwrite(f, h, 512);
  if (n) {
    uint8_t pad[512] = {0};
    gzwrite(f, data, (unsigned)n);
    gzwrite(f, pad, (unsigned)((512 - n % 512) % 512));
  }
}

static void tar_end(gzFile f) {
  uint8_t z[1024] = {0};
  gzwrite(f, z, sizeof z);
  gzclose(f);
}

Test(fetch, untar_extracts_and_refuses_escapes) {
  gzFile f = gzopen(at("ok.tar.gz"), "wb");
  tar_member(f, "cifar-10-batches-bin/", '5', NULL);
  tar_member(f, "cifar-10-batches-bin/batches.meta.txt", '0', "airplane\nautomobile\n");
  tar_member(f, "./cifar-10-batches-bin/readme.html", '0', "<p>hi</p>");
  tar_member(f, "link", '2', NULL);
  tar_end(f);
  int64_t files = 0;
  cr_assert_eq(dc__untar(at("ok.tar.gz"), dir, &files), DC_OK, "%s", dc_last_error());
  cr_assert_eq(files, 2);
  cr_assert_eq(dc__file_size(at("cifar-10-batches-bin/batches.meta.txt")), 20);
  cr_assert(dc__is_file(at("cifar-10-batches-bin/readme.html")));
  cr_assert(!dc__is_file(at("link")));
  f = gzopen(at("evil.tar.gz"), "wb");
  tar_member(f, "../escaped.txt", '0', "gotcha");
  tar_end(f);
  cr_assert_neq(dc__untar(at("evil.tar.gz"), at("x"), NULL), DC_OK);
  cr_assert(strstr(dc_last_error(), "refusing member '../escaped.txt'"), "%s", dc_last_error());
  f = gzopen(at("abs.tar.gz"), "wb");
  tar_member(f, "/tmp/abs.txt", '0', "gotcha");
  tar_end(f);
  cr_assert_neq(dc__untar(at("abs.tar.gz"), dir, NULL), DC_OK);
  cr_assert(strstr(dc_last_error(), "refusing member"), "%s", dc_last_error());
  put(at("junk.tar"), "this is not a tar archive, just some text that is long enough......", 68);
  cr_assert_neq(dc__untar(at("junk.tar"), dir, NULL), DC_OK);
  cr_assert(strstr(dc_last_error(), "truncated tar header"), "%s", dc_last_error());
}
