"""torch.matmul / F.linear timings to compare with bench/gemm_bench.c (run with /usr/bin/python3).

Prints one line per case: `torch <M> <K> <N> [L] <threads> <gflops> <us_per_call>`, median of the
same number of runs as the C benchmark. Usage: torch_matmul.py RUNS M,K,N[,L] ... t=1 t=2, where
a trailing ,L times F.linear(x [M, K], w [N, K], bias [N]) instead of torch.matmul.
"""
import sys
import time

import torch


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def bench(m, k, n, linear, runs):
    a = torch.randn(m, k)
    b = torch.randn(n, k) if linear else torch.randn(k, n)
    bias = torch.randn(n)
    if linear:
        def op():
            return torch.nn.functional.linear(a, b, bias)
    else:
        def op():
            return torch.matmul(a, b)
    flops = 2.0 * m * k * n
    reps = max(1, int(2e8 / flops))  # each timed sample runs >= ~0.2 GFLOP
    op()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(reps):
            op()
        times.append((time.perf_counter() - t0) / reps)
    t = median(times)
    return flops / t / 1e9, t * 1e6


def main():
    runs = int(sys.argv[1])
    cases = [s.split(",") for s in sys.argv[2:] if "," in s]
    threads = [int(s[2:]) for s in sys.argv[2:] if s.startswith("t=")]
    for th in threads:
        torch.set_num_threads(th)
        for c in cases:
            m, k, n = (int(v) for v in c[:3])
            linear = len(c) > 3 and c[3] == "L"
            gf, us = bench(m, k, n, linear, runs)
            print(f"torch {m} {k} {n} {'L ' if linear else ''}{th} {gf:.2f} {us:.3f}", flush=True)


if __name__ == "__main__":
    main()
