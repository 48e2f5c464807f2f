/* Benchmark of the functional nn layers against PyTorch: forward + backward (input and parameter
 * gradients) of Conv2d(32->32, 5x5, pad 2) on 64x32x14x14, Conv2d(64->64, 3x3, pad 1) on
 * 128x64x32x32, and BatchNorm2d and MaxPool2d(2) on both tensors. Reports the median of several
 * timed runs; with --torch it also runs bench/torch_nn_bench.py (Debian's PyTorch, same thread
 * count), alternating with deepc in rounds so both see the same machine load, and prints the
 * ratio deepc / torch (below 1: deepc is faster).
 * usage: nn_bench [--threads N] [--runs R] [--rounds K] [--torch path/to/torch_nn_bench.py] */
#include <deepc/deepc.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#define MAX_CASES 16

typedef struct bench_case {
  const char *name;
  int kind;             /* 0 conv, 1 batch norm, 2 max pool */
  int64_t n, c, h, w;   /* input [N, C, H, W] */
  int k, pad;           /* conv kernel and padding (conv only) */
  double fwd_ms, fb_ms; /* medians */
  double torch_fwd, torch_fb;
} bench_case;

static bench_case g_cases[] = {
    {"conv5x5 64x32x14x14", 0, 64, 32, 14, 14, 5, 2, 0, 0, -1, -1},
    {"conv3x3 128x64x32x32", 0, 128, 64, 32, 32, 3, 1, 0, 0, -1, -1},
    {"batchnorm2d 64x32x14x14", 1, 64, 32, 14, 14, 0, 0, 0, 0, -1, -1},
    {"batchnorm2d 128x64x32x32", 1, 128, 64, 32, 32, 0, 0, 0, 0, -1, -1},
    {"maxpool2d(2) 64x32x14x14", 2, 64, 32, 14, 14, 0, 0, 0, 0, -1, -1},
    {"maxpool2d(2) 128x64x32x32", 2, 128, 64, 32, 32, 0, 0, 0, 0, -1, -1},
};
#define NCASES ((int)(sizeof g_cases / sizeof *g_cases))

/* Layer state of one case: input, parameters, running stats, upstream gradient. */
typedef struct bench_state {
  dc_tensor *x, *w, *b, *rm, *rv, *g;
} bench_state;

static dc_tensor *forward(const bench_case *c, bench_state *s) {
  switch (c->kind) {
  case 0:
    return dc_conv2d_f(s->x, s->w, s->b, .padding = {c->pad, c->pad});
  case 1:
    return dc_batch_norm(s->x, s->rm, s->rv, s->w, s->b, true, 0.1, 1e-5);
  default:
    return dc_max_pool2d_f(s->x, .kernel = {2, 2});
  }
}

static dc_tensor *param(dc_tensor *t) { return dc_requires_grad_(t, true); }

static int setup(const bench_case *c, bench_state *s) {
  memset(s, 0, sizeof *s);
  s->x = param(dc_randn(DC_SHAPE(c->n, c->c, c->h, c->w), DC_F32));
  if (c->kind == 0) {
    s->w = param(dc_randn(DC_SHAPE(c->c, c->c, c->k, c->k), DC_F32));
    s->b = param(dc_randn(DC_SHAPE(c->c), DC_F32));
  } else if (c->kind == 1) {
    s->w = param(dc_ones(DC_SHAPE(c->c), DC_F32));
    s->b = param(dc_zeros(DC_SHAPE(c->c), DC_F32));
    s->rm = dc_zeros(DC_SHAPE(c->c), DC_F32);
    s->rv = dc_ones(DC_SHAPE(c->c), DC_F32);
  }
  dc_tensor *y = forward(c, s);
  if (!y) return -1;
  s->g = dc_randn(dc_shape_of(y), DC_F32);
  dc_free(y);
  return s->g ? 0 : -1;
}

static void teardown(bench_state *s) {
  dc_tensor *all[] = {s->x, s->w, s->b, s->rm, s->rv, s->g};
  for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
    if (all[i]) dc_zero_grad(all[i]);
    dc_free(all[i]);
  }
}

/* One timed sample: `inner` iterations, ms per iteration. */
static double sample(const bench_case *c, bench_state *s, int inner, bool with_backward) {
  double t0 = (1e3 * bench_now());
  for (int i = 0; i < inner; i++) {
    dc_scope_begin();
    if (!with_backward) dc_set_grad_enabled(false);
    dc_tensor *y = forward(c, s);
    if (!y || (with_backward && dc_backward(y, .grad = s->g) != DC_OK)) {
      fprintf(stderr, "nn_bench: %s failed: %s\n", c->name, dc_last_error());
      exit(1);
    }
    dc_set_grad_enabled(true);
    dc_scope_end();
    dc_tensor *ps[] = {s->x, s->w, s->b};
    for (int k = 0; k < 3; k++)
      if (ps[k]) dc_zero_grad(ps[k]);
  }
  return ((1e3 * bench_now()) - t0) / inner;
}

/* Median of `runs` samples after a warm-up. */
static double median_ms(const bench_case *c, bench_state *s, int runs, bool with_backward) {
  double first = sample(c, s, 1, with_backward); /* warm-up: primitives, scratch buffers */
  int inner = first < 20 ? (int)(60 / (first + 0.01)) + 1 : 1;
  double t[64];
  if (runs > 64) runs = 64;
  for (int r = 0; r < runs; r++) t[r] = sample(c, s, inner, with_backward);
  qsort(t, (size_t)runs, sizeof *t, bench_cmp_double);
  return t[runs / 2];
}

/* Runs the PyTorch script for case i and reads its line "name<TAB>fwd_ms fwd_bwd_ms" into t[2];
 * false on failure. */
static bool run_torch(const char *script, int i, int threads, int runs, double t[2]) {
  char cmd[1024], line[512];
  snprintf(cmd, sizeof cmd,
           "OMP_NUM_THREADS=%d /usr/bin/python3 %s --threads %d --runs %d --case %d", threads,
           script, threads, runs, i);
  FILE *p = popen(cmd, "r");
  bool ok = false;
  while (p && fgets(line, sizeof line, p)) {
    char *tab = strchr(line, '\t');
    if (tab && strncmp(line, g_cases[i].name, (size_t)(tab - line)) == 0)
      ok = sscanf(tab + 1, "%lf %lf", &t[0], &t[1]) == 2;
  }
  if (!p || pclose(p) != 0 || !ok) {
    fprintf(stderr, "nn_bench: '%s' failed\n", cmd);
    return false;
  }
  return true;
}

int main(int argc, char **argv) {
  int threads = 2, runs = 5, rounds = 3;
  const char *torch = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--torch") && i + 1 < argc)
      torch = argv[++i];
    else {
      fprintf(stderr,
              "usage: %s [--threads N] [--runs R] [--rounds K] [--torch torch_nn_bench.py]\n",
              argv[0]);
      return 2;
    }
  }
  if (runs < 1) runs = 1;
  if (rounds < 1 || rounds > 16) rounds = rounds < 1 ? 1 : 16;
  omp_set_num_threads(threads);
  dc_manual_seed(0);
  printf("%-28s %10s %10s %10s %10s %7s\n", "layer", "deepc fwd", "torch fwd", "deepc f+b",
         "torch f+b", "ratio");
  for (int i = 0; i < NCASES; i++) {
    bench_case *c = &g_cases[i];
    bench_state s;
    if (setup(c, &s) != 0) {
      fprintf(stderr, "nn_bench: %s: %s\n", c->name, dc_last_error());
      return 1;
    }
    /* alternate deepc and PyTorch so both see the same machine load */
    double f[16], fb[16], tf[16], tfb[16];
    int nt = 0;
    for (int r = 0; r < rounds; r++) {
      double t[2];
      if (torch && run_torch(torch, i, threads, runs, t)) tf[nt] = t[0], tfb[nt++] = t[1];
      f[r] = median_ms(c, &s, runs, false);
      fb[r] = median_ms(c, &s, runs, true);
    }
    teardown(&s);
    c->fwd_ms = bench_median(f, rounds);
    c->fb_ms = bench_median(fb, rounds);
    if (nt) c->torch_fwd = bench_median(tf, nt), c->torch_fb = bench_median(tfb, nt);
    printf("%-28s %8.2fms ", c->name, c->fwd_ms);
    if (c->torch_fwd > 0)
      printf("%8.2fms ", c->torch_fwd);
    else
      printf("%10s ", "-");
    printf("%8.2fms ", c->fb_ms);
    if (c->torch_fb > 0)
      printf("%8.2fms %7.2f\n", c->torch_fb, c->fb_ms / c->torch_fb);
    else
      printf("%10s %7s\n", "-", "-");
    fflush(stdout);
  }
  printf("(%d threads; median over %d alternating rounds of the median of %d runs; ratio = deepc\n"
         " f+b / torch f+b, below 1 deepc is faster)\n",
         threads, rounds, runs);
  return 0;
}
