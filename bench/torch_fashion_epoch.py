"""PyTorch's side of the Fashion-MNIST epoch comparison (bench/compare --epoch): the same job as
`deepc train configs/fashion_cnn.ini --set train.epochs=1`, written as a course would in PyTorch.

Reads the IDX .gz files with numpy/gzip, normalises with the dataset's mean/std, holds out 10% for
validation (seeded), trains the baseline CNN (3 x conv5 BN ReLU maxpool2, dropout 0.3, FC64 BN
ReLU, FC10) with Adam lr 1e-3, batch 64, shuffled DataLoader, validates (batch 500), then scores
the test set. Prints one JSON line: epoch_seconds (training + validation, as deepc's metrics.csv
counts it), val_acc, test_acc, train_loss.
usage: /usr/bin/python3 bench/torch_fashion_epoch.py [--epochs N] [--dir DIR]
"""
import argparse, gzip, json, os, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST training-set statistics (torchvision's usual values)


def read_idx(path):
    with gzip.open(path, 'rb') as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], 'big') for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(d, split):
    x = read_idx(os.path.join(d, f'{split}-images-idx3-ubyte.gz'))
    y = read_idx(os.path.join(d, f'{split}-labels-idx1-ubyte.gz'))
    x = (torch.from_numpy(x.astype(np.float32) / 255.0) - MEAN) / STD
    return x.unsqueeze(1), torch.from_numpy(y.astype(np.int64))


def model():
    blk = lambda i, o: [nn.Conv2d(i, o, 5, padding=2), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]
    return nn.Sequential(*blk(1, 32), *blk(32, 32), *blk(32, 64), nn.Flatten(), nn.Dropout(0.3),
                         nn.Linear(64 * 3 * 3, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 10))


def evaluate(m, loader):
    m.eval()
    correct, total, loss = 0, 0, 0.0
    with torch.no_grad():
        for x, y in loader:
            out = m(x)
            loss += F.cross_entropy(out, y, reduction='sum').item()
            correct += (out.argmax(1) == y).sum().item()
            total += len(y)
    return loss / total, correct / total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--dir', default='/usr/share/datasets/fashion-mnist')
    a = ap.parse_args()
    torch.manual_seed(0)
    x, y = load(a.dir, 'train')
    xt, yt = load(a.dir, 't10k')
    perm = torch.randperm(len(x))
    nval = len(x) // 10
    va, tr = perm[:nval], perm[nval:]
    train = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(x[va], y[va]), batch_size=500)
    test = DataLoader(TensorDataset(xt, yt), batch_size=500)
    m = model()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    for _ in range(a.epochs):
        t0 = time.perf_counter()
        m.train()
        tot, n = 0.0, 0
        for xb, yb in train:
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(m(xb), yb)
            loss.backward()
            opt.step()
            tot += loss.item() * len(yb); n += len(yb)
        val_loss, val_acc = evaluate(m, val)
        dt = time.perf_counter() - t0
    _, test_acc = evaluate(m, test)
    print(json.dumps(dict(epoch_seconds=round(dt, 3), train_loss=tot / n, val_loss=val_loss,
                          val_acc=val_acc, test_acc=test_acc, threads=torch.get_num_threads())),
          flush=True)


if __name__ == '__main__':
    main()
