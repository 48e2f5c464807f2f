/* dc_fuzz_file (fuzz.h): the readers that take a path (CIFAR batches, CSV, checkpoints) get the
 * fuzz input as a file in a private temporary folder of this process, removed at exit. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[512];
static char g_names[8][64]; /* files written so far (each target uses a few fixed names) */

static void cleanup(void) {
  char path[1024];
  for (int i = 0; i < 8 && g_names[i][0]; i++) {
    snprintf(path, sizeof path, "%s/%s", g_dir, g_names[i]);
    remove(path);
  }
  rmdir(g_dir);
}

const char *dc_fuzz_file(const uint8_t *data, size_t size, const char *name) {
  static char path[1024];
  if (!g_dir[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/dc-fuzz-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    mkdir(g_dir, 0700);
    atexit(cleanup);
  }
  int i = 0;
  while (i < 8 && g_names[i][0] && strcmp(g_names[i], name)) i++;
  if (i == 8) abort(); /* more names than a target uses */
  snprintf(g_names[i], sizeof g_names[i], "%s", name);
  snprintf(path, sizeof path, "%s/%s", g_dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    abort();
  }
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  return path;
}
