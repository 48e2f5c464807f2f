/* A temporary folder for the unit tests that write files, included by their .c file (each test
 * file is one executable). setup() makes a new folder `dir` under /tmp named after the test file,
 * teardown() removes it with everything in it (after making it writable again, for the tests that
 * take the write permission away); at(name) is the path of name in it, in one of four buffers
 * used in turn. Use as `TestSuite(x, .init = setup, .fini = teardown)`. */
#ifndef DC_TEST_TMPDIR_H
#define DC_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[256];

static void setup(void) {
  const char *base = strrchr(__BASE_FILE__, '/'); /* the including test file */
  base = base ? base + 1 : __BASE_FILE__;
  snprintf(dir, sizeof dir, "/tmp/dc_%.*s_XXXXXX", (int)strcspn(base, "."), base);
  cr_assert_not_null(mkdtemp(dir), "cannot make a temporary folder from %s", dir);
}

static void teardown(void) {
  char cmd[300];
  chmod(dir, 0700);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) cr_log_warn("could not remove %s", dir);
}

static __attribute__((unused)) const char *at(const char *name) {
  static char buf[4][512];
  static int k;
  k = (k + 1) % 4;
  snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
  return buf[k];
}

#endif
