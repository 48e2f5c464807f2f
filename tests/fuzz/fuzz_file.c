/* dc_fuzz_file (fuzz.h): the readers that take a path (CIFAR batches, CSV, checkpoints) get the
 * fuzz input as a file in a private temporary folder of this process. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

const char *dc_fuzz_file(const uint8_t *data, size_t size, const char *name) {
  static char dir[512], path[1024];
  if (!dir[0]) {
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/dc-fuzz-%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    mkdir(dir, 0700);
  }
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  if (!f) {
    perror(path);
    abort();
  }
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  return path;
}
