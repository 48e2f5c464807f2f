"""PyTorch side of bench/nn_bench.c: the same layers, shapes and timing rule (forward + backward of
input and parameter gradients, median of several runs), one line per case:
name<TAB>forward_ms forward_backward_ms. Run with Debian's torch: /usr/bin/python3.
usage: torch_nn_bench.py [--threads N] [--runs R] [--case I]"""
import argparse
import time

import torch

CASES = [  # name, kind, input shape, kernel, padding (as nn_bench.c)
    ("conv5x5 64x32x14x14", "conv", (64, 32, 14, 14), 5, 2),
    ("conv3x3 128x64x32x32", "conv", (128, 64, 32, 32), 3, 1),
    ("batchnorm2d 64x32x14x14", "bn", (64, 32, 14, 14), 0, 0),
    ("batchnorm2d 128x64x32x32", "bn", (128, 64, 32, 32), 0, 0),
    ("maxpool2d(2) 64x32x14x14", "pool", (64, 32, 14, 14), 0, 0),
    ("maxpool2d(2) 128x64x32x32", "pool", (128, 64, 32, 32), 0, 0),
]


def layer(kind, shape, k, pad):
    c = shape[1]
    if kind == "conv":
        return torch.nn.Conv2d(c, c, k, padding=pad)
    if kind == "bn":
        return torch.nn.BatchNorm2d(c)
    return torch.nn.MaxPool2d(2)


def sample(mod, x, g, inner, backward):
    t0 = time.perf_counter()
    for _ in range(inner):
        if backward:
            mod(x).backward(g)
            x.grad = None
            for p in mod.parameters():
                p.grad = None
        else:
            with torch.no_grad():
                mod(x)
    return (time.perf_counter() - t0) * 1e3 / inner


def median_ms(mod, x, g, runs, backward):
    first = sample(mod, x, g, 1, backward)
    inner = int(60 / (first + 0.01)) + 1 if first < 20 else 1
    t = sorted(sample(mod, x, g, inner, backward) for _ in range(runs))
    return t[len(t) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--case", type=int, default=-1, help="run only this case (index)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for i, (name, kind, shape, k, pad) in enumerate(CASES):
        if a.case >= 0 and i != a.case:
            continue
        mod = layer(kind, shape, k, pad)
        mod.train()
        x = torch.randn(*shape, requires_grad=True)
        g = torch.randn_like(mod(x))
        fwd = median_ms(mod, x, g, a.runs, False)
        fb = median_ms(mod, x, g, a.runs, True)
        print(f"{name}\t{fwd:.3f} {fb:.3f}", flush=True)


if __name__ == "__main__":
    main()
