"""PyTorch's DistributedDataParallel (gloo) on the cnn_fashion workload of
/work/shared/bench/torch_workloads.py, the reference for bench/dist_bench.c: a fixed random batch
split over the ranks, forward, cross-entropy, backward (DDP all-reduces the gradients in buckets
during backward), Adam. Start it alone or under mpirun (it reads Open MPI's rank variables);
rank 0 prints the same line as dist_bench.

usage: [mpirun -np R] /usr/bin/python3 torch_dist_bench.py [--steps N] [--warmup W] [--batch B]
"""
import argparse, os, time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def cnn_fashion():
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 3 * 3, 64), nn.BatchNorm1d(64), nn.ReLU(),
        nn.Linear(64, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", 0))
    size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", 1))
    if size > 1:
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%s" %
                                os.environ.get("TORCH_DIST_PORT", "29533"), rank=rank,
                                world_size=size)
    torch.manual_seed(0)
    m = cnn_fashion()
    if size > 1:
        m = nn.parallel.DistributedDataParallel(m)
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    b = a.batch // size
    torch.manual_seed(100 + rank)
    x = torch.randn(b, 1, 28, 28)
    y = torch.randint(0, 10, (b,))
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            if size > 1:
                dist.barrier()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(m(x), y)
        loss.backward()
        opt.step()
    el = torch.tensor([time.perf_counter() - t0], dtype=torch.float64)
    if size > 1:
        dist.all_reduce(el, op=dist.ReduceOp.MAX)
    if rank == 0:
        print("torch %s DDP cnn_fashion: ranks %d x threads %d, batch %d (%d per rank), %d steps: "
              "%.1f samples/s, %.2f ms/step, loss %.4f" %
              (torch.__version__, size, torch.get_num_threads(), a.batch, b, a.steps,
               a.batch * a.steps / el.item(), 1e3 * el.item() / a.steps, loss.item()))
    if size > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
