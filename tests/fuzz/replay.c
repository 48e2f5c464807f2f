/* main() for the fuzz targets when libFuzzer is not used (gcc builds, CI, ASan): runs every seed
 * file given (files or folders) through LLVMFuzzerTestOneInput, then mutated copies of them for
 * --seconds: bit flips, interesting bytes and lengths, truncation, insertion, chunk copies and
 * splices of two seeds, from a seeded xorshift generator (--seed) so a failure can be replayed.
 * A crash or sanitizer report fails the test; otherwise it prints how many inputs ran. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_SEEDS 256
#define FUZZ_MAX_INPUT (1 << 20)

typedef struct seed {
  uint8_t *b;
  size_t n;
} seed;

static seed g_seeds[MAX_SEEDS];
static int g_nseeds;
static uint64_t g_rng = 0x9E3779B97F4A7C15ull;

static uint64_t next(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}
static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

static void add_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f || g_nseeds == MAX_SEEDS) {
    if (f) fclose(f);
    return;
  }
  uint8_t *b = malloc(FUZZ_MAX_INPUT);
  size_t n = b ? fread(b, 1, FUZZ_MAX_INPUT, f) : 0;
  fclose(f);
  g_seeds[g_nseeds++] = (seed){b, n};
}

static void add_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "fuzz: cannot read %s\n", path);
    exit(2);
  }
  if (!S_ISDIR(st.st_mode)) {
    add_file(path);
    return;
  }
  DIR *d = opendir(path);
  struct dirent *e;
  char **names = NULL;
  int n = 0;
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.') {
      names = realloc(names, sizeof *names * (size_t)(n + 1));
      names[n++] = strdup(e->d_name);
    }
  if (d) closedir(d);
  for (int i = 0; i < n; i++) { /* sorted: the same order on every machine */
    for (int j = i + 1; j < n; j++)
      if (strcmp(names[j], names[i]) < 0) {
        char *t = names[i];
        names[i] = names[j];
        names[j] = t;
      }
  }
  for (int i = 0; i < n; i++) {
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", path, names[i]);
    add_file(full);
    free(names[i]);
  }
  free(names);
}

/* One random edit of buf[0, *n) (capacity FUZZ_MAX_INPUT). */
static void mutate(uint8_t *buf, size_t *n) {
  static const uint8_t INTERESTING[] = {0x00, 0x01, 0x7f, 0x80, 0xff, '(', ')', '.', 'q', 'h',
                                        'R',  'b',  'c',  'X',  '{',  '}', '[', ']', '"', '0'};
  size_t len = *n;
  switch (below(8)) {
  case 0: /* bit flip */
    if (len) buf[below(len)] ^= (uint8_t)(1u << below(8));
    break;
  case 1: /* interesting byte */
    if (len) buf[below(len)] = INTERESTING[below(sizeof INTERESTING)];
    break;
  case 2: /* interesting 32-bit little-endian value (lengths, counts, offsets) */
    if (len >= 4) {
      static const uint32_t V[] = {0, 1, 0x7fffffff, 0x80000000u, 0xffffffffu, 0xffff, 64, 1000000};
      uint32_t v = V[below(sizeof V / sizeof V[0])];
      size_t at = below(len - 3);
      memcpy(buf + at, &v, 4);
    }
    break;
  case 3: /* truncate */
    *n = below(len + 1);
    break;
  case 4: /* insert random bytes */
    if (len < FUZZ_MAX_INPUT - 16) {
      size_t at = below(len + 1), k = 1 + below(16);
      memmove(buf + at + k, buf + at, len - at);
      for (size_t i = 0; i < k; i++) buf[at + i] = (uint8_t)next();
      *n = len + k;
    }
    break;
  case 5: /* delete a range */
    if (len) {
      size_t at = below(len), k = 1 + below(len - at < 64 ? len - at : 64);
      memmove(buf + at, buf + at + k, len - at - k);
      *n = len - k;
    }
    break;
  case 6: /* copy a chunk over another place */
    if (len > 8) {
      size_t from = below(len), to = below(len), k = 1 + below(32);
      if (from + k > len) k = len - from;
      if (to + k > len) k = len - to;
      memmove(buf + to, buf + from, k);
    }
    break;
  default: { /* splice: the head of this input, the tail of another seed */
    const seed *o = &g_seeds[below((size_t)g_nseeds)];
    size_t cut = below(len + 1), from = below(o->n + 1);
    size_t k = o->n - from;
    if (cut + k > FUZZ_MAX_INPUT) k = FUZZ_MAX_INPUT - cut;
    memcpy(buf + cut, o->b + from, k);
    *n = cut + k;
  }
  }
}

int main(int argc, char **argv) {
  double seconds = 3;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
      seconds = atof(argv[++i]);
    else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
      g_rng = strtoull(argv[++i], NULL, 0) | 1;
    else
      add_path(argv[i]);
  }
  if (!g_nseeds) {
    fprintf(stderr, "usage: %s [--seconds S] [--seed N] SEED_FILE_OR_FOLDER...\n", argv[0]);
    return 2;
  }
  for (int i = 0; i < g_nseeds; i++) LLVMFuzzerTestOneInput(g_seeds[i].b, g_seeds[i].n);
  uint8_t *buf = malloc(FUZZ_MAX_INPUT);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long runs = 0;
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    if ((double)(t.tv_sec - t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - t0.tv_nsec) >= seconds) break;
    const seed *s = &g_seeds[below((size_t)g_nseeds)];
    size_t n = s->n;
    memcpy(buf, s->b, n);
    for (int k = 1 + (int)below(8); k > 0; k--) mutate(buf, &n);
    LLVMFuzzerTestOneInput(buf, n);
    runs++;
  }
  printf("%d seeds, %ld mutated inputs in %.0f s: no crash\n", g_nseeds, runs, seconds);
  free(buf);
  for (int i = 0; i < g_nseeds; i++) free(g_seeds[i].b);
  return 0;
}
