/* Unit tests of the one atomic write (src/core/fs.c): the new file appears whole, a failed write
 * keeps the old file and leaves no temporary file, errors name the file, and the temporary files
 * of dead writers are removed while those of live ones are kept. */
#include <criterion/criterion.h>
#include <deepc/deepc.h>

#include "core/core-impl.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tmpdir.h"

TestSuite(fs, .init = setup, .fini = teardown);

static void put(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fputs(text, f) >= 0, true);
  cr_assert_eq(fclose(f), 0);
}

static char *slurp(const char *path) {
  static char buf[4096];
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s cannot be read", path);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

/* The names in the test folder, space-separated. */
static const char *listing(void) {
  static char buf[4096];
  buf[0] = 0;
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  for (struct dirent *e; (e = readdir(d));)
    if (e->d_name[0] != '.') strcat(strcat(buf, e->d_name), " ");
  closedir(d);
  return buf;
}

typedef struct fill_spec {
  const char *text; /* written first */
  int status;       /* returned after it */
  int err;          /* errno set before returning */
  char tmp[600];    /* the temporary file's name, as fill saw it */
} fill_spec;

static int fill(FILE *f, const char *tmp, void *ctx) {
  fill_spec *s = ctx;
  snprintf(s->tmp, sizeof s->tmp, "%s", tmp);
  fputs(s->text, f);
  fflush(f);
  if (s->status != DC_OK && s->status != DC__WRITE_FAILED)
    return dc__errs(s->status, "fill: gave up after %zu bytes", strlen(s->text));
  errno = s->err;
  return s->status;
}

Test(fs, writes_the_file_whole_and_leaves_no_temporary) {
  put(at("out.txt"), "old contents\n");
  fill_spec s = {"new contents\n", DC_OK, 0, ""};
  cr_assert_eq(dc__write_atomic(at("out.txt"), "the test file", fill, &s), DC_OK, "%s",
               dc_last_error());
  cr_assert_str_eq(slurp(at("out.txt")), "new contents\n");
  cr_assert_str_eq(listing(), "out.txt ", "left: %s", listing());
  /* the temporary file was in the same folder, named after the target */
  cr_assert(strncmp(s.tmp, at("out.txt.tmp-"), strlen(at("out.txt.tmp-"))) == 0, "%s", s.tmp);
}

Test(fs, a_fill_that_fails_midway_keeps_the_old_file) {
  put(at("out.txt"), "old contents\n");
  fill_spec s = {"half of the new", DC_ERR_FORMAT, 0, ""};
  cr_assert_eq(dc__write_atomic(at("out.txt"), "the test file", fill, &s), DC_ERR_FORMAT);
  cr_assert(strstr(dc_last_error(), "fill: gave up after 15 bytes"), "%s", dc_last_error());
  cr_assert_str_eq(slurp(at("out.txt")), "old contents\n");
  cr_assert_str_eq(listing(), "out.txt ", "temporary file left: %s", listing());
}

Test(fs, a_failed_write_is_reported_with_its_errno_and_the_file) {
  put(at("out.txt"), "old contents\n");
  fill_spec s = {"some bytes", DC__WRITE_FAILED, ENOSPC, ""};
  cr_assert_eq(dc__write_atomic(at("out.txt"), "the test file", fill, &s), DC_ERR_IO);
  const char *m = dc_last_error();
  cr_assert(strstr(m, at("out.txt")) && strstr(m, "writing the test file failed") &&
                strstr(m, strerror(ENOSPC)) && strstr(m, "unchanged"),
            "%s", m);
  cr_assert_str_eq(slurp(at("out.txt")), "old contents\n");
  cr_assert_str_eq(listing(), "out.txt ", "temporary file left: %s", listing());
}

Test(fs, a_new_file_that_fails_is_not_created) {
  fill_spec s = {"x", DC__WRITE_FAILED, EIO, ""};
  cr_assert_eq(dc__write_atomic(at("new.txt"), "the test file", fill, &s), DC_ERR_IO);
  cr_assert_str_eq(listing(), "", "left: %s", listing());
}

Test(fs, an_unwritable_folder_is_an_error_naming_the_file) {
  fill_spec s = {"x", DC_OK, 0, ""};
  /* a folder that does not exist, and a "folder" that is a file (both fail even as root) */
  cr_assert_eq(dc__write_atomic(at("missing/out.txt"), "the test file", fill, &s), DC_ERR_IO);
  cr_assert(strstr(dc_last_error(), at("missing/out.txt")), "%s", dc_last_error());
  put(at("plain"), "a file\n");
  cr_assert_eq(dc__write_atomic(at("plain/out.txt"), "the test file", fill, &s), DC_ERR_IO);
  cr_assert(strstr(dc_last_error(), at("plain/out.txt")) && strstr(dc_last_error(), "temporary"),
            "%s", dc_last_error());
  if (geteuid() == 0) return; /* root writes into a read-only folder */
  put(at("kept.txt"), "old\n");
  cr_assert_eq(chmod(dir, 0500), 0);
  cr_assert_eq(dc__write_atomic(at("kept.txt"), "the test file", fill, &s), DC_ERR_IO);
  cr_assert(strstr(dc_last_error(), at("kept.txt")) && strstr(dc_last_error(), strerror(EACCES)),
            "%s", dc_last_error());
  cr_assert_eq(chmod(dir, 0700), 0);
  cr_assert_str_eq(slurp(at("kept.txt")), "old\n");
}

Test(fs, null_arguments_are_refused) {
  fill_spec s = {"x", DC_OK, 0, ""};
  cr_assert_eq(dc__write_atomic(NULL, "the test file", fill, &s), DC_ERR_ARG);
  cr_assert_eq(dc__write_atomic(at("a"), "the test file", NULL, &s), DC_ERR_ARG);
}

/* The pid of a process that has ended (and been reaped). */
static long dead_pid(void) {
  pid_t p = fork();
  cr_assert_geq(p, 0);
  if (p == 0) _exit(0);
  int st;
  cr_assert_eq(waitpid(p, &st, 0), p);
  return (long)p;
}

Test(fs, stale_temporaries_of_dead_writers_are_removed) {
  char dead[64], dead2[64], live[64];
  long pid = dead_pid();
  snprintf(dead, sizeof dead, "last.ckpt.tmp-%ld-3", pid);
  snprintf(dead2, sizeof dead2, "best.ckpt.tmp-%ld", pid);
  snprintf(live, sizeof live, "last.ckpt.tmp-%ld-0", (long)getpid());
  put(at(dead), "torn");
  put(at(dead2), "torn");
  put(at(live), "being written");
  put(at("metrics.csv.tmp"), "old style");
  put(at("notes.tmp-12x"), "not ours");
  put(at("last.ckpt"), "kept");
  dc__remove_stale_temps(dir);
  cr_assert(!strstr(listing(), dead) && !strstr(listing(), dead2), "%s", listing());
  cr_assert(!strstr(listing(), "metrics.csv.tmp"), "%s", listing());
  cr_assert(strstr(listing(), live) && strstr(listing(), "notes.tmp-12x") &&
                strstr(listing(), "last.ckpt "),
            "%s", listing());
}

Test(fs, mkdirs_makes_every_missing_folder_and_names_the_one_that_fails) {
  cr_assert_eq(dc__mkdirs(at("a/b/c")), DC_OK, "%s", dc_last_error());
  cr_assert(dc__is_dir(at("a/b/c")));
  cr_assert_eq(dc__mkdirs(at("a/b/c/")), DC_OK, "an existing folder is fine: %s", dc_last_error());
  cr_assert_eq(dc__mkdirs_for(at("x/y/file.txt")), DC_OK, "%s", dc_last_error());
  cr_assert(dc__is_dir(at("x/y")) && !dc__path_exists(at("x/y/file.txt")));
  put(at("a/plain"), "a file\n");
  cr_assert(dc__is_file(at("a/plain")) && !dc__is_dir(at("a/plain")));
  cr_assert_eq(dc__file_size(at("a/plain")), 7);
  cr_assert_eq(dc__file_size(at("a")), -1);
  cr_assert_eq(dc__mkdirs(at("a/plain")), DC_ERR_IO);
  cr_assert(strstr(dc_last_error(), at("a/plain")) && strstr(dc_last_error(), "a file"), "%s",
            dc_last_error());
  cr_assert_eq(dc__mkdirs(at("a/plain/sub")), DC_ERR_IO);
  cr_assert(strstr(dc_last_error(), at("a/plain/sub")), "%s", dc_last_error());
  cr_assert_eq(dc__mkdirs(""), DC_ERR_ARG);
}
