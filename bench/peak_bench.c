/* Measured float32 peak of this CPU: a register-only loop of independent AVX-512 fused
 * multiply-adds on 1 and 2 threads (median of 9 runs). The GEMM and workload benchmarks quote
 * their GFLOP/s against this number, not against a data-sheet figure. */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"

#define RUNS 9
#define ITERS 20000000L
#define ACC 12 /* independent accumulators: enough to hide the FMA latency on two ports */

/* ITERS x ACC FMAs of 16 lanes each; returns a value so the compiler keeps the loop */
__attribute__((target("avx512f"))) static float fma_loop(long iters) {
  __m512 acc[ACC];
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < ACC; i++) acc[i] = _mm512_set1_ps((float)i);
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < ACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  __m512 s = acc[0];
  for (int i = 1; i < ACC; i++) s = _mm512_add_ps(s, acc[i]);
  return _mm512_reduce_add_ps(s);
}

/* median GFLOP/s of `threads` threads each running fma_loop */
static double peak(int threads, long iters) {
  double g[RUNS];
  volatile float sink = 0;
  for (int r = 0; r < RUNS; r++) {
    double t0 = bench_now();
#pragma omp parallel num_threads(threads)
    {
      float v = fma_loop(iters);
#pragma omp atomic
      sink += v;
    }
    double dt = bench_now() - t0;
    g[r] = 2.0 * 16 * ACC * (double)iters * threads / dt / 1e9;
  }
  qsort(g, RUNS, sizeof g[0], bench_cmp_double);
  (void)sink;
  return g[RUNS / 2];
}

int main(int argc, char **argv) {
  long iters = ITERS;
  if (argc > 1 && !strcmp(argv[1], "--quick")) iters /= 20;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f")) {
    printf("peak_bench: this CPU has no AVX-512; nothing to measure\n");
    return 0;
  }
  int max = omp_get_num_procs();
  printf("float32 FMA peak (AVX-512, %d accumulators, median of %d runs)\n", ACC, RUNS);
  printf("%7s %12s %14s\n", "threads", "GFLOP/s", "per thread");
  for (int t = 1; t <= max && t <= 2; t++) {
    double g = peak(t, iters);
    printf("%7d %12.1f %14.1f\n", t, g, g / t);
  }
  return 0;
}
