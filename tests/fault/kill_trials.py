#!/usr/bin/python3
"""SIGKILL trials of `deepc train` (docs/reliability.md, "Faults").

A small run (an MLP on a synthetic .npz dataset, 8 epochs, checkpoints every epoch) is killed
with SIGKILL at random moments, 1 to 3 times per trial, then finished with --resume. With
DEEPC_DEBUG_CKPT_DELAY_MS the checkpoint writer pauses after the header and before the rename,
so that many kills land inside checkpoint writes. Checked after every kill: last.ckpt and
best.ckpt, when present, load (`deepc inspect`) and last.ckpt never goes back in epochs. Checked
at the end: no temporary file is left, and last.ckpt and best.ckpt hold the same tensors, bit for
bit, as an uninterrupted run (the history's wall-clock column aside), with the same test accuracy.

  /usr/bin/python3 tests/fault/kill_trials.py BUILD_DIR [--trials N] [--seed S] [--keep DIR]
Exit status 0 when every trial passes.
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

CONFIG = """# kill trials: small and fast
[model]
arch = mlp
hidden = 32
batchnorm = false
dropout = 0.2

[data]
dataset = {dir}/train.npz
test = {dir}/test.npz
val_split = 0.1
workers = 0

[train]
epochs = 8
batch_size = 16
seed = 3

[optim]
name = adam
lr = 0.01

[schedule]
name = step
step_size = 3
gamma = 0.5
"""


def read_ckpt(path):
    """{name: (dtype, shape, bytes)} and the metadata of a safetensors-layout checkpoint."""
    with open(path, "rb") as f:
        data = f.read()
    (hl,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + hl])
    meta = header.pop("__metadata__", {})
    base = 8 + hl
    out = {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        out[name] = (e["dtype"], tuple(e["shape"]), data[base + b : base + en])
    return out, meta


def comparable(tensors):
    """Everything but the wall-clock seconds of the history (column 6)."""
    out = dict(tensors)
    if "trainer.history" in out:
        dt, shape, raw = out["trainer.history"]
        h = np.frombuffer(raw, dtype=np.float64).reshape(shape).copy()
        h[:, 6] = 0
        out["trainer.history"] = (dt, shape, h.tobytes())
    return out


def temps(d):
    return sorted(n for n in os.listdir(d) if ".tmp" in n)


def test_accuracy(stdout):
    m = re.search(r"test accuracy: ([0-9.]+)%", stdout)
    return m.group(1) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--delay-ms", type=int, default=30, help="checkpoint writer pause")
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one, removed)")
    a = ap.parse_args()
    deepc = os.path.join(a.build, "deepc")
    work = a.keep or tempfile.mkdtemp(prefix="deepc-kill-")
    os.makedirs(work, exist_ok=True)
    rng = random.Random(a.seed)
    print(f"kill trials: {a.trials} trials, seed {a.seed}, work in {work}", flush=True)

    r = np.random.default_rng(0)
    for name, n in (("train", 800), ("test", 200)):
        y = r.integers(0, 4, n).astype(np.int64)
        x = (r.standard_normal((n, 32)) + y[:, None] * 0.5).astype(np.float32)
        np.savez(os.path.join(work, name + ".npz"), x=x, y=y)
    cfg = os.path.join(work, "k.ini")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(dir=work))
    env = dict(os.environ, DEEPC_DEBUG_CKPT_DELAY_MS=str(a.delay_ms), OMP_NUM_THREADS="1")

    def train(out, resume):
        args = [deepc, "train", cfg, "--out", out, "--progress", "none"]
        return subprocess.Popen(args + (["--resume"] if resume else []), env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    # the uninterrupted reference
    ref_dir = os.path.join(work, "reference")
    t0 = time.monotonic()
    p = train(ref_dir, False)
    out, err = p.communicate()
    duration = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"the reference run failed: {err}")
    ref = {k: comparable(read_ckpt(os.path.join(ref_dir, k))[0]) for k in ("last.ckpt", "best.ckpt")}
    ref_acc = test_accuracy(out)
    print(f"reference: {duration:.2f} s, test accuracy {ref_acc}%", flush=True)

    failures = []
    stats = dict(kills=0, in_write=0, before_first=0, after_end=0, resumes=0, stale_removed=0)

    def fail(msg):
        failures.append(msg)
        print("FAIL:", msg, flush=True)

    def check_loads(d, trial):
        for k in ("last.ckpt", "best.ckpt"):
            path = os.path.join(d, k)
            if os.path.exists(path):
                q = subprocess.run([deepc, "inspect", path], capture_output=True, text=True, env=env)
                if q.returncode != 0:
                    fail(f"trial {trial}: {k} does not load after a kill: {q.stderr.strip()}")

    for trial in range(1, a.trials + 1):
        d = os.path.join(work, f"t{trial}")
        last_epoch = 0
        for _ in range(rng.randint(1, 3)):
            resume = os.path.exists(os.path.join(d, "last.ckpt"))
            stats["resumes"] += resume
            p = train(d, resume)
            time.sleep(rng.uniform(0, duration * 1.05))
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                stats["kills"] += 1
            p.communicate()
            if p.returncode == 0:
                stats["after_end"] += 1
            left = temps(d) if os.path.isdir(d) else []
            if any(".ckpt.tmp-" in n for n in left):
                stats["in_write"] += 1
            if not os.path.exists(os.path.join(d, "last.ckpt")):
                stats["before_first"] += 1
                continue
            check_loads(d, trial)
            try:
                epoch = int(read_ckpt(os.path.join(d, "last.ckpt"))[1].get("epoch", "0"))
            except Exception as e:  # a torn file would be a failure
                fail(f"trial {trial}: last.ckpt unreadable: {e}")
                continue
            if epoch < last_epoch:
                fail(f"trial {trial}: last.ckpt went back from epoch {last_epoch} to {epoch}")
            last_epoch = epoch
        stats["stale_removed"] += len([n for n in temps(d)]) if os.path.isdir(d) else 0
        # finish: resume (or start) and run to the end
        resume = os.path.exists(os.path.join(d, "last.ckpt"))
        p = train(d, resume)
        out, err = p.communicate()
        if p.returncode != 0:
            fail(f"trial {trial}: the final run failed: {err.strip()}")
            continue
        if temps(d):
            fail(f"trial {trial}: temporary files left: {temps(d)}")
        for k in ("last.ckpt", "best.ckpt"):
            got = comparable(read_ckpt(os.path.join(d, k))[0])
            if got.keys() != ref[k].keys():
                fail(f"trial {trial}: {k} entries differ from the uninterrupted run")
                continue
            diff = [n for n in got if got[n] != ref[k][n]]
            if diff:
                fail(f"trial {trial}: {k}: {len(diff)} tensors differ from the uninterrupted run "
                     f"(first: {diff[0]})")
        if test_accuracy(out) != ref_acc:
            fail(f"trial {trial}: test accuracy {test_accuracy(out)}% vs {ref_acc}%")
        if not a.keep:
            shutil.rmtree(d, ignore_errors=True)
        if trial % 10 == 0 or trial == a.trials:
            print(f"  {trial} trials, {stats['kills']} kills ({stats['in_write']} inside a "
                  f"checkpoint write), {len(failures)} failures", flush=True)

    print(f"kill trials: {a.trials} trials, {stats['kills']} SIGKILLs: {stats['in_write']} inside "
          f"a checkpoint write, {stats['before_first']} before the first checkpoint; "
          f"{stats['resumes']} resumes after a kill; {stats['stale_removed']} stale temporary "
          f"files found after kills (all removed by the next start); "
          f"{len(failures)} failures")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
