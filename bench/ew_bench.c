/* Elementwise benchmark, one line per measurement: (1) float32 add of 2^26 elements in GB/s
 * (3 x 4 bytes per element) beside memcpy bandwidth measured in the same run, 1 and 2 threads,
 * kernel into a preallocated output and dc_add with its allocation; (2) per-op cost of a 64x10
 * float32 add inside a scope (no grad, one input requiring grad), ns/op; (3) exp, tanh,
 * sigmoid and gelu throughput in Gelem/s. Each line gives the median of RUNS samples and, in
 * brackets, the best one (on a shared machine the best is the steadier number). The same cases
 * run in PyTorch (/usr/bin/python3 or $DC_PYTHON) unless --no-torch; --quick uses 2^24.
 * On a machine shared with other jobs run it with OMP_WAIT_POLICY=passive: with libgomp's default
 * spinning barrier each 2-thread region waits a scheduler slice for a descheduled worker. */
#include <deepc/deepc.h>

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"

#include "bench_util.h"

#define RUNS 7

/* median and best of n samples; rate: samples are seconds turned into work / second */
typedef struct stat2 {
  double med, best;
} stat2;

static stat2 summarize(double *t, int n, double work) {
  qsort(t, (size_t)n, sizeof t[0], bench_cmp_double);
  if (work > 0) return (stat2){work / t[n / 2], work / t[0]};
  return (stat2){t[n / 2], t[0]};
}

/* memcpy of n floats split over the current OpenMP threads */
static void par_memcpy(float *dst, const float *src, int64_t n) {
  int nt = omp_get_max_threads();
#pragma omp parallel for schedule(static)
  for (int k = 0; k < nt; k++) {
    int64_t lo = n * k / nt, hi = n * (k + 1) / nt;
    memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
  }
}

typedef struct bw_result {
  stat2 memcpy_gbs, kernel_gbs, op_gbs;
} bw_result;

/* (1) bandwidth of add vs memcpy with the current thread count */
static bw_result bench_add_bandwidth(int64_t n) {
  dc_tensor *a = dc_randn(DC_SHAPE(n), DC_F32), *b = dc_randn(DC_SHAPE(n), DC_F32);
  dc_tensor *out = dc_zeros(DC_SHAPE(n), DC_F32);
  const dc_backend *be = dc__backend(DC_CPU);
  double tm[RUNS], tk[RUNS], to[RUNS];
  par_memcpy(dc_data(out), dc_data(a), n); /* touch every page first */
  for (int r = 0; r < RUNS; r++) {
    double t0 = bench_now();
    par_memcpy(dc_data(out), dc_data(a), n);
    tm[r] = bench_now() - t0;
    t0 = bench_now();
    be->ew->binary(DC_BIN_ADD, out, a, b);
    tk[r] = bench_now() - t0;
    t0 = bench_now();
    dc_tensor *y = dc_add(a, b);
    to[r] = bench_now() - t0;
    dc_free(y);
  }
  double gb = 4.0 * (double)n / 1e9;
  bw_result res = {summarize(tm, RUNS, 2 * gb), summarize(tk, RUNS, 3 * gb),
                   summarize(to, RUNS, 3 * gb)};
  dc_free(a);
  dc_free(b);
  dc_free(out);
  return res;
}

/* (2) ns per 64x10 add made inside a scope (and freed by its end), 1000 ops per sample */
static stat2 bench_add_overhead(bool grad) {
  dc_tensor *a = dc_randn(DC_SHAPE(64, 10), DC_F32), *b = dc_randn(DC_SHAPE(64, 10), DC_F32);
  if (grad) dc_requires_grad_(a, true);
  enum { OPS = 1000 };
  double t[RUNS + 2];
  for (int r = 0; r < RUNS + 2; r++) { /* the first two samples warm caches and the scope list */
    double t0 = bench_now();
    dc_scope_begin();
    for (int i = 0; i < OPS; i++) dc_add(a, b);
    dc_scope_end();
    t[r] = (bench_now() - t0) / OPS * 1e9;
  }
  dc_free(a);
  dc_free(b);
  return summarize(t + 2, RUNS, 0);
}

/* (3) Gelem/s of a unary kernel into a preallocated output */
static stat2 bench_unary(dc_unary_op op, int64_t n) {
  dc_tensor *x = dc_randn(DC_SHAPE(n), DC_F32), *out = dc_zeros(DC_SHAPE(n), DC_F32);
  const dc_backend *be = dc__backend(DC_CPU);
  double t[RUNS];
  be->ew->unary(op, out, x, NULL);
  for (int r = 0; r < RUNS; r++) {
    double t0 = bench_now();
    be->ew->unary(op, out, x, NULL);
    t[r] = bench_now() - t0;
  }
  dc_free(x);
  dc_free(out);
  return summarize(t, RUNS, (double)n / 1e9);
}

/* The same measurements in PyTorch; prints "key value" lines. */
static const char *TORCH_SCRIPT =
    "import sys, time, torch\n"
    "n, m, R = int(sys.argv[1]), int(sys.argv[2]), 7\n"
    "def med(f):\n"
    "    t = []\n"
    "    for _ in range(R):\n"
    "        t0 = time.perf_counter(); f(); t.append(time.perf_counter() - t0)\n"
    "    t.sort()\n"
    "    return t[R // 2], t[0]\n"
    "def out(key, work, ts):\n"
    "    print(key, work / ts[0], work / ts[1]) if work else print(key, ts[0] * 1e9, ts[1] * 1e9)\n"
    "for th in (1, 2):\n"
    "    torch.set_num_threads(th)\n"
    "    a, b, c = torch.randn(n), torch.randn(n), torch.zeros(n)\n"
    "    out(f'add_out{th}', 12 * n / 1e9, med(lambda: torch.add(a, b, out=c)))\n"
    "    out(f'add{th}', 12 * n / 1e9, med(lambda: a + b))\n"
    "    del a, b, c\n"
    "    x, y = torch.randn(m), torch.zeros(m)\n"
    "    for name, f in (('exp', torch.exp), ('tanh', torch.tanh), ('sigmoid', torch.sigmoid)):\n"
    "        out(f'{name}{th}', m / 1e9, med(lambda: f(x, out=y)))\n"
    "    out(f'gelu{th}', m / 1e9, med(lambda: torch._C._nn.gelu(x, out=y)))\n"
    "torch.set_num_threads(1)\n"
    "for grad in (0, 1):\n"
    "    a, b = torch.randn(64, 10, requires_grad=bool(grad)), torch.randn(64, 10)\n"
    "    def loop():\n"
    "        for _ in range(1000): a + b\n"
    "    loop(); loop()\n"
    "    ts = med(loop)\n"
    "    out(f'overhead{grad}', 0, (ts[0] / 1000, ts[1] / 1000))\n";

typedef struct torch_vals {
  char key[32][32];
  stat2 val[32];
  int n;
} torch_vals;

static bool run_torch(int64_t n, int64_t m, torch_vals *tv) {
  const char *py = getenv("DC_PYTHON") ? getenv("DC_PYTHON") : "/usr/bin/python3";
  char path[] = "/tmp/dc_ew_bench_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return false;
  FILE *f = fdopen(fd, "w");
  fputs(TORCH_SCRIPT, f);
  fclose(f);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "%s %s %lld %lld 2>/dev/null", py, path, (long long)n, (long long)m);
  FILE *p = popen(cmd, "r");
  char line[256];
  tv->n = 0;
  while (p && fgets(line, sizeof line, p) && tv->n < 32) {
    stat2 *v = &tv->val[tv->n];
    if (sscanf(line, "%31s %lf %lf", tv->key[tv->n], &v->med, &v->best) == 3) tv->n++;
  }
  bool ok = p && pclose(p) == 0 && tv->n > 0;
  remove(path);
  return ok;
}

static stat2 torch_get(const torch_vals *tv, const char *key) {
  for (int k = 0; tv && k < tv->n; k++)
    if (strcmp(tv->key[k], key) == 0) return tv->val[k];
  return (stat2){0, 0};
}

/* " | torch M [B], deepc/torch R" (R > 1: deepc faster, from the medians) or nothing */
static const char *vs(const torch_vals *tv, const char *key, stat2 mine, bool higher_better) {
  static char buf[128];
  stat2 t = torch_get(tv, key);
  if (t.med <= 0) return "";
  snprintf(buf, sizeof buf, "   | torch %.3g [%.3g], deepc speed / torch %.2fx", t.med, t.best,
           higher_better ? mine.med / t.med : t.med / mine.med);
  return buf;
}

int main(int argc, char **argv) {
  bool quick = false, torch = true;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      quick = true;
    else if (strcmp(argv[i], "--no-torch") == 0)
      torch = false;
  }
  int64_t n = quick ? (int64_t)1 << 24 : (int64_t)1 << 26, m = (int64_t)1 << 22;
  dc_manual_seed(0);
  static torch_vals tv;
  bool have_torch = torch && run_torch(n, m, &tv);
  const torch_vals *T = have_torch ? &tv : NULL;
  char key[32];
  for (int th = 1; th <= 2; th++) {
    omp_set_num_threads(th);
    bw_result r = bench_add_bandwidth(n);
    printf("memcpy, %lld floats, %d thread(s): %6.2f [%6.2f] GB/s\n", (long long)n, th,
           r.memcpy_gbs.med, r.memcpy_gbs.best);
    snprintf(key, sizeof key, "add_out%d", th);
    printf("add kernel, preallocated out, %d thread(s): %6.2f [%6.2f] GB/s (%.0f%% of memcpy)%s\n",
           th, r.kernel_gbs.med, r.kernel_gbs.best, 100 * r.kernel_gbs.med / r.memcpy_gbs.med,
           vs(T, key, r.kernel_gbs, true));
    snprintf(key, sizeof key, "add%d", th);
    printf("dc_add with its allocation, %d thread(s): %6.2f [%6.2f] GB/s%s\n", th, r.op_gbs.med,
           r.op_gbs.best, vs(T, key, r.op_gbs, true));
  }
  omp_set_num_threads(1);
  stat2 o0 = bench_add_overhead(false), o1 = bench_add_overhead(true);
  printf("64x10 add in a scope, no grad: %5.0f [%5.0f] ns/op%s\n", o0.med, o0.best,
         vs(T, "overhead0", o0, false));
  printf("64x10 add in a scope, requires_grad: %5.0f [%5.0f] ns/op%s\n", o1.med, o1.best,
         vs(T, "overhead1", o1, false));
  const struct {
    dc_unary_op op;
    const char *name;
  } U[] = {
      {DC_UN_EXP, "exp"}, {DC_UN_TANH, "tanh"}, {DC_UN_SIGMOID, "sigmoid"}, {DC_UN_GELU, "gelu"}};
  for (int th = 1; th <= 2; th++) {
    omp_set_num_threads(th);
    for (int k = 0; k < 4; k++) {
      stat2 g = bench_unary(U[k].op, m);
      snprintf(key, sizeof key, "%s%d", U[k].name, th);
      printf("%s float32, %lld elements, %d thread(s): %5.2f [%5.2f] Gelem/s%s\n", U[k].name,
             (long long)m, th, g.med, g.best, vs(T, key, g, true));
    }
  }
  if (torch && !have_torch) printf("(torch not available: no comparison)\n");
  return 0;
}
