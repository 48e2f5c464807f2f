"""torch.matmul timings to compare with bench/gemm_bench.c (run with /usr/bin/python3).

Prints one line per case: `torch <M> <K> <N> <threads> <gflops> <us_per_call>`, median of the
same number of runs as the C benchmark. Usage: torch_matmul.py RUNS M,K,N [M,K,N ...] THREADS...
where THREADS is given as t=1 t=2.
"""
import sys
import time

import torch


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def bench(m, k, n, runs):
    a = torch.randn(m, k)
    b = torch.randn(k, n)
    flops = 2.0 * m * k * n
    reps = max(1, int(2e8 / flops))  # each timed sample runs >= ~0.2 GFLOP
    torch.matmul(a, b)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(reps):
            torch.matmul(a, b)
        times.append((time.perf_counter() - t0) / reps)
    t = median(times)
    return flops / t / 1e9, t * 1e6


def main():
    runs = int(sys.argv[1])
    shapes = [tuple(int(v) for v in s.split(",")) for s in sys.argv[2:] if "," in s]
    threads = [int(s[2:]) for s in sys.argv[2:] if s.startswith("t=")]
    for th in threads:
        torch.set_num_threads(th)
        for m, k, n in shapes:
            gf, us = bench(m, k, n, runs)
            print(f"torch {m} {k} {n} {th} {gf:.2f} {us:.3f}", flush=True)


if __name__ == "__main__":
    main()
