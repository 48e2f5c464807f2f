/* float32 matmul benchmark: GFLOP/s of dc_matmul at 1024^3, 2048^3 and small training shapes
 * with 1 and 2 threads (median of 7 runs), the per-call time of a tiny product, and the same
 * cases in torch.matmul (bench/torch_matmul.py through /usr/bin/python3, or $DC_PYTHON) with the
 * deepc/torch ratio. Usage: gemm_bench [--quick] [--no-torch]. Shapes are M x K x N. */
#include <deepc/deepc.h>

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#define RUNS 9
#define MAX_CASES 16

typedef struct bench_case {
  int64_t m, k, n;
  const char *what;
  bool linear; /* time dc_linear(x [M, K], w [N, K], bias [N]) instead of dc_matmul */
} bench_case;

static const bench_case CASES[] = {
    {1024, 1024, 1024, "square", false},
    {2048, 2048, 2048, "square", false},
    {64, 1024, 256, "MLP forward", false},
    {64, 256, 128, "MLP forward", false},
    {64, 784, 256, "MNIST layer 1", false},
    {256, 784, 128, "MNIST layer 1, batch 256", false},
    {1024, 64, 256, "weight grad (K = batch)", false},
    {64, 1024, 256, "dc_linear + bias, W^T", true},
    {64, 64, 10, "dc_linear + bias, W^T", true},
    {64, 10, 10, "tiny (per-call overhead)", false},
};
#define N_CASES (int)(sizeof CASES / sizeof CASES[0])

typedef struct result {
  double gflops, us; /* median GFLOP/s and microseconds per call */
  double best;       /* best-run GFLOP/s */
  /* median GFLOP per CPU-second times the thread count: the rate each thread reaches on its
   * core, which stays measurable when other processes share the cores (wall time does not) */
  double cpu_gflops;
} result;

/* Median over RUNS samples; each sample repeats the product until ~0.2 GFLOP has run. */
static result time_matmul(const bench_case *c, int runs, int threads) {
  dc_tensor *a = dc_randn(DC_SHAPE(c->m, c->k), DC_F32);
  dc_tensor *b = dc_randn(c->linear ? DC_SHAPE(c->n, c->k) : DC_SHAPE(c->k, c->n), DC_F32);
  dc_tensor *bias = c->linear ? dc_randn(DC_SHAPE(c->n), DC_F32) : NULL;
  double flops = 2.0 * (double)c->m * (double)c->k * (double)c->n;
  int reps = flops >= 2e8 ? 1 : (int)(2e8 / flops);
  double t[RUNS], ct[RUNS];
  /* warm-up (about 0.2 s): caches the primitive and lets the heap and the clock settle */
  for (double w0 = bench_now(); bench_now() - w0 < 0.2;)
    dc_free(c->linear ? dc_linear(a, b, bias) : dc_matmul(a, b));
  for (int r = 0; r < runs; r++) {
    double t0 = bench_now(), c0 = bench_cpu_now();
    for (int i = 0; i < reps; i++) dc_free(c->linear ? dc_linear(a, b, bias) : dc_matmul(a, b));
    t[r] = (bench_now() - t0) / reps;
    ct[r] = (bench_cpu_now() - c0) / reps;
  }
  qsort(t, (size_t)runs, sizeof t[0], bench_cmp_double);
  qsort(ct, (size_t)runs, sizeof ct[0], bench_cmp_double);
  dc_free(a);
  dc_free(b);
  dc_free(bias);
  return (result){flops / t[runs / 2] / 1e9, t[runs / 2] * 1e6, flops / t[0] / 1e9,
                  flops * threads / ct[runs / 2] / 1e9};
}

/* Runs bench/torch_matmul.py; fills tr[thread index][case]; false when torch is unavailable. */
static bool run_torch(const char *script, int runs, result tr[2][MAX_CASES]) {
  const char *py = getenv("DC_PYTHON") ? getenv("DC_PYTHON") : "/usr/bin/python3";
  char cmd[4096];
  int len = snprintf(cmd, sizeof cmd, "%s %s %d", py, script, runs);
  for (int c = 0; c < N_CASES; c++)
    len += snprintf(cmd + len, sizeof cmd - (size_t)len, " %lld,%lld,%lld%s", (long long)CASES[c].m,
                    (long long)CASES[c].k, (long long)CASES[c].n, CASES[c].linear ? ",L" : "");
  snprintf(cmd + len, sizeof cmd - (size_t)len, " t=1 t=2 2>/dev/null");
  FILE *p = popen(cmd, "r");
  if (!p) return false;
  char line[256];
  int got = 0;
  while (fgets(line, sizeof line, p)) {
    long long m, k, n;
    int th, used = 0;
    double gf, us;
    if (sscanf(line, "torch %lld %lld %lld %n", &m, &k, &n, &used) != 3 || !used) continue;
    bool linear = line[used] == 'L';
    if (sscanf(line + used + (linear ? 1 : 0), "%d %lf %lf", &th, &gf, &us) != 3) continue;
    for (int c = 0; c < N_CASES; c++)
      if (CASES[c].m == m && CASES[c].k == k && CASES[c].n == n && CASES[c].linear == linear &&
          (th == 1 || th == 2)) {
        tr[th - 1][c] = (result){gf, us, gf, 0};
        got++;
      }
  }
  return pclose(p) == 0 && got == 2 * N_CASES;
}

int main(int argc, char **argv) {
  bool quick = false, torch = true;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      quick = true;
    else if (!strcmp(argv[i], "--no-torch"))
      torch = false;
  }
  int runs = quick ? 3 : RUNS;
  dc_manual_seed(0);
  result dr[2][MAX_CASES] = {{{0}}}, tr[2][MAX_CASES] = {{{0}}};
  for (int th = 1; th <= 2; th++) {
    omp_set_num_threads(th);
    for (int c = 0; c < N_CASES; c++) dr[th - 1][c] = time_matmul(&CASES[c], runs, th);
  }
  /* the script sits beside this source file (CMake compiles it by absolute path) */
  char script[2048];
  const char *src = getenv("DEEPC_SRC");
  if (src) {
    snprintf(script, sizeof script, "%s/bench/torch_matmul.py", src);
  } else {
    snprintf(script, sizeof script, "%s", __FILE__);
    char *slash = strrchr(script, '/');
    snprintf(slash ? slash + 1 : script, sizeof script - (size_t)(slash ? slash + 1 - script : 0),
             "torch_matmul.py");
  }
  bool have_torch = torch && run_torch(script, runs, tr);

  printf("float32 matmul, median of %d runs (peak about 225 GFLOP/s per core with AVX-512)\n"
         "cpu GF/s = GFLOP per CPU-second x threads: the per-core rate, meaningful when other\n"
         "processes share the cores and wall-clock GF/s is not\n",
         runs);
  printf("%-20s %-26s %3s %12s %10s %10s %10s", "M x K x N", "case", "thr", "deepc GF/s",
         "best GF/s", "cpu GF/s", "deepc us");
  if (have_torch) printf(" %12s %10s %7s", "torch GF/s", "torch us", "ratio");
  printf("\n");
  for (int c = 0; c < N_CASES; c++)
    for (int th = 0; th < 2; th++) {
      char shape[64];
      snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)CASES[c].m, (long long)CASES[c].k,
               (long long)CASES[c].n);
      printf("%-20s %-26s %3d %12.1f %10.1f %10.1f %10.2f", shape, CASES[c].what, th + 1,
             dr[th][c].gflops, dr[th][c].best, dr[th][c].cpu_gflops, dr[th][c].us);
      if (have_torch)
        printf(" %12.1f %10.2f %7.2f", tr[th][c].gflops, tr[th][c].us,
               dr[th][c].gflops / tr[th][c].gflops);
      printf("\n");
    }
  if (!have_torch && torch)
    printf("(torch timings unavailable: run %s by hand with /usr/bin/python3)\n", script);
  return 0;
}
